import { sql } from 'kysely';
import type { Db, Tx } from '../../db/database.js';
import type { RunStatus } from '../../db/schema.js';
import { sourcesOf } from '../../domain/run-state.js';
import type { FinalStatus, JobSpec } from '../../protocol/messages.js';
import { AppError } from '../app-error.js';
import { recordActivity } from './activity-store.js';
import { syncRunStatus } from './run-store.js';

/**
 * Moves a job through the state machine: the UPDATE only matches rows in a state from which
 * `to` may be entered, so a terminal job never changes. Returns the run id, or undefined when the
 * transition did not apply.
 */
async function transitionJob(
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

/** Claims the oldest queued job whose labels the runner has, with a lease. */
export async function claimJob(db: Db, runnerId: string, labels: string[], leaseSeconds: number): Promise<JobSpec | undefined> {
  const { rows } = await sql<{ spec: JobSpec }>`
    UPDATE jobs SET runner_id = ${runnerId}, lease_expires_at = now() + make_interval(secs => ${leaseSeconds})
    WHERE id = (
      SELECT id FROM jobs
      WHERE status = 'queued' AND runner_id IS NULL AND NOT cancel_requested AND labels <@ ${labels}::text[]
      ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING spec`.execute(db);
  return rows[0]?.spec;
}

/**
 * The runner starts the job it claimed: queued -> running, and so its run. A job canceled since
 * the claim is closed as canceled instead, and false tells the runner not to start it.
 */
export function acceptJob(db: Db, jobId: string, runnerId: string): Promise<boolean> {
  return db.transaction().execute(async (tx) => {
    const job = await tx.selectFrom('jobs').select('cancel_requested').where('id', '=', jobId).forUpdate().executeTakeFirst();
    const to = job?.cancel_requested ? 'canceled' : 'running';
    const runId = await transitionJob(tx, jobId, to, { runnerId, ...(to === 'canceled' ? { error: 'canceled before it started' } : {}) });
    if (!runId) return false;
    if (to === 'canceled') await closeSteps(tx, jobId, 'canceled');
    await syncRunStatus(tx, runId);
    return to === 'running';
  });
}

/** Extends the lease while the runner still holds the job; says whether cancel was requested. */
export async function extendLease(db: Db, jobId: string, runnerId: string, leaseSeconds: number): Promise<{ held: boolean; cancel: boolean }> {
  const row = await db
    .updateTable('jobs')
    .set({ lease_expires_at: sql`now() + make_interval(secs => ${leaseSeconds})` })
    .where('id', '=', jobId)
    .where('runner_id', '=', runnerId)
    .where('status', 'in', ['queued', 'running'])
    .returning('cancel_requested')
    .executeTakeFirst();
  return { held: !!row, cancel: row?.cancel_requested ?? true };
}

export async function setStepStatus(db: Db, jobId: string, stepId: string, status: RunStatus, exitCode: number | null | undefined): Promise<void> {
  await db
    .updateTable('steps')
    .set({
      status,
      ...(status === 'running' ? { started_at: sql`now()` } : { finished_at: sql`now()` }),
      ...(exitCode !== undefined ? { exit_code: exitCode } : {}),
    })
    .where('id', '=', stepId)
    .where('job_id', '=', jobId)
    .where('status', 'in', sourcesOf(status))
    .execute();
}

/** Closes steps a finished job left open: never started -> canceled, still running -> the job's outcome. */
async function closeSteps(tx: Tx, jobId: string, status: FinalStatus): Promise<void> {
  await tx
    .updateTable('steps')
    .set({ status: sql`CASE WHEN status = 'queued' THEN 'canceled'::run_status ELSE ${status}::run_status END`, finished_at: sql`now()` })
    .where('job_id', '=', jobId)
    .where('status', 'in', ['queued', 'running'])
    .execute();
}

export function finishJob(db: Db, jobId: string, runnerId: string | null, status: FinalStatus, exitCode: number | null, error: string | null): Promise<boolean> {
  return db.transaction().execute(async (tx) => {
    const runId = await transitionJob(tx, jobId, status, { exitCode, error, ...(runnerId ? { runnerId } : {}) });
    if (!runId) return false;
    await closeSteps(tx, jobId, status);
    await syncRunStatus(tx, runId);
    return true;
  });
}

/**
 * Cancels a run: queued jobs end at once; running jobs are flagged and their runners told
 * (through `furrow_cancel`). Returns the run's status after the request.
 */
export function requestRunCancel(db: Db, runId: string, actorUserId: string) {
  return db.transaction().execute(async (tx) => {
    const run = await tx
      .selectFrom('runs')
      .innerJoin('projects', 'projects.id', 'runs.project_id')
      .select(['runs.status', 'runs.project_id', 'projects.organization_id'])
      .where('runs.id', '=', runId)
      .forUpdate('runs')
      .executeTakeFirstOrThrow();
    if (['succeeded', 'failed', 'canceled', 'timed_out'].includes(run.status)) throw new AppError('run_finished', `The run has already finished (${run.status}).`);
    const jobs = await tx
      .updateTable('jobs')
      .set({ cancel_requested: true })
      .where('run_id', '=', runId)
      .where('status', 'in', ['queued', 'running'])
      .returning(['id', 'status', 'runner_id'])
      .execute();
    await recordActivity(tx, { type: 'run.cancel_requested', organizationId: run.organization_id, projectId: run.project_id, actorUserId, subjectType: 'run', subjectId: runId });
    for (const job of jobs) {
      if (job.status === 'queued' && job.runner_id === null) {
        await transitionJob(tx, job.id, 'canceled', { error: 'canceled before it started' });
        await closeSteps(tx, job.id, 'canceled');
      } else {
        await sql`SELECT pg_notify('furrow_cancel', ${job.id})`.execute(tx);
      }
    }
    await syncRunStatus(tx, runId, actorUserId);
  });
}

/**
 * Lease expiry: a claimed job never accepted goes back to the queue; a running job whose runner
 * stopped extending its lease fails as `runner_lost`. Returns how many jobs were touched.
 */
export async function reapExpiredLeases(db: Db): Promise<number> {
  const released = await db
    .updateTable('jobs')
    .set({ runner_id: null, lease_expires_at: null })
    .where('status', '=', 'queued')
    .where('lease_expires_at', '<', sql<Date>`now()`)
    .returning('id')
    .execute();
  if (released.length > 0) await sql`SELECT pg_notify('furrow_jobs', '')`.execute(db);
  const lost = await db.selectFrom('jobs').select('id').where('status', '=', 'running').where('lease_expires_at', '<', sql<Date>`now()`).execute();
  for (const { id } of lost) await finishJob(db, id, null, 'failed', null, 'runner_lost');
  return released.length + lost.length;
}
