import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { rootStateDir } from '../src/config/state-dir.js';
import { openDatabase } from '../src/db/database.js';
import { findCluster } from '../src/db/embedded-postgres.js';
import { RUNNER_RESTARTED_ERROR } from '../src/server/dispatch/runner-gateway.js';
import { createApiToken, createUser } from '../src/server/store/account-store.js';
import { furrow, furrowStart } from './helpers/furrow-process.js';
import { processesWithEnv } from './helpers/processes.js';
import { api } from './helpers/api-client.js';
import { createTestDatabase } from './helpers/test-database.js';
import { until } from './helpers/until.js';

// `furrow start` as a real process: signals, and a crash (kill -9) in the middle of a job.
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

type Started = Awaited<ReturnType<typeof furrowStart>>;

function started(server: Started): Started {
  cleanups.push(async () => {
    server.child.kill('SIGKILL');
    await server.exited;
  });
  return server;
}

/** Queues a run of a one-line workflow (no retries) and returns its id. */
async function queue(url: string, token: string, script: string): Promise<string> {
  const org = await api(url, token, 'POST', '/api/v1/organizations', { name: `org-${Date.now()}-${Math.random().toString(36).slice(2, 6)}` });
  const project = await api(url, token, 'POST', `/api/v1/organizations/${org.body.id}/projects`, { name: 'p' });
  const wf = await api(url, token, 'POST', `/api/v1/projects/${project.body.id}/workflows`, { name: 'w', script, retry: { count: 0, on: [] } });
  return (await api(url, token, 'POST', `/api/v1/workflows/${wf.body.id}/runs`, {})).body.id;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
// As root the cluster lives outside the data dir (see findCluster).
const postmasterPid = async (dataDir: string) => Number((await readFile(path.join((await findCluster(dataDir))!, 'postmaster.pid'), 'utf8')).split('\n')[0]);

describe('furrow start', () => {
  it('shuts down cleanly on a second signal without waiting out the grace period: jobs canceled, embedded PostgreSQL stopped', { timeout: 120_000 }, async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'furrow-signals-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    cleanups.push(() => rm(rootStateDir(dataDir), { recursive: true, force: true }));
    const env = { FURROW_DATA_DIR: dataDir, FURROW_PORT: '0', FURROW_SHUTDOWN_GRACE_SECONDS: '60' };
    const server = started(await furrowStart(env));
    await furrow(['user', 'create', '--email', 'sig@example.com', '--password-stdin', '--admin'], env, 'a long password\n');
    const token = (await furrow(['token', 'create', '--email', 'sig@example.com', '--name', 't'], env)).stdout.trim();
    const runId = await queue(server.url, token, 'echo begun; sleep 120');
    await until('the job to run', async () => (await api(server.url, token, 'GET', `/api/v1/runs/${runId}/log`)).body.includes('begun\n'));
    const jobId = (await api(server.url, token, 'GET', `/api/v1/runs/${runId}/jobs`)).body.items[0].id;
    const postmaster = await postmasterPid(dataDir);
    const cluster = (await findCluster(dataDir))!;
    expect(alive(postmaster)).toBe(true);
    expect(await processesWithEnv(`FURROW_JOB_ID=${jobId}`)).not.toEqual([]);

    const began = Date.now();
    server.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    server.child.kill('SIGINT');
    expect(await server.exited).toBe(0);
    expect(Date.now() - began).toBeLessThan(20_000); // not the 60 s grace period
    expect(server.output()).toMatch(/second signal/);
    expect(alive(postmaster)).toBe(false);
    expect(existsSync(path.join(cluster, 'postmaster.pid'))).toBe(false);
    expect(await processesWithEnv(`FURROW_JOB_ID=${jobId}`)).toEqual([]);

    // The next start runs a PostgreSQL of its own, and finds the job canceled.
    const again = started(await furrowStart(env));
    const fresh = await postmasterPid(dataDir);
    expect(fresh).not.toBe(postmaster);
    expect((await api(again.url, token, 'GET', `/api/v1/runs/${runId}`)).body.status).toBe('canceled');
    again.child.kill('SIGTERM');
    expect(await again.exited).toBe(0);
    expect(alive(fresh)).toBe(false);
  });

  it('settles the jobs of a crashed predecessor as it starts, and runs new jobs at once', { timeout: 120_000 }, async () => {
    const database = await createTestDatabase();
    cleanups.push(() => database.drop());
    const dataDir = await mkdtemp(path.join(tmpdir(), 'furrow-crash-'));
    cleanups.push(() => rm(rootStateDir(dataDir), { recursive: true, force: true }));
    await chmod(dataDir, 0o711); // the job user passes through to its workspace
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const handle = openDatabase(database.url, 2);
    cleanups.push(() => handle.close());
    // The default 30 s lease; one job at a time, so a dead predecessor's job would block the runner.
    const env = { DATABASE_URL: database.url, FURROW_DATA_DIR: dataDir, FURROW_PORT: '0', FURROW_LOCAL_RUNNER_CAPACITY: '1' };
    const crashed = started(await furrowStart(env));
    const user = await createUser(handle.db, 'crash@example.com', 'a long password', true);
    const { token } = await createApiToken(handle.db, user.id, 't');
    const runId = await queue(crashed.url, token, 'echo begun; sleep 120');
    await until('the job to run', async () => (await api(crashed.url, token, 'GET', `/api/v1/runs/${runId}/log`)).body.includes('begun\n'));
    const jobId = (await api(crashed.url, token, 'GET', `/api/v1/runs/${runId}/jobs`)).body.items[0].id;
    crashed.child.kill('SIGKILL');
    await crashed.exited;
    // The job's own processes outlive a kill -9 of the server; they are not what this test is about.
    for (const pid of await processesWithEnv(`FURROW_JOB_ID=${jobId}`)) process.kill(pid, 'SIGKILL');

    const again = started(await furrowStart(env));
    const up = Date.now();
    const job = await until('the old job to be settled', async () => {
      const j = (await api(again.url, token, 'GET', `/api/v1/runs/${runId}/jobs`)).body.items[0];
      return j.status !== 'running' && j;
    });
    expect(Date.now() - up).toBeLessThan(3000);
    expect(job).toMatchObject({ status: 'runner_lost', error: RUNNER_RESTARTED_ERROR });
    const next = await queue(again.url, token, 'echo next');
    const ran = await until('the new job to finish', async () => {
      const r = (await api(again.url, token, 'GET', `/api/v1/runs/${next}`)).body;
      return ['succeeded', 'failed', 'canceled'].includes(r.status) && r;
    });
    expect(ran.status).toBe('succeeded');
    expect(Date.now() - up).toBeLessThan(10_000); // not after the 30 s lease
    again.child.kill('SIGTERM');
    expect(await again.exited).toBe(0);
  });
});
