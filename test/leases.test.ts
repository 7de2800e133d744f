import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobOutput, runOutput } from './helpers/log-output.js';
import { PROTOCOL_VERSION, type RegisterMessage, type RunnerRequest, type ServerReply } from '../src/protocol/messages.js';
import { RUNNER_LOST_ERROR, reapExpiredLeases } from '../src/server/store/job-store.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

let t: TestInstance;
beforeAll(async () => {
  // No local runner: the tests speak the runner protocol themselves.
  t = await startTestInstance({ FURROW_LOCAL_RUNNER: 'false' });
});
afterAll(() => t?.stop());

let names = 0;
const hello = (labels: string[] = [], version = PROTOCOL_VERSION): RegisterMessage => ({
  type: 'register',
  version,
  name: `test-${++names}`,
  labels,
  capacity: 1,
  executor: 'shell',
  agentVersion: 'test',
  jobs: [],
});

/** A runner connection speaking the protocol directly (as the local runner does). */
function connect() {
  const s = t.instance.resources.gateway.connect(undefined);
  return { request: <R extends ServerReply = ServerReply>(msg: RunnerRequest) => s.handle(msg) as Promise<R>, close: () => s.close() };
}
type Connection = ReturnType<typeof connect>;

async function runner(labels: string[] = []): Promise<Connection> {
  const channel = connect();
  expect((await channel.request(hello(labels))).type).toBe('registered');
  return channel;
}

/** Queues a run and lets `channel` claim its job. */
async function queueAndClaim(channel: Connection, retries = 0) {
  const { workflowId } = await t.workflow('echo hi', { retry: { count: retries, on: ['runner_lost'] } });
  const run = await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, {});
  const claimed = await channel.request<Extract<ServerReply, { type: 'job' }>>({ type: 'next', waitMs: 5000 });
  expect(claimed.type).toBe('job');
  expect(claimed.spec.runId).toBe(run.body.id);
  return { runId: run.body.id as string, jobId: claimed.spec.jobId };
}

async function expireLeases(runId: string) {
  await t.instance.resources.database.pool.query("UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE run_id = $1", [runId]);
}

