import { sql } from 'kysely';
import type { Db } from '../../db/database.js';
import { waitingReasons } from '../store/runner-store.js';
import { releaseClaims } from './claim-job.js';
import { finishJob } from './finish-job.js';

export const RUNNER_LOST_ERROR = 'the runner stopped renewing its lease (it crashed, lost its connection or was removed)';

export interface ExpiryOptions {
  /** Seconds a queued job may wait for a runner before it ends timed_out. */
  queueTimeoutSeconds: number;
  /** Seconds a retry of a lost job waits past the old lease (see finishJob). */
  retryGraceSeconds: number;
  /** Seconds since the previous watch: retries held back until within them are due now. */
  sinceSeconds: number;
}

/**
 * The watch over time-bound jobs, run every third of a lease on every instance (each change is a
 * guarded transition, so instances may overlap):
 * - a claimed job never accepted whose lease ran out goes back to the queue;
 * - a running job whose runner stopped renewing its lease ends `runner_lost` (and may be retried);
 * - a job no runner took within the queue timeout ends `timed_out`, saying why it waited;
 * - runners hear of retries whose hold-back just ended.
 * Returns how many jobs it touched.
 */
export async function expireJobs(db: Db, opts: ExpiryOptions): Promise<number> {
  const unaccepted = await db.selectFrom('jobs').select('id').where('status', '=', 'queued').where('lease_expires_at', '<', sql<Date>`now()`).execute();
  const released = await releaseClaims(db, unaccepted.map((j) => j.id));
  const lost = await db.selectFrom('jobs').select('id').where('status', '=', 'running').where('lease_expires_at', '<', sql<Date>`now()`).execute();
  let ended = 0;
  for (const { id } of lost) if (await finishJob(db, id, 'runner_lost', { error: RUNNER_LOST_ERROR, retryGraceSeconds: opts.retryGraceSeconds })) ended += 1;
  const stale = await db
    .selectFrom('jobs')
    .select('id')
    .where('status', '=', 'queued')
    .where('runner_id', 'is', null)
    .where('queued_at', '<', sql<Date>`now() - make_interval(secs => ${opts.queueTimeoutSeconds})`)
    .execute();
  const reasons = await waitingReasons(db, stale.map((j) => j.id));
  for (const { id } of stale) {
    const why = reasons.get(id);
    const error = `no runner took the job within ${describeSeconds(opts.queueTimeoutSeconds)}${why ? ` (${why})` : ''}`;
    if (await finishJob(db, id, 'timed_out', { error, runnerId: null })) ended += 1;
  }
  await sql`SELECT pg_notify('furrow_jobs', '') WHERE EXISTS (SELECT 1 FROM jobs WHERE status = 'queued' AND runner_id IS NULL
    AND not_before BETWEEN now() - make_interval(secs => ${opts.sinceSeconds + 1}) AND now())`.execute(db);
  return released + ended;
}

/** 86400 -> "24 h", 600 -> "10 min", 45 -> "45 s". */
export function describeSeconds(s: number): string {
  if (s % 3600 === 0) return `${s / 3600} h`;
  if (s % 60 === 0) return `${s / 60} min`;
  return `${s} s`;
}
