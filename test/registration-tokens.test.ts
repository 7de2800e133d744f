import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/db/database.js';
import { listMigrations, migrate } from '../src/db/migrate.js';
import { PROTOCOL_VERSION } from '../src/protocol/messages.js';
import { furrow } from './helpers/furrow-process.js';
import { startRunner, type RunnerProcess } from './helpers/runner-process.js';
import { createTestDatabase } from './helpers/test-database.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

// Registration tokens are spent by use, expire, are revoked, and never travel on a command line.
let t: TestInstance;
let scratch: string;
const started: RunnerProcess[] = [];

beforeAll(async () => {
  t = await startTestInstance({ FURROW_LOCAL_RUNNER: 'false' });
  scratch = await mkdtemp(path.join(tmpdir(), 'furrow-reg-'));
});
afterEach(async () => {
  await Promise.all(started.splice(0).map(async (r) => (await r.stop('SIGKILL'), await r.cleanup())));
});
afterAll(async () => {
  await t?.stop();
  await rm(scratch, { recursive: true, force: true });
});

let counter = 0;
const hello = () => ({ version: PROTOCOL_VERSION, name: `reg-${++counter}`, labels: [], capacity: 1, executor: 'shell', agentVersion: 'test' });
const register = (token: string) => t.api('POST', '/api/v1/runners/register', hello(), token);
const newToken = async (body: Record<string, unknown> = {}) => {
  const res = await t.api('POST', '/api/v1/runner-tokens', { description: `t-${++counter}`, ...body });
  expect(res.status).toBe(201);
  return res.body as { id: string; token: string; prefix: string; maxUses: number; uses: number };
};
const listed = async (id: string) => ((await t.api('GET', '/api/v1/runner-tokens')).body.items as any[]).find((x) => x.id === id);

