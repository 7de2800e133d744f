import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startChainedRuns, MAX_CHAIN_DEPTH } from '../src/server/triggers/start-chained-runs.js';
import { runOutput } from './helpers/log-output.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';
import { until } from './helpers/until.js';

let t: TestInstance;
beforeAll(async () => {
  t = await startTestInstance({ FURROW_LOCAL_RUNNER_CAPACITY: '4' });
});
afterAll(() => t?.stop());

const pool = () => t.instance.resources.database.pool;


async function workflow(projectId: string, name: string, body: Record<string, unknown>): Promise<string> {
  const res = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name, ...body });
  expect(res.status, res.text).toBe(201);
  return res.body.id;
}

async function chain(workflowId: string, body: Record<string, unknown>) {
  const res = await t.api('POST', `/api/v1/workflows/${workflowId}/triggers`, { kind: 'workflow', ...body });
  expect(res.status, res.text).toBe(201);
  return res.body;
}

const start = async (workflowId: string) => (await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, {})).body.id as string;

/** Runs a chain started, oldest first. */
async function chainedRuns(workflowId: string): Promise<{ id: string; upstreamRunId: string; depth: number; status: string }[]> {
  const { rows } = await pool().query(
    `SELECT id, reason->>'upstreamRunId' AS "upstreamRunId", (reason->>'depth')::int AS depth, status FROM runs
     WHERE workflow_id = $1 AND reason->>'type' = 'workflow' ORDER BY created_at`,
    [workflowId],
  );
  return rows;
}

/** Resolves once no background task waits or runs: every chain of the runs ended so far is decided. */
const tasksDone = () => until('the background tasks are done', async () => (await pool().query('SELECT count(*)::int AS n FROM graphile_worker.jobs')).rows[0].n === 0);

describe('chains', () => {
  it('start a workflow when a run of another ends with a status it follows, once, with the run as its origin', async () => {
    const { projectId, workflowId: build } = await t.workflow('test "$FURROW_RUN_NUMBER" != 1');
    const deploy = await workflow(projectId, 'deploy', { script: 'echo "after $FURROW_EVENT"' });
    const c = await chain(deploy, { workflowId: build, statuses: ['succeeded'], description: 'deploy what built' });
    expect(c).toMatchObject({ kind: 'workflow', source: 'api', upstreamWorkflowId: build, statuses: ['succeeded'], branches: [], upcoming: [] });

    const failed = await start(build); // run 1 fails
    expect((await t.waitForRun(failed)).status).toBe('failed');
    const passed = await start(build);
    expect((await t.waitForRun(passed)).status).toBe('succeeded');
    const [run] = await until('the chained run', async () => {
      const r = await chainedRuns(deploy);
      return r.length > 0 && r;
    });
    await tasksDone();
    expect(await chainedRuns(deploy)).toHaveLength(1);
    expect(run).toMatchObject({ upstreamRunId: passed, depth: 1 });
    const ended = await t.waitForRun(run!.id);
    expect(ended.reason).toEqual({ type: 'workflow', triggerId: c.id, upstreamRunId: passed, upstreamWorkflowId: build, upstreamStatus: 'succeeded', depth: 1 });
    expect(runOutput((await t.api('GET', `/api/v1/runs/${run!.id}/log`)).text)).toBe('after workflow_run\n');
    expect((await t.api('GET', `/api/v1/triggers/${c.id}`)).body).toMatchObject({ lastRunId: run!.id, lastError: null });

    // The task again for the same run (as a retry would): the run it started is the answer.
    await startChainedRuns(t.instance.resources, passed);
    expect(await chainedRuns(deploy)).toHaveLength(1);
  });

  it('come from a definition’s on.workflow_run, by the upstream workflow’s name', async () => {
    const { projectId } = await t.workflow('true');
    const build = await workflow(projectId, 'Build', { script: 'true' });
    const definition = ['on:', '  workflow_run: {workflows: [build], statuses: [succeeded, failed]}', 'jobs:', '  a:', '    steps: [{run: "true"}]'].join('\n');
    const after = await workflow(projectId, 'after-build', { definition });
    const listed = (await t.api('GET', `/api/v1/workflows/${after}/triggers`)).body.items;
    expect(listed).toMatchObject([{ kind: 'workflow', source: 'file', upstreamName: 'build', upstreamWorkflowId: null, statuses: ['succeeded', 'failed'] }]);
    const upstream = await start(build);
    const [run] = await until('the chained run', async () => {
      const r = await chainedRuns(after);
      return r.length > 0 && r;
    });
    expect(run!.upstreamRunId).toBe(upstream);
    expect((await t.api('PATCH', `/api/v1/triggers/${listed[0].id}`, { statuses: ['failed'] })).body.code).toBe('conflict');
  });

  it('stop a loop of chains after ten runs, and say why', async () => {
    const { projectId } = await t.workflow('true');
    const ping = await workflow(projectId, 'ping', { script: 'true' });
    const pong = await workflow(projectId, 'pong', { script: 'true' });
    const toPong = await chain(pong, { workflowId: ping });
    const toPing = await chain(ping, { workflowId: pong });
    await start(ping);
    const last = await until('the loop stopped', async () => {
      for (const id of [toPing.id, toPong.id]) {
        const r = (await t.api('GET', `/api/v1/triggers/${id}`)).body;
        if (r.lastError) return r;
      }
      return undefined;
    });
    expect(last.lastError).toBe(`not started: it would be the ${MAX_CHAIN_DEPTH + 1}th run of a chain of chained runs, and a chain stops after ${MAX_CHAIN_DEPTH} (a loop?)`);
    const depths = [...(await chainedRuns(ping)), ...(await chainedRuns(pong))].map((r) => r.depth).sort((a, b) => a - b);
    expect(depths).toEqual(Array.from({ length: MAX_CHAIN_DEPTH }, (_, i) => i + 1));
  });

  it('refuse an upstream that is missing, this workflow itself, or of another project, and the fields of a schedule', async () => {
    const { workflowId } = await t.workflow('true');
    const { workflowId: elsewhere } = await t.workflow('true');
    const bad = async (body: Record<string, unknown>) => {
      const res = await t.api('POST', `/api/v1/workflows/${workflowId}/triggers`, { kind: 'workflow', ...body });
      expect(res.status, res.text).toBe(400);
      return res.body.details;
    };
    expect(await bad({})).toEqual([{ field: 'workflowId', message: 'is required' }]);
    expect(await bad({ workflowId })).toEqual([{ field: 'workflowId', message: 'is this workflow' }]);
    expect(await bad({ workflowId: elsewhere })).toEqual([{ field: 'workflowId', message: 'no such workflow in this project' }]);
    expect(await bad({ workflowId: elsewhere, cron: '@daily' })).toEqual([{ field: 'cron', message: 'is not a field of a workflow trigger' }]);
    expect((await t.api('POST', `/api/v1/workflows/${workflowId}/triggers`, { kind: 'schedule', cron: '@daily', statuses: ['failed'] })).body.details).toEqual([
      { field: 'statuses', message: 'is not a field of a schedule trigger' },
    ]);
    expect((await t.api('GET', `/api/v1/workflows/${workflowId}/triggers`)).body.items).toEqual([]);
  });
});
