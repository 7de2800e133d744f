import { readFile, stat } from 'node:fs/promises';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { jobOutput, runOutput } from './helpers/log-output.js';
import WebSocket from 'ws';
import { PROTOCOL_VERSION } from '../src/protocol/messages.js';
import { furrow } from './helpers/furrow-process.js';
import { processesWithEnv } from './helpers/processes.js';
import { startRunner, type RunnerProcess } from './helpers/runner-process.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';
import { until } from './helpers/until.js';

// Remote runners as separate `furrow runner` processes against a server without a local runner.
// A short lease makes a vanished runner's job end within seconds.
let t: TestInstance;
let registrationToken: string;
const started: RunnerProcess[] = [];

beforeAll(async () => {
  t = await startTestInstance({ FURROW_LOCAL_RUNNER: 'false', FURROW_JOB_LEASE_SECONDS: '3' });
  registrationToken = (await t.api('POST', '/api/v1/runner-tokens', { description: 'tests', maxUses: 100 })).body.token;
});
afterEach(async () => {
  await Promise.all(started.splice(0).map(async (r) => (await r.stop('SIGKILL'), await r.cleanup())));
});
afterAll(() => t?.stop());

async function runner(name: string, labels: string[], extra: string[] = [], opts: Parameters<typeof startRunner>[1] = {}): Promise<RunnerProcess> {
  const args = ['--url', t.url, '--name', name, ...(labels.length ? ['--labels', labels.join(',')] : []), ...extra];
  const r = await startRunner(args, { token: registrationToken, ...opts });
  started.push(r);
  return r;
}

async function queue(script: string, labels: string[], extra: Record<string, unknown> = {}) {
  const { workflowId, projectId } = await t.workflow(script, { labels, retry: { count: 0, on: [] }, ...extra });
  const res = await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, {});
  expect(res.status).toBe(202);
  return { runId: res.body.id as string, workflowId, projectId };
}

const jobsOf = async (runId: string) => (await t.api('GET', `/api/v1/runs/${runId}/jobs`)).body.items as any[];
const runnerNamed = async (name: string) => ((await t.api('GET', '/api/v1/runners')).body.items as any[]).filter((r) => r.name === name);

const logOf = async (runId: string) => runOutput((await t.api('GET', `/api/v1/runs/${runId}/log`)).text);