describe('registration tokens', () => {
  it('are single-use by default: a second register with the token is refused with a code saying so', async () => {
    const token = await newToken();
    expect(token).toMatchObject({ maxUses: 1, uses: 0, state: 'usable', expiresAt: null, revokedAt: null });
    const first = await register(token.token);
    expect(first.status).toBe(201);
    const second = await register(token.token);
    expect(second.status).toBe(403);
    expect(second.body).toMatchObject({ code: 'registration_token_used_up', message: expect.stringContaining('used 1 of 1 times') });
    expect(second.body.message).not.toMatch(/sign in/i);
    const unknown = await register('furrow_reg_never-issued');
    expect(unknown.status).toBe(401);
    expect(unknown.body).toMatchObject({ code: 'registration_token_invalid', message: expect.stringContaining('never issued') });
  });

  it('lets exactly one of many racing runners spend a single use, and exactly N spend N uses', async () => {
    for (const maxUses of [1, 3]) {
      const token = await newToken({ maxUses });
      const answers = await Promise.all(Array.from({ length: 8 }, () => register(token.token)));
      const won = answers.filter((a) => a.status === 201);
      expect(won).toHaveLength(maxUses);
      for (const a of answers.filter((x) => x.status !== 201)) expect(a).toMatchObject({ status: 403, body: { code: 'registration_token_used_up' } });
      expect(await listed(token.id)).toMatchObject({ uses: maxUses, maxUses, state: 'used_up' });
      const { rows } = await t.instance.resources.database.pool.query('SELECT count(*)::int AS n FROM runners WHERE registered_with = $1', [token.id]);
      expect(rows[0].n).toBe(maxUses);
    }
  });

  it('stop working when they expire', async () => {
    const token = await newToken({ expiresInSeconds: 3600, maxUses: 5 });
    const row = await listed(token.id);
    expect(Date.parse(row.expiresAt) - Date.now()).toBeGreaterThan(3500_000);
    expect((await register(token.token)).status).toBe(201);
    await t.instance.resources.database.pool.query(`UPDATE runner_tokens SET expires_at = now() - interval '1 second' WHERE id = $1`, [token.id]);
    const refused = await register(token.token);
    expect(refused).toMatchObject({ status: 403, body: { code: 'registration_token_expired', message: expect.stringContaining('expired') } });
    expect(await listed(token.id)).toMatchObject({ uses: 1, state: 'expired' });

    const at = new Date(Date.now() + 86_400_000).toISOString();
    expect((await newToken({ expiresAt: at })) as any).toMatchObject({ expiresAt: at });
    const past = await t.api('POST', '/api/v1/runner-tokens', { expiresAt: '2020-01-01T00:00:00Z' });
    expect(past).toMatchObject({ status: 400, body: { code: 'bad_request', message: expect.stringContaining('already passed') } });
    const both = await t.api('POST', '/api/v1/runner-tokens', { expiresAt: at, expiresInSeconds: 60 });
    expect(both).toMatchObject({ status: 400, body: { code: 'bad_request' } });
    for (const bad of [{ maxUses: 0 }, { expiresAt: 'tomorrow' }, { expiresAt: '0000-01-01T00:00:00Z' }, { expiresInSeconds: 0 }]) {
      expect(await t.api('POST', '/api/v1/runner-tokens', bad)).toMatchObject({ status: 400, body: { code: 'validation_failed' } });
    }
  });

  it('can be revoked: revoked tokens stay listed and register nobody', async () => {
    const token = await newToken({ maxUses: 2 });
    expect((await register(token.token)).status).toBe(201);
    expect((await t.api('DELETE', `/api/v1/runner-tokens/${token.id}`)).status).toBe(204);
    const refused = await register(token.token);
    expect(refused).toMatchObject({ status: 403, body: { code: 'registration_token_revoked', message: expect.stringContaining('revoked') } });
    const row = await listed(token.id);
    expect(row).toMatchObject({ state: 'revoked', uses: 1 });
    expect(Date.parse(row.revokedAt)).toBeGreaterThan(Date.now() - 60_000);
    expect((await t.api('DELETE', `/api/v1/runner-tokens/${token.id}`)).status).toBe(204); // again: a no-op
    expect((await listed(token.id)).revokedAt).toBe(row.revokedAt);
    expect((await t.api('DELETE', '/api/v1/runner-tokens/00000000-0000-4000-8000-000000000000')).status).toBe(404);
  });

  it('are listed with their uses and last use, by a prefix, never by value', async () => {
    const token = await newToken({ maxUses: 2 });
    expect(token.token.startsWith(token.prefix)).toBe(true);
    expect(token.prefix).toMatch(/^furrow_reg_.{6}$/);
    expect(await listed(token.id)).toMatchObject({ uses: 0, lastUsedAt: null, lastUsedBy: null });
    const runner = await register(token.token);
    const row = await listed(token.id);
    expect(row).toMatchObject({ uses: 1, maxUses: 2, state: 'usable', lastUsedBy: { id: runner.body.id, name: runner.body.name } });
    expect(Date.parse(row.lastUsedAt)).toBeGreaterThan(Date.now() - 60_000);
    // The runner removed, its name stays on the token.
    expect((await t.api('DELETE', `/api/v1/runners/${runner.body.id}`)).status).toBe(204);
    expect((await listed(token.id)).lastUsedBy).toEqual({ id: null, name: runner.body.name });

    const { organizationId } = await t.workflow('true');
    const orgToken = (await t.api('POST', `/api/v1/organizations/${organizationId}/runner-tokens`, { maxUses: 1 })).body;
    await register(orgToken.token);
    const routes = [
      '/api/v1/runner-tokens',
      `/api/v1/organizations/${organizationId}/runner-tokens`,
      '/api/v1/runners',
      `/api/v1/organizations/${organizationId}/runners`,
    ];
    for (const route of routes) {
      const res = await t.api('GET', route);
      expect(res.status, route).toBe(200);
      for (const value of [token.token, orgToken.token]) expect(res.text, route).not.toContain(value);
    }
    const { rows } = await t.instance.resources.database.pool.query('SELECT payload::text AS p FROM activities');
    for (const value of [token.token, orgToken.token]) expect(rows.map((r) => r.p).join('\n')).not.toContain(value);
    expect(((await t.api('GET', `/api/v1/organizations/${organizationId}/runner-tokens`)).body.items as any[]).map((x) => x.id)).toEqual([orgToken.id]);
  });
});

