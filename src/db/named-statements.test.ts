import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../test/helpers/test-database.js';
import { openDatabase, type DatabaseHandle } from './database.js';

let testDb: Awaited<ReturnType<typeof createTestDatabase>>;
let database: DatabaseHandle;

beforeAll(async () => {
  testDb = await createTestDatabase();
  database = openDatabase(testDb.url, 1);
});
afterAll(async () => {
  await database?.close();
  await testDb?.drop();
});

/** The statements prepared on the pool's one connection, as PostgreSQL lists them. */
async function prepared(): Promise<{ name: string; statement: string }[]> {
  const { rows } = await sql<{ name: string; statement: string }>`SELECT name, statement FROM pg_prepared_statements ORDER BY name`.execute(database.db);
  return rows;
}

describe('named statements', () => {
  it('prepares a parameterised statement once per connection and runs it again by name, with each call’s own values', async () => {
    const query = (n: number) => sql<{ v: number }>`SELECT ${n}::int * 2 AS v`.execute(database.db);
    const results = [];
    for (let n = 0; n < 8; n++) results.push((await query(n)).rows[0]!.v);
    expect(results).toEqual([0, 2, 4, 6, 8, 10, 12, 14]);
    const mine = (await prepared()).filter((p) => p.statement.includes('* 2 AS v'));
    expect(mine).toHaveLength(1);
    expect(mine[0]!.name).toMatch(/^k[\w-]{20}$/);
  });

  it('leaves statements without parameters, and transactions, as they are', async () => {
    const before = (await prepared()).length;
    await sql`SELECT 1 AS one`.execute(database.db);
    await database.db.transaction().execute(async (tx) => {
      await sql`SELECT ${1}::int AS one`.execute(tx);
    });
    const after = await prepared();
    expect(after.some((p) => p.statement === 'SELECT 1 AS one' || p.statement === 'begin')).toBe(false);
    expect(after.length).toBe(before + 1);
  });

  it('reports a statement’s error and keeps the connection usable', async () => {
    await expect(sql`SELECT ${'x'}::int AS v`.execute(database.db)).rejects.toThrow(/invalid input syntax/);
    await expect(sql`SELECT ${'x'}::int AS v`.execute(database.db)).rejects.toThrow(/invalid input syntax/);
    expect((await sql<{ v: number }>`SELECT ${'7'}::int AS v`.execute(database.db)).rows[0]!.v).toBe(7);
  });
});
