import type { Db } from '../../db/database.js';
import { inTransaction } from '../../db/transaction.js';
import { AppError } from '../app-error.js';
import { recordActivity } from '../store/activity-store.js';
import { lockRunOfJob } from './lock-run.js';
import { settleRun } from './settle-run.js';

/**
 * A manager lets a job into its protected environment: it is queued at once when the jobs it
 * needs have ended (and its `if` holds), or later when they do.
 */
export function approveJob(db: Db, jobId: string, actorUserId: string) {
  return inTransaction(db, async (tx) => {
    const run = await lockRunOfJob(tx, jobId);
    const job = await tx
      .updateTable('jobs')
      .set({ approval: 'approved', approved_by: actorUserId })
      .where('id', '=', jobId)
      .where('approval', '=', 'pending')
      .where('status', '=', 'waiting')
      .returning(['name', 'organization_id'])
      .executeTakeFirst();
    if (!job || !run) throw new AppError('approval_not_pending', 'The job is not waiting for an approval (it was approved already, or it has ended).');
    await recordActivity(tx, { type: 'job.approved', organizationId: job.organization_id, projectId: run.projectId, actorUserId, subjectType: 'job', subjectId: jobId, payload: { runId: run.id, name: job.name } });
    await settleRun(tx, run, actorUserId);
    return { id: jobId, approval: 'approved' as const };
  });
}
