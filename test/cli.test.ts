import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, cp, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { rootStateDir } from '../src/config/state-dir.js';
import { findCluster } from '../src/db/embedded-postgres.js';
import { runsAsRoot } from '../src/runner/job-user.js';
import { runOutput } from './helpers/log-output.js';
import { createTestDatabase } from './helpers/test-database.js';
import { api } from './helpers/api-client.js';
import { furrow, furrowStart } from './helpers/furrow-process.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('..', import.meta.url));

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function waitFor(url: string, token: string, runId: string, done: (s: string) => boolean) {
  for (let i = 0; i < 400; i++) {
    const run = await api(url, token, 'GET', `/api/v1/runs/${runId}`);
    if (done(run.body.status)) return run.body;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('run did not reach the expected state');
}

describe('furrow start with the embedded database', () => {
  it('starts, serves, shuts down gracefully and keeps its data for the next start', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'furrow-cli-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    cleanups.push(() => rm(rootStateDir(dataDir), { recursive: true, force: true }));
    const env = { FURROW_DATA_DIR: dataDir, FURROW_PORT: '0', FURROW_SHUTDOWN_GRACE_SECONDS: '1' };

    const server = await furrowStart(env);
    cleanups.push(async () => {
      server.child.kill('SIGKILL');
    });
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    // The CLI finds the running instance's database through the data dir.
    const created = await furrow(['user', 'create', '--email', 'ada@example.com', '--password-stdin', '--admin'], env, 'a long password\n');
    expect(created.code).toBe(0);
    const tokenRes = await furrow(['token', 'create', '--email', 'ada@example.com', '--name', 'ci'], env);
    expect(tokenRes.code).toBe(0);
    const token = tokenRes.stdout.trim();
    expect(token).toMatch(/^furrow_[A-Za-z0-9_-]{20,}$/);
    expect(tokenRes.stdout).toBe(`${token}\n`); // only the token

    // Sign in with the password, as the web UI does.
    const login = await fetch(`${server.url}/api/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'ada@example.com', password: 'a long password' }) });
    expect(login.status).toBe(201);
    expect(login.headers.get('set-cookie')).toMatch(/furrow_session=.*HttpOnly/i);

    const org = await api(server.url, token, 'POST', '/api/v1/organizations', { name: 'acme' });
    const project = await api(server.url, token, 'POST', `/api/v1/organizations/${org.body.id}/projects`, { name: 'site' });
    const quick = await api(server.url, token, 'POST', `/api/v1/projects/${project.body.id}/workflows`, { name: 'quick', script: 'echo started; sleep 0.5; echo finished' });
    const slow = await api(server.url, token, 'POST', `/api/v1/projects/${project.body.id}/workflows`, { name: 'slow', script: 'echo started; sleep 60' });
    const quickRun = await api(server.url, token, 'POST', `/api/v1/workflows/${quick.body.id}/runs`, {});
    const slowRun = await api(server.url, token, 'POST', `/api/v1/workflows/${slow.body.id}/runs`, {});
    await waitFor(server.url, token, quickRun.body.id, (s) => s === 'running');
    await waitFor(server.url, token, slowRun.body.id, (s) => s === 'running');

    // SIGTERM: the quick job finishes within the grace period, the slow one is canceled.
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    // …and the embedded PostgreSQL it started is stopped too.
    const cluster = await findCluster(dataDir);
    expect(cluster).toBe(runsAsRoot() ? path.join(rootStateDir(dataDir), 'pg') : path.join(dataDir, 'pg'));
    expect(existsSync(path.join(cluster!, 'postmaster.pid'))).toBe(false);

    // Offline, the CLI starts the embedded database itself.
    const offline = await furrow(['token', 'create', '--email', 'ada@example.com', '--name', 'offline'], env);
    expect(offline.code).toBe(0);

    const again = await furrowStart(env);
    cleanups.push(async () => {
      again.child.kill('SIGTERM');
      await again.exited;
    });
    const q = await api(again.url, token, 'GET', `/api/v1/runs/${quickRun.body.id}`);
    expect(q.body.status).toBe('succeeded');
    expect(runOutput((await api(again.url, token, 'GET', `/api/v1/runs/${quickRun.body.id}/log`)).body)).toBe('started\nfinished\n');
    const s = await api(again.url, token, 'GET', `/api/v1/runs/${slowRun.body.id}`);
    expect(s.body.status).toBe('canceled');
    expect((await api(again.url, token, 'GET', '/api/v1/organizations')).body.items.map((o: { name: string }) => o.name)).toEqual(['acme']);
  }, 120_000);
});

describe('furrow commands', () => {
  it('prints help and refuses bad usage with exit code 2', async () => {
    const help = await furrow(['--help'], {});
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Usage: furrow COMMAND/);
    const startHelp = await furrow(['start', '--help'], {});
    expect(startHelp.stdout).toMatch(/Usage: furrow start/);
    for (const command of ['start', 'migrate', 'user create', 'token create', 'runner', 'runner list', 'runner token create', 'runner token list', 'runner token revoke', 'doctor']) {
      expect(help.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
    }
    const runnerHelp = await furrow(['runner', '--help'], {});
    expect(runnerHelp.stdout).toMatch(/furrow runner \[--url URL\] \[--token-file PATH \| --token-stdin\]/);
    const badUrl = await furrow(['runner', '--url', 'ftp://ci'], {});
    expect(badUrl).toMatchObject({ code: 2, stderr: expect.stringContaining('--url (or FURROW_RUNNER_URL) must be a URL starting with http:// or https://') });
    const workDir = path.join(tmpdir(), `furrow-cli-${process.pid}`);
    const noToken = await furrow(['runner', '--url', 'http://127.0.0.1:9', '--work-dir', workDir], {});
    await rm(workDir, { recursive: true, force: true });
    expect(noToken).toMatchObject({ code: 2, stderr: expect.stringContaining('pass a registration token with --token-file PATH, --token-stdin or FURROW_RUNNER_TOKEN') });
    const unknown = await furrow(['frobnicate'], {});
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command "frobnicate"/);
    const badFlag = await furrow(['token', 'create', '--email', 'x@example.com'], {});
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toMatch(/--name is required/);
  }, 120_000);

  it('prints its version, the one package.json declares', async () => {
    const { version } = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) expect(await furrow([flag], {})).toEqual({ code: 0, stdout: `furrow ${version}\n`, stderr: '' });
  }, 120_000);

  it('suggests the closest flag for a misspelt one, in every command', async () => {
    const cases: [string[], string][] = [
      [['runner', '--lables', 'gpu'], 'furrow runner: unknown option --lables (did you mean "--labels"?)'],
      [['user', 'create', '--emial', 'x@example.com'], 'furrow user: unknown option --emial (did you mean "--email"?)'],
      [['token', 'create', '--nmae', 'x'], 'furrow token: unknown option --nmae (did you mean "--name"?)'],
      [['doctor', '--fxi'], 'furrow doctor: unknown option --fxi (did you mean "--fix"?)'],
      [['keys', 'rekey', '--yse'], 'furrow keys: unknown option --yse (did you mean "--yes"?)'],
      [['start', '--port', '80'], 'furrow start: unknown option --port (this command takes none)'],
      [['runner', '--url'], "furrow runner: Option '--url <value>' argument missing"],
    ];
    for (const [args, message] of cases) expect(await furrow(args, {}), args.join(' ')).toMatchObject({ code: 2, stderr: `${message}\n` });
  }, 120_000);

  it('makes no database except for start and migrate: the others name the data dir they looked in', async () => {
    const parent = await mkdtemp(path.join(tmpdir(), 'furrow-nodata-'));
    cleanups.push(() => rm(parent, { recursive: true, force: true }));
    const missing = path.join(parent, 'missing');
    const empty = path.join(parent, 'empty');
    await mkdir(empty);
    const commands: [string[], string?][] = [
      [['user', 'create', '--email', 'ada@example.com', '--password-stdin'], 'a long password\n'],
      [['token', 'create', '--email', 'ada@example.com', '--name', 'x']],
      [['runner', 'list']],
      [['runner', 'token', 'create']],
      [['keys', 'rekey-missing']],
    ];
    for (const dataDir of [missing, empty]) {
      for (const [args, stdin] of commands) {
        const res = await furrow(args, { FURROW_DATA_DIR: dataDir }, stdin);
        expect(res, args.join(' ')).toMatchObject({ code: 2, stderr: expect.stringContaining(`no Furrow database in ${dataDir} (FURROW_DATA_DIR): run "furrow start"`) });
      }
    }
    expect(existsSync(missing)).toBe(false);
    expect(await readdir(empty)).toEqual([]);
    expect(existsSync(rootStateDir(missing))).toBe(false);
  }, 120_000);

  it('runner errors name the server URL and the reason, and the flag a bad value came from', async () => {
    const workDir = await mkdtemp(path.join(tmpdir(), 'furrow-runner-cli-'));
    cleanups.push(() => rm(workDir, { recursive: true, force: true }));
    // A port nobody listens on, and an HTTP server that is not Furrow.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as { port: number }).port;
    await new Promise((resolve) => closed.close(resolve));
    const other = createHttpServer((_req, res) => res.writeHead(404).end('not here'));
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => other.close(resolve)));
    const otherUrl = `http://127.0.0.1:${(other.address() as { port: number }).port}`;
    const runner = (url: string, ...more: string[]) => furrow(['runner', '--url', url, '--work-dir', workDir, ...more], { FURROW_RUNNER_TOKEN: 'furrow_reg_x' });

    const cases: [string, string][] = [
      [`http://127.0.0.1:${closedPort}`, `cannot reach the server at http://127.0.0.1:${closedPort}: connection refused`],
      ['http://furrow.invalid', 'cannot reach the server at http://furrow.invalid: DNS: cannot resolve the host name furrow.invalid'],
      [`${otherUrl.replace('http:', 'https:')}/`, `cannot reach the server at ${otherUrl.replace('http:', 'https:')}: TLS: it does not speak TLS there`],
      // The trailing slash goes: the route is …/api/v1/runners/register, not …//api/….
      [`${otherUrl}/`, `the server at ${otherUrl} refused the registration (HTTP 404)`],
    ];
    for (const [url, message] of cases) expect(await runner(url), url).toMatchObject({ code: 1, stderr: expect.stringContaining(`furrow runner: ${message}`) });

    const badCapacity = await runner(otherUrl, '--capacity', 'lots');
    expect(badCapacity).toMatchObject({ code: 2, stderr: expect.stringContaining('--capacity (FURROW_RUNNER_CAPACITY) must be a whole number, got "lots"') });
    const badLabel = await runner(otherUrl, '--labels', 'a b');
    expect(badLabel.stderr).toContain('--labels (FURROW_RUNNER_LABELS): "a b" is not a label');
    const fromEnv = await furrow(['runner', '--url', otherUrl, '--work-dir', workDir], { FURROW_RUNNER_CAPACITY: '0' });
    expect(fromEnv).toMatchObject({ code: 2, stderr: expect.stringMatching(/^  - FURROW_RUNNER_CAPACITY must be between 1 and 256, got 0$/m) });
  }, 120_000);

  it('exits with a clear message when the port is taken', async () => {
    const database = await createTestDatabase();
    cleanups.push(database.drop);
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => blocker.close(resolve)));
    const port = String((blocker.address() as { port: number }).port);
    const res = await furrow(['start'], { DATABASE_URL: database.url, FURROW_PORT: port });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/EADDRINUSE/);
  });

  it('refuses invalid settings with every problem listed', async () => {
    const res = await furrow(['migrate'], { FURROW_PORT: 'eighty', FURROW_LOG_LEVEL: 'loud', FURROW_PROT: '1' });
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/FURROW_PORT must be a whole number/);
    expect(res.stderr).toMatch(/FURROW_LOG_LEVEL must be one of/);
    expect(res.stderr).toMatch(/unknown setting FURROW_PROT/);
  });

  it('creates users and tokens against DATABASE_URL, and doctor reports the host', async () => {
    const database = await createTestDatabase();
    cleanups.push(database.drop);
    const env = { DATABASE_URL: database.url };
    expect((await furrow(['migrate'], env)).stdout).toMatch(/applied: 0001_core/);
    expect((await furrow(['migrate'], env)).stdout).toMatch(/up to date/);
    const user = await furrow(['user', 'create', '--email', 'bo@example.com', '--password-stdin'], env, 'another password\n');
    expect(user.code).toBe(0);
    const dup = await furrow(['user', 'create', '--email', 'BO@example.com', '--password-stdin'], env, 'another password\n');
    expect(dup.code).toBe(2);
    expect(dup.stderr).toMatch(/already exists/);
    const short = await furrow(['user', 'create', '--email', 'cy@example.com', '--password-stdin'], env, 'short\n');
    expect(short.code).toBe(2);
    const token = await furrow(['token', 'create', '--email', 'bo@example.com', '--name', 'laptop'], env);
    expect(token.code).toBe(0);
    expect(token.stdout.trim()).toMatch(/^furrow_/);
    const nobody = await furrow(['token', 'create', '--email', 'nobody@example.com', '--name', 'x'], env);
    expect(nobody.code).toBe(2);

    const doctorDir = path.join(tmpdir(), `furrow-doctor-${Date.now()}`);
    cleanups.push(() => rm(doctorDir, { recursive: true, force: true }));
    // `furrow runner`'s default work dir is in the current directory, which may be a closed checkout.
    const doctor = await furrow(['doctor'], { ...env, FURROW_DATA_DIR: doctorDir, FURROW_RUNNER_WORK_DIR: path.join(doctorDir, 'runner') });
    expect(doctor.code).toBe(0);
    expect(doctor.stdout).toMatch(/^ok\s+node\s+Node\.js 2\d/m);
    expect(doctor.stdout).toMatch(/^ok\s+database\s+PostgreSQL \d+.*DATABASE_URL.*migrations applied/m);
    expect(doctor.stdout).toMatch(/^ok\s+data dir/m);
    expect(doctor.stdout).toMatch(/^ok\s+executor shell/m);
    const broken = await furrow(['doctor'], { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none', FURROW_DATA_DIR: doctorDir });
    expect(broken.code).toBe(1);
    expect(broken.stdout).toMatch(/^FAIL\s+database/m);
  }, 120_000);
});

