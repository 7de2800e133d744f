import { afterAll, describe, expect, it } from 'vitest';
import { runOutput } from './helpers/log-output.js';
import { freePort, startRunner, type RunnerProcess } from './helpers/runner-process.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

// The server restarts (same database, same address) while a remote runner streams a job's log:
// the runner reconnects, resends from the offset the server holds, and the log ends up complete
// with no byte twice. The first tests' lease outlives the restart; the last one's does not.
let first: TestInstance | undefined;
let second: TestInstance | undefined;
let runner: RunnerProcess | undefined;
async function stopAll(): Promise<void> {
  await runner?.stop('SIGKILL');
  await runner?.cleanup();
  await second?.stop();
  await first?.stop(); // drops the database both used
  runner = undefined;
  first = second = undefined;
}
afterAll(stopAll);

const expected = (n: number) => Array.from({ length: n }, (_, i) => `line ${i + 1} ${'x'.repeat(200)}\n`).join('');

describe.each(['websocket', 'http'])('runner reconnect over %s', (transport) => {
  it('resumes the log where the server holds it after a server restart', { timeout: 60_000 }, async () => {
    const port = String(await freePort());
    const env = { FURROW_LOCAL_RUNNER: 'false', FURROW_JOB_LEASE_SECONDS: '20', FURROW_PORT: port };
    first = await startTestInstance(env);
    let t = first;
    const token = (await t.api('POST', '/api/v1/runner-tokens', {})).body.token;
    runner = await startRunner(['--url', t.url, '--name', `steady-${transport}`, '--transport', transport], { token });
    const { workflowId } = await t.workflow(`for i in $(seq 1 60); do printf 'line %d %s\\n' $i ${'x'.repeat(200)}; sleep 0.05; done`, { retry: { count: 0, on: [] } });
    const runId = (await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, {})).body.id;
    for (;;) {
      const log = (await t.api('GET', `/api/v1/runs/${runId}/log`)).text;
      if (log.includes('line 10 ')) break;
      await new Promise((r) => setTimeout(r, 50));
    }

    await first.instance.stop();
    await new Promise((r) => setTimeout(r, 500)); // the runner notices and keeps writing meanwhile
    second = await startTestInstance(env, { databaseUrl: first.databaseUrl, dataDir: first.dataDir });
    t = second;

    const run = await t.waitForRun(runId, 30_000);
    expect(run.status).toBe('succeeded');
    const log = runOutput((await t.api('GET', `/api/v1/runs/${runId}/log`)).text);
    expect(log.length).toBe(expected(60).length);
    expect(log).toBe(expected(60));
    expect(runner.output()).toMatch(/reconnected to the server/);

    await stopAll();
  });
});

const remoteLines = (n: number) => Array.from({ length: n }, (_, i) => `remote ${i + 1}\n`).join('');

// The server stops while a remote runner holds a job and a local job keeps the server in its grace
// period; it comes back on the same address after twice the lease, or after 25 s with the
// default 30 s lease. Nothing may end the remote job meanwhile: not the stopping server's lease
// watch, not the next server's first watch.
describe.each([
  { lease: 6, grace: 8, awayMs: 12_000 },
  { lease: 30, grace: 2, awayMs: 25_000 },
])('a server restart with a $lease s lease, away $awayMs ms', ({ lease, grace, awayMs }) => {
  it('keeps a remote runner’s job running to success with its whole log', { timeout: 150_000 }, async () => {
    // The job logs for longer than the server is away.
    const LINES = Math.ceil((awayMs + 8000) / 150);
    const port = String(await freePort());
    const env = { FURROW_JOB_LEASE_SECONDS: String(lease), FURROW_SHUTDOWN_GRACE_SECONDS: String(grace), FURROW_PORT: port, FURROW_RUNNER_LABELS: 'local' };
    first = await startTestInstance(env);
    let t = first;
    const token = (await t.api('POST', '/api/v1/runner-tokens', {})).body.token;
    runner = await startRunner(['--url', t.url, '--name', `outlasting-${lease}`, '--labels', 'remote'], { token });
    const noRetry = { retry: { count: 0, on: [] } };
    const remote = await t.workflow(`for i in $(seq 1 ${LINES}); do echo "remote $i"; sleep 0.15; done`, { labels: ['remote'], ...noRetry });
    const local = await t.workflow('echo local; sleep 60', { labels: ['local'], ...noRetry });
    const remoteRun = (await t.api('POST', `/api/v1/workflows/${remote.workflowId}/runs`, {})).body.id;
    const localRun = (await t.api('POST', `/api/v1/workflows/${local.workflowId}/runs`, {})).body.id;
    for (;;) {
      const [r, l] = await Promise.all([t.api('GET', `/api/v1/runs/${remoteRun}/log`), t.api('GET', `/api/v1/runs/${localRun}/log`)]);
      if (r.text.includes('remote 5\n') && l.text.includes('local')) break;
      await new Promise((res) => setTimeout(res, 100));
    }

    // The stop waits out the local job's grace period, then the server stays away some more.
    const stopped = Date.now();
    await first.instance.stop();
    await new Promise((r) => setTimeout(r, Math.max(0, awayMs - (Date.now() - stopped))));
    second = await startTestInstance(env, { databaseUrl: first.databaseUrl, dataDir: first.dataDir });
    t = second;

    const run = await t.waitForRun(remoteRun, 60_000);
    const jobs = (await t.api('GET', `/api/v1/runs/${remoteRun}/jobs`)).body.items;
    expect(jobs.map((j: any) => [j.attempt, j.status, j.error])).toEqual([[1, 'succeeded', null]]);
    expect(run.status).toBe('succeeded');
    expect(runOutput((await t.api('GET', `/api/v1/runs/${remoteRun}/log`)).text)).toBe(remoteLines(LINES));
    expect(runner.output()).toMatch(/reconnected to the server/);
    // The local job was canceled when the grace period ran out.
    expect((await t.api('GET', `/api/v1/runs/${localRun}`)).body.status).toBe('canceled');

    await stopAll();
  });
});
