import { randomUUID } from 'node:crypto';
import { sql, type RawBuilder } from 'kysely';
import type { Db, Tx } from '../../db/database.js';
import type { RunStatus } from '../../db/schema.js';
import { isTerminal, RETRYABLE, sourcesOf } from '../../domain/run-state.js';
import type { FinalStatus, JobSpec } from '../../protocol/messages.js';
import { AppError } from '../app-error.js';
import { recordActivity } from './activity-store.js';
import { cancelJobs, closeSteps, transitionJob } from './job-transitions.js';
import { runnerHeldJobs } from './runner-sql.js';
import { syncRunStatus } from './run-store.js';

/** A job as claimed: its stored spec (without secrets) and the environment its secrets come from. */
export interface ClaimedJob {
  spec: JobSpec;
  environmentId: string | null;
}

/**
 * Claims the oldest queued job the runner may take, with a lease: its labels are all among the
 * runner's, it belongs to the runner's organization (or the runner is instance-wide), the runner
 * is not paused and holds fewer jobs than its capacity, its matrix has a free parallel slot and
 * no other job of its concurrency group is claimed or running. Labels and capacity are read from
 * the runner's stored record, as its last `register` left them. `tokenHash` becomes the job's
 * artifact token.
 */
export async function claimJob(db: Db, runnerId: string, leaseSeconds: number, tokenHash: Buffer): Promise<ClaimedJob | undefined> {
  const free = await claimWhere(db, runnerId, leaseSeconds, tokenHash, sql`j.max_parallel IS NULL AND j.concurrency_group IS NULL`);
  if (free) return free;
  // Most of the time no limited job waits: then no transaction and no lock.
  const { rows } = await sql<{ waiting: boolean }>`SELECT EXISTS (SELECT 1 FROM jobs WHERE status = 'queued' AND runner_id IS NULL
    AND (max_parallel IS NOT NULL OR concurrency_group IS NOT NULL)) AS waiting`.execute(db);
  if (!rows[0]?.waiting) return undefined;
  // Jobs limited by their matrix or concurrency group are claimed one claim at a time: the lock
  // is taken before the claim's snapshot, so each claim sees the ones committed before it.
  return db.transaction().execute(async (tx) => {
    await sql`SELECT pg_advisory_xact_lock(${CONSTRAINED_CLAIM_LOCK})`.execute(tx);
    return claimWhere(tx, runnerId, leaseSeconds, tokenHash, sql`(j.max_parallel IS NOT NULL OR j.concurrency_group IS NOT NULL)
      AND (j.max_parallel IS NULL OR (SELECT count(*) FROM jobs s WHERE s.run_id = j.run_id AND s.job_key = j.job_key
            AND (s.status = 'running' OR (s.status = 'queued' AND s.runner_id IS NOT NULL))) < j.max_parallel)
      AND (j.concurrency_group IS NULL OR NOT EXISTS (SELECT 1 FROM jobs o WHERE o.concurrency_group = j.concurrency_group
            AND (o.status = 'running' OR (o.status = 'queued' AND o.runner_id IS NOT NULL))))`);
  });
}

/** An arbitrary constant: the advisory lock that serialises claims of limited jobs. */
const CONSTRAINED_CLAIM_LOCK = 7_402_115;

async function claimWhere(db: Db, runnerId: string, leaseSeconds: number, tokenHash: Buffer, condition: RawBuilder<unknown>): Promise<ClaimedJob | undefined> {
  const { rows } = await sql<ClaimedJob>`
    UPDATE jobs SET runner_id = ${runnerId}, lease_expires_at = now() + make_interval(secs => ${leaseSeconds}), job_token_hash = ${tokenHash}
    WHERE id = (
      SELECT j.id FROM jobs j, runners
      WHERE runners.id = ${runnerId}::uuid AND NOT runners.paused AND ${runnerHeldJobs} < runners.capacity
        AND j.status = 'queued' AND j.runner_id IS NULL AND NOT j.cancel_requested AND j.labels <@ runners.labels
        AND (runners.organization_id IS NULL OR j.organization_id = runners.organization_id)
        AND ${condition}
      ORDER BY j.created_at LIMIT 1 FOR UPDATE OF j SKIP LOCKED)
    RETURNING spec, environment_id AS "environmentId"`.execute(db);
  return rows[0];
}

/** Gives claimed jobs that were never accepted back to the queue (their runner disconnected). */
export async function releaseClaims(db: Db, runnerId: string, jobIds: string[]): Promise<void> {
  if (jobIds.length === 0) return;
  const released = await db
    .updateTable('jobs')
    .set({ runner_id: null, lease_expires_at: null })
    .where('id', 'in', jobIds)
    .where('runner_id', '=', runnerId)
    .where('status', '=', 'queued')
    .returning('id')
    .execute();
  if (released.length > 0) await sql`SELECT pg_notify('furrow_jobs', '')`.execute(db);
}

/**
 * The runner starts the job it claimed: queued -> running, and so its run. A job canceled since
 * the claim is closed as canceled instead, and false tells the runner not to start it.
 */
