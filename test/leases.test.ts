import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { jobOutput, runOutput } from './helpers/log-output.js';
import { PROTOCOL_VERSION, type RegisterMessage, type RunnerRequest, type ServerReply } from '../src/protocol/messages.js';
import { RUNNER_RESTARTED_ERROR } from '../src/server/dispatch/runner-gateway.js';
import { RUNNER_LOST_ERROR, expireJobs } from '../src/server/runs/expire-jobs.js';
import { watchLeases } from '../src/server/workers/watch-leases.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

let t: TestInstance;
beforeAll(async () => {
  // No local runner: the tests speak the runner protocol themselves.
  t = await startTestInstance({ FURROW_LOCAL_RUNNER: 'false' });
});
afterAll(() => t?.stop());

/** Lease expiry as the watch runs it, with no grace before retries (held-back retries have their own test). */
const EXPIRY = { queueTimeoutSeconds: 86400, retryGraceSeconds: 0, sinceSeconds: 1 };

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
async function queueAndClaim(channel: Connection, retries = 0, labels: string[] = []) {
  const { workflowId } = await t.workflow('echo hi', { labels, retry: { count: retries, on: ['runner_lost'] } });
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
  // Each test claims the jobs it queued: what an earlier test left queued is stopped first.
  beforeEach(async () => {
    const { rows } = await t.instance.resources.database.pool.query<{ id: string }>("SELECT id FROM runs WHERE status IN ('queued', 'running')");
    for (const { id } of rows) await t.api('POST', `/api/v1/runs/${id}/cancel`, { force: true });
  });

  it('refuses a runner speaking another protocol version', async () => {
    const channel = connect();
    const reply = await channel.request(hello([], PROTOCOL_VERSION - 1));
    expect(reply).toMatchObject({ type: 'error', code: 'protocol_version_mismatch', message: expect.stringContaining('upgrade the runner') });
    await channel.close();
  });

  it('tells a runner registering with job ids it does not hold nothing about them: the answer of a random id', async () => {
    const holder = await runner(['probed']);
    const { jobId } = await queueAndClaim(holder, 0, ['probed']);
    await holder.request({ type: 'accept', jobId });
    await holder.request({ type: 'log', jobId, offset: 0, data: Buffer.from('private output\n') });
    await holder.request({ type: 'done', jobId, status: 'succeeded', exitCode: 0 });
    const { jobId: runningId } = await queueAndClaim(holder, 0, ['probed']);
    await holder.request({ type: 'accept', jobId: runningId });
    await holder.request({ type: 'log', jobId: runningId, offset: 0, data: Buffer.from('more private output\n') });

    const prober = connect();
    const random = '6f1c1b9e-94b5-4a53-9a26-2f4f6c1f4a11';
    const reply = await prober.request({ ...hello(), jobs: [jobId, runningId, random, 'not-a-uuid'] });
    expect(reply).toMatchObject({ type: 'registered' });
    const answers = (reply as Extract<ServerReply, { type: 'registered' }>).jobs;
    expect(answers).toEqual([jobId, runningId, random, 'not-a-uuid'].map((id) => ({ jobId: id, logEnd: 0, cancel: true })));
    // …and its log is not the prober's to write.
    expect(await prober.request({ type: 'log', jobId: runningId, offset: 0, data: Buffer.from('x') })).toMatchObject({ cancel: true, appended: false });
    await Promise.all([holder.close(), prober.close()]);
  });

  it('settles at once the jobs a runner no longer names when it registers again (its predecessor crashed)', async () => {
    const name = `crashing-${++names}`;
    const before = connect();
    await before.request({ ...hello(['crashing']), name });
    const { runId, jobId } = await queueAndClaim(before, 1, ['crashing']);
    await before.request({ type: 'accept', jobId });
    await before.request({ type: 'log', jobId, offset: 0, data: Buffer.from('before the crash\n') });
    const { jobId: claimedId } = await (async () => {
      // Capacity 1 is taken; a second claim needs a second slot.
      await t.instance.resources.database.pool.query('UPDATE runners SET capacity = 2 WHERE id::text = (SELECT runner_id::text FROM jobs WHERE id = $1)', [jobId]);
      return queueAndClaim(before, 0, ['crashing']);
    })();

    // The process is replaced: the new one registers under the same name, running nothing.
    const after = connect();
    const reply = await after.request({ ...hello(['crashing']), name });
    expect(reply).toMatchObject({ type: 'registered', jobs: [] });
    const jobs = (await t.api('GET', `/api/v1/runs/${runId}/jobs`)).body.items;
    expect(jobs.map((j: any) => [j.attempt, j.status, j.error])).toEqual([
      [1, 'runner_lost', RUNNER_RESTARTED_ERROR],
      [2, 'queued', null],
    ]);
    expect((await t.api('GET', `/api/v1/jobs/${jobId}/log`)).text).toBe('before the crash\n');
    // The claim went back to the queue, and the runner takes work again at once.
    const claimed = await t.instance.resources.database.pool.query('SELECT status, runner_id FROM jobs WHERE id = $1', [claimedId]);
    expect(claimed.rows[0]).toMatchObject({ status: 'queued', runner_id: null });
    expect((await after.request({ type: 'next', waitMs: 1000 })).type).toBe('job');
    await Promise.all([before.close(), after.close()]);
  });

  it('does not count time in which no lease watch could run (servers or database down) against a lease', async () => {
    const { db, pool } = t.instance.resources.database;
    const channel = await runner(['bridged']);
    const { runId, jobId } = await queueAndClaim(channel, 0, ['bridged']);
    await channel.request({ type: 'accept', jobId });
    // The last watch ran a minute ago, and the lease ran out meanwhile: the runner could not renew it.
    await pool.query("INSERT INTO lease_watch (id, checked_at) VALUES (true, now() - interval '60 seconds') ON CONFLICT (id) DO UPDATE SET checked_at = EXCLUDED.checked_at");
    await expireLeases(runId);
    const bridged = await watchLeases(db, 1000, EXPIRY);
    expect(bridged.bridgedSeconds).toBeGreaterThan(55);
    expect(bridged.bridgedSeconds).toBeLessThan(65);
    expect((await pool.query('SELECT status FROM jobs WHERE id = $1', [jobId])).rows[0].status).toBe('running');
    expect(await channel.request({ type: 'extend', jobId })).toMatchObject({ type: 'ack', cancel: false });

    // Watches on time count the lease as usual.
    await expireLeases(runId);
    expect(await watchLeases(db, 1000, EXPIRY)).toEqual({ bridgedSeconds: 0, reaped: 1 });
    expect((await pool.query('SELECT status FROM jobs WHERE id = $1', [jobId])).rows[0].status).toBe('runner_lost');
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
    expect(await expireJobs(t.instance.resources.database.db, EXPIRY)).toBe(1);
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
    expect(await expireJobs(t.instance.resources.database.db, EXPIRY)).toBe(1);
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

  it('tells a runner not to start a job canceled between its claim and its accept, and answers a resent accept as the first', async () => {
    const channel = await runner();
    const canceled = await queueAndClaim(channel);
    expect((await t.api('POST', `/api/v1/runs/${canceled.runId}/cancel`, {})).status).toBe(202);
    expect(await channel.request({ type: 'accept', jobId: canceled.jobId })).toMatchObject({ type: 'ack', cancel: true });
    expect((await t.api('GET', `/api/v1/runs/${canceled.runId}/jobs`)).body.items[0]).toMatchObject({ status: 'canceled', startedAt: null });
    expect((await t.api('GET', `/api/v1/runs/${canceled.runId}`)).body.status).toBe('canceled');

    const started = await queueAndClaim(channel);
    expect(await channel.request({ type: 'accept', jobId: started.jobId })).toMatchObject({ type: 'ack', cancel: false });
    expect(await channel.request({ type: 'accept', jobId: started.jobId })).toMatchObject({ type: 'ack', cancel: false });
    const run = (await t.api('GET', `/api/v1/runs/${started.runId}`)).body;
    expect(run.status).toBe('running');
    expect(run.startedAt).not.toBeNull();
    const activities = await t.api('GET', `/api/v1/projects/${run.projectId}/activities?type=run.*`);
    const ofRun = activities.body.items.filter((a: { subjectId: string }) => a.subjectId === started.runId).map((a: { type: string }) => a.type);
    expect(ofRun).toEqual(['run.running', 'run.queued']);
    await channel.request({ type: 'done', jobId: started.jobId, status: 'succeeded', exitCode: 0 });
    await channel.close();
  });

  it('puts a claimed but never accepted job back in the queue for another runner', async () => {
    const first = await runner();
    const { runId, jobId } = await queueAndClaim(first);
    await expireLeases(runId);
    expect(await expireJobs(t.instance.resources.database.db, EXPIRY)).toBe(1);
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
  it('wakes one waiting slot of a runner for each job queued, so that jobs queued together start together', async () => {
    const { projectId } = await t.workflow('true');
    const definition = ['on: manual', 'jobs:', '  m:', '    strategy: {matrix: {i: [1, 2, 3]}}', '    steps: [{run: "true"}]'].join('\n');
    const wf = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: 'three', definition });
    expect(wf.status).toBe(201);
    const channel = connect();
    expect((await channel.request({ ...hello(), capacity: 4 })).type).toBe('registered');
    const slots = Array.from({ length: 4 }, () => channel.request<ServerReply>({ type: 'next', waitMs: 3000 }).then((reply) => ({ reply, at: Date.now() })));
    await new Promise((r) => setTimeout(r, 100));
    const began = Date.now();
    const run = await t.api('POST', `/api/v1/workflows/${wf.body.id}/runs`, {});
    const answers = await Promise.all(slots);
    const jobs = answers.filter((a) => a.reply.type === 'job');
    expect(jobs.map((a) => (a.reply as Extract<ServerReply, { type: 'job' }>).spec.runId)).toEqual([run.body.id, run.body.id, run.body.id]);
    // Far below the 3 s wait: each was woken, none waited for its wait to end.
    for (const a of jobs) expect(a.at - began).toBeLessThan(1500);
    expect(answers.filter((a) => a.reply.type === 'none')).toHaveLength(1);
    await channel.close();
  });

  it('ends a job asked to stop while claimed when its claim is given back, instead of leaving it queued for nobody', async () => {
    const first = await runner();
    const { runId, jobId } = await queueAndClaim(first);
    expect((await t.api('POST', `/api/v1/runs/${runId}/cancel`)).status).toBe(202);
    await first.close(); // the claim goes back: nobody may claim a job asked to stop
    const run = await t.waitForRun(runId, 5000);
    expect(run.status).toBe('canceled');
    const job = (await t.api('GET', `/api/v1/runs/${runId}/jobs`)).body.items[0];
    expect(job).toMatchObject({ id: jobId, status: 'canceled', error: expect.stringMatching(/^canceled by admin-/) });
  });

  it('holds a retry of a lost job back until the old lease and a grace period have passed', async () => {
    const first = await runner();
    const { runId, jobId } = await queueAndClaim(first, 1);
    await first.request({ type: 'accept', jobId });
    await expireLeases(runId);
    await expireJobs(t.instance.resources.database.db, { ...EXPIRY, retryGraceSeconds: 60 });
    const jobs = (await t.api('GET', `/api/v1/runs/${runId}/jobs`)).body.items;
    expect(jobs.map((j: any) => [j.attempt, j.status])).toEqual([[1, 'runner_lost'], [2, 'queued']]);
    expect(Date.parse(jobs[1].notBefore) - Date.now()).toBeGreaterThan(50_000);
    expect(jobs[1].waitingReason).toMatch(/^held back until .*so that its lost earlier attempt cannot still be running$/);
    // No runner may take it yet, however idle.
    const second = await runner();
    expect((await second.request({ type: 'next', waitMs: 300 })).type).toBe('none');
    // Once the time has come, the watch wakes the runners.
    await t.instance.resources.database.pool.query("UPDATE jobs SET not_before = now() - interval '1 second' WHERE id = $1", [jobs[1].id]);
    const waiting = second.request<Extract<ServerReply, { type: 'job' }>>({ type: 'next', waitMs: 5000 });
    await expireJobs(t.instance.resources.database.db, { ...EXPIRY, sinceSeconds: 5 });
    expect((await waiting).spec).toMatchObject({ jobId: jobs[1].id, attempt: 2 });
    await Promise.all([first.close(), second.close()]);
  });

  it('does not retry a lost job in an environment unless its workflow asks for it', async () => {
    const { projectId } = await t.workflow('true');
    const env = await t.api('POST', `/api/v1/projects/${projectId}/environments`, { name: 'production', variables: {} });
    for (const [retry, attempts] of [[undefined, 1], [{ count: 1, on: ['runner_lost'] }, 2]] as const) {
      const wf = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: `deploy-${attempts}`, script: 'echo deploy', defaultEnvironmentId: env.body.id, ...(retry ? { retry } : {}) });
      expect(wf.body.retry).toEqual(retry ?? null);
      const channel = await runner();
      const run = await t.api('POST', `/api/v1/workflows/${wf.body.id}/runs`, {});
      const claimed = await channel.request<Extract<ServerReply, { type: 'job' }>>({ type: 'next', waitMs: 5000 });
      expect(claimed.spec.runId).toBe(run.body.id);
      await channel.request({ type: 'accept', jobId: claimed.spec.jobId });
      await expireLeases(run.body.id);
      await expireJobs(t.instance.resources.database.db, EXPIRY);
      const jobs = (await t.api('GET', `/api/v1/runs/${run.body.id}/jobs`)).body.items;
      expect(jobs.length).toBe(attempts);
      expect(jobs[0].status).toBe('runner_lost');
      if (attempts === 1) expect((await t.api('GET', `/api/v1/runs/${run.body.id}`)).body.status).toBe('failed');
      await t.api('POST', `/api/v1/runs/${run.body.id}/cancel`, { force: true });
      await channel.close();
    }
  });

  it('ends a job no runner took within the queue timeout, saying why it waited', async () => {
    const { workflowId } = await t.workflow('echo never', { labels: ['no-such-label'] });
    const run = await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, {});
    expect(await expireJobs(t.instance.resources.database.db, EXPIRY)).toBe(0);
    await t.instance.resources.database.pool.query("UPDATE jobs SET queued_at = now() - interval '25 hours' WHERE run_id = $1", [run.body.id]);
    expect(await expireJobs(t.instance.resources.database.db, EXPIRY)).toBe(1);
    expect((await t.api('GET', `/api/v1/runs/${run.body.id}`)).body.status).toBe('timed_out');
    const job = (await t.api('GET', `/api/v1/runs/${run.body.id}/jobs`)).body.items[0];
    expect(job).toMatchObject({ status: 'timed_out', error: 'no runner took the job within 24 h (no runner has labels no-such-label)' });
  });

  it('ends every run when matrix instances with fail-fast end at the same moment on many runners (no deadlock, nothing stuck)', async () => {
    const { projectId } = await t.workflow('true');
    const definition = [
      'on: manual',
      'jobs:',
      '  m:',
      '    strategy: {matrix: {i: [1, 2, 3, 4]}}',
      '    steps: [{run: "true"}]',
      '  after:',
      '    needs: m',
      '    if: always()',
      '    steps: [{run: "true"}]',
    ].join('\n');
    const wf = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: 'fan', definition });
    expect(wf.status).toBe(201);
    const runners = await Promise.all(Array.from({ length: 4 }, () => runner()));
    for (let round = 0; round < 15; round++) {
      const run = await t.api('POST', `/api/v1/workflows/${wf.body.id}/runs`, {});
      const claims = await Promise.all(runners.map((r) => r.request<Extract<ServerReply, { type: 'job' }>>({ type: 'next', waitMs: 5000 })));
      await Promise.all(claims.map((c, i) => runners[i]!.request({ type: 'accept', jobId: c.spec.jobId })));
      // One instance fails while the others end: fail-fast stops the others in the same moment.
      const replies = await Promise.all(
        claims.map((c, i) => runners[i]!.request({ type: 'done', jobId: c.spec.jobId, ...(i === round % 4 ? { status: 'failed' as const, exitCode: 1 } : { status: i % 2 ? ('succeeded' as const) : ('canceled' as const), exitCode: 0 }) })),
      );
      expect(replies.every((r) => r.type === 'ack')).toBe(true);
      const after = await runners[0]!.request<Extract<ServerReply, { type: 'job' }>>({ type: 'next', waitMs: 5000 });
      expect(after.type).toBe('job');
      await runners[0]!.request({ type: 'accept', jobId: after.spec.jobId });
      await runners[0]!.request({ type: 'done', jobId: after.spec.jobId, status: 'succeeded', exitCode: 0 });
      const ended = await t.waitForRun(run.body.id, 5000);
      expect(ended.status).toBe('failed');
      const jobs = (await t.api('GET', `/api/v1/runs/${run.body.id}/jobs`)).body.items;
      expect(jobs.filter((j: any) => j.status === 'failed').length).toBe(1);
      expect(jobs.find((j: any) => j.key === 'after').status).toBe('succeeded');
    }
    expect(t.logs.filter((l) => /deadlock|could not serialize/.test(l))).toEqual([]);
    await Promise.all(runners.map((r) => r.close()));
  });

});
