import { sql } from 'kysely';
import type { Tx } from '../../db/database.js';
import type { RunStatus } from '../../db/schema.js';
import { sourcesOf } from '../../domain/run-state.js';
import { closedStepStatus } from '../../domain/step-status.js';
import type { FinalStatus } from '../../protocol/messages.js';

/**
 * Moves a job through the state machine: the UPDATE only matches rows in a state from which
 * `to` may be entered, so a terminal job never changes. Returns the run id, or undefined when the
 * transition did not apply.
 */
export async function transitionJob(
  tx: Tx,
  jobId: string,
  to: RunStatus,
  extra: { exitCode?: number | null; error?: string | null; runnerId?: string } = {},
): Promise<string | undefined> {
  let q = tx
    .updateTable('jobs')
    .set({
      status: to,
      ...(to === 'running' ? { started_at: sql`now()` } : { finished_at: sql`now()`, lease_expires_at: null }),
      ...(extra.exitCode !== undefined ? { exit_code: extra.exitCode } : {}),
      ...(extra.error !== undefined ? { error: extra.error } : {}),
    })
    .where('id', '=', jobId)
    .where('status', 'in', sourcesOf(to));
  if (extra.runnerId) q = q.where('runner_id', '=', extra.runnerId);
  // The notification rides on the same statement: one round trip less on the dispatch path.
  const row = await q.returning(['run_id', sql<string>`pg_notify('furrow_job', ${jobId})`.as('notified')]).executeTakeFirst();
  return row?.run_id;
}

/** Closes the steps a finished job left open (see domain/step-status.ts). */
export async function closeSteps(tx: Tx, jobId: string, status: FinalStatus | 'runner_lost' | 'skipped'): Promise<void> {
  await tx
    .updateTable('steps')
    .set({
      status: sql`CASE WHEN status = 'queued' THEN ${closedStepStatus('queued', status)}::run_status ELSE ${closedStepStatus('running', status)}::run_status END`,
      finished_at: sql`now()`,
    })
    .where('job_id', '=', jobId)
    .where('status', 'in', ['queued', 'running'])
    .execute();
}
