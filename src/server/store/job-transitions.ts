import { sql, type QueryCreator, type RawBuilder } from 'kysely';
import type { Tx } from '../../db/database.js';
import type { Database, RunStatus } from '../../db/schema.js';
import { isTerminal, sourcesOf } from '../../domain/run-state.js';
import { closedStepStatus } from '../../domain/step-status.js';
import type { FinalStatus } from '../../protocol/messages.js';

/**
 * Moves a job through the state machine: the UPDATE only matches rows in a state from which
 * `to` may be entered, so a terminal job never changes. Entering a terminal state closes the
 * job's open steps (see closeSteps) and, for a job of a concurrency group or a limited matrix,
 * tells waiting runners its place is free, in the same statement. Returns the run id, or
 * undefined when the transition did not apply.
 */
export async function transitionJob(
  tx: Tx,
  jobId: string,
  to: RunStatus,
  extra: { exitCode?: number | null; error?: string | null; runnerId?: string } = {},
): Promise<string | undefined> {
  const ends = isTerminal(to);
  const row = await tx
    .with('moved', (db) => {
      let q = db
        .updateTable('jobs')
        .set({
          status: to,
          ...(ends ? { finished_at: sql`now()`, lease_expires_at: null } : { started_at: sql`now()` }),
          ...(extra.exitCode !== undefined ? { exit_code: extra.exitCode } : {}),
          ...(extra.error !== undefined ? { error: extra.error } : {}),
        })
        .where('id', '=', jobId)
        .where('status', 'in', sourcesOf(to));
      if (extra.runnerId) q = q.where('runner_id', '=', extra.runnerId);
      // The notifications ride on the same statement: round trips less on the dispatch path.
      return q.returning([
        'id',
        'run_id',
        sql<string>`pg_notify('furrow_job', ${jobId})`.as('notified'),
        sql<string | null>`CASE WHEN ${ends} AND (max_parallel IS NOT NULL OR concurrency_group IS NOT NULL) THEN pg_notify('furrow_jobs', '') END`.as('freed'),
      ]);
    })
    // Open steps close in the same statement, for the job that moved only.
    .with('closed', (db) => (ends ? closeStepsQuery(db as unknown as QueryCreator<Database>, to as FinalStatus | 'runner_lost' | 'skipped', sql`(SELECT id FROM moved)`) : db.selectNoFrom(sql`1`.as('none'))))
    .selectFrom('moved')
    .select('run_id')
    .executeTakeFirst();
  return row?.run_id;
}

/** Closes the steps a finished job left open (see domain/step-status.ts). */
export async function closeSteps(tx: Tx, jobId: string, status: FinalStatus | 'runner_lost' | 'skipped'): Promise<void> {
  await closeStepsQuery(tx, status, jobId).execute();
}

function closeStepsQuery(db: QueryCreator<Database>, status: FinalStatus | 'runner_lost' | 'skipped', job: string | RawBuilder<unknown>) {
  return db
    .updateTable('steps')
    .set({
      status: sql`CASE WHEN status = 'queued' THEN ${closedStepStatus('queued', status)}::run_status ELSE ${closedStepStatus('running', status)}::run_status END`,
      finished_at: sql`now()`,
    })
    .where('job_id', typeof job === 'string' ? '=' : 'in', job as never)
    .where('status', 'in', ['queued', 'running']);
}
