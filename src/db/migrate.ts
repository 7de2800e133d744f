import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';

/** src/db/ and dist/db/ both sit two levels below the package root; the SQL files stay in src. */
const MIGRATIONS_DIR = fileURLToPath(new URL('../../src/db/migrations/', import.meta.url));
/** Arbitrary constant: serialises concurrent migrators (two servers starting at once). */
const LOCK_KEY = 7_246_118_001;

export interface Migration {
  id: number;
  name: string;
  sql: string;
}

export async function listMigrations(): Promise<Migration[]> {
  const files = (await readdir(MIGRATIONS_DIR)).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort();
  return Promise.all(
    files.map(async (file) => ({
      id: Number(file.slice(0, 4)),
      name: file.replace(/\.sql$/, ''),
      sql: await readFile(MIGRATIONS_DIR + file, 'utf8'),
    })),
  );
}

async function appliedIds(client: pg.PoolClient): Promise<Set<number>> {
  const { rows } = await client.query<{ id: number }>('SELECT id FROM furrow_migrations');
  return new Set(rows.map((r) => r.id));
}

/** Applies pending migrations, each in its own transaction; returns the names applied. */
export async function migrate(pool: pg.Pool): Promise<string[]> {
  const client = await pool.connect();
  const applied: string[] = [];
  try {
    await client.query('SELECT pg_advisory_lock($1)', [LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS furrow_migrations (
      id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = await appliedIds(client);
    for (const m of await listMigrations()) {
      if (done.has(m.id)) continue;
      try {
        await client.query('BEGIN');
        await client.query(m.sql);
        await client.query('INSERT INTO furrow_migrations (id, name) VALUES ($1, $2)', [m.id, m.name]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw new Error(`migration ${m.name} failed: ${(err as Error).message}`);
      }
      applied.push(m.name);
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [LOCK_KEY]).catch(() => undefined);
    client.release();
  }
  return applied;
}

/** Names of migrations not yet applied (for /readyz and `furrow doctor`). */
export async function pendingMigrations(pool: pg.Pool): Promise<string[]> {
  const client = await pool.connect();
  try {
    const { rows } = await client.query<{ exists: boolean }>("SELECT to_regclass('furrow_migrations') IS NOT NULL AS exists");
    const done = rows[0]?.exists ? await appliedIds(client) : new Set<number>();
    return (await listMigrations()).filter((m) => !done.has(m.id)).map((m) => m.name);
  } finally {
    client.release();
  }
}
