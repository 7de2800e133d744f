import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decideJob, decideJobs, FAIL_FAST_REASON, type CancelLevel, type ConditionHolds, type JobView, type NeedsOutcome } from './job-decisions.js';
import { isTerminal, type RunStatus } from './run-state.js';
import { runStatusOf } from './run-status.js';

const job = (id: string, over: Partial<JobView> = {}): JobView => ({
  id,
  jobKey: id,
  status: 'waiting',
  needs: [],
  continueOnError: false,
  failFast: false,
  approvalPending: false,
  claimed: false,
  cancelRequested: false,
  cancelReason: null,
  ...over,
});
const run = (cancel: CancelLevel = 'none') => ({ cancel, cancelReason: 'canceled by ana@example.com' });
/** `if` as a set of outcomes it holds on: default success(), always(), failure(), cancelled(). */
type Cond = 'success' | 'always' | 'failure' | 'cancelled';
const holdsBy = (conds: Record<string, Cond>): ConditionHolds => (j, outcome) => {
  const c = conds[j.id] ?? 'success';
  return c === 'always' || c === outcome;
};

describe('job decisions', () => {
  // Every row of decideJob's table, as [job, others, cancel level, condition] -> decision.
  const rows: [string, JobView, JobView[], CancelLevel, Cond, ReturnType<typeof decideJob>][] = [
    ['a job whose needs succeeded is queued', job('b', { needs: ['a'] }), [job('a', { status: 'succeeded' })], 'none', 'success', { jobId: 'b', action: 'queue' }],
    ['a job whose need failed is skipped', job('b', { needs: ['a'] }), [job('a', { status: 'failed' })], 'none', 'success', { jobId: 'b', action: 'skip' }],
    ['a failure() job runs after a failure', job('b', { needs: ['a'] }), [job('a', { status: 'timed_out' })], 'none', 'failure', { jobId: 'b', action: 'queue' }],
    ['a failure of a continue-on-error need is a success', job('b', { needs: ['a'] }), [job('a', { status: 'failed', continueOnError: true })], 'none', 'success', { jobId: 'b', action: 'queue' }],
    ['a job waits while a need runs', job('b', { needs: ['a'] }), [job('a', { status: 'running', claimed: true })], 'none', 'always', undefined],
    ['an approval holds a ready job', job('b', { needs: ['a'], approvalPending: true }), [job('a', { status: 'succeeded' })], 'none', 'success', undefined],
    ['an always() job runs after a skipped need', job('b', { needs: ['a'] }), [job('a', { status: 'skipped' })], 'none', 'always', { jobId: 'b', action: 'queue' }],
    ['a cancel stops a running job', job('a', { status: 'running', claimed: true }), [], 'requested', 'success', { jobId: 'a', action: 'stop', reason: 'canceled by ana@example.com' }],
    ['a cancel keeps a running always() job', job('a', { status: 'running', claimed: true }), [], 'requested', 'always', undefined],
    ['a cancel ends a queued job at once', job('a', { status: 'queued' }), [], 'requested', 'success', { jobId: 'a', action: 'cancel', reason: 'canceled by ana@example.com' }],
    ['a cancel keeps a queued cancelled() job', job('a', { status: 'queued' }), [], 'requested', 'cancelled', undefined],
    ['after a cancel, an always() job is queued once its needs end', job('b', { needs: ['a'] }), [job('a', { status: 'canceled' })], 'requested', 'always', { jobId: 'b', action: 'queue' }],
    ['after a cancel, a default job is canceled once its needs end', job('b', { needs: ['a'] }), [job('a', { status: 'succeeded' })], 'requested', 'success', { jobId: 'b', action: 'cancel', reason: 'canceled by ana@example.com' }],
    ['after a cancel, a job waits for its needs still running', job('b', { needs: ['a'] }), [job('a', { status: 'running', claimed: true })], 'requested', 'success', undefined],
    ['a cancel ends a job waiting for approval', job('a', { approvalPending: true }), [], 'requested', 'always', { jobId: 'a', action: 'cancel', reason: 'canceled by ana@example.com' }],
    ['a forced cancel stops an always() job', job('a', { status: 'running', claimed: true }), [], 'forced', 'always', { jobId: 'a', action: 'stop', reason: 'canceled by ana@example.com' }],
    ['a forced cancel ends a waiting job', job('b', { needs: ['a'] }), [job('a', { status: 'running', claimed: true })], 'forced', 'always', { jobId: 'b', action: 'cancel', reason: 'canceled by ana@example.com' }],
    ['a stop is asked once', job('a', { status: 'running', claimed: true, cancelRequested: true }), [], 'forced', 'success', undefined],
    ['a job asked to stop before its claim ends canceled', job('a', { status: 'queued', cancelRequested: true, cancelReason: 'superseded' }), [], 'none', 'success', { jobId: 'a', action: 'cancel', reason: 'superseded' }],
    ['a claimed job asked to stop is left to its runner', job('a', { status: 'queued', claimed: true, cancelRequested: true }), [], 'none', 'success', undefined],
    ['fail-fast stops a running sibling', job('m1', { jobKey: 'm', status: 'running', claimed: true, failFast: true }), [job('m2', { jobKey: 'm', status: 'failed', failFast: true })], 'none', 'success', { jobId: 'm1', action: 'stop', reason: FAIL_FAST_REASON }],
    ['fail-fast ends a queued sibling', job('m1', { jobKey: 'm', status: 'queued', failFast: true }), [job('m2', { jobKey: 'm', status: 'runner_lost', failFast: true })], 'none', 'success', { jobId: 'm1', action: 'cancel', reason: FAIL_FAST_REASON }],
    ['no fail-fast after a continue-on-error failure', job('m1', { jobKey: 'm', status: 'running', claimed: true, failFast: true }), [job('m2', { jobKey: 'm', status: 'failed', failFast: true, continueOnError: true })], 'none', 'success', undefined],
    ['a terminal job is left alone', job('a', { status: 'succeeded' }), [], 'forced', 'success', undefined],
  ];
  it.each(rows)('%s', (_, subject, others, cancel, cond, expected) => {
    expect(decideJob(subject, [subject, ...others], run(cancel), holdsBy({ [subject.id]: cond }))).toEqual(expected);
  });

  it('cascades skips down a chain in one call', () => {
    const jobs = [job('a', { status: 'failed' }), job('b', { needs: ['a'] }), job('c', { needs: ['b'] }), job('d', { needs: ['c'] })];
    expect(decideJobs(jobs, run(), holdsBy({ d: 'always' }))).toEqual([
      { jobId: 'b', action: 'skip' },
      { jobId: 'c', action: 'skip' },
      { jobId: 'd', action: 'queue' },
    ]);
  });

  it('the observed fail-fast matrix with an always() job after it: siblings stop and the job after is decided once they end', () => {
    const m = (i: number, status: RunStatus) => job(`m${i}`, { jobKey: 'm', status, failFast: true, claimed: status === 'running' });
    const after = job('after', { needs: ['m'] });
    const first = decideJobs([m(1, 'failed'), m(2, 'running'), m(3, 'queued'), m(4, 'running'), after], run(), holdsBy({ after: 'always' }));
    expect(first).toEqual([
      { jobId: 'm2', action: 'stop', reason: FAIL_FAST_REASON },
      { jobId: 'm3', action: 'cancel', reason: FAIL_FAST_REASON },
      { jobId: 'm4', action: 'stop', reason: FAIL_FAST_REASON },
    ]);
    const later = decideJobs([m(1, 'failed'), m(2, 'canceled'), m(3, 'canceled'), m(4, 'succeeded'), after], run(), holdsBy({ after: 'always' }));
    expect(later).toEqual([{ jobId: 'after', action: 'queue' }]);
  });

  /**
   * A whole run in memory: random DAGs, conditions, outcomes and cancels, with jobs ending in a
   * random order. Whatever happens, every job ends, a job runs only after its needs ended, and
   * `always()` jobs run after a plain cancel but not after a forced one.
   */
  it('drives every random run to its end', () => {
    const arbRun = fc.integer({ min: 1, max: 8 }).chain((n) =>
      fc.record({
        needs: fc.tuple(...Array.from({ length: n }, (_, i) => fc.subarray(Array.from({ length: i }, (_, k) => `j${k}`), { maxLength: Math.min(i, 3) }))),
        conds: fc.tuple(...Array.from({ length: n }, () => fc.constantFrom<Cond>('success', 'always', 'failure', 'cancelled'))),
        outcomes: fc.tuple(...Array.from({ length: n }, () => fc.constantFrom<RunStatus>('succeeded', 'failed', 'timed_out', 'runner_lost'))),
        order: fc.array(fc.nat(), { minLength: 40, maxLength: 40 }),
        cancelAt: fc.option(fc.nat({ max: 10 })),
        force: fc.boolean(),
      }),
    );
    fc.assert(
      fc.property(arbRun, ({ needs, conds, outcomes, order, cancelAt, force }) => {
        let jobs: JobView[] = needs.map((ns, i) => job(`j${i}`, { needs: ns, status: ns.length > 0 ? 'waiting' : 'queued' }));
        const cond = Object.fromEntries(conds.map((c, i) => [`j${i}`, c]));
        // Top-level jobs whose `if` fails on success are skipped when queued, as queue-run does.
        jobs = jobs.map((j) => (j.status === 'queued' && !holdsBy(cond)(j, 'success') ? { ...j, status: 'skipped' } : j));
        let cancel: CancelLevel = 'none';
        const startedWhenCanceled = new Set<string>();
        const apply = () => {
          for (const d of decideJobs(jobs, run(cancel), holdsBy(cond))) {
            jobs = jobs.map((j) => {
              if (j.id !== d.jobId) return j;
              if (d.action === 'queue') {
                // Queued only once everything it needs has ended.
                for (const n of j.needs) expect(jobs.filter((x) => x.jobKey === n).every((x) => isTerminal(x.status))).toBe(true);
                return { ...j, status: 'queued' };
              }
              if (d.action === 'skip') return { ...j, status: 'skipped' };
              if (d.action === 'cancel') return { ...j, status: 'canceled', cancelRequested: true };
              return { ...j, cancelRequested: true };
            });
          }
        };
        apply();
        for (let step = 0; step < 200 && jobs.some((j) => !isTerminal(j.status)); step++) {
          if (cancelAt !== null && step === cancelAt) {
            cancel = force ? 'forced' : 'requested';
            for (const j of jobs) if (!isTerminal(j.status)) startedWhenCanceled.add(j.id);
          }
          const active = jobs.filter((j) => j.status === 'queued' || j.status === 'running');
          if (active.length > 0) {
            const pick = active[order[step % order.length]! % active.length]!;
            const i = Number(pick.id.slice(1));
            // A runner takes a queued job; a running one ends (canceled if it was asked to stop).
            jobs = jobs.map((j) =>
              j.id !== pick.id ? j : j.status === 'queued' ? { ...j, status: 'running', claimed: true } : { ...j, status: j.cancelRequested ? 'canceled' : outcomes[i]! },
            );
          }
          apply();
        }
        // Every job ended: nothing is left waiting with nothing to wait for.
        expect(jobs.filter((j) => !isTerminal(j.status))).toEqual([]);
        const status = runStatusOf(jobs.map((j) => j.status));
        expect(isTerminal(status)).toBe(true);
        if (cancel === 'forced') {
          // A forced cancel lets nothing start after it.
          for (const j of jobs) if (startedWhenCanceled.has(j.id) && j.status !== 'canceled') expect(['succeeded', 'failed', 'timed_out', 'runner_lost', 'skipped']).toContain(j.status);
        }
        if (cancel === 'none') {
          // Without a cancel no job is canceled, and each job ran exactly when its `if` held on its needs.
          expect(jobs.some((j) => j.status === 'canceled')).toBe(false);
          for (const j of jobs) {
            const needed = jobs.filter((x) => j.needs.includes(x.jobKey!));
            const outcome: NeedsOutcome = needed.some((x) => x.status !== 'succeeded' && x.status !== 'skipped') ? 'failure' : needed.some((x) => x.status === 'skipped') ? 'skipped' : 'success';
            expect(j.status === 'skipped').toBe(!holdsBy(cond)(j, outcome));
          }
        }
      }),
      { numRuns: 2000 },
    );
  });
});
