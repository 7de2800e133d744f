import { sql, type RawBuilder } from 'kysely';
import type { Db } from '../../db/database.js';
import { inTransaction } from '../../db/transaction.js';
import type { JobSpec } from '../../protocol/messages.js';
import { runnerHeldJobs } from '../store/runner-sql.js';
import { lockRun } from './lock-run.js';
import { settleRun } from './settle-run.js';

/** A job as claimed: its stored spec (without secrets) and the environment its secrets come from. */
export interface ClaimedJob {
  spec: JobSpec;
  environmentId: string | null;
  /** Whether other jobs the runner could take were queued too, as the claim saw them: another slot may look. */
  more: boolean;
}

/**
 * Claims the oldest queued job the runner may take, with a lease: its labels are all among the
 * runner's, it belongs to the runner's organization (or the runner is instance-wide), it is not
 * held back (a retry waiting out its lost attempt's lease), the runner is not paused and holds
 * fewer jobs than its capacity, its matrix has a free parallel slot and no other job of its
 * concurrency group is claimed or running. Labels and capacity are read from the runner's stored
 * record, as its last `register` left them. `tokenHash` becomes the job's artifact token.
 *
 * A claim changes only the job's own row, never under its run's lock: claims stay off the run
 * lock order, and a job asked to stop is never claimed (one asked after the claim is closed when
 * the runner accepts it).
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
  return inTransaction(db, async (tx) => {
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

/**
 * How many of the oldest jobs nobody holds a claim looks at first. Only when none of them fits
 * (all need other labels, another organization, or a limit is reached) does it look through the
 * whole queue: a claim's cost does not grow with a backlog.
 */
export const CLAIM_WINDOW = 64;

async function claimWhere(db: Db, runnerId: string, leaseSeconds: number, tokenHash: Buffer, condition: RawBuilder<unknown>): Promise<ClaimedJob | undefined> {
  const first = await claimAmong(db, runnerId, leaseSeconds, tokenHash, condition, true);
  if (first.claimed || !first.windowFull) return first.claimed;
  return (await claimAmong(db, runnerId, leaseSeconds, tokenHash, condition, false)).claimed;
}

/**
 * One claim: the runner's record is read once (its labels, organization, and whether it is paused
 * or full), then the oldest fitting job is taken, among the window's jobs or, if not `windowed`,
 * the whole queue. `windowFull` says that the window found nothing although it was full: the
 * whole queue must be looked at.
 */
async function claimAmong(db: Db, runnerId: string, leaseSeconds: number, tokenHash: Buffer, condition: RawBuilder<unknown>, windowed: boolean): Promise<{ claimed?: ClaimedJob; windowFull: boolean }> {
  const unclaimed = sql`FROM jobs w WHERE w.status = 'queued' AND w.runner_id IS NULL ORDER BY w.created_at LIMIT ${sql.lit(CLAIM_WINDOW)}`;
  const candidates = windowed ? sql`(SELECT w.id, w.created_at ${unclaimed}) c JOIN jobs j ON j.id = c.id` : sql`jobs j`;
  const { rows } = await sql<{ spec: JobSpec | null; environmentId: string | null; more: boolean; windowFull: boolean }>`
    WITH runner AS MATERIALIZED (
      SELECT runners.labels, runners.organization_id FROM runners
      WHERE runners.id = ${runnerId}::uuid AND NOT runners.paused AND ${runnerHeldJobs} < runners.capacity),
    claimed AS (
      UPDATE jobs SET runner_id = ${runnerId}, lease_expires_at = now() + make_interval(secs => ${leaseSeconds}), job_token_hash = ${tokenHash}
      WHERE id = (
        SELECT j.id FROM ${candidates}, runner
        WHERE j.status = 'queued' AND j.runner_id IS NULL AND NOT j.cancel_requested AND j.labels <@ runner.labels
          AND (j.not_before IS NULL OR j.not_before <= now())
          AND (runner.organization_id IS NULL OR j.organization_id = runner.organization_id)
          AND ${condition}
        ORDER BY ${windowed ? sql`c.created_at` : sql`j.created_at`} LIMIT 1 FOR UPDATE OF j SKIP LOCKED)
      RETURNING jobs.id, spec, environment_id)
    SELECT claimed.spec, claimed.environment_id AS "environmentId",
      claimed.id IS NOT NULL AND EXISTS (SELECT 1 FROM jobs q, runner r
        WHERE q.status = 'queued' AND q.runner_id IS NULL AND q.id <> claimed.id AND q.labels <@ r.labels
          AND (q.not_before IS NULL OR q.not_before <= now()) AND (r.organization_id IS NULL OR q.organization_id = r.organization_id)
        -- Kept a subplan that stops at the first match: as a semi-join, stale statistics could have it hash the whole queue.
        LIMIT 1) AS more,
      ${windowed ? sql`CASE WHEN claimed.id IS NULL AND EXISTS (SELECT 1 FROM runner) THEN (SELECT count(*) FROM (SELECT 1 ${unclaimed}) w) >= ${sql.lit(CLAIM_WINDOW)} ELSE false END` : sql`false`} AS "windowFull"
    FROM (SELECT) one LEFT JOIN claimed ON true`.execute(db);
  const row = rows[0];
  return { claimed: row?.spec ? { spec: row.spec, environmentId: row.environmentId, more: row.more } : undefined, windowFull: row?.windowFull === true };
}

/**
 * Gives claimed jobs that were never accepted back to the queue (their runner disconnected, or
 * their lease ran out before the accept). One asked to stop meanwhile ends canceled instead: nobody
 * would ever claim it again.
 */
export async function releaseClaims(db: Db, jobIds: string[], runnerId?: string): Promise<number> {
  if (jobIds.length === 0) return 0;
  let q = db.updateTable('jobs').set({ runner_id: null, lease_expires_at: null }).where('id', 'in', jobIds).where('status', '=', 'queued');
  if (runnerId) q = q.where('runner_id', '=', runnerId);
  const released = await q.returning(['run_id', 'cancel_requested']).execute();
  if (released.length > 0) await sql`SELECT pg_notify('furrow_jobs', '')`.execute(db);
  for (const runId of new Set(released.filter((r) => r.cancel_requested).map((r) => r.run_id))) {
    await inTransaction(db, async (tx) => settleRun(tx, await lockRun(tx, runId)));
  }
  return released.length;
}