/** Where a user's checkout of Furrow lives: a fresh 0700 directory, as `mktemp -d` makes it. */
async function privateCheckout(owner: { uid: number; gid: number } | undefined): Promise<string> {
  const home = await mkdtemp(path.join(tmpdir(), 'furrow-home-'));
  cleanups.push(() => rm(home, { recursive: true, force: true }));
  const checkout = path.join(home, 'furrow');
  for (const part of ['bin', 'dist', 'package.json', 'src/db/migrations']) await cp(path.join(ROOT, part), path.join(checkout, part), { recursive: true });
  // Another owner may not pass through the directories above this checkout (a home under /root).
  if (owner) await run('cp', ['-a', path.join(ROOT, 'node_modules'), path.join(checkout, 'node_modules')]);
  else await symlink(path.join(ROOT, 'node_modules'), path.join(checkout, 'node_modules'));
  if (owner) await run('chown', ['-R', `${owner.uid}:${owner.gid}`, home]);
  await chmod(home, 0o700);
  return checkout;
}

describe('a checkout in a directory closed to other users', () => {
  const owners = runsAsRoot() ? [{ name: 'root', ids: undefined }, { name: 'nobody', ids: { uid: 65534, gid: 65534 } }] : [{ name: 'this user', ids: undefined }];
  for (const { name, ids } of owners) {
    it(`starts with its defaults as ${name}, and runs a job`, async () => {
      const checkout = await privateCheckout(ids);
      const at = { bin: path.join(checkout, 'bin', 'furrow.js'), cwd: checkout, ...ids };
      const env = { FURROW_PORT: '0', FURROW_SHUTDOWN_GRACE_SECONDS: '1' };
      const cli = (args: string[], stdin = '') => furrow(args, {}, stdin, at);
      const server = await furrowStart(env, at);
      cleanups.push(async () => {
        if (server.child.exitCode === null) server.child.kill('SIGTERM');
        await server.exited;
        if (!ids) await rm(rootStateDir(path.join(checkout, '.furrow')), { recursive: true, force: true });
      });
      const { url } = server;

      expect(await cli(['user', 'create', '--email', 'ada@example.com', '--password-stdin', '--admin'], 'a long password\n')).toMatchObject({ code: 0 });
      const token = (await cli(['token', 'create', '--email', 'ada@example.com', '--name', 'laptop'])).stdout.trim();
      expect(token).toMatch(/^furrow_/);
      const org = await api(url, token, 'POST', '/api/v1/organizations', { name: 'acme' });
      const project = await api(url, token, 'POST', `/api/v1/organizations/${org.body.id}/projects`, { name: 'site' });
      const workflow = await api(url, token, 'POST', `/api/v1/projects/${project.body.id}/workflows`, { name: 'hello', script: 'echo hi' });
      const started = await api(url, token, 'POST', `/api/v1/workflows/${workflow.body.id}/runs`, {});
      const done = await waitFor(url, token, started.body.id, (s) => !['queued', 'running'].includes(s));
      expect(done.status, JSON.stringify(done)).toBe('succeeded');
      expect(runOutput((await api(url, token, 'GET', `/api/v1/runs/${started.body.id}/log`)).body)).toBe('hi\n');

      // Neither the checkout nor its parent was opened up for anyone else.
      expect((await stat(path.dirname(checkout))).mode & 0o777).toBe(0o700);
      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    }, 180_000);
  }
});
