import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lookupUser, runsAsRoot } from '../src/runner/job-user.js';
import { furrow } from './helpers/furrow-process.js';
import { createTestDatabase } from './helpers/test-database.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';
import { testJobUser } from './helpers/job-users.js';

const run = promisify(execFile);
const cleanups: (() => Promise<unknown>)[] = [];
let databaseUrl: string;

beforeAll(async () => {
  const database = await createTestDatabase();
  cleanups.push(database.drop);
  databaseUrl = database.url;
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A data dir path that does not exist yet, removed after the tests. */
function freshDataDir(): string {
  const dir = path.join(tmpdir(), `furrow-doctor-${randomBytes(4).toString('hex')}`);
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * `furrow runner`'s work dir for the checks of the job users: its default is in the current
 * directory, and the checkout the tests run from may be closed to other users (a home under /root).
 */
function runnerWorkDir(): string {
  const dir = path.join(tmpdir(), `furrow-doctor-runner-${randomBytes(4).toString('hex')}`);
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The doctor line of check `name`: its status and detail. */
function line(stdout: string, name: string): { status: string; detail: string } | undefined {
  const m = new RegExp(`^(ok|warn|FAIL)\\s+${name}\\s+(.*)$`, 'm').exec(stdout);
  return m ? { status: m[1]!, detail: m[2]! } : undefined;
}

describe('furrow doctor', () => {
  it('probes every executor, requires only the configured one, and reports the job user and cgroups', async () => {
    const env = { DATABASE_URL: databaseUrl, FURROW_DATA_DIR: freshDataDir(), FURROW_RUNNER_WORK_DIR: runnerWorkDir(), FURROW_JOB_PIDS_MAX: '20' };
    const shell = await furrow(['doctor'], env);
    expect(shell.code).toBe(0);
    for (const kind of ['shell', 'bwrap', 'podman', 'ssh']) expect(line(shell.stdout, `executor ${kind}`), kind).toBeDefined();
    expect(line(shell.stdout, 'executor shell')).toEqual({ status: 'ok', detail: expect.stringMatching(/^configured: GNU bash/) });
    // Without FURROW_SSH_TARGET and its key the ssh executor cannot work: only a warning here…
    expect(line(shell.stdout, 'executor ssh')).toEqual({ status: 'warn', detail: expect.not.stringContaining('configured') });
    expect(line(shell.stdout, 'job users')).toBeDefined();
    expect(line(shell.stdout, 'cgroups')?.detail).toMatch(/limits: pids 20/);

    // …and a failure when it is the configured one.
    const ssh = await furrow(['doctor'], { ...env, FURROW_RUNNER_EXECUTOR: 'ssh' });
    expect(ssh.code).toBe(1);
    expect(line(ssh.stdout, 'executor ssh')).toEqual({ status: 'FAIL', detail: expect.stringMatching(/^configured: /) });
    expect(line(ssh.stdout, 'executor shell')?.status).toBe('ok');
  }, 120_000);

  it.skipIf(!runsAsRoot())('--fix creates the missing job users, one per slot, and the data dir, and says so', async () => {
    const name = testJobUser('d');
    const dataDir = freshDataDir();
    const env = { DATABASE_URL: databaseUrl, FURROW_DATA_DIR: dataDir, FURROW_RUNNER_WORK_DIR: runnerWorkDir(), FURROW_JOB_USER: name, FURROW_LOCAL_RUNNER_CAPACITY: '2', FURROW_RUNNER_CAPACITY: '1' };
    try {
      const before = await furrow(['doctor'], env);
      expect(line(before.stdout, 'job users')).toEqual({ status: 'warn', detail: `${name}-0, ${name}-1 do not exist; the runner creates them when it starts ("furrow doctor --fix" does now)` });
      expect(line(before.stdout, 'data dir')?.detail).toMatch(/does not exist yet/);

      const fixed = await furrow(['doctor', '--fix'], env);
      expect(fixed.code).toBe(0);
      const [first, second] = [(await lookupUser(`${name}-0`))!, (await lookupUser(`${name}-1`))!];
      expect(first.uid).toBeGreaterThan(0);
      expect(second.uid).not.toBe(first.uid);
      expect(fixed.stdout).toContain(`fix   data dir: created ${dataDir}\n`);
      expect(fixed.stdout).toContain(`fix   job users: created ${name}-0 (uid ${first.uid}, gid ${first.gid}), ${name}-1 (uid ${second.uid}, gid ${second.gid})\n`);
      expect(line(fixed.stdout, 'job users')).toEqual({ status: 'ok', detail: `one per job slot: ${name}-0 (uid ${first.uid}), ${name}-1 (uid ${second.uid}); they reach the work dirs` });
      expect(line(fixed.stdout, 'executor shell')?.detail).toContain(`jobs run as ${name}-N, one user per job slot`);
      expect(existsSync(dataDir)).toBe(true);

      const again = await furrow(['doctor', '--fix'], env);
      expect(again.stdout).toMatch(/^fix {3}nothing to fix$/m);
    } finally {
      for (const slot of [`${name}-0`, `${name}-1`]) if (await lookupUser(slot)) await run('userdel', [slot]);
    }
  }, 120_000);
});

/** Every file under `dir` with its size and modification time, to see that nothing changed. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true })) {
    const s = await stat(path.join(dir, entry));
    out[entry] = `${s.size} ${s.mtimeMs} ${s.mode}`;
  }
  return out;
}

describe('furrow doctor and the secret key', () => {
  let t: TestInstance;
  let projectId: string;
  beforeAll(async () => {
    t = await startTestInstance();
    cleanups.push(() => t.stop());
    projectId = (await t.workflow('true')).projectId;
    const secret = await t.api('POST', `/api/v1/projects/${projectId}/secrets`, { name: 'API_TOKEN', kind: 'env', value: 'a-sealed-value-1234' });
    expect(secret.status).toBe(201);
  });
  const env = (extra: Record<string, string> = {}) => ({ DATABASE_URL: t.databaseUrl, FURROW_DATA_DIR: t.dataDir, ...extra });
  const otherKey = () => randomBytes(32).toString('base64');

  it('says the key opens what is sealed, and fails on a key that opens none of it', async () => {
    const right = await furrow(['doctor'], env());
    expect(line(right.stdout, 'secret key')).toEqual({ status: 'ok', detail: `${path.join(t.dataDir, 'secret.key')} opens all 1 sealed deploy keys and secrets` });
    const wrong = await furrow(['doctor'], env({ FURROW_SECRET_KEY: otherKey() }));
    expect(wrong.code).toBe(1);
    expect(line(wrong.stdout, 'secret key')).toEqual({ status: 'FAIL', detail: expect.stringMatching(/^FURROW_SECRET_KEY opens none of the 1 sealed deploy keys and secrets: almost certainly the wrong key/) });
  }, 120_000);

  it('keys rekey-missing refuses a key that opens nothing, unless forced', async () => {
    const key = otherKey();
    const refused = await furrow(['keys', 'rekey-missing'], env({ FURROW_SECRET_KEY: key }));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/opens none of the 1 sealed deploy keys and secrets: it is almost certainly not the key .* pass --force/);
    expect(refused.stdout).toBe('');
    const forced = await furrow(['keys', 'rekey-missing', '--force'], env({ FURROW_SECRET_KEY: key }));
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout).toContain('env secret API_TOKEN cannot be opened');
    // With the right key there is nothing to refuse.
    expect((await furrow(['keys', 'rekey-missing'], env())).code).toBe(0);
  }, 120_000);

  it('changes nothing without --fix: no file in the data dir, no user, no job user, no data dir', async () => {
    const users = async () => Number((await t.instance.resources.database.db.selectFrom('users').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
    const before = { files: await snapshot(t.dataDir), users: await users() };
    const jobUser = testJobUser('d');
    const res = await furrow(['doctor'], env({ FURROW_JOB_USER: jobUser }));
    expect(line(res.stdout, 'database')?.status).toBe('ok');
    expect({ files: await snapshot(t.dataDir), users: await users() }).toEqual(before);
    expect(await lookupUser(jobUser)).toBeUndefined();

    // Without DATABASE_URL and without a data dir: it says where it looked, and makes nothing.
    const missing = freshDataDir();
    const fresh = await furrow(['doctor'], { FURROW_DATA_DIR: missing });
    expect(line(fresh.stdout, 'database')).toEqual({ status: 'warn', detail: expect.stringContaining(`no Furrow database in ${missing} (FURROW_DATA_DIR)`) });
    expect(existsSync(missing)).toBe(false);
  }, 120_000);
});
