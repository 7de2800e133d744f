import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isTerminal } from '../src/domain/run-state.js';
import { runStatusOf } from '../src/domain/run-status.js';
import type { RunStatus } from '../src/db/schema.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

/**
 * A soak of the run lifecycle: 200 random workflows (random DAGs, matrices, conditions, outcomes)
 * through the real local runner, some canceled (plainly or forced) mid-run and some losing a
 * running job's runner (its lease expired under it). Every run must end; runs left alone must end
 * exactly as the rules say; none may leave a job queued or waiting, and no transaction may fail.
 */
const RUNS = 200;
const SEED = Number(process.env.FURROW_SOAK_SEED ?? Date.now() % 1_000_000);

type Cond = null | 'always()' | 'failure()' | 'success()' | 'cancelled()';
interface JobPlan {
  id: string;
  needs: string[];
  cond: Cond;
  /** Matrix values of `x` (one instance per value), or null. */
  matrix: readonly number[] | null;
  /** Instances (by `x`, or 0 without a matrix) whose step fails. */
  failing: number[];
  failFast: boolean;
  continueOnError: boolean;
  retryFailed: boolean;
}
type Action = 'none' | 'cancel' | 'force' | 'lose';
interface RunPlanSpec {
  jobs: JobPlan[];
  action: Action;
  delayMs: number;
}

const arbJob = (i: number): fc.Arbitrary<JobPlan> =>
  fc
    .record({
      needs: fc.subarray(Array.from({ length: i }, (_, k) => `j${k}`), { maxLength: Math.min(i, 2) }),
      cond: fc.constantFrom<Cond>(null, null, 'always()', 'failure()', 'success()', 'cancelled()'),
      matrix: fc.option(fc.constantFrom<number[]>([1, 2], [1, 2, 3]), { freq: 3 }),
      failPick: fc.nat({ max: 5 }),
      failFast: fc.boolean(),
      continueOnError: fc.nat({ max: 9 }).map((n) => n < 2),
      retryFailed: fc.nat({ max: 9 }).map((n) => n < 1),
    })
    .map(({ needs, cond, matrix, failPick, failFast, continueOnError, retryFailed }) => ({
      id: `j${i}`,
      needs,
      cond,
      matrix,
      // About one job in three fails (one of its instances).
      failing: failPick < 2 ? [matrix ? matrix[failPick % matrix.length]! : 0] : [],
      failFast,
      continueOnError,
      retryFailed,
    }));

const arbRun: fc.Arbitrary<RunPlanSpec> = fc.integer({ min: 1, max: 5 }).chain((n) =>
  fc.record({
    jobs: fc.tuple(...Array.from({ length: n }, (_, i) => arbJob(i))),
    action: fc.constantFrom<Action>('none', 'none', 'none', 'none', 'none', 'none', 'cancel', 'cancel', 'force', 'lose'),
    delayMs: fc.nat({ max: 400 }),
  }),
);

function yaml(plan: RunPlanSpec): string {
  const lines = ['on: manual', 'jobs:'];
  // A run that will lose a runner or be canceled runs long enough for that to happen mid-job.
  const pause = plan.action === 'none' ? '' : 'sleep 0.5; ';
  for (const j of plan.jobs) {
    lines.push(`  ${j.id}:`);
    if (j.needs.length > 0) lines.push(`    needs: [${j.needs.join(', ')}]`);
    if (j.cond) lines.push(`    if: ${j.cond}`);
    if (j.matrix) lines.push(`    strategy: {matrix: {x: [${j.matrix.join(', ')}]}, fail-fast: ${j.failFast}}`);
    if (j.continueOnError) lines.push('    continue-on-error: true');
    if (j.retryFailed) lines.push('    retry: {count: 1, on: [failed]}');
    const fails = j.failing.map((x) => (j.matrix ? `[ "$MATRIX_X" = ${x} ]` : 'true'));
    lines.push('    steps:', `      - run: ${JSON.stringify(`${pause}${fails.length > 0 ? `if ${fails.join(' || ')}; then exit 1; fi` : 'true'}`)}`);
  }
  return lines.join('\n');
}

/** What the rules say about a run nobody touched: each instance's possible statuses and the run's. */
function expected(plan: RunPlanSpec): { instances: Map<string, RunStatus[]>; run: RunStatus } {
  const keyOutcome = new Map<string, 'success' | 'failure' | 'skipped'>();
  const instances = new Map<string, RunStatus[]>();
  const finals: RunStatus[] = [];
  for (const j of plan.jobs) {
    const needs = j.needs.map((n) => keyOutcome.get(n)!);
    const outcome = needs.includes('failure') ? 'failure' : needs.includes('skipped') ? 'skipped' : 'success';
    const holds = j.cond === 'always()' || (j.cond === 'failure()' ? outcome === 'failure' : j.cond === 'cancelled()' ? false : outcome === 'success');
    const xs = j.matrix ?? [0];
    const key = (x: number) => (j.matrix ? `${j.id} (x=${x})` : j.id);
    const hardFailure = !j.continueOnError && j.failing.length > 0;
    for (const x of xs) {
      const own: RunStatus = j.failing.includes(x) ? 'failed' : 'succeeded';
      const allowed: RunStatus[] = !holds ? ['skipped'] : j.matrix && j.failFast && hardFailure && own !== 'failed' ? [own, 'canceled'] : [own];
      instances.set(key(x), allowed);
      finals.push(!holds ? 'skipped' : own === 'failed' && j.continueOnError ? 'succeeded' : own);
    }
    keyOutcome.set(j.id, !holds ? 'skipped' : hardFailure ? 'failure' : 'success');
  }
  return { instances, run: runStatusOf(finals) };
}

