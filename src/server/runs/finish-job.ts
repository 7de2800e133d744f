import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Db, Tx } from '../../db/database.js';
import { inTransaction } from '../../db/transaction.js';
import { decideRetry } from '../../domain/job-retry.js';
import type { FinalStatus, JobSpec } from '../../protocol/messages.js';
import { recordActivity } from '../store/activity-store.js';
import { transitionJob } from '../store/job-transitions.js';
import { lockRunOfJob, type LockedRun } from './lock-run.js';
import { settleRun } from './settle-run.js';

export interface FinishOptions {
  /** Only while this runner holds the job (a runner's `done`); omitted for the server's own ends. */
  runnerId?: string | null;
  exitCode?: number | null;
  error?: string | null;
  /**
   * The job's runner said it no longer runs it (it registered again without it): a retry of a
   * lost job need not wait out the old lease.
   */
  runnerConfirmedGone?: boolean;
  /** Seconds a retry of a lost job waits past the old lease, for a cut-off runner to kill it. */
  retryGraceSeconds?: number;
}

/**
 * Ends a job and moves its run on, in one transaction under the run's lock: the job's state and
 * open steps, the next attempt when its retry policy says so, then the run's decisions. Returns
 * false when the job had ended already (or another runner holds it).
 */
export function finishJob(db: Db, jobId: string, status: FinalStatus | 'runner_lost', opts: FinishOptions = {}): Promise<boolean> {
  return inTransaction(db, async (tx) => {
    const run = await lockRunOfJob(tx, jobId);
    if (!run) return false;
    const ended = await endJob(tx, run, jobId, status, opts);
    if (ended) await settleRun(tx, run);
    return ended;
  });
}

/** The job's own end and its retry; the caller holds the run's lock and settles the run after. */
export async function endJob(tx: Tx, run: LockedRun, jobId: string, status: FinalStatus | 'runner_lost', opts: FinishOptions): Promise<boolean> {
  const job = await tx
    .selectFrom('jobs')
    .select(['lease_expires_at', 'cancel_reason', 'cancel_requested'])
    .where('id', '=', jobId)
    .executeTakeFirst();
  if (!job) return false;
  // A job stopped on request ends with why it was asked to stop, whatever its runner reports.
  const error = status === 'canceled' && job.cancel_requested && job.cancel_reason ? job.cancel_reason : (opts.error ?? null);
  const ended = await transitionJob(tx, jobId, status, { exitCode: opts.exitCode ?? null, error, ...(opts.runnerId ? { runnerId: opts.runnerId } : {}) });
  if (!ended) return false;
  await retryJob(tx, run, jobId, status, job.lease_expires_at as Date | null, opts);
  return true;
}

/** Queues the next attempt of a job that just ended with `outcome`, if its retry policy says so. */
async function retryJob(tx: Tx, run: LockedRun, jobId: string, outcome: FinalStatus | 'runner_lost', leaseExpiresAt: Date | null, opts: FinishOptions): Promise<void> {
  if (outcome === 'succeeded' || outcome === 'canceled') return; // never retried: no lookup
  const job = await tx
    .selectFrom('jobs')
    .select(['organization_id', 'spec', 'attempt', 'max_attempts', 'retry_on', 'cancel_requested'])
    .where('id', '=', jobId)
    .executeTakeFirstOrThrow();
  const decision = decideRetry(
    { attempt: job.attempt, maxAttempts: job.max_attempts, retryOn: job.retry_on, cancelRequested: job.cancel_requested },
    outcome,
    run.cancelRequestedAt !== null,
    opts.runnerConfirmedGone ?? false,
  );
  if (!decision.retry) return;
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
  const grace = opts.retryGraceSeconds ?? 0;
  // The lost attempt may still run on a runner cut off from us until its lease is over (and the
  // runner has killed it): the retry waits that long, plus a grace period.
  const notBefore = decision.waitOutLease ? sql`greatest(now(), ${leaseExpiresAt ?? new Date()}::timestamptz) + make_interval(secs => ${grace})` : sql`NULL`;
  await tx.updateTable('jobs').set({ retried: true }).where('id', '=', jobId).execute();
  // The attempt is the job again: every column but its identity, spec and progress is copied.
  await sql`
    INSERT INTO jobs (id, run_id, organization_id, name, labels, spec, timeout_seconds, attempt, max_attempts, retry_on, retry_of,
      job_key, instance_key, needs, condition, continue_on_error, matrix, max_parallel, fail_fast, environment_id, approval, approved_by,
      concurrency_group, queued_at, not_before)
    SELECT ${id}, run_id, organization_id, name, labels, ${JSON.stringify(spec)}::jsonb, timeout_seconds, ${attempt}, max_attempts, retry_on, id,
      job_key, instance_key, needs, condition, continue_on_error, matrix, max_parallel, fail_fast, environment_id, approval, approved_by,
      concurrency_group, now(), ${notBefore}
    FROM jobs WHERE id = ${jobId}
    RETURNING pg_notify('furrow_jobs', ${id})`.execute(tx);
  const steps = [...(spec.checkout ? [{ id: spec.checkout.stepId, name: 'checkout' }] : []), ...spec.steps];
  if (steps.length > 0) await tx.insertInto('steps').values(steps.map((step, position) => ({ id: step.id, job_id: id, position, name: step.name }))).execute();
  await recordActivity(tx, {
    type: 'job.retried',
    organizationId: job.organization_id,
    projectId: run.projectId,
    actorUserId: null,
    subjectType: 'job',
    subjectId: id,
    payload: { runId: run.id, previousJobId: jobId, attempt, reason: outcome },
  });
}
