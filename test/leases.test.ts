import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, type RunnerChannel, type ServerReply } from '../src/protocol/messages.js';
import { reapExpiredLeases } from '../src/server/store/job-store.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

let t: TestInstance;
beforeAll(async () => {
  // No local runner: the tests speak the runner protocol themselves.
  t = await startTestInstance({ FURROW_LOCAL_RUNNER: 'false' });
});
afterAll(() => t?.stop());

async function runner(labels: string[] = []): Promise<RunnerChannel> {
  const channel = t.instance.resources.gateway.connect();
  const reply = await channel.request({ type: 'register', version: PROTOCOL_VERSION, name: 'test', labels, capacity: 1, executor: 'shell' });
  expect(reply.type).toBe('registered');
  return channel;
}

/** Queues a run and lets `channel` claim its job. */
async function queueAndClaim(channel: RunnerChannel) {
  const { workflowId } = await t.workflow('echo hi');
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
    const channel = t.instance.resources.gateway.connect();
    const reply = await channel.request({ type: 'register', version: PROTOCOL_VERSION + 1, name: 'old', labels: [], capacity: 1, executor: 'shell' });
    expect(reply).toMatchObject({ type: 'error', code: 'protocol_version_mismatch' });
    channel.close();
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
    expect(job.error).toBe('runner_lost');
    expect((await t.api('GET', `/api/v1/runs/${runId}/log`)).text).toBe('partial output\n');

    // A late word from the lost runner changes nothing: terminal states are final.
    const late = await channel.request({ type: 'log', jobId, offset: 15, data: Buffer.from('too late\n') });
    expect(late).toMatchObject({ type: 'ack', cancel: true, end: 15 });
    await channel.request({ type: 'done', jobId, status: 'succeeded', exitCode: 0 });
    expect((await t.api('GET', `/api/v1/runs/${runId}`)).body.status).toBe('failed');
    expect((await t.api('GET', `/api/v1/runs/${runId}/log`)).text).toBe('partial output\n');
    channel.close();
  });

  it('puts a claimed but never accepted job back in the queue for another runner', async () => {
    const first = await runner();
    const { runId, jobId } = await queueAndClaim(first);
    first.close();
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
    second.close();
  });

  it('hands a runner only jobs whose labels it has', async () => {
    const { workflowId } = await t.workflow('echo gpu', { labels: ['gpu'] });
    const run = await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, {});
    const plain = await runner(['linux']);
    expect((await plain.request({ type: 'next', waitMs: 200 })).type).toBe('none');
    const gpu = await runner(['linux', 'gpu']);
    const got = await gpu.request<Extract<ServerReply, { type: 'job' }>>({ type: 'next', waitMs: 5000 });
    expect(got.spec.runId).toBe(run.body.id);
    plain.close();
    gpu.close();
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
    channel.close();
  });
});
