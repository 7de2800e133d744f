import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runOutput } from './helpers/log-output.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';
import { until } from './helpers/until.js';

let t: TestInstance;
beforeAll(async () => {
  t = await startTestInstance({ FURROW_LOCAL_RUNNER_CAPACITY: '4' });
});
afterAll(() => t?.stop());

const pool = () => t.instance.resources.database.pool;


/** The runs of a workflow, oldest first, with what their schedule started them for. */
async function scheduledRuns(workflowId: string): Promise<{ id: string; scheduledFor: string; late: boolean; createdAt: Date; triggerId: string }[]> {
  const { rows } = await pool().query(
    `SELECT id, reason->>'scheduledFor' AS "scheduledFor", coalesce((reason->>'late')::boolean, false) AS late, created_at AS "createdAt", reason->>'triggerId' AS "triggerId"
     FROM runs WHERE workflow_id = $1 AND reason->>'type' = 'schedule' ORDER BY reason->>'scheduledFor'`,
    [workflowId],
  );
  return rows;
}

const schedule = async (workflowId: string, body: Record<string, unknown>) => {
  const res = await t.api('POST', `/api/v1/workflows/${workflowId}/triggers`, { kind: 'schedule', ...body });
  expect(res.status, res.text).toBe(201);
  return res.body;
};