const run = promisify(execFile);

/** What `ps` and /proc show of a process's command line. */
async function commandLineOf(pid: number): Promise<string> {
  const proc = (await readFile(`/proc/${pid}/cmdline`)).toString().split('\0').join(' ');
  const ps = (await run('ps', ['-ww', '-o', 'args=', '-p', String(pid)])).stdout;
  return `${proc}\n${ps}`;
}

// Each `furrow` command starts a Node.js process; tests that run several of them get more time.
describe('furrow runner takes its registration token', () => {
  const ways: [string, (token: string) => Promise<{ args: string[]; opts: Parameters<typeof startRunner>[1] }>][] = [
    [
      'from a file (--token-file)',
      async (token) => {
        const file = path.join(scratch, `token-${++counter}`);
        await writeFile(file, `${token}\n`, { mode: 0o600 });
        return { args: ['--token-file', file], opts: {} };
      },
    ],
    ['from the environment (FURROW_RUNNER_TOKEN)', async (token) => ({ args: [], opts: { token } })],
    ['from standard input (--token-stdin)', async (token) => ({ args: ['--token-stdin'], opts: { stdin: `${token}\n` } })],
  ];
  for (const [way, how] of ways) {
    it(`${way}, and its command line never shows it`, async () => {
      const token = await newToken();
      const { args, opts } = await how(token.token);
      const name = `way-${++counter}`;
      const runner = await startRunner(['--url', t.url, '--name', name, ...args], opts);
      started.push(runner);
      const shown = await commandLineOf(runner.child.pid!);
      expect(shown).toContain(name); // it is the runner's command line
      expect(shown).not.toContain(token.token);
      expect(shown).not.toContain(token.token.slice(11)); // nor its secret part
      expect(await listed(token.id)).toMatchObject({ uses: 1, lastUsedBy: { name } });
    }, 60_000);
  }

  it('refuses --token on the command line, saying how to pass it instead', async () => {
    const token = await newToken();
    const workDir = path.join(scratch, `refused-${++counter}`);
    const res = await furrow(['runner', '--url', t.url, '--work-dir', workDir, '--token', token.token], {});
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/--token would put the registration token on the command line/);
    expect(res.stderr).toMatch(/--token-file PATH.*--token-stdin.*FURROW_RUNNER_TOKEN/s);
    expect(res.stderr).not.toContain(token.token);
    expect(await listed(token.id)).toMatchObject({ uses: 0 });
    const both = await furrow(['runner', '--url', t.url, '--work-dir', workDir, '--token-stdin', '--token-file', '/nonexistent'], {});
    expect(both).toMatchObject({ code: 2, stderr: expect.stringContaining('not both') });
    const missing = await furrow(['runner', '--url', t.url, '--work-dir', workDir, '--token-file', path.join(scratch, 'nope')], {});
    expect(missing).toMatchObject({ code: 2, stderr: expect.stringContaining('cannot read the registration token') });
    const empty = await furrow(['runner', '--url', t.url, '--work-dir', workDir, '--token-stdin'], {}, '\n');
    expect(empty).toMatchObject({ code: 2, stderr: expect.stringContaining('no registration token in standard input') });
  }, 120_000);

  it('says why the server refused a spent token', async () => {
    const token = await newToken();
    expect((await register(token.token)).status).toBe(201);
    const res = await furrow(['runner', '--url', t.url, '--work-dir', path.join(scratch, `spent-${++counter}`)], { FURROW_RUNNER_TOKEN: token.token });
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/HTTP 403.*used 1 of 1 times/);
  }, 120_000);
});