let t: TestInstance;
beforeAll(async () => {
  t = await startTestInstance({ FURROW_LOCAL_RUNNER_CAPACITY: '8', FURROW_JOB_LEASE_SECONDS: '3' });
});
afterAll(() => t?.stop());

describe('run lifecycle soak', () => {
  it(`ends ${RUNS} random runs as the rules say, through cancels and lost runners (seed ${SEED})`, async () => {
    const { projectId } = await t.workflow('true');
    const plans = fc.sample(arbRun, { numRuns: RUNS, seed: SEED });
    const db = t.instance.resources.database.pool;
    const started: { plan: RunPlanSpec; runId: string }[] = [];
    const act = async (plan: RunPlanSpec, runId: string) => {
      if (plan.action === 'none') return;
      await new Promise((r) => setTimeout(r, plan.delayMs));
      if (plan.action === 'lose') {
        // The runner of one running job vanishes, as far as the server can tell: its lease runs out.
        for (let i = 0; i < 40; i++) {
          const { rowCount } = await db.query(
            "UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = (SELECT id FROM jobs WHERE run_id = $1 AND status = 'running' LIMIT 1)",
            [runId],
          );
          if (rowCount) return;
          await new Promise((r) => setTimeout(r, 50));
        }
        return;
      }
      await t.api('POST', `/api/v1/runs/${runId}/cancel`, plan.action === 'force' ? { force: true } : {});
    };
    // Ten runs at a time, each acted on while it runs (a lost job's retry waits out its hold-back
    // in its own slot while the others go on).
    let next = 0;
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        for (let i = next++; i < plans.length; i = next++) {
          const plan = plans[i]!;
          const wf = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: `soak-${i}`, definition: yaml(plan) });
          expect(wf.status, `${wf.text}\n${yaml(plan)}`).toBe(201);
          const run = await t.api('POST', `/api/v1/workflows/${wf.body.id}/runs`, {});
          expect(run.status, run.text).toBe(202);
          started.push({ plan, runId: run.body.id });
          await act(plan, run.body.id);
          await t.waitForRun(run.body.id, 60_000);
        }
      }),
    );

    for (const { plan, runId } of started) {
      const context = `run ${runId} of\n${yaml(plan)}\naction ${plan.action}`;
      const run = (await t.api('GET', `/api/v1/runs/${runId}`)).body;
      const all = (await t.api('GET', `/api/v1/runs/${runId}/jobs?limit=500`)).body.items as any[];
      // Every attempt ended: nothing queued or waiting with nothing to wait for.
      expect(all.filter((j) => !isTerminal(j.status)), context).toEqual([]);
      const latest = all.filter((j) => !j.retried);
      expect(run.status, context).toBe(runStatusOf(latest.map((j) => (j.status === 'failed' && j.continueOnError ? 'succeeded' : j.status))));
      // A job started only after every job it needs had ended.
      const byKey = new Map(plan.jobs.map((j) => [j.id, latest.filter((l) => l.jobKey === j.id)]));
      for (const j of latest) {
        if (!j.startedAt) continue;
        for (const n of j.needs) for (const need of byKey.get(n) ?? []) expect(Date.parse(j.startedAt), context).toBeGreaterThanOrEqual(Date.parse(need.finishedAt));
        // A held-back retry started only once its time had come.
        if (j.notBefore) expect(Date.parse(j.startedAt), context).toBeGreaterThanOrEqual(Date.parse(j.notBefore));
      }
      if (plan.action === 'none') {
        const want = expected(plan);
        expect(run.status, context).toBe(want.run);
        for (const j of latest) expect(want.instances.get(j.key), `${context}\njob ${j.key} ${j.status}`).toContain(j.status);
      }
      if (plan.action === 'force') {
        // A forced cancel starts nothing: no job began after it was asked for.
        for (const j of latest) if (j.startedAt) expect(Date.parse(j.startedAt), context).toBeLessThanOrEqual(Date.parse(run.cancelRequestedAt) + 50);
      }
    }
    expect(t.logs.filter((l) => /deadlock|could not serialize|"level":50/.test(l))).toEqual([]);
  }, 600_000);
});