describe('runner protocol and leases', () => {
  it('refuses a runner speaking another protocol version', async () => {
    const channel = connect();
    const reply = await channel.request(hello([], PROTOCOL_VERSION - 1));
    expect(reply).toMatchObject({ type: 'error', code: 'protocol_version_mismatch', message: expect.stringContaining('upgrade the runner') });
    await channel.close();
  });

  it('fails a running job as runner_lost when its lease expires, and ignores the lost runner afterwards', async () => {
    const channel = await runner();
    const { runId, jobId } = await queueAndClaim(channel);
    expect((await channel.request({ type: 'accept', jobId })).type).toBe('ack');
    await channel.request({ type: 'log', jobId, offset: 0, data: Buffer.from('partial output\n') });
    expect((await t.api('GET', `/api/v1/runs/${runId}`)).body.status).toBe('running');

    // The runner vanishes: nothing extends the lease any more.
    await expireLeases(runId);
    expect(await reapExpiredLeases(t.instance.resources.database.db)).toBe(1);
    const after = await t.api('GET', `/api/v1/runs/${runId}`);
    expect(after.body.status).toBe('failed');
    const job = (await t.api('GET', `/api/v1/runs/${runId}/jobs`)).body.items[0];
    expect(job).toMatchObject({ status: 'runner_lost', error: RUNNER_LOST_ERROR, attempt: 1, retried: false });
    expect(runOutput((await t.api('GET', `/api/v1/runs/${runId}/log`)).text)).toBe('partial output\n');

    // A late word from the lost runner changes nothing: terminal states are final.
    const late = await channel.request({ type: 'log', jobId, offset: 15, data: Buffer.from('too late\n') });
    expect(late).toMatchObject({ type: 'ack', cancel: true, end: 15 });
    await channel.request({ type: 'done', jobId, status: 'succeeded', exitCode: 0 });
    expect((await t.api('GET', `/api/v1/runs/${runId}`)).body.status).toBe('failed');
    expect(runOutput((await t.api('GET', `/api/v1/runs/${runId}/log`)).text)).toBe('partial output\n');
    await channel.close();
  });

  it('retries a job whose runner was lost as a new attempt on another runner; the first attempt keeps its log', async () => {
    const first = await runner();
    const { runId, jobId } = await queueAndClaim(first, 1);
    await first.request({ type: 'accept', jobId });
    await first.request({ type: 'log', jobId, offset: 0, data: Buffer.from('attempt one\n') });
    await expireLeases(runId);
    expect(await reapExpiredLeases(t.instance.resources.database.db)).toBe(1);
    expect((await t.api('GET', `/api/v1/runs/${runId}`)).body.status).toBe('running');

    const second = await runner();
    const retry = await second.request<Extract<ServerReply, { type: 'job' }>>({ type: 'next', waitMs: 5000 });
    expect(retry.spec).toMatchObject({ runId, attempt: 2 });
    expect(retry.spec.jobId).not.toBe(jobId);
    expect(retry.spec.env).toMatchObject({ FURROW_JOB_ID: retry.spec.jobId, FURROW_JOB_ATTEMPT: '2' });
    await second.request({ type: 'accept', jobId: retry.spec.jobId });
    await second.request({ type: 'log', jobId: retry.spec.jobId, offset: 0, data: Buffer.from('attempt two\n') });
    await second.request({ type: 'done', jobId: retry.spec.jobId, status: 'succeeded', exitCode: 0 });

    expect((await t.api('GET', `/api/v1/runs/${runId}`)).body.status).toBe('succeeded');
    const jobs = (await t.api('GET', `/api/v1/runs/${runId}/jobs`)).body.items;
    expect(jobs.map((j: any) => [j.attempt, j.status, j.retried, j.retryOf])).toEqual([
      [1, 'runner_lost', true, null],
      [2, 'succeeded', false, jobId],
    ]);
    expect(jobOutput((await t.api('GET', `/api/v1/jobs/${jobId}/log`)).text)).toBe('attempt one\n');
    expect(runOutput((await t.api('GET', `/api/v1/runs/${runId}/log`)).text)).toBe('attempt two\n');
    const activities = await t.api('GET', `/api/v1/projects/${(await t.api('GET', `/api/v1/runs/${runId}`)).body.projectId}/activities?type=job.*`);
    expect(activities.body.items[0]).toMatchObject({ type: 'job.retried', payload: { previousJobId: jobId, attempt: 2, reason: 'runner_lost' } });
    await Promise.all([first.close(), second.close()]);
  });

  it('puts a claimed but never accepted job back in the queue for another runner', async () => {
    const first = await runner();
    const { runId, jobId } = await queueAndClaim(first);
    await expireLeases(runId);
    expect(await reapExpiredLeases(t.instance.resources.database.db)).toBe(1);
    const second = await runner();
    const again = await second.request<Extract<ServerReply, { type: 'job' }>>({ type: 'next', waitMs: 5000 });
    expect(again.type).toBe('job');
    expect(again.spec.jobId).toBe(jobId);
    // The first runner no longer holds it.
    expect(await first.request({ type: 'accept', jobId })).toMatchObject({ type: 'ack', cancel: true });
    expect(await second.request({ type: 'accept', jobId })).toMatchObject({ type: 'ack', cancel: false });
    await second.request({ type: 'done', jobId, status: 'succeeded', exitCode: 0 });
    expect((await t.api('GET', `/api/v1/runs/${runId}`)).body.status).toBe('succeeded');
    await Promise.all([first.close(), second.close()]);
  });

  it('gives a claimed job back at once when its runner disconnects before accepting it', async () => {
    const first = await runner();
    const { jobId } = await queueAndClaim(first);
    await first.close();
    const second = await runner();
    const again = await second.request<Extract<ServerReply, { type: 'job' }>>({ type: 'next', waitMs: 5000 });
    expect(again.spec.jobId).toBe(jobId);
    await second.request({ type: 'accept', jobId });
    await second.request({ type: 'done', jobId, status: 'succeeded', exitCode: 0 });
    await second.close();
  });

  it('hands a runner only jobs whose labels it has', async () => {
    const { workflowId } = await t.workflow('echo gpu', { labels: ['gpu'] });
    const run = await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, {});
    const plain = await runner(['linux']);
    expect((await plain.request({ type: 'next', waitMs: 200 })).type).toBe('none');
    const gpu = await runner(['linux', 'gpu']);
    const got = await gpu.request<Extract<ServerReply, { type: 'job' }>>({ type: 'next', waitMs: 5000 });
    expect(got.spec.runId).toBe(run.body.id);
    await Promise.all([plain.close(), gpu.close()]);
  });

  it('wakes a waiting runner as soon as a job is queued', async () => {
    const { workflowId } = await t.workflow('echo hi');
    const channel = await runner();
    const waiting = channel.request<ServerReply>({ type: 'next', waitMs: 10_000 });
    await new Promise((r) => setTimeout(r, 100));
    const began = Date.now();
    const run = await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, {});
    const reply = await waiting;
    expect(reply.type).toBe('job');
    expect(Date.now() - began).toBeLessThan(2000); // far below the 10 s wait: woken, not polled
    expect((reply as Extract<ServerReply, { type: 'job' }>).spec.runId).toBe(run.body.id);
    await channel.close();
  });
});