describe('furrow runner token', () => {
  it('creates tokens with uses and an expiry, lists them, and revokes one', async () => {
    const env = { DATABASE_URL: t.databaseUrl };
    const created = await furrow(['runner', 'token', 'create', '--description', 'fleet', '--uses', '3', '--expires', '2h'], env);
    expect(created).toMatchObject({ code: 0, stdout: expect.stringMatching(/^furrow_reg_\S+\n$/) });
    const value = created.stdout.trim();
    const row = ((await t.api('GET', '/api/v1/runner-tokens')).body.items as any[]).find((x) => x.description === 'fleet');
    expect(row).toMatchObject({ maxUses: 3, uses: 0, prefix: value.slice(0, 17) });
    expect(Math.abs(Date.parse(row.expiresAt) - Date.now() - 7_200_000)).toBeLessThan(60_000);
    await register(value);

    const list = await furrow(['runner', 'token', 'list'], env);
    expect(list.code).toBe(0);
    expect(list.stdout).not.toContain(value);
    const line = list.stdout.split('\n').find((l) => l.startsWith(row.id));
    expect(line).toMatch(new RegExp(`${row.prefix}…\\s+usable\\s+1/3\\s+\\S+Z\\s+\\S+Z\\s+reg-\\d+\\s+fleet$`));

    const revoked = await furrow(['runner', 'token', 'revoke', row.id], env);
    expect(revoked).toMatchObject({ code: 0, stdout: `revoked registration token ${row.id}\n` });
    expect((await register(value)).body.code).toBe('registration_token_revoked');
    expect((await furrow(['runner', 'token', 'list'], env)).stdout).toMatch(new RegExp(`^${row.id}\\s+\\S+\\s+revoked`, 'm'));

    for (const [args, message] of [
      [['--uses', '0'], '--uses must be a whole number from 1 to 10000'],
      [['--expires', '1 hour'], '--expires must be a number with s, m, h, d or w'],
    ] as const) {
      expect(await furrow(['runner', 'token', 'create', ...args], env)).toMatchObject({ code: 2, stderr: expect.stringContaining(message) });
    }
    expect(await furrow(['runner', 'token', 'revoke', 'nope'], env)).toMatchObject({ code: 2, stderr: expect.stringContaining('no registration token has the id nope') });
  }, 120_000);
});

describe('upgrading', () => {
  it('counts tokens used before uses were counted as spent, and leaves unused ones a single use', async () => {
    const database = await createTestDatabase();
    const handle = openDatabase(database.url, 2);
    try {
      const { pool } = handle;
      // The schema as it was before registration tokens counted their uses.
      await pool.query('CREATE TABLE furrow_migrations (id integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())');
      for (const m of (await listMigrations()).filter((x) => x.id < 4)) {
        await pool.query(m.sql);
        await pool.query('INSERT INTO furrow_migrations (id, name) VALUES ($1, $2)', [m.id, m.name]);
      }
      const token = async (hash: string, used: boolean) =>
        (await pool.query(`INSERT INTO runner_tokens (token_hash, last_used_at) VALUES ($1, ${used ? 'now()' : 'NULL'}) RETURNING id`, [Buffer.from(hash)])).rows[0].id as string;
      const [unused, twice, removed] = [await token('unused', false), await token('twice', true), await token('removed', true)];
      for (const name of ['first', 'second']) {
        await pool.query("INSERT INTO runners (name, credential_hash, registered_with) VALUES ($1, $2, $3)", [name, Buffer.from(name), twice]);
      }
      await migrate(pool);
      const { rows } = await pool.query('SELECT id, uses, max_uses, last_used_by_name FROM runner_tokens');
      const by = new Map(rows.map((r) => [r.id, r]));
      expect(by.get(unused)).toMatchObject({ uses: 0, max_uses: 1, last_used_by_name: null });
      expect(by.get(twice)).toMatchObject({ uses: 2, max_uses: 2 });
      expect(['first', 'second']).toContain(by.get(twice).last_used_by_name);
      expect(by.get(removed)).toMatchObject({ uses: 1, max_uses: 1, last_used_by_name: null });
    } finally {
      await handle.close();
      await database.drop();
    }
  });
});
