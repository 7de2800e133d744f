import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runOutput } from './helpers/log-output.js';
import { releaseClaims } from '../src/server/runs/claim-job.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

let t: TestInstance;
let projectId: string;
beforeAll(async () => {
  t = await startTestInstance({ FURROW_LOCAL_RUNNER_CAPACITY: '2', FURROW_MAX_JOBS_PER_RUN: '8' });
  projectId = (await t.workflow('true')).projectId;
});
afterAll(() => t?.stop());

let names = 0;
/** A workflow written as YAML (no repository), started by hand. */
async function definition(lines: string[], on = ['on: manual']): Promise<string> {
  const wf = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: `wf-${++names}`, definition: [...on, ...lines].join('\n') });
  expect(wf.status, wf.text).toBe(201);
  return wf.body.id;
}

async function start(workflowId: string, body: Record<string, unknown> = {}) {
  const res = await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, body);
  expect(res.status, res.text).toBe(202);
  return res.body.id as string;
}

async function jobsOf(runId: string): Promise<Record<string, any>> {
  const items = (await t.api('GET', `/api/v1/runs/${runId}/jobs?limit=500`)).body.items;
  return Object.fromEntries(items.filter((j: any) => !j.retried).map((j: any) => [j.key, j]));
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function runCount(): Promise<number> {
  const { rows } = await t.instance.resources.database.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM runs');
  return rows[0]!.n;
}

describe('run decisions', () => {
  it('ends every run of a failing fail-fast matrix with an always() job after it, started five times at once on a runner of capacity 2', async () => {
    const wf = await definition([
      'jobs:',
      '  m:',
      '    strategy: {matrix: {i: [1, 2, 3, 4]}}',
      '    steps:',
      '      - run: sleep 0.$((RANDOM % 3)); test "$MATRIX_I" != 2',
      '  after:',
      '    needs: m',
      '    if: always()',
      '    steps: [{run: echo after}]',
    ]);
    const runs = await Promise.all(Array.from({ length: 5 }, () => start(wf)));
    for (const runId of runs) {
      const run = await t.waitForRun(runId, 60_000);
      expect(run.status).toBe('failed');
      const jobs = await jobsOf(runId);
      expect(jobs['m (i=2)'].status).toBe('failed');
      expect(jobs.after.status).toBe('succeeded');
      for (const j of Object.values(jobs)) expect(['succeeded', 'failed', 'canceled']).toContain(j.status);
    }
    expect(t.logs.filter((l) => /deadlock|could not serialize|sync/.test(l))).toEqual([]);
  }, 90_000);

  it('runs always() teardown after a cancel, and stops it on a second cancel', async () => {
    const wf = await definition([
      'jobs:',
      '  work:',
      '    steps: [{run: sleep 60}]',
      '  teardown:',
      '    needs: work',
      '    if: always()',
      '    steps: [{run: "echo tearing down; sleep ${TEARDOWN_SECONDS:-0}"}]',
      '  report:',
      '    needs: work',
      '    steps: [{run: echo never}]',
    ]);
    // A plain cancel: work stops, teardown runs, report never does.
    const first = await start(wf);
    await until('work runs', async () => (await jobsOf(first)).work.status === 'running');
    expect((await t.api('POST', `/api/v1/runs/${first}/cancel`)).status).toBe(202);
    const canceled = await t.waitForRun(first, 20_000);
    expect(canceled).toMatchObject({ status: 'canceled', cancelForced: false });
    let jobs = await jobsOf(first);
    expect(jobs.work).toMatchObject({ status: 'canceled', error: expect.stringMatching(/^canceled by admin-/) });
    // Its log says where its step ended, and who canceled it.
    expect((await t.api('GET', `/api/v1/jobs/${jobs.work.id}/log`)).text).toMatch(/\] end \S+: canceled in [\d.]+s \(canceled by admin-[^)]*\)\n$/);
    expect(jobs.teardown.status).toBe('succeeded');
    expect((await t.api('GET', `/api/v1/jobs/${jobs.teardown.id}/log`)).text).toContain('tearing down');
    expect(jobs.report.status).toBe('canceled');
    expect((await t.api('POST', `/api/v1/runs/${first}/cancel`)).body.code).toBe('run_finished');

    // A second cancel stops the teardown too.
    const second = await t.api('POST', `/api/v1/workflows/${wf}/runs`, { parameters: { TEARDOWN_SECONDS: '60' } });
    await until('work runs', async () => (await jobsOf(second.body.id)).work.status === 'running');
    await t.api('POST', `/api/v1/runs/${second.body.id}/cancel`);
    await until('teardown runs', async () => (await jobsOf(second.body.id)).teardown.status === 'running');
    expect((await t.api('GET', `/api/v1/runs/${second.body.id}`)).body.status).toBe('running');
    expect((await t.api('POST', `/api/v1/runs/${second.body.id}/cancel`)).status).toBe(202);
    expect((await t.waitForRun(second.body.id, 20_000)).status).toBe('canceled');
    jobs = await jobsOf(second.body.id);
    expect(jobs.teardown.status).toBe('canceled');

    // A forced cancel stops everything at once: the teardown never starts.
    const third = await start(wf);
    await until('work runs', async () => (await jobsOf(third)).work.status === 'running');
    await t.api('POST', `/api/v1/runs/${third}/cancel`, { force: true });
    expect((await t.waitForRun(third, 20_000)).status).toBe('canceled');
    jobs = await jobsOf(third);
    expect(jobs.teardown).toMatchObject({ status: 'canceled', startedAt: null });
  }, 90_000);

  it('records a cancel at the moment it took hold of the run: a job started while the cancel waited for the run’s lock started before it', async () => {
    const wf = await definition(['jobs:', '  work:', '    steps: [{run: sleep 30}]']);
    const runId = await start(wf);
    await until('work runs', async () => (await jobsOf(runId)).work.status === 'running');
    // Another transaction holds the run's lock, as a job's accept or end does; the cancel waits.
    const holder = await t.instance.resources.database.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT id FROM runs WHERE id = $1 FOR UPDATE', [runId]);
      const canceling = t.api('POST', `/api/v1/runs/${runId}/cancel`, { force: true });
      await new Promise((r) => setTimeout(r, 400));
      const { rows } = await holder.query<{ now: Date }>('SELECT clock_timestamp() AS now');
      await holder.query('COMMIT');
      expect((await canceling).status).toBe(202);
      const run = (await t.api('GET', `/api/v1/runs/${runId}`)).body;
      expect(Date.parse(run.cancelRequestedAt)).toBeGreaterThanOrEqual(rows[0]!.now.getTime());
    } finally {
      holder.release();
    }
    expect((await t.waitForRun(runId, 20_000)).status).toBe('canceled');
  });

  it('does not start an always() job after a cancel while a job it needs, claimed by a runner as the cancel decided, has not ended', async () => {
    const wf = await definition([
      'jobs:',
      '  held:',
      '    runs-on: [nobody-has-this-label]',
      '    steps: [{run: echo held}]',
      '  teardown:',
      '    needs: held',
      '    if: always()',
      '    steps: [{run: echo teardown}]',
    ]);
    const runId = await start(wf);
    const held = (await jobsOf(runId)).held;
    const { pool } = t.instance.resources.database;
    const runner = (await pool.query<{ id: string }>("SELECT id FROM runners WHERE name LIKE 'local@%' LIMIT 1")).rows[0]!.id;
    // A runner claims `held` while the cancel decides: the claim commits after the cancel read the
    // jobs (it saw `held` unclaimed) and before it could end `held`.
    const claimer = await pool.connect();
    try {
      await claimer.query('BEGIN');
      await claimer.query("UPDATE jobs SET runner_id = $2, lease_expires_at = now() + interval '60 seconds' WHERE id = $1", [held.id, runner]);
      const canceling = t.api('POST', `/api/v1/runs/${runId}/cancel`, {});
      await until('the cancel waits for the claim', async () => {
        const { rows } = await pool.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'");
        return rows[0]!.n > 0;
      });
      await claimer.query('COMMIT');
      expect((await canceling).status).toBe(202);
    } finally {
      claimer.release();
    }
    let jobs = await jobsOf(runId);
    expect(jobs.held).toMatchObject({ status: 'queued', finishedAt: null });
    expect(jobs.teardown.status).toBe('waiting');
    // The claim goes back (its runner never accepted it): `held` ends canceled, then teardown runs.
    expect(await releaseClaims(t.instance.resources.database.db, [held.id])).toBe(1);
    expect((await t.waitForRun(runId, 20_000)).status).toBe('canceled');
    jobs = await jobsOf(runId);
    expect(jobs.held).toMatchObject({ status: 'canceled', startedAt: null });
    expect(jobs.teardown.status).toBe('succeeded');
    expect(Date.parse(jobs.teardown.startedAt)).toBeGreaterThanOrEqual(Date.parse(jobs.held.finishedAt));
  });

  it('decides again, on a failed-only re-run, the jobs after those that run again; kept jobs show their output', async () => {
    const wf = await definition([
      'jobs:',
      '  build:',
      '    steps: [{run: echo built}]',
      '  flaky:',
      '    needs: build',
      '    steps: [{run: "echo try $FURROW_RUN_NUMBER; test $FURROW_RUN_NUMBER -gt 1"}]',
      '  report:',
      '    needs: flaky',
      '    if: always()',
      '    steps: [{run: echo reporting}]',
    ]);
    const first = await start(wf);
    expect((await t.waitForRun(first)).status).toBe('failed');
    const before = await jobsOf(first);
    expect([before.build.status, before.flaky.status, before.report.status]).toEqual(['succeeded', 'failed', 'succeeded']);
    const again = await t.api('POST', `/api/v1/runs/${first}/rerun`, { failedOnly: true });
    expect(again.status).toBe(202);
    expect((await t.waitForRun(again.body.id)).status).toBe('succeeded');
    const after = await jobsOf(again.body.id);
    // build is kept, with its log; report ran again after the new flaky, not kept from the first run.
    expect(after.build).toMatchObject({ status: 'succeeded', retryOf: before.build.id, logSize: before.build.logSize });
    expect((await t.api('GET', `/api/v1/jobs/${after.build.id}/log`)).text).toBe((await t.api('GET', `/api/v1/jobs/${before.build.id}/log`)).text);
    expect(after.flaky).toMatchObject({ status: 'succeeded', retryOf: null });
    expect(after.report).toMatchObject({ status: 'succeeded', retryOf: null });
    expect(Date.parse(after.report.startedAt)).toBeGreaterThanOrEqual(Date.parse(after.flaky.finishedAt));
  });

  it('never lets parameters override an environment, a secret or the shell; a workflow with inputs takes only those', async () => {
    const env = await t.api('POST', `/api/v1/projects/${projectId}/environments`, { name: 'production', variables: { DEPLOY_URL: 'https://deploy.example.com' } });
    const secret = await t.api('POST', `/api/v1/projects/${projectId}/secrets`, { name: 'DEPLOY_TOKEN', value: 'tok-123456' });
    expect(secret.status).toBe(201);
    const script = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: 'deploy', script: 'echo "to $DEPLOY_URL"', defaultEnvironmentId: env.body.id });
    const member = await t.member({ projectId }, 'member');
    const runs = await runCount();
    for (const [name, value, message] of [
      ['DEPLOY_URL', 'https://attacker.example', 'is set by environment production'],
      ['DEPLOY_TOKEN', 'x', 'is set by a secret'],
      ['BASH_ENV', '/tmp/evil', 'BASH_ENV is reserved'],
      ['LD_PRELOAD', '/tmp/evil.so', 'names starting with LD_ are reserved'],
      ['FURROW_RUN_ID', 'x', 'names starting with FURROW_ are reserved'],
      ['PATH', '/tmp', 'PATH is reserved'],
    ] as const) {
      const res = await t.api('POST', `/api/v1/workflows/${script.body.id}/runs`, { parameters: { [name]: value } }, member.token);
      expect(res.status, name).toBe(400);
      expect(res.body).toMatchObject({ code: 'parameter_not_allowed', details: [{ field: `parameters.${name}`, message: expect.stringContaining(message) }] });
    }
    const withInputs = await definition(['jobs:', '  a:', '    steps: [{run: echo $version}]'], ['on:', '  manual:', '    inputs:', '      version: {required: true}']);
    const undeclared = await t.api('POST', `/api/v1/workflows/${withInputs}/runs`, { parameters: { version: '1', extra: 'x' } });
    expect(undeclared.status).toBe(400);
    expect(undeclared.body.details).toEqual([{ field: 'parameters.extra', message: 'is not an input of this workflow (its inputs: version)' }]);
    expect(await runCount()).toBe(runs);
    const ok = await t.api('POST', `/api/v1/workflows/${script.body.id}/runs`, { parameters: { GREETING: 'hi' } }, member.token);
    expect(ok.status).toBe(202);
    await t.waitForRun(ok.body.id);
    expect(runOutput((await t.api('GET', `/api/v1/runs/${ok.body.id}/log`)).text)).toBe('to https://deploy.example.com\n');
  });

  it('caps the jobs of a run and lists them a page at a time', async () => {
    const big = await definition(['jobs:', '  m:', '    strategy: {matrix: {a: [1, 2, 3], b: [1, 2, 3]}}', '    steps: [{run: "true"}]']);
    const runs = await runCount();
    const refused = await t.api('POST', `/api/v1/workflows/${big}/runs`, {});
    expect(refused.status).toBe(422);
    expect(refused.body).toMatchObject({ code: 'too_many_jobs', message: expect.stringContaining('makes 9 jobs') });
    expect(await runCount()).toBe(runs);

    const seven = await definition(['jobs:', '  m:', '    strategy: {matrix: {a: [1, 2, 3, 4, 5, 6, 7]}}', '    steps: [{run: "true"}]']);
    const runId = await start(seven);
    await t.waitForRun(runId);
    const seen: string[] = [];
    let cursor: string | null = null;
    const sizes: number[] = [];
    do {
      const page: any = await t.api('GET', `/api/v1/runs/${runId}/jobs?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      sizes.push(page.body.items.length);
      seen.push(...page.body.items.map((j: any) => j.key));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(sizes).toEqual([3, 3, 1]);
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7].map((a) => `m (a=${a})`));
    expect((await t.api('GET', `/api/v1/runs/${runId}/jobs?cursor=nonsense`)).body.code).toBe('validation_failed');
  });

  it.each(['organization', 'project'])('deletes a %s while a change of one of its runs holds the run and records an activity, without a deadlock', async (kind) => {
    const { organizationId, projectId: ownProject, workflowId } = await t.workflow('true', { labels: ['nobody-has-this-label'] });
    const runId = await start(workflowId);
    const id = kind === 'organization' ? organizationId : ownProject;
    const { name } = (await t.api('GET', `/api/v1/${kind}s/${id}`)).body;
    const { pool } = t.instance.resources.database;
    // What a run's use-case (a finish, a cancel) does: the run's lock, then an activity that
    // refers to the organization and the project.
    const holder = await pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT id FROM runs WHERE id = $1 FOR UPDATE', [runId]);
      const holderPid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      const deleting = t.api('DELETE', `/api/v1/${kind}s/${id}?confirm=${encodeURIComponent(name)}`);
      await until('the deletion waits for the run', async () => {
        const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_locks WHERE NOT granted AND $1 = ANY(pg_blocking_pids(pid))', [holderPid]);
        return rows[0]!.n > 0;
      });
      // Had the deletion locked the organization first, this would wait for it (and it for us).
      await holder.query("SET LOCAL lock_timeout = '500ms'");
      await holder.query("INSERT INTO activities (type, organization_id, project_id, subject_type, subject_id) VALUES ('run.running', $1, $2, 'run', $3)", [organizationId, ownProject, runId]);
      await holder.query('COMMIT');
      const deleted = await deleting;
      expect(deleted.status, deleted.text).toBe(204);
    } finally {
      holder.release();
    }
    expect((await t.api('GET', `/api/v1/${kind}s/${id}`)).status).toBe(404);
    expect((await pool.query('SELECT 1 FROM runs WHERE id = $1', [runId])).rowCount).toBe(0);
  });
});
