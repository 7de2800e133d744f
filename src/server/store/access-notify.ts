import { sql } from 'kysely';
import type { Db, Tx } from '../../db/database.js';

/**
 * Tells every server instance (on commit, when inside a transaction) that what this user may
 * reach has shrunk or their credentials changed, so open live subscriptions are checked again.
 */
export async function notifyAccessChanged(db: Db | Tx, userId: string): Promise<void> {
  await sql`SELECT pg_notify('furrow_access', ${userId})`.execute(db);
}
