import { rm } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { runOutput } from './helpers/log-output.js';
import { openDatabase } from '../src/db/database.js';
import { listMigrations, migrate, pendingMigrations } from '../src/db/migrate.js';
import { createTestDatabase } from './helpers/test-database.js';
import { startTestInstance } from './helpers/test-instance.js';

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A fresh database, dropped after the tests, and a pool on it. */
async function emptyDatabase() {
  const database = await createTestDatabase();
  cleanups.push(database.drop);
  const handle = openDatabase(database.url, 2);
  cleanups.push(() => handle.close());
  return handle;
}

describe('migrations', () => {
  it('apply to an empty database, then again as a no-op', async () => {
    const handle = await emptyDatabase();
    const all = (await listMigrations()).map((m) => m.name);
    expect(all.length).toBeGreaterThan(0);
    expect(await pendingMigrations(handle.pool)).toEqual(all);
    expect(await migrate(handle.pool)).toEqual(all);
    expect(await migrate(handle.pool)).toEqual([]);
    expect(await pendingMigrations(handle.pool)).toEqual([]);
    const { rows } = await handle.pool.query('SELECT name FROM furrow_migrations ORDER BY id');
    expect(rows.map((r) => r.name)).toEqual(all);
  });

  it('two migrators at once apply each migration once', async () => {
    const database = await createTestDatabase();
    cleanups.push(database.drop);
    const a = openDatabase(database.url, 2);
    const b = openDatabase(database.url, 2);
    cleanups.push(() => a.close(), () => b.close());
    const [ra, rb] = await Promise.all([migrate(a.pool), migrate(b.pool)]);
    expect([...ra, ...rb].sort()).toEqual((await listMigrations()).map((m) => m.name).sort());
  });
});

describe('0005 case-insensitive names', () => {
  it('keeps the oldest of names that differ only in case, renames the others, then refuses such names', async () => {
    const { pool } = await emptyDatabase();
    await pool.query('CREATE TABLE furrow_migrations (id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())');
    for (const m of (await listMigrations()).filter((x) => x.id < 5)) {
      await pool.query(m.sql);
      await pool.query('INSERT INTO furrow_migrations (id, name) VALUES ($1, $2)', [m.id, m.name]);
    }
    const org = async (name: string, at: string) => (await pool.query(`INSERT INTO organizations (name, created_at) VALUES ($1, $2) RETURNING id`, [name, at])).rows[0].id as string;
    const oldest = await org('Acme', '2024-01-01');
    const second = await org('acme', '2024-02-01');
    const third = await org('ACME', '2024-03-01');
    await pool.query(`INSERT INTO projects (organization_id, name) VALUES ($1, 'Web'), ($1, 'web'), ($2, 'web')`, [oldest, second]);
    expect(await migrate(pool)).toContain('0005_case_insensitive_names');
    const { rows } = await pool.query('SELECT id, name FROM organizations ORDER BY created_at');
    expect(rows).toEqual([
      { id: oldest, name: 'Acme' },
      { id: second, name: `acme-${second.slice(0, 8)}` },
      { id: third, name: `ACME-${third.slice(0, 8)}` },
    ]);
    const projects = await pool.query('SELECT organization_id, name FROM projects ORDER BY organization_id = $1 DESC, created_at, name', [oldest]);
    expect(projects.rows.filter((r) => r.organization_id === oldest).map((r) => r.name.toLowerCase().slice(0, 3))).toEqual(['web', 'web']);
    expect(new Set(projects.rows.filter((r) => r.organization_id === oldest).map((r) => r.name.toLowerCase())).size).toBe(2);
    expect(projects.rows.find((r) => r.organization_id === second).name).toBe('web');
    await expect(pool.query(`INSERT INTO organizations (name) VALUES ('aCmE')`)).rejects.toMatchObject({ code: '23505' });
  });
});

describe('restart', () => {
  it('keeps every object across a restart', async () => {
    const first = await startTestInstance();
    const { organizationId, projectId, workflowId } = await first.workflow('echo kept');
    const env = await first.api('POST', `/api/v1/projects/${projectId}/environments`, { name: 'prod', variables: { A: '1' } });
    const run = await first.api('POST', `/api/v1/workflows/${workflowId}/runs`, {});
    await first.waitForRun(run.body.id);
    const snapshot = async (t: typeof first) => ({
      organization: (await t.api('GET', `/api/v1/organizations/${organizationId}`)).body,
      project: (await t.api('GET', `/api/v1/projects/${projectId}`)).body,
      workflow: (await t.api('GET', `/api/v1/workflows/${workflowId}`)).body,
      environment: (await t.api('GET', `/api/v1/environments/${env.body.id}`)).body,
      run: (await t.api('GET', `/api/v1/runs/${run.body.id}`)).body,
      jobs: (await t.api('GET', `/api/v1/runs/${run.body.id}/jobs`)).body,
      log: (await t.api('GET', `/api/v1/runs/${run.body.id}/log`)).text,
      activities: (await t.api('GET', `/api/v1/projects/${projectId}/activities`)).body,
    });
    const before = await snapshot(first);
    expect(runOutput(before.log)).toBe('kept\n');
    await first.stop(false);

    const second = await startTestInstance({}, { databaseUrl: first.databaseUrl, dataDir: first.dataDir });
    cleanups.push(async () => {
      await second.stop(true);
      await rm(first.dataDir, { recursive: true, force: true });
    });
    const after = await snapshot(second);
    // The first admin's token still works against the restarted server.
    const me = await second.api('GET', '/api/v1/me', undefined, first.adminToken);
    expect(me.status).toBe(200);
    expect(after).toEqual(before);
  });
});
