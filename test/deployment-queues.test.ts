import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

let t: TestInstance;
beforeAll(async () => {
  // Room for many jobs at once: only the groups keep them apart.
  t = await startTestInstance({ FURROW_LOCAL_RUNNER_CAPACITY: '4' });
});
afterAll(() => t?.stop());

async function workflow(projectId: string, name: string, lines: string[]): Promise<string> {
  const wf = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name, definition: ['on: manual', ...lines].join('\n') });
  expect(wf.status, wf.text).toBe(201);
  return wf.body.id;
}

async function start(workflowId: string): Promise<{ id: string; number: number }> {
  const res = await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, {});
  expect(res.status, res.text).toBe(202);
  return res.body;
}

const jobsOf = async (runId: string) => (await t.api('GET', `/api/v1/runs/${runId}/jobs`)).body.items as any[];

describe('deployment queues', () => {
  it('run the jobs of a queue group one at a time, in the order their runs came, across workflows', async () => {
    const { projectId } = await t.workflow('true');
    const deploy = (name: string) => workflow(projectId, name, ['jobs:', '  deploy:', '    concurrency: production', '    steps: [{run: "sleep 0.1"}]']);
    const [a, b] = [await deploy('deploy-a'), await deploy('deploy-b')];
    const runs = [];
    for (let i = 0; i < 20; i++) runs.push(await start(i % 2 === 0 ? a : b));
    const ended = await Promise.all(runs.map((r) => t.waitForRun(r.id, 60_000)));
    expect(ended.map((r) => r.status)).toEqual(runs.map(() => 'succeeded'));
    const jobs = (await Promise.all(runs.map((r) => jobsOf(r.id)))).map((j) => j[0]);
    // In the order the runs were started: each began after the one before it had ended.
    for (let i = 1; i < jobs.length; i++) expect(Date.parse(jobs[i].startedAt), `job ${i}`).toBeGreaterThanOrEqual(Date.parse(jobs[i - 1].finishedAt));
  });

  it('with supersede, run the running deployment and the newest, and skip the ones between', async () => {
    const { projectId } = await t.workflow('true');
    const env = await t.api('POST', `/api/v1/projects/${projectId}/environments`, { name: 'production', concurrency: 'supersede' });
    expect(env.status, env.text).toBe(201);
    expect(env.body.concurrency).toBe('supersede');
    // Two workflows deploy to it; neither names a group: the environment's is theirs.
    const deploy = (name: string, sleep: string) =>
      workflow(projectId, name, ['jobs:', '  ship:', '    environment: production', `    steps: [{run: "sleep ${sleep}"}]`]);
    const [slow, fast] = [await deploy('slow', '3'), await deploy('fast', '0.1')];
    const first = await start(slow);
    for (let i = 0; i < 200 && (await jobsOf(first.id)).find((j) => j.key === 'ship')?.status !== 'running'; i++) await new Promise((r) => setTimeout(r, 50));
    const later = [];
    for (let i = 0; i < 6; i++) later.push(await start(i % 2 === 0 ? fast : slow));
    const ended = await Promise.all([first, ...later].map((r) => t.waitForRun(r.id, 60_000)));
    expect(ended.map((r) => r.status)).toEqual(['succeeded', 'skipped', 'skipped', 'skipped', 'skipped', 'skipped', 'succeeded']);
    for (const [i, run] of later.slice(0, -1).entries()) {
      const ship = (await jobsOf(run.id)).find((j) => j.key === 'ship');
      expect(ship.status).toBe('skipped');
      // Superseded by the very next run, once that one was queued.
      expect(ship.error).toBe(`superseded by run #${later[i + 1]!.number} of its concurrency group`);
      expect(ship.startedAt).toBeNull();
    }
    const jobs = async (r: { id: string }) => Object.fromEntries((await jobsOf(r.id)).map((j) => [j.key, j]));
    const [firstJobs, newestJobs] = [await jobs(first), await jobs(later.at(-1)!)];
    expect(Date.parse(newestJobs.ship.startedAt)).toBeGreaterThanOrEqual(Date.parse(firstJobs.ship.finishedAt));

    // What the environment says was deployed: the newest success, and every run, a page at a time.
    const newest = later.at(-1)!;
    const environment = (await t.api('GET', `/api/v1/environments/${env.body.id}`)).body;
    expect(environment.lastDeployment).toMatchObject({ runId: newest.id, runNumber: newest.number, status: 'succeeded', workflow: 'slow', trigger: { type: 'manual' } });
    expect(Date.parse(environment.lastDeployment.finishedAt)).toBe(Date.parse(newestJobs.ship.finishedAt));
    const pages: any[][] = [];
    let cursor: string | null = null;
    do {
      const page: any = await t.api('GET', `/api/v1/environments/${env.body.id}/deployments?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status, page.text).toBe(200);
      pages.push(page.body.items);
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
    expect(pages.flat().map((d) => [d.runId, d.status])).toEqual([first, ...later].reverse().map((r, i) => [r.id, i === 0 || i === 6 ? 'succeeded' : 'skipped']));
    expect((await t.api('GET', `/api/v1/environments/${env.body.id}/deployments?cursor=nonsense`)).body.code).toBe('validation_failed');
  });
});
