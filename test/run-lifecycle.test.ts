import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMarker } from '../src/domain/log-markers.js';
import { jobOutput, runJobs, runOutput } from './helpers/log-output.js';
import { processesRunning, processesWithEnv } from './helpers/processes.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

let t: TestInstance;
beforeAll(async () => {
  t = await startTestInstance();
});
afterAll(() => t?.stop());

async function startRun(script: string, extra: Record<string, unknown> = {}, body: unknown = {}) {
  const { workflowId, projectId } = await t.workflow(script, extra);
  const res = await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, body);
  expect(res.status).toBe(202);
  return { runId: res.body.id as string, projectId, workflowId };
}

async function jobOf(runId: string) {
  const jobs = await t.api('GET', `/api/v1/runs/${runId}/jobs`);
  return jobs.body.items[0];
}

describe('run lifecycle', () => {
  it('runs a script to success and keeps its output in the log', async () => {
    const { runId, projectId } = await startRun('echo "hello from $FURROW_WORKFLOW_NAME"\necho "to stderr" >&2\necho "run $FURROW_RUN_NUMBER"');
    const run = await t.waitForRun(runId);
    expect(run.status).toBe('succeeded');
    expect(run.startedAt).toBeTruthy();
    expect(run.finishedAt).toBeTruthy();
    const log = await t.api('GET', `/api/v1/runs/${runId}/log`);
    expect(log.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(log.text).toContain('hello from workflow\n');
    expect(log.text).toContain('to stderr\n');
    expect(log.text).toContain('run 1\n');
    const job = await jobOf(runId);
    expect(job.status).toBe('succeeded');
    expect(job.exitCode).toBe(0);
    expect(job.steps[0].status).toBe('succeeded');
    const activities = await t.api('GET', `/api/v1/projects/${projectId}/activities?type=run.*`);
    expect(activities.body.items.map((a: { type: string }) => a.type)).toEqual(['run.succeeded', 'run.running', 'run.queued']);
  });

  it('numbers concurrent runs of one workflow 1..N, with no gap for a refused start', async () => {
    const { workflowId } = await t.workflow('true');
    const posts = Array.from({ length: 28 }, (_, i) =>
      t.api('POST', `/api/v1/workflows/${workflowId}/runs`, i % 7 === 3 ? { parameters: { BASH_ENV: '/tmp/x' } } : {}),
    );
    const answers = await Promise.all(posts);
    expect(answers.filter((a) => a.status === 400).map((a) => a.body.code)).toEqual(Array(4).fill('parameter_not_allowed'));
    const accepted = answers.filter((a) => a.status === 202);
    expect(accepted).toHaveLength(24);
    expect(accepted.map((a) => a.body.number as number).sort((a, b) => a - b)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
    for (const a of accepted) expect((await t.waitForRun(a.body.id)).status).toBe('succeeded');
  });

  it('ends a step that left a setsid escapee holding its output, and kills the escapee', async () => {
    const { runId } = await startRun('setsid sleep 297 &\necho ok');
    const run = await t.waitForRun(runId, 20_000);
    expect(run.status).toBe('succeeded');
    expect(runOutput((await t.api('GET', `/api/v1/runs/${runId}/log`)).text)).toBe('ok\n');
    expect(await processesWithEnv(`FURROW_RUN_ID=${runId}`)).toEqual([]);
  });

  it('ends a step whose output a process it cannot find holds open, and says so in the log', async () => {
    const { runId } = await startRun('setsid env -i sleep 296 &\necho ok\nsleep 0.2');
    const run = await t.waitForRun(runId, 20_000);
    expect(run.status).toBe('succeeded');
    expect(runOutput((await t.api('GET', `/api/v1/runs/${runId}/log`)).text)).toBe(
      "ok\na process the step left running (one that left its process group and cleared its environment) holds the step's output open: the step ends without reading more of it\n",
    );
    // As root it ran as the slot's user, whose processes all die with the job.
    const left = await processesRunning('sleep 296');
    if (process.getuid?.() === 0) expect(left).toEqual([]);
    else for (const pid of left) process.kill(pid, 'SIGKILL');
  });

  it('reads the log from a byte offset', async () => {
    const { runId } = await startRun('printf "0123456789"');
    await t.waitForRun(runId);
    const whole = (await t.api('GET', `/api/v1/runs/${runId}/log`)).text;
    expect(runOutput(whole)).toBe('0123456789\n'); // the end marker starts a line of its own
    const at = whole.indexOf('0123456789') + 4;
    for (const offset of [4, at, whole.length - 3]) expect((await t.api('GET', `/api/v1/runs/${runId}/log?offset=${offset}`)).text).toBe(whole.slice(offset));
    expect((await t.api('GET', `/api/v1/runs/${runId}/log?offset=${whole.length + 99}`)).text).toBe('');
  });

  it('keeps a large log byte for byte, stored compressed where it compresses', async () => {
    // ~3 MB of numbered lines, then 64 KiB of base64 noise that does not compress.
    const { runId } = await startRun('seq -f "line %07.0f of a long build log" 1 100000\nhead -c 49152 /dev/urandom | base64 -w 0\necho');
    expect((await t.waitForRun(runId)).status).toBe('succeeded');
    const log = (await t.api('GET', `/api/v1/runs/${runId}/log`)).text;
    const [jobLog] = runJobs(log);
    const lines = jobOutput(jobLog!.log).split('\n');
    expect(lines[0]).toBe('line 0000001 of a long build log');
    expect(lines[99_999]).toBe('line 0100000 of a long build log');
    expect(lines[100_000]).toMatch(/^[A-Za-z0-9+/=]{65536}$/);
    const job = await jobOf(runId);
    expect(job.logSize).toBe(Buffer.byteLength(jobLog!.log));
    // Reading from an offset inside a compressed chunk.
    const tail = await t.api('GET', `/api/v1/runs/${runId}/log?offset=${33 * 50_000}`);
    expect(tail.text).toBe(log.slice(33 * 50_000));
    const { rows } = await t.instance.resources.database.pool.query(
      'SELECT bool_or(compressed) AS some, sum(length(data))::int AS stored, sum(size)::int AS written FROM log_chunks WHERE job_id = $1',
      [job.id],
    );
    expect(rows[0].some).toBe(true);
    expect(rows[0].written).toBe(job.logSize);
    expect(rows[0].stored).toBeLessThan(job.logSize / 3);
  });

  it('marks a failing script failed with its exit code', async () => {
    const { runId } = await startRun('echo before\nexit 7\necho never');
    const run = await t.waitForRun(runId);
    expect(run.status).toBe('failed');
    const job = await jobOf(runId);
    expect(job.exitCode).toBe(7);
    expect(job.steps[0].exitCode).toBe(7);
    const log = await t.api('GET', `/api/v1/runs/${runId}/log`);
    const jobs = runJobs(log.text);
    expect(jobs.map((j) => j.jobId)).toEqual([job.id]);
    expect(jobOutput(jobs[0]!.log)).toBe('before\n');
    const marks = jobs[0]!.log.split('\n').map(parseMarker).filter((m) => m !== undefined);
    expect(marks).toMatchObject([{ kind: 'start', stepId: job.steps[0].id }, { kind: 'end', stepId: job.steps[0].id, status: 'failed', reason: 'exit 7' }]);
  });

  it('does not pass the server environment to jobs, but the run environment and parameters', async () => {
    const { projectId, workflowId } = await t.workflow('echo "GREETING=$GREETING TARGET=$TARGET HOME_SET=${DATABASE_URL:-unset}"');
    const env = await t.api('POST', `/api/v1/projects/${projectId}/environments`, { name: 'staging', variables: { GREETING: 'hi' } });
    expect(env.status).toBe(201);
    const res = await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, { environmentId: env.body.id, parameters: { TARGET: 'param' } });
    expect(res.status).toBe(202);
    await t.waitForRun(res.body.id);
    const log = await t.api('GET', `/api/v1/runs/${res.body.id}/log`);
    expect(runOutput(log.text)).toBe('GREETING=hi TARGET=param HOME_SET=unset\n');
  });

  it('times out a job, killing every process it started', async () => {
    const { runId } = await startRun('sleep 300 &\nsetsid sleep 301 &\necho started\nsleep 302', { timeoutSeconds: 1 });
    const run = await t.waitForRun(runId);
    expect(run.status).toBe('timed_out');
    const job = await jobOf(runId);
    expect(job.status).toBe('timed_out');
    expect(job.error).toMatch(/timed out/);
    expect(await processesWithEnv(`FURROW_JOB_ID=${job.id}`)).toEqual([]);
  });

  it('cancels a running job within 2 seconds and leaves no process behind', async () => {
    const { runId } = await startRun('trap "" TERM\nsleep 400 &\necho started\nwhile true; do sleep 1; done');
    // wait until the script has really started
    for (let i = 0; i < 100; i++) {
      if ((await t.api('GET', `/api/v1/runs/${runId}/log`)).text.includes('started')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const job = await jobOf(runId);
    expect(await processesWithEnv(`FURROW_JOB_ID=${job.id}`)).not.toEqual([]);
    const began = Date.now();
    const cancel = await t.api('POST', `/api/v1/runs/${runId}/cancel`);
    expect(cancel.status).toBe(202);
    const run = await t.waitForRun(runId, 5000);
    expect(Date.now() - began).toBeLessThan(2000);
    expect(run.status).toBe('canceled');
    expect(await processesWithEnv(`FURROW_JOB_ID=${job.id}`)).toEqual([]);
    const again = await t.api('POST', `/api/v1/runs/${runId}/cancel`);
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('run_finished');
  });

  it('cancels a queued run that no runner can take', async () => {
    const { runId } = await startRun('echo never', { labels: ['gpu'] });
    expect((await t.api('GET', `/api/v1/runs/${runId}`)).body.status).toBe('queued');
    const cancel = await t.api('POST', `/api/v1/runs/${runId}/cancel`);
    expect(cancel.status).toBe(202);
    expect(cancel.body.status).toBe('canceled');
    const job = await jobOf(runId);
    expect(job.steps[0].status).toBe('canceled');
  });

  it('lists runs with filters and cursor pagination', async () => {
    const { workflowId, projectId } = await t.workflow('true');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, {})).body.id);
    for (const id of ids) await t.waitForRun(id);
    const seen: string[] = [];
    let cursor = '';
    for (let page = 0; page < 5; page++) {
      const res = await t.api('GET', `/api/v1/projects/${projectId}/runs?limit=2&workflowId=${workflowId}${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      seen.push(...res.body.items.map((r: { id: string }) => r.id));
      if (!res.body.nextCursor) break;
      cursor = res.body.nextCursor;
    }
    expect(seen).toEqual([...ids].reverse());
    // Runs created within one millisecond (e.g. by one trigger) must not fall between pages.
    await t.instance.resources.database.pool.query("UPDATE runs SET created_at = '2026-01-01 00:00:00.123456+00' WHERE workflow_id = $1", [workflowId]);
    const sameInstant: string[] = [];
    cursor = '';
    for (let page = 0; page < 5; page++) {
      const res = await t.api('GET', `/api/v1/projects/${projectId}/runs?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      sameInstant.push(...res.body.items.map((r: { id: string }) => r.id));
      if (!res.body.nextCursor) break;
      cursor = res.body.nextCursor;
    }
    expect(sameInstant.sort()).toEqual([...ids].sort());
    const succeeded = await t.api('GET', `/api/v1/projects/${projectId}/runs?status=succeeded`);
    expect(succeeded.body.items).toHaveLength(5);
    const failed = await t.api('GET', `/api/v1/projects/${projectId}/runs?status=failed`);
    expect(failed.body.items).toHaveLength(0);
    const bad = await t.api('GET', `/api/v1/projects/${projectId}/runs?cursor=nonsense`);
    expect(bad.status).toBe(400);
  });

  it('lists the local runner as online with its settings, and refuses to remove it', async () => {
    const local = (await t.api('GET', '/api/v1/runners')).body.items.filter((r: any) => r.local);
    expect(local).toHaveLength(1);
    expect(local[0]).toMatchObject({ name: expect.stringMatching(/^local@/), online: true, executor: 'shell', capacity: 2, organizationId: null });
    const removed = await t.api('DELETE', `/api/v1/runners/${local[0].id}`);
    expect(removed.status).toBe(409);
    expect(removed.body).toMatchObject({ code: 'conflict', message: expect.stringContaining('FURROW_LOCAL_RUNNER=false') });
    const { runId } = await startRun('echo still here');
    expect((await t.waitForRun(runId)).status).toBe('succeeded');
  });
});