describe('remote runners', () => {
  it('registers with a token, keeps its own credential, runs jobs as an unprivileged user, and reuses the credential', async () => {
    const r1 = await runner('first', ['reuse']);
    const file = path.join(r1.workDir, 'credential.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const saved = JSON.parse(await readFile(file, 'utf8'));
    expect(saved.credential).toMatch(/^furrow_runner_/);
    expect(JSON.stringify(saved)).not.toContain(registrationToken);

    const [listed] = await runnerNamed('first');
    expect(listed).toMatchObject({ online: true, paused: false, labels: ['reuse'], executor: 'shell', capacity: 1, version: '0.1.0', runningJobs: 0, organizationId: null });

    const { runId } = await queue('echo "hello from $FURROW_JOB_ATTEMPT"; id -u', ['reuse']);
    expect((await t.waitForRun(runId)).status).toBe('succeeded');
    const [hello, uid] = (await logOf(runId)).trim().split('\n');
    expect(hello).toBe('hello from 1');
    if (process.getuid?.() === 0) expect(Number(uid)).not.toBe(0);
    expect((await jobsOf(runId))[0]).toMatchObject({ runnerName: 'first', runnerId: listed.id });

    expect(await r1.stop('SIGTERM')).toBe(0);
    await until('the runner to show offline', async () => (await runnerNamed('first'))[0].online === false);
    // No token this time: the saved credential is enough, and it is the same runner.
    const again = await startRunner(['--url', t.url, '--name', 'first'], { workDir: r1.workDir });
    started.push(again);
    const records = await runnerNamed('first');
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ id: listed.id, online: true });
  });

  it('falls back to HTTP long-polling, and cancels still reach the job', async () => {
    await runner('poller', ['poll'], ['--transport', 'http']);
    const ok = await queue('echo over http', ['poll']);
    expect((await t.waitForRun(ok.runId)).status).toBe('succeeded');
    expect(await logOf(ok.runId)).toBe('over http\n');

    const { runId } = await queue('echo started; sleep 60', ['poll']);
    await until('the job to start', async () => (await logOf(runId)).includes('started'));
    const began = Date.now();
    expect((await t.api('POST', `/api/v1/runs/${runId}/cancel`)).status).toBe(202);
    expect((await t.waitForRun(runId)).status).toBe('canceled');
    expect(Date.now() - began).toBeLessThan(5000);
  });

  it('falls back by itself when a proxy refuses the WebSocket upgrade', async () => {
    // A plain HTTP proxy to the server that answers every upgrade with 403, as some corporate proxies do.
    const target = new URL(t.url);
    const proxy = createServer((req, res) => {
      const upstream = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(res);
      });
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    });
    proxy.on('upgrade', (_req, socket) => socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n'));
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const port = (proxy.address() as AddressInfo).port;
      const behind = await startRunner(['--url', `http://127.0.0.1:${port}`, '--name', 'behind-proxy', '--labels', 'proxied'], { token: registrationToken });
      started.push(behind);
      expect(behind.output()).toMatch(/WebSocket upgrade answered HTTP 403.*using HTTP long-polling|using HTTP long-polling.*403/s);
      const { runId } = await queue('echo through the proxy', ['proxied']);
      expect((await t.waitForRun(runId)).status).toBe('succeeded');
      expect(await logOf(runId)).toBe('through the proxy\n');
    } finally {
      proxy.closeAllConnections();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  it('cancels what still runs when the grace period of a drain runs out, then exits 0', async () => {
    const draining = await runner('short-grace', ['grace'], [], { env: { FURROW_SHUTDOWN_GRACE_SECONDS: '1' } });
    const { runId } = await queue('echo running; sleep 60', ['grace']);
    await until('the job to start', async () => (await logOf(runId)).includes('running'));
    const began = Date.now();
    expect(await draining.stop('SIGTERM')).toBe(0);
    expect(Date.now() - began).toBeLessThan(5000);
    expect((await t.waitForRun(runId)).status).toBe('canceled');
  });

  it('retries a job on another runner when its runner is killed mid-job; the first attempt keeps its log', async () => {
    const doomed = await runner('doomed', ['retry']);
    const script = 'echo "attempt $FURROW_JOB_ATTEMPT"; if [ "$FURROW_JOB_ATTEMPT" = 1 ]; then sleep 60; fi; echo finished';
    const { runId } = await queue(script, ['retry'], { retry: { count: 1, on: ['runner_lost'] } });
    await until('attempt 1 to print', async () => (await logOf(runId)).includes('attempt 1'));
    const [first] = await jobsOf(runId);
    await doomed.stop('SIGKILL');
    // The orphaned script of attempt 1 would run on: end it as the host would on a real crash.
    for (const pid of await processesWithEnv(`FURROW_JOB_ID=${first.id}`)) process.kill(pid, 'SIGKILL');

    await runner('rescuer', ['retry']);
    const run = await t.waitForRun(runId, 30_000);
    expect(run.status).toBe('succeeded');
    const jobs = await jobsOf(runId);
    expect(jobs.map((j) => [j.attempt, j.status, j.runnerName])).toEqual([
      [1, 'runner_lost', 'doomed'],
      [2, 'succeeded', 'rescuer'],
    ]);
    expect(jobs[0].error).toMatch(/stopped renewing its lease/);
    expect(jobOutput((await t.api('GET', `/api/v1/jobs/${first.id}/log`)).text)).toBe('attempt 1\n');
    expect(await logOf(runId)).toBe('attempt 2\nfinished\n');
  });

  it('stops a job whose lease ran out while its runner was frozen, and the runner goes on taking jobs', async () => {
    const frozen = await runner('frozen', ['freeze']);
    const { runId } = await queue('echo before; sleep 60', ['freeze']);
    await until('the job to start', async () => (await logOf(runId)).includes('before'));
    const [job] = await jobsOf(runId);
    frozen.child.kill('SIGSTOP');
    try {
      // Lease 3 s, checked every second: the job ends runner_lost while the runner cannot speak.
      expect((await t.waitForRun(runId, 15_000)).status).toBe('failed');
    } finally {
      frozen.child.kill('SIGCONT');
    }
    expect((await jobsOf(runId))[0]).toMatchObject({ status: 'runner_lost' });
    // Back, the runner learns the job is no longer its own and kills it.
    await until('the lost job’s processes to be gone', async () => (await processesWithEnv(`FURROW_JOB_ID=${job.id}`)).length === 0);
    const next = await queue('echo after', ['freeze']);
    expect((await t.waitForRun(next.runId)).status).toBe('succeeded');
    expect((await jobsOf(runId))[0].status).toBe('runner_lost'); // its late outcome changed nothing
  });

  it('gives runners only jobs whose labels they have, and organization runners only their organization’s jobs', async () => {
    // beta is configured by settings alone, as a service unit would start it.
    const settings = { FURROW_RUNNER_URL: t.url, FURROW_RUNNER_TOKEN: registrationToken, FURROW_RUNNER_NAME: 'beta', FURROW_RUNNER_LABELS: 'beta', FURROW_RUNNER_CAPACITY: '2' };
    const [, beta] = await Promise.all([runner('alpha', ['alpha']), startRunner([], { env: settings })]);
    started.push(beta);
    expect((await runnerNamed('beta'))[0]).toMatchObject({ labels: ['beta'], capacity: 2, online: true });
    const runs = await Promise.all(['alpha', 'beta', 'alpha', 'beta', 'alpha', 'beta'].map(async (label) => ({ label, ...(await queue(`echo ${label}`, [label])) })));
    for (const r of runs) {
      expect((await t.waitForRun(r.runId)).status).toBe('succeeded');
      expect((await jobsOf(r.runId))[0].runnerName).toBe(r.label);
    }

    const mine = await t.workflow('echo mine', { labels: ['scoped'] });
    const orgToken = (await t.api('POST', `/api/v1/organizations/${mine.organizationId}/runner-tokens`, {})).body.token;
    const scoped = await startRunner(['--url', t.url, '--name', 'scoped', '--labels', 'scoped'], { token: orgToken });
    started.push(scoped);
    const theirs = await queue('echo theirs', ['scoped']);
    const own = await t.api('POST', `/api/v1/workflows/${mine.workflowId}/runs`, {});
    expect((await t.waitForRun(own.body.id)).status).toBe('succeeded');
    await new Promise((r) => setTimeout(r, 500));
    const [waiting] = await jobsOf(theirs.runId);
    expect(waiting).toMatchObject({ status: 'queued', waitingReason: 'no runner has labels scoped' });
    await t.api('POST', `/api/v1/runs/${theirs.runId}/cancel`);
  });

  it('runs 50 queued jobs on 3 runners of capacity 2: all succeed, none twice, never more than 2 at once per runner', async () => {
    const runs = [];
    for (let i = 0; i < 50; i++) runs.push(await queue(`echo "job ${i}"; sleep 0.1`, ['fleet']));
    await Promise.all(['fleet-1', 'fleet-2', 'fleet-3'].map((name) => runner(name, ['fleet'], ['--capacity', '2'])));
    const jobs: any[] = [];
    for (const [i, r] of runs.entries()) {
      expect((await t.waitForRun(r.runId, 60_000)).status).toBe('succeeded');
      const items = await jobsOf(r.runId);
      expect(items).toHaveLength(1); // never retried, never run twice
      expect(items[0].attempt).toBe(1);
      expect(await logOf(r.runId)).toBe(`job ${i}\n`);
      jobs.push(items[0]);
    }
    const byRunner = new Map<string, any[]>();
    for (const j of jobs) byRunner.set(j.runnerName, [...(byRunner.get(j.runnerName) ?? []), j]);
    expect([...byRunner.keys()].sort()).toEqual(['fleet-1', 'fleet-2', 'fleet-3']);
    for (const list of byRunner.values()) {
      const events = list.flatMap((j) => [
        [Date.parse(j.startedAt), 1],
        [Date.parse(j.finishedAt), -1],
      ]);
      events.sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!);
      let running = 0;
      let most = 0;
      for (const [, d] of events) most = Math.max(most, (running += d!));
      expect(most).toBeLessThanOrEqual(2);
    }
  });

  it('says why a job waits: paused, busy, offline', async () => {
    const solo = await runner('solo', ['solo']);
    const [record] = await runnerNamed('solo');
    expect((await t.api('POST', `/api/v1/runners/${record.id}/pause`)).body).toMatchObject({ paused: true });
    const paused = await queue('echo paused', ['solo']);
    await new Promise((r) => setTimeout(r, 300));
    expect((await jobsOf(paused.runId))[0]).toMatchObject({ status: 'queued', waitingReason: 'the only matching runner is paused' });
    await t.api('POST', `/api/v1/runners/${record.id}/resume`);
    expect((await t.waitForRun(paused.runId)).status).toBe('succeeded');

    const long = await queue('sleep 2', ['solo']);
    await until('the long job to run', async () => (await jobsOf(long.runId))[0].status === 'running');
    const behind = await queue('echo behind', ['solo']);
    expect((await jobsOf(behind.runId))[0].waitingReason).toBe('the only matching runner is busy');

    // SIGTERM drains: the running job finishes, nothing new is taken, the runner exits 0.
    expect(await solo.stop('SIGTERM')).toBe(0);
    expect((await t.waitForRun(long.runId)).status).toBe('succeeded');
    await until('the runner to show offline', async () => !(await runnerNamed('solo'))[0].online);
    expect((await jobsOf(behind.runId))[0]).toMatchObject({ status: 'queued', waitingReason: 'no online runner has labels solo' });
    await t.api('POST', `/api/v1/runs/${behind.runId}/cancel`);
  });

  it.each(['websocket', 'http'])('disconnects a removed runner for good over %s; its running job ends runner_lost', async (transport) => {
    const name = `removed-${transport}`;
    const removed = await runner(name, [name], ['--transport', transport]);
    const { runId } = await queue('echo going; sleep 60', [name]);
    await until('the job to start', async () => (await logOf(runId)).includes('going'));
    const [record] = await runnerNamed(name);
    expect((await t.api('DELETE', `/api/v1/runners/${record.id}`)).status).toBe(204);
    expect(await removed.exited).toBe(1);
    expect(removed.output()).toMatch(/this runner was removed\); it may have been removed: register again with a new token/);
    expect((await t.waitForRun(runId)).status).toBe('failed');
    expect((await jobsOf(runId))[0]).toMatchObject({ status: 'runner_lost', error: 'its runner was removed' });
    expect((await t.api('GET', `/api/v1/runners/${record.id}`)).status).toBe(404);
    const saved = JSON.parse(await readFile(path.join(removed.workDir, 'credential.json'), 'utf8'));
    const refused = await fetch(`${t.url}/api/v1/runner/requests`, { method: 'POST', headers: { authorization: `Bearer ${saved.credential}` }, body: '{}' });
    expect(refused.status).toBe(401);
  });

  it('serves a runner connected to one server instance with jobs, cancels and removal from another', async () => {
    const other = await startTestInstance({ FURROW_LOCAL_RUNNER: 'false', FURROW_JOB_LEASE_SECONDS: '3' }, { databaseUrl: t.databaseUrl, dataDir: t.dataDir });
    try {
      const served = await runner('served', ['scale']); // connected to t
      const { workflowId } = await t.workflow('echo across instances', { labels: ['scale'] });
      const run = await other.api('POST', `/api/v1/workflows/${workflowId}/runs`, {});
      expect((await other.waitForRun(run.body.id)).status).toBe('succeeded');
      expect(runOutput((await other.api('GET', `/api/v1/runs/${run.body.id}/log`)).text)).toBe('across instances\n');

      const slow = await t.workflow('echo waiting; sleep 60', { labels: ['scale'] });
      const long = await other.api('POST', `/api/v1/workflows/${slow.workflowId}/runs`, {});
      await until('the job to start', async () => (await other.api('GET', `/api/v1/runs/${long.body.id}/log`)).text.includes('waiting'));
      await other.api('POST', `/api/v1/runs/${long.body.id}/cancel`);
      expect((await other.waitForRun(long.body.id, 5000)).status).toBe('canceled');

      const [record] = await runnerNamed('served');
      expect((await other.api('DELETE', `/api/v1/runners/${record.id}`)).status).toBe(204);
      expect(await served.exited).toBe(1);
    } finally {
      await other.stop(false);
    }
  });

  it('refuses another protocol version with a clear error, at registration and on the socket', async () => {
    const hello = { name: 'old', labels: [], capacity: 1, executor: 'shell', agentVersion: 'old' };
    const res = await t.api('POST', '/api/v1/runners/register', { version: PROTOCOL_VERSION - 1, ...hello }, registrationToken);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'protocol_version_mismatch', message: expect.stringContaining(`runner protocol ${PROTOCOL_VERSION}`) });
    const ok = await t.api('POST', '/api/v1/runners/register', { version: PROTOCOL_VERSION, ...hello }, registrationToken);
    expect(ok.status).toBe(201);
    expect((await t.api('POST', '/api/v1/runners/register', { version: PROTOCOL_VERSION, ...hello }, 'furrow_reg_nope')).status).toBe(401);

    const ws = new WebSocket(`${t.url.replace('http', 'ws')}/api/v1/runner`, { headers: { authorization: `Bearer ${ok.body.credential}` } });
    await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
    const reply = new Promise<any>((resolve) => ws.once('message', (d) => resolve(JSON.parse(d.toString()))));
    ws.send(JSON.stringify({ id: 1, msg: { type: 'register', version: PROTOCOL_VERSION + 1, ...hello, jobs: [] } }));
    expect(await reply).toEqual({ id: 1, reply: { type: 'error', code: 'protocol_version_mismatch', message: expect.stringContaining('upgrade the server') } });
    const closed = new Promise<number>((resolve) => ws.once('close', resolve));
    ws.send('not a frame');
    expect(await closed).toBe(1008);
  });

  it('lists runners and creates registration tokens from the command line', async () => {
    await runner('listed', ['cli', 'x86']);
    const list = await furrow(['runner', 'list'], { DATABASE_URL: t.databaseUrl });
    expect(list.code).toBe(0);
    const line = list.stdout.split('\n').find((l) => l.startsWith('listed '));
    expect(line).toMatch(/online/);
    expect(line).toMatch(/cli,x86\s+shell\s+0\/1\s+instance/);
    const created = await furrow(['runner', 'token', 'create', '--description', 'from cli'], { DATABASE_URL: t.databaseUrl });
    expect(created.stdout).toMatch(/^furrow_reg_\S+\n$/);
    const tokens = (await t.api('GET', '/api/v1/runner-tokens')).body.items;
    expect(tokens.map((x: any) => x.description)).toContain('from cli');
    expect(JSON.stringify(tokens)).not.toContain(created.stdout.trim());
    const bad = await furrow(['runner', 'token', 'create', '--organization', 'nope'], { DATABASE_URL: t.databaseUrl });
    expect(bad).toMatchObject({ code: 2, stderr: expect.stringContaining('no organization has the id nope') });
  });
});
