import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lookupUser, runsAsRoot } from '../src/runner/job-user.js';
import { furrow } from './helpers/furrow-process.js';
import { createTestDatabase } from './helpers/test-database.js';

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

/** The doctor line of check `name`: its status and detail. */
function line(stdout: string, name: string): { status: string; detail: string } | undefined {
  const m = new RegExp(`^(ok|warn|FAIL)\\s+${name}\\s+(.*)$`, 'm').exec(stdout);
  return m ? { status: m[1]!, detail: m[2]! } : undefined;
}

describe('furrow doctor', () => {
  it('probes every executor, requires only the configured one, and reports the job user and cgroups', async () => {
    const env = { DATABASE_URL: databaseUrl, FURROW_DATA_DIR: freshDataDir(), FURROW_JOB_PIDS_MAX: '20' };
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
    const name = `furrow-test-${randomBytes(4).toString('hex')}`;
    const dataDir = freshDataDir();
    const env = { DATABASE_URL: databaseUrl, FURROW_DATA_DIR: dataDir, FURROW_JOB_USER: name, FURROW_LOCAL_RUNNER_CAPACITY: '2', FURROW_RUNNER_CAPACITY: '1' };
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
