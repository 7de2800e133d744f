import { sql } from 'kysely';
import type { Db } from '../../db/database.js';
import { inTransaction } from '../../db/transaction.js';
import { expireJobs, type ExpiryOptions } from '../runs/expire-jobs.js';

/** A round must be at least this late before the time missed is bridged. */
const BRIDGE_AFTER_SECONDS = 2;

export interface LeaseWatchResult {
  /** Seconds every lease was moved on by, because no watch ran for that long. */
  bridgedSeconds: number;
  /** Jobs released or ended because their lease expired. */
  reaped: number;
}

/**
 * One round of the lease watch, run every `intervalMs` by every instance. Leases count only time
 * in which a server could take renewals: when the last round (on any instance) was more than
 * half an interval (and 2 s) late — every instance was down, or the database was — every live
 * lease is first moved on by the time missed, so a runner that kept its job through a server
 * restart or a database outage keeps it. A runner that really vanished meanwhile is then noticed
 * that much later. Then expired leases and queue times are handled (`expireJobs`).
 */
export async function watchLeases(db: Db, intervalMs: number, expiry: ExpiryOptions): Promise<LeaseWatchResult> {
  const bridgedSeconds = await inTransaction(db, async (tx) => {
    const interval = sql`make_interval(secs => ${intervalMs / 1000})`;
    const { rows } = await sql<{ missed: number }>`
      SELECT extract(epoch FROM now() - checked_at - ${interval})::float8 AS missed FROM lease_watch WHERE id FOR UPDATE`.execute(tx);
    const missed = rows[0]?.missed ?? 0;
    // A round a little late (a busy event loop) is not an outage: leases would barely move.
    const bridged = missed > Math.max(intervalMs / 2000, BRIDGE_AFTER_SECONDS) ? missed : 0;
    if (bridged > 0) {
      await sql`UPDATE jobs SET lease_expires_at = lease_expires_at + make_interval(secs => ${bridged})
                WHERE status IN ('queued', 'running') AND lease_expires_at IS NOT NULL`.execute(tx);
    }
    await sql`INSERT INTO lease_watch (id, checked_at) VALUES (true, now()) ON CONFLICT (id) DO UPDATE SET checked_at = now()`.execute(tx);
    return bridged;
  });
  return { bridgedSeconds, reaped: await expireJobs(db, expiry) };
}
