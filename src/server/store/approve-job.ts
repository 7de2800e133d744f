import { sql } from 'kysely';
import type { Db } from '../../db/database.js';
import { AppError } from '../app-error.js';
import { recordActivity } from './activity-store.js';
import { syncRunStatus } from './run-store.js';

/**
 * A manager lets a job into its protected environment: it is queued at once when the jobs it
 * needs have ended (and its `if` holds), or later when they do.
 */
export function approveJob(db: Db, jobId: string, actorUserId: string) {
  return db.transaction().execute(async (tx) => {
    const job = await tx
      .updateTable('jobs')
      .set({ approval: 'approved', approved_by: actorUserId })
      .where('id', '=', jobId)
      .where('approval', '=', 'pending')
      .where('status', '=', 'waiting')
      .returning(['run_id', 'name', 'organization_id', sql<string>`(SELECT project_id FROM runs WHERE runs.id = jobs.run_id)`.as('projectId')])
      .executeTakeFirst();
    if (!job) throw new AppError('approval_not_pending', 'The job is not waiting for an approval (it was approved already, or it has ended).');
    await recordActivity(tx, { type: 'job.approved', organizationId: job.organization_id, projectId: job.projectId, actorUserId, subjectType: 'job', subjectId: jobId, payload: { runId: job.run_id, name: job.name } });
    await syncRunStatus(tx, job.run_id, actorUserId);
    return { id: jobId, approval: 'approved' as const };
  });
}