export function acceptJob(db: Db, jobId: string, runnerId: string): Promise<boolean> {
  return db.transaction().execute(async (tx) => {
    const job = await tx.selectFrom('jobs').select(['cancel_requested', 'status', 'runner_id']).where('id', '=', jobId).forUpdate().executeTakeFirst();
    // A resend after a reconnect: the first accept went through.
    if (job?.status === 'running' && job.runner_id === runnerId) return !job.cancel_requested;
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

/**
 * Ends a job (if `runnerId` is given, only while that runner holds it) and, when its outcome is
 * one the workflow retries and attempts are left, queues the next attempt in the same
 * transaction. Returns false when the job had ended already.
 */
export function finishJob(db: Db, jobId: string, runnerId: string | null, status: FinalStatus | 'runner_lost', exitCode: number | null, error: string | null): Promise<boolean> {
  return db.transaction().execute(async (tx) => {
    const runId = await transitionJob(tx, jobId, status, { exitCode, error, ...(runnerId ? { runnerId } : {}) });
    if (!runId) return false;
    await closeSteps(tx, jobId, status);
    await retryJob(tx, jobId, status);
    await syncRunStatus(tx, runId);
    // A limited job frees its concurrency group or matrix slot: waiting runners look again.
    await sql`SELECT pg_notify('furrow_jobs', '') FROM jobs WHERE id = ${jobId} AND (max_parallel IS NOT NULL OR concurrency_group IS NOT NULL)`.execute(tx);
    return true;
  });
}

/** Queues the next attempt of a job that just ended with `outcome`, if its retry policy says so. */
async function retryJob(tx: Tx, jobId: string, outcome: RunStatus): Promise<void> {
  if (!(RETRYABLE as readonly RunStatus[]).includes(outcome)) return; // a success or cancel never is: no lookup
  const job = await tx
    .selectFrom('jobs')
    .innerJoin('runs', 'runs.id', 'jobs.run_id')
    .select(['jobs.run_id', 'jobs.organization_id', 'runs.project_id', 'jobs.spec', 'jobs.attempt', 'jobs.max_attempts', 'jobs.retry_on', 'jobs.cancel_requested'])
    .where('jobs.id', '=', jobId)
    .executeTakeFirstOrThrow();
  if (job.cancel_requested || job.attempt >= job.max_attempts || !job.retry_on.includes(outcome)) return;
  const previous = job.spec as JobSpec;
  const id = randomUUID();
  const attempt = job.attempt + 1;
  const spec: JobSpec = {
    ...previous,
    jobId: id,
    attempt,
    env: { ...previous.env, FURROW_JOB_ID: id, FURROW_JOB_ATTEMPT: String(attempt) },
    checkout: previous.checkout && { ...previous.checkout, stepId: randomUUID() },
    steps: previous.steps.map((step) => ({ ...step, id: randomUUID() })),
  };
  await tx.updateTable('jobs').set({ retried: true }).where('id', '=', jobId).execute();
  // The attempt is the job again: every column but its identity, spec and progress is copied.
  await sql`
    INSERT INTO jobs (id, run_id, organization_id, name, labels, spec, timeout_seconds, attempt, max_attempts, retry_on, retry_of,
      job_key, instance_key, needs, condition, continue_on_error, matrix, max_parallel, fail_fast, environment_id, approval, approved_by, concurrency_group)
    SELECT ${id}, run_id, organization_id, name, labels, ${JSON.stringify(spec)}::jsonb, timeout_seconds, ${attempt}, max_attempts, retry_on, id,
      job_key, instance_key, needs, condition, continue_on_error, matrix, max_parallel, fail_fast, environment_id, approval, approved_by, concurrency_group
    FROM jobs WHERE id = ${jobId}
    RETURNING pg_notify('furrow_jobs', ${id})`.execute(tx);
  const steps = [...(spec.checkout ? [{ id: spec.checkout.stepId, name: 'checkout' }] : []), ...spec.steps];
  if (steps.length > 0) await tx.insertInto('steps').values(steps.map((step, position) => ({ id: step.id, job_id: id, position, name: step.name }))).execute();
  await recordActivity(tx, {
    type: 'job.retried',
    organizationId: job.organization_id,
    projectId: job.project_id,
    actorUserId: null,
    subjectType: 'job',
    subjectId: id,
    payload: { runId: job.run_id, previousJobId: jobId, attempt, reason: outcome },
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
    if (isTerminal(run.status)) throw new AppError('run_finished', `The run has already finished (${run.status}).`);
    const jobs = await tx.selectFrom('jobs').select(['id', 'status', 'runner_id', 'run_id']).where('run_id', '=', runId).where('status', 'in', ['waiting', 'queued', 'running']).execute();
    await recordActivity(tx, { type: 'run.cancel_requested', organizationId: run.organization_id, projectId: run.project_id, actorUserId, subjectType: 'run', subjectId: runId });
    await cancelJobs(tx, jobs, 'canceled before it started');
    await syncRunStatus(tx, runId, actorUserId);
  });
}

/**
 * Lease expiry: a claimed job never accepted goes back to the queue; a running job whose runner
 * stopped extending its lease ends `runner_lost` (and is retried if its policy says so). Safe to
 * run on several instances at once: every change is a guarded transition. Returns how many jobs
 * were touched.
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
  let ended = 0;
  for (const { id } of lost) if (await finishJob(db, id, null, 'runner_lost', null, RUNNER_LOST_ERROR)) ended += 1;
  return released.length + ended;
}

export const RUNNER_LOST_ERROR = 'the runner stopped renewing its lease (it crashed, lost its connection or was removed)';
