import { sql, type RawBuilder } from 'kysely';
import type { Db } from '../../db/database.js';
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
        AND (j.not_before IS NULL OR j.not_before <= now())
        AND (runners.organization_id IS NULL OR j.organization_id = runners.organization_id)
        AND ${condition}
      ORDER BY j.created_at LIMIT 1 FOR UPDATE OF j SKIP LOCKED)
    RETURNING spec, environment_id AS "environmentId", EXISTS (SELECT 1 FROM jobs q, runners r
      WHERE r.id = ${runnerId}::uuid AND q.status = 'queued' AND q.runner_id IS NULL AND q.id <> jobs.id AND q.labels <@ r.labels
        AND (q.not_before IS NULL OR q.not_before <= now())) AS more`.execute(db);
  return rows[0];
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
    await db.transaction().execute(async (tx) => settleRun(tx, await lockRun(tx, runId)));
  }
  return released.length;
}
