import { afterAll, describe, expect, it } from 'vitest';
import { runOutput } from './helpers/log-output.js';
import { freePort, startRunner, type RunnerProcess } from './helpers/runner-process.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

// The server restarts (same database, same address) while a remote runner streams a job's log:
// the runner reconnects, resends from the offset the server holds, and the log ends up complete
// with no byte twice. The lease is long enough to outlive the restart.
let first: TestInstance | undefined;
let second: TestInstance | undefined;
let runner: RunnerProcess | undefined;
afterAll(async () => {
  await runner?.stop('SIGKILL');
  await runner?.cleanup();
  await second?.stop();
  await first?.stop(); // drops the database both used
});

const expected = (n: number) => Array.from({ length: n }, (_, i) => `line ${i + 1} ${'x'.repeat(200)}\n`).join('');

describe.each(['websocket', 'http'])('runner reconnect over %s', (transport) => {
  it('resumes the log where the server holds it after a server restart', async () => {
    const port = String(await freePort());
    const env = { FURROW_LOCAL_RUNNER: 'false', FURROW_JOB_LEASE_SECONDS: '20', FURROW_PORT: port };
    first = await startTestInstance(env);
    let t = first;
    const token = (await t.api('POST', '/api/v1/runner-tokens', {})).body.token;
    runner = await startRunner(['--url', t.url, '--token', token, '--name', `steady-${transport}`, '--transport', transport]);
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

    await runner.stop('SIGKILL');
    await runner.cleanup();
    runner = undefined;
    await second.stop();
    await first.stop();
    first = second = undefined;
  });
});
