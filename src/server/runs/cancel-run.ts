import { sql } from 'kysely';
import type { Db } from '../../db/database.js';
import { inTransaction } from '../../db/transaction.js';
import { isTerminal } from '../../domain/run-state.js';
import { AppError } from '../app-error.js';
import { recordActivity } from '../store/activity-store.js';
import { lockRun } from './lock-run.js';
import { settleRun } from './settle-run.js';

/**
 * Cancels a run. The first cancel stops every job whose `if` does not hold once the run is
 * canceled — so `always()` and `cancelled()` jobs (teardown) still run — and a second cancel, or
 * `force`, stops those too. Jobs not started end at once; runners are told to stop the others.
 */
export function cancelRun(db: Db, runId: string, actorUserId: string, force: boolean) {
  return inTransaction(db, async (tx) => {
    const run = await lockRun(tx, runId);
    if (isTerminal(run.status)) throw new AppError('run_finished', `The run has already finished (${run.status}).`);
    const forced = force || run.cancelRequestedAt !== null;
    if (run.cancelForced) return run.status; // nothing more to ask for
    // The time the cancel took hold of the run (its lock), not when its transaction began: a job
    // accepted while the cancel waited for that lock started before it, whatever the clocks say.
    await tx
      .updateTable('runs')
      .set({ cancel_requested_at: sql`coalesce(cancel_requested_at, clock_timestamp())`, cancel_forced: forced, canceled_by: sql`coalesce(canceled_by, ${actorUserId}::uuid)` })
      .where('id', '=', runId)
      .execute();
    await recordActivity(tx, {
      type: 'run.cancel_requested',
      organizationId: run.organizationId,
      projectId: run.projectId,
      actorUserId,
      subjectType: 'run',
      subjectId: runId,
      payload: { force: forced },
    });
    return settleRun(tx, await lockRun(tx, runId), actorUserId);
  });
}