describe('schedules', () => {
  it('fire every second on time, once per second, with the schedule as the run’s origin, until disabled', async () => {
    const { workflowId } = await t.workflow('echo "event=$FURROW_EVENT"');
    const s = await schedule(workflowId, { cron: '* * * * * *', description: 'every second' });
    expect(s).toMatchObject({ kind: 'schedule', source: 'api', enabled: true, cron: '* * * * * *', timezone: 'UTC', missed: 'run-once', description: 'every second' });
    expect(s.upcoming).toHaveLength(5);
    const gaps = s.upcoming.slice(1).map((x: string, i: number) => Date.parse(x) - Date.parse(s.upcoming[i]));
    expect(gaps).toEqual([1000, 1000, 1000, 1000]);

    const runs = await until('three scheduled runs', async () => {
      const r = await scheduledRuns(workflowId);
      return r.length >= 3 && r;
    });
    const seconds = runs.map((r) => Date.parse(r.scheduledFor));
    expect(seconds.slice(1).map((x, i) => x - seconds[i]!)).toEqual(seconds.slice(1).map(() => 1000));
    for (const r of runs) {
      expect(r.triggerId).toBe(s.id);
      expect(r.late).toBe(false);
      // Queued within a second of its time (the test machine is slow and busy; the bench measures lateness).
      expect(r.createdAt.getTime() - Date.parse(r.scheduledFor)).toBeLessThan(1000);
      expect(r.createdAt.getTime()).toBeGreaterThanOrEqual(Date.parse(r.scheduledFor));
    }
    const run = await t.waitForRun(runs[0]!.id);
    expect(run.reason).toEqual({ type: 'schedule', triggerId: s.id, scheduledFor: runs[0]!.scheduledFor });
    expect(runOutput((await t.api('GET', `/api/v1/runs/${run.id}/log`)).text)).toBe('event=schedule\n');

    const off = await t.api('PATCH', `/api/v1/triggers/${s.id}`, { enabled: false });
    expect(off.status, off.text).toBe(200);
    expect(off.body).toMatchObject({ enabled: false, nextFireAt: null, upcoming: [] });
    const stoppedAt = Date.now();
    const after = await scheduledRuns(workflowId);
    // A fire taken just before the change may still start; none is for a time after it.
    for (const r of after) expect(Date.parse(r.scheduledFor)).toBeLessThan(stoppedAt + 1000);
    const back = await t.api('GET', `/api/v1/triggers/${s.id}`);
    expect(back.body.lastRunId).toBe(after.at(-1)!.id);
    expect(Date.parse(back.body.lastFiredAt)).toBe(Date.parse(after.at(-1)!.scheduledFor));
  });

  it('fire each time once with two server instances on one database', async () => {
    const second = await startTestInstance({ FURROW_LOCAL_RUNNER: 'false' }, { databaseUrl: t.databaseUrl, dataDir: t.dataDir });
    try {
      const { workflowId } = await t.workflow('true', { labels: ['nobody-runs-this'] });
      const s = await schedule(workflowId, { cron: '* * * * * *' });
      const runs = await until('five scheduled runs', async () => {
        const r = await scheduledRuns(workflowId);
        return r.length >= 5 && r;
      });
      await t.api('PATCH', `/api/v1/triggers/${s.id}`, { enabled: false });
      const all = await scheduledRuns(workflowId);
      const times = all.map((r) => Date.parse(r.scheduledFor));
      expect(new Set(times).size).toBe(times.length);
      // Not one second skipped between the first and the last.
      expect(times.at(-1)! - times[0]!).toBe((times.length - 1) * 1000);
      expect(runs.every((r) => !r.late)).toBe(true);
      const numbers = (await pool().query('SELECT number FROM runs WHERE workflow_id = $1 ORDER BY number', [workflowId])).rows.map((r) => r.number);
      expect(numbers).toEqual(numbers.map((_, i) => i + 1));
    } finally {
      await second.stop();
    }
  });

  it('fire a one-off time once, then disable themselves', async () => {
    const { workflowId } = await t.workflow('true');
    const s = await schedule(workflowId, { at: 'now + 1 second' });
    expect(s.cron).toBeNull();
    expect(s.upcoming).toEqual([s.at]);
    const done = await until('the one-off fired', async () => {
      const r = await t.api('GET', `/api/v1/triggers/${s.id}`);
      return r.body.lastRunId && !r.body.enabled && r.body;
    });
    expect(done).toMatchObject({ enabled: false, disabledReason: 'it fired at its one time', nextFireAt: null, lastError: null, upcoming: [] });
    expect((await scheduledRuns(workflowId)).map((r) => r.scheduledFor)).toEqual([new Date(s.at).toISOString()]);
    const again = await t.api('PATCH', `/api/v1/triggers/${s.id}`, { enabled: true });
    expect(again.status).toBe(400);
    expect(again.body.details).toEqual([{ field: 'at', message: 'has passed already' }]);
    // A new time starts it again.
    const rearmed = await t.api('PATCH', `/api/v1/triggers/${s.id}`, { at: 'now + 1 second' });
    expect(rearmed.body).toMatchObject({ enabled: true, disabledReason: null });
    await until('the second one-off fired', async () => (await scheduledRuns(workflowId)).length === 2);
  });

  it('keep their next fire time through a change that is not of their times', async () => {
    const { workflowId } = await t.workflow('true', { labels: ['nobody-runs-this'] });
    const s = await schedule(workflowId, { cron: '0 0 1 1 *' });
    const soon = new Date(Date.now() + 3_600_000).toISOString();
    await pool().query('UPDATE triggers SET next_fire_at = $2 WHERE id = $1', [s.id, soon]);
    expect((await t.api('PATCH', `/api/v1/triggers/${s.id}`, { description: 'yearly', missed: 'skip' })).body).toMatchObject({ nextFireAt: soon, description: 'yearly', missed: 'skip' });
    // New of its times: from now, and midnight in Berlin is 23:00 UTC in winter.
    const zoned = (await t.api('PATCH', `/api/v1/triggers/${s.id}`, { timezone: 'europe/berlin' })).body;
    expect(zoned.timezone).toBe('Europe/Berlin');
    expect(zoned.nextFireAt).toMatch(/^\d{4}-12-31T23:00:00\.000Z$/);
    expect((await t.api('DELETE', `/api/v1/triggers/${s.id}`)).status).toBe(204);
    expect((await t.api('PATCH', `/api/v1/triggers/${s.id}`, { description: 'gone' })).status).toBe(404);
  });

  it('after downtime run a missed schedule once for its latest time, or skip it, as each says', async () => {
    const { workflowId } = await t.workflow('true');
    const once = await schedule(workflowId, { cron: '*/5 * * * *', missed: 'run-once' });
    const skip = await schedule(workflowId, { cron: '*/5 * * * *', missed: 'skip' });
    // As if no server had run for three hours.
    await pool().query("UPDATE triggers SET next_fire_at = next_fire_at - interval '3 hours' WHERE id = ANY($1)", [[once.id, skip.id]]);
    await pool().query("SELECT pg_notify('furrow_triggers', '')");
    const runs = await until('the missed run', async () => {
      const r = await scheduledRuns(workflowId);
      return r.length > 0 && r;
    });
    const skipped = await until('the skipped one moved on', async () => {
      const r = await t.api('GET', `/api/v1/triggers/${skip.id}`);
      return r.body.lastError && r.body;
    });
    expect(skipped.lastError).toMatch(/^missed the fire time .* and skipped it/);
    expect(Date.parse(skipped.nextFireAt)).toBeGreaterThan(Date.now());
    const five = 5 * 60_000;
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ triggerId: once.id, late: true });
    // The latest five-minute mark that had come.
    expect(Date.parse(runs[0]!.scheduledFor)).toBe(Math.floor(runs[0]!.createdAt.getTime() / five) * five);
    const moved = (await t.api('GET', `/api/v1/triggers/${once.id}`)).body;
    expect(Date.parse(moved.nextFireAt)).toBe(Date.parse(runs[0]!.scheduledFor) + five);
    const activities = (await t.api('GET', `/api/v1/projects/${(await t.api('GET', `/api/v1/workflows/${workflowId}`)).body.projectId}/activities?type=trigger.skipped`)).body.items;
    expect(activities.map((a: any) => a.subjectId)).toEqual([skip.id]);
  });

  it('taken over after an instance died between starting a run and moving on, record that run instead of deciding again', async () => {
    const { workflowId } = await t.workflow('true', { labels: ['nobody-runs-this'] });
    const s = await schedule(workflowId, { cron: '0 0 1 1 *' });
    const year = new Date().getUTCFullYear();
    const [due, next] = [`${year}-01-01T00:00:00.000Z`, `${year + 1}-01-01T00:00:00.000Z`];
    await pool().query('UPDATE triggers SET next_fire_at = $2 WHERE id = $1', [s.id, due]);
    await pool().query("SELECT pg_notify('furrow_triggers', '')");
    const [run] = await until('the late run', async () => {
      const r = await scheduledRuns(workflowId);
      return r.length > 0 && r;
    });
    expect(run).toMatchObject({ scheduledFor: due, late: true });
    // Now skip missed times, and be back at that time as if the schedule had not been moved on.
    expect((await t.api('PATCH', `/api/v1/triggers/${s.id}`, { missed: 'skip' })).body.nextFireAt).toBe(next);
    // The dead instance's hold has just run out.
    await pool().query("UPDATE triggers SET next_fire_at = $2, last_run_id = NULL, last_fired_at = NULL, claimed_until = now() - interval '1 second' WHERE id = $1", [s.id, due]);
    await pool().query("SELECT pg_notify('furrow_triggers', '')");
    const after = await until('the fire taken over', async () => {
      const r = (await t.api('GET', `/api/v1/triggers/${s.id}`)).body;
      return r.lastRunId && r;
    });
    expect(after).toMatchObject({ lastRunId: run!.id, lastFiredAt: due, lastError: null, nextFireAt: next });
    expect(await scheduledRuns(workflowId)).toHaveLength(1);
  });

  it('record a run that could not start on the schedule, and go on to the next time', async () => {
    const { projectId } = await t.workflow('true');
    // A parameter that is none of the workflow's inputs: every start is refused.
    const definition = ['on:', '  manual:', '    inputs: {target: {default: staging}}', 'jobs:', '  a:', '    steps: [{run: "true"}]'].join('\n');
    const workflowId = (await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: 'with-inputs', definition })).body.id;
    const s = await schedule(workflowId, { cron: '* * * * * *', parameters: { TARGET: 'production' } });
    const failed = await until('the failure recorded', async () => {
      const r = await t.api('GET', `/api/v1/triggers/${s.id}`);
      return r.body.lastError && r.body;
    });
    await t.api('PATCH', `/api/v1/triggers/${s.id}`, { enabled: false });
    expect(failed.lastError).toMatch(/^the run for .* did not start: The run's parameters: parameters\.TARGET is not an input of this workflow/);
    expect(failed.enabled).toBe(true);
    expect(Date.parse(failed.nextFireAt)).toBeGreaterThan(Date.parse(s.nextFireAt));
    expect(await scheduledRuns(workflowId)).toEqual([]);
  });

  it('come from a definition’s on.schedule and follow it, and only enable or disable through the API', async () => {
    const { projectId } = await t.workflow('true');
    const definition = (cron: string, zone = 'Europe/Berlin') => ['on:', '  manual:', '  schedule:', `    - cron: "${cron}"`, `      timezone: ${zone}`, 'jobs:', '  a:', '    steps: [{run: "true"}]'].join('\n');
    // Spelled otherwise first: stored as the platform spells it, so the same schedule after.
    const wf = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: 'nightly', definition: definition('0 3 * * *', 'europe/berlin') });
    expect(wf.status, wf.text).toBe(201);
    const listed = (await t.api('GET', `/api/v1/workflows/${wf.body.id}/triggers`)).body.items;
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ source: 'file', cron: '0 3 * * *', timezone: 'Europe/Berlin', enabled: true });
    // 03:00 in Berlin is 01:00 or 02:00 UTC.
    expect(listed[0].upcoming.every((x: string) => [1, 2].includes(new Date(x).getUTCHours()))).toBe(true);
    const id = listed[0].id;
    expect((await t.api('PATCH', `/api/v1/triggers/${id}`, { cron: '0 4 * * *' })).body.code).toBe('conflict');
    expect((await t.api('DELETE', `/api/v1/triggers/${id}`)).body.code).toBe('conflict');
    expect((await t.api('PATCH', `/api/v1/triggers/${id}`, { enabled: false })).body.enabled).toBe(false);

    // An unrelated change keeps it (and its state); a changed cron replaces it; none removes it.
    expect((await t.api('PATCH', `/api/v1/workflows/${wf.body.id}`, { definition: definition('0 3 * * *') })).status).toBe(200);
    expect((await t.api('GET', `/api/v1/workflows/${wf.body.id}/triggers`)).body.items.map((x: any) => [x.id, x.enabled])).toEqual([[id, false]]);
    await t.api('PATCH', `/api/v1/workflows/${wf.body.id}`, { definition: definition('30 2 * * 1-5') });
    const changed = (await t.api('GET', `/api/v1/workflows/${wf.body.id}/triggers`)).body.items;
    expect(changed.map((x: any) => [x.cron, x.enabled])).toEqual([['30 2 * * 1-5', true]]);
    await t.api('PATCH', `/api/v1/workflows/${wf.body.id}`, { script: 'true' });
    expect((await t.api('GET', `/api/v1/workflows/${wf.body.id}/triggers`)).body.items).toEqual([]);
  });

  it('refuse what they cannot read, each problem named, and preview fire times without storing anything', async () => {
    const { workflowId } = await t.workflow('true');
    const bad = async (body: Record<string, unknown>) => {
      const res = await t.api('POST', `/api/v1/workflows/${workflowId}/triggers`, { kind: 'schedule', ...body });
      expect(res.status, res.text).toBe(400);
      expect(res.body.code).toBe('validation_failed');
      return res.body.details;
    };
    expect(await bad({ cron: '61 * * * *' })).toEqual([{ field: 'cron', message: '"61 * * * *" is not a cron expression: invalid value for minute: 61' }]);
    expect(await bad({})).toEqual([{ field: 'cron', message: 'or at is required: cron for a cron expression, at for a one-off time' }]);
    expect(await bad({ cron: '@daily', at: 'tomorrow 02:00' })).toEqual([{ field: 'at', message: 'cannot be given with cron: give one of them' }]);
    expect(await bad({ at: 'now', timezone: 'nowhere' })).toEqual([{ field: 'timezone', message: '"nowhere" is not a time zone (like UTC or Europe/Berlin)' }]);
    expect(await bad({ cron: '@daily', timezone: 'Mars/Base' })).toEqual([{ field: 'timezone', message: '"Mars/Base" is not a time zone (like UTC or Europe/Berlin)' }]);
    expect((await bad({ at: 'next blue moon' }))[0].message).toMatch(/is not a time Furrow reads/);
    expect((await bad({ at: '2020-01-01T00:00Z' }))[0].message).toMatch(/has passed already/);
    expect((await bad({ cron: '0 0 31 2 *' }))[0].message).toBe('"0 0 31 2 *" never fires');
    expect(await bad({ cron: '@daily', parameters: { PATH: '/tmp' } })).toEqual([{ field: 'parameters.PATH', message: "PATH is reserved: it changes how the job's shell starts" }]);
    expect(await bad({ cron: '@daily', ref: 'main' })).toEqual([{ field: 'ref', message: 'the workflow has no repository' }]);
    expect((await t.api('GET', `/api/v1/workflows/${workflowId}/triggers`)).body.items).toEqual([]);

    const preview = await t.api('POST', '/api/v1/schedules/preview', { cron: '0 9 * * MON-FRI', timezone: 'America/New_York', count: 3 });
    expect(preview.status, preview.text).toBe(200);
    expect(preview.body.items).toHaveLength(3);
    for (const x of preview.body.items) expect([13, 14]).toContain(new Date(x).getUTCHours());
    expect((await t.api('POST', '/api/v1/schedules/preview', { cron: 'nope' })).status).toBe(400);
  });
});
