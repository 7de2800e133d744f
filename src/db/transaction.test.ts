import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../test/helpers/test-database.js';
import { openDatabase, type DatabaseHandle } from './database.js';
import { inTransaction } from './transaction.js';

let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
let database: DatabaseHandle;

beforeAll(async () => {
  testDb = await createTestDatabase();
  database = openDatabase(testDb.url, 4);
  await sql`CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL)`.execute(database.db);
});
afterAll(async () => {
  await database?.close();
  await testDb?.drop();
});

const db = () => database.db;

/** Resolves once some transaction waits for a lock held by another. */
async function someoneWaits(): Promise<void> {
  for (;;) {
    const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'`.execute(db());
    if (rows[0]!.n > 0) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('inTransaction', () => {
  it('runs a transaction PostgreSQL aborted to break a deadlock again as a whole, so that both sides commit once', async () => {
    await sql`INSERT INTO counters VALUES (1, 0), (2, 0)`.execute(db());
    const attempts = { a: 0, b: 0 };
    let aHoldsOne!: () => void;
    const aHeld = new Promise<void>((r) => (aHoldsOne = r));
    // a takes 1 then 2, b takes 2 then 1: on their first attempts they deadlock.
    const a = inTransaction(db(), async (tx) => {
      attempts.a++;
      await sql`UPDATE counters SET n = n + 1 WHERE id = 1`.execute(tx);
      aHoldsOne();
      if (attempts.a === 1) await someoneWaits(); // b holds 2 and waits for 1
      await sql`UPDATE counters SET n = n + 10 WHERE id = 2`.execute(tx);
      return 'a';
    });
    const b = inTransaction(db(), async (tx) => {
      attempts.b++;
      await sql`UPDATE counters SET n = n + 100 WHERE id = 2`.execute(tx);
      if (attempts.b === 1) await aHeld;
      await sql`UPDATE counters SET n = n + 1000 WHERE id = 1`.execute(tx);
      return 'b';
    });
    expect(await Promise.all([a, b])).toEqual(['a', 'b']);
    // One of them was the deadlock's victim and ran twice; its first attempt left nothing.
    expect(attempts.a + attempts.b).toBe(3);
    const { rows } = await sql<{ id: number; n: number }>`SELECT id, n FROM counters ORDER BY id`.execute(db());
    expect(rows).toEqual([
      { id: 1, n: 1001 },
      { id: 2, n: 110 },
    ]);
  });

  it('does not run again a transaction that failed for another reason, and gives up on one that keeps conflicting', async () => {
    let calls = 0;
    const duplicate = inTransaction(db(), async (tx) => {
      calls++;
      await sql`INSERT INTO counters VALUES (1, 0)`.execute(tx);
    });
    await expect(duplicate).rejects.toMatchObject({ code: '23505' });
    expect(calls).toBe(1);

    calls = 0;
    const conflicting = inTransaction(db(), async () => {
      calls++;
      throw Object.assign(new Error('deadlock detected'), { code: '40P01' });
    });
    await expect(conflicting).rejects.toMatchObject({ code: '40P01' });
    expect(calls).toBe(4);
  });
});
