import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../src/db/embedded-postgres.js';
import { runOutput } from './helpers/log-output.js';
import { freePort, startRunner, type RunnerProcess } from './helpers/runner-process.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

// The database restarts (about 4 s away) while a local and a remote job log steadily, and API
// requests meanwhile are told to come back. The
// machine's PostgreSQL is shared, so this test runs a cluster of its own and restarts that one.
let cluster: EmbeddedPostgres | undefined;
let dataDir: string | undefined;
let t: TestInstance | undefined;
let runner: RunnerProcess | undefined;
afterAll(async () => {
  await runner?.stop('SIGKILL');
  await runner?.cleanup();
  await t?.stop(false);
  await cluster?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

const LINES = 120;
const expected = (who: string) => Array.from({ length: LINES }, (_, i) => `${who} ${i + 1} ${'.'.repeat(100)}\n`).join('');
const script = (who: string) => `for i in $(seq 1 ${LINES}); do echo "${who} $i ${'.'.repeat(100)}"; sleep 0.1; done`;

describe('a database restart', () => {
  it('fails no job, loses no log byte, and tells API clients meanwhile to come back', { timeout: 120_000 }, async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'furrow-pg-restart-'));
    const port = await freePort();
    const log = () => undefined;
    cluster = await startEmbeddedPostgres(dataDir, { port, log });
    // A lease shorter than the outage and its recovery: the lease watch must not count the outage.
    t = await startTestInstance({ FURROW_JOB_LEASE_SECONDS: '6', FURROW_RUNNER_LABELS: 'local' }, { databaseUrl: cluster.url, dataDir });
    const token = (await t.api('POST', '/api/v1/runner-tokens', {})).body.token;
    runner = await startRunner(['--url', t.url, '--name', 'through-outage', '--labels', 'remote'], { token });
    const noRetry = { retry: { count: 0, on: [] } };
    const runs: Record<string, string> = {};
    for (const who of ['local', 'remote']) {
      const { workflowId } = await t.workflow(script(who), { labels: [who], ...noRetry });
      runs[who] = (await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, {})).body.id;
    }
    for (;;) {
      const logs = await Promise.all(Object.values(runs).map((id) => t!.api('GET', `/api/v1/runs/${id}/log`)));
      if (logs.every((l) => l.text.includes(' 15 '))) break;
      await new Promise((r) => setTimeout(r, 100));
    }

    // Fast shutdown (clients are told "terminating connection due to administrator command"),
    // 4 s away, then the same cluster on the same port.
    await cluster.stop();
    // Meanwhile the API says what is wrong and when to come back, and changes nothing.
    for (const [method, route, body] of [
      ['GET', `/api/v1/runs/${runs.local}`],
      ['POST', `/api/v1/runs/${runs.local}/cancel`, {}],
    ] as const) {
      const res = await t.api(method, route, body);
      expect(res.status, `${method} ${route}: ${res.text}`).toBe(503);
      expect(res.body).toEqual({ code: 'database_unavailable', message: expect.stringContaining('try again') });
      expect(res.headers.get('retry-after')).toBe('2');
    }
    await new Promise((r) => setTimeout(r, 4000));
    cluster = await startEmbeddedPostgres(dataDir, { port, log });
    expect(cluster.owned).toBe(true);

    for (const [who, runId] of Object.entries(runs)) {
      const run = await t.waitForRun(runId, 60_000);
      const jobs = (await t.api('GET', `/api/v1/runs/${runId}/jobs`)).body.items;
      expect(jobs.map((j: any) => [j.attempt, j.status, j.error]), who).toEqual([[1, 'succeeded', null]]);
      expect(run.status, who).toBe('succeeded');
      const stored = runOutput((await t.api('GET', `/api/v1/runs/${runId}/log`)).text);
      expect(stored.length, who).toBe(expected(who).length);
      expect(stored, who).toBe(expected(who));
    }
    const failed = await t.instance.resources.database.pool.query("SELECT count(*)::int AS n FROM jobs WHERE status <> 'succeeded'");
    expect(failed.rows[0].n).toBe(0);
  });
});
