import type { Db, Tx } from './database.js';
import { isRolledBackConflict } from './transient-error.js';

/** Attempts of a transaction PostgreSQL keeps aborting for conflicts before the error goes up. */
const ATTEMPTS = 4;

/**
 * Runs `fn` in a transaction, and runs it again as a whole when PostgreSQL aborted it to break a
 * deadlock (or for a serialization failure): that rolls back all of it, so nothing is applied
 * twice, and the other side has gone on by the next attempt. `fn` must do nothing outside the
 * transaction that cannot be done again. Other errors, a lost connection among them (whose
 * COMMIT may have happened), go up at once.
 */
export async function inTransaction<T>(db: Db, fn: (tx: Tx) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction().execute(fn);
    } catch (err) {
      if (attempt >= ATTEMPTS || !isRolledBackConflict(err)) throw err;
      // Apart by a random few milliseconds, so that the same two do not meet again in step.
      await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt));
    }
  }
}
