import { afterAll, describe, expect, it } from 'vitest';
import { freePort, startRunner, type RunnerProcess } from './helpers/runner-process.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

// A server stops while a remote runner holds a job and a local job keeps the server in its grace
// period; it comes back on the same address after twice the lease. Nothing may end the remote
// job meanwhile: not the stopping server's lease watch, not the next server's first watch.
let first: TestInstance | undefined;
let second: TestInstance | undefined;
let runner: RunnerProcess | undefined;
afterAll(async () => {
  await runner?.stop('SIGKILL');
  await runner?.cleanup();
  await second?.stop();
  await first?.stop(); // drops the database both used
});

const LINES = 160;
const expected = Array.from({ length: LINES }, (_, i) => `remote ${i + 1}\n`).join('');

describe('a server restart longer than the lease', () => {
  it('keeps a remote runner’s job running to success with its whole log', { timeout: 120_000 }, async () => {
    const port = String(await freePort());
    const env = { FURROW_JOB_LEASE_SECONDS: '6', FURROW_SHUTDOWN_GRACE_SECONDS: '8', FURROW_PORT: port, FURROW_RUNNER_LABELS: 'local' };
    first = await startTestInstance(env);
    let t = first;
    const token = (await t.api('POST', '/api/v1/runner-tokens', {})).body.token;
    runner = await startRunner(['--url', t.url, '--token', token, '--name', 'outlasting', '--labels', 'remote']);
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

    // The stop waits out the local job's grace period (8 s, beyond the 6 s lease), then the
    // server stays away a little longer: 2 leases without renewals in all.
    const stopped = Date.now();
    await first.instance.stop();
    await new Promise((r) => setTimeout(r, Math.max(0, 12_000 - (Date.now() - stopped))));
    second = await startTestInstance(env, { databaseUrl: first.databaseUrl, dataDir: first.dataDir });
    t = second;

    const run = await t.waitForRun(remoteRun, 60_000);
    const jobs = (await t.api('GET', `/api/v1/runs/${remoteRun}/jobs`)).body.items;
    expect(jobs.map((j: any) => [j.attempt, j.status, j.error])).toEqual([[1, 'succeeded', null]]);
    expect(run.status).toBe('succeeded');
    expect((await t.api('GET', `/api/v1/runs/${remoteRun}/log`)).text).toBe(expected);
    expect(runner.output()).toMatch(/reconnected to the server/);
    // The local job was canceled when the grace period ran out.
    expect((await t.api('GET', `/api/v1/runs/${localRun}`)).body.status).toBe('canceled');
  });
});
