import type { Db } from '../../db/database.js';
import { transitionJob } from '../store/job-transitions.js';
import { lockRunOfJob } from './lock-run.js';
import { runStarted, settleRun } from './settle-run.js';

/**
 * The runner starts the job it claimed: queued -> running, and so its run. A job asked to stop
 * since the claim ends canceled instead, and false tells the runner not to start it.
 */
export function acceptJob(db: Db, jobId: string, runnerId: string): Promise<boolean> {
  return db.transaction().execute(async (tx) => {
    const run = await lockRunOfJob(tx, jobId);
    if (!run) return false;
    const job = await tx.selectFrom('jobs').select(['cancel_requested', 'cancel_reason', 'status', 'runner_id']).where('id', '=', jobId).executeTakeFirst();
    // A resend after a reconnect: the first accept went through.
    if (job?.status === 'running' && job.runner_id === runnerId) return !job.cancel_requested;
    const to = job?.cancel_requested ? 'canceled' : 'running';
    const moved = await transitionJob(tx, jobId, to, { runnerId, ...(to === 'canceled' ? { error: job?.cancel_reason ?? 'canceled before it started' } : {}) });
    if (!moved) return false;
    if (to === 'running') await runStarted(tx, run);
    else await settleRun(tx, run);
    return to === 'running';
  });
}
