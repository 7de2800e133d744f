import type { RunStatus } from './run-state.js';
import { isTerminal } from './run-state.js';

/** What a run's cancel asked for: nothing, stop what does not run after a cancel, or stop all. */
export type CancelLevel = 'none' | 'requested' | 'forced';

/** How the jobs a job needs ended, as its `if` reads it (`cancelled` too once its run is canceled). */
export type NeedsOutcome = 'success' | 'failure' | 'cancelled' | 'skipped';

/** One job (its latest attempt) as the decisions see it. */
export interface JobView {
  id: string;
  /** The job id in the file, shared by the instances of a matrix; null for a script's one job. */
  jobKey: string | null;
  status: RunStatus;
  /** Job ids (not keys) this job waits for: every instance of each must have ended. */
  needs: readonly string[];
  continueOnError: boolean;
  failFast: boolean;
  /** Waiting for a manager's approval to enter its protected environment. */
  approvalPending: boolean;
  /** A runner holds it (queued and claimed, or running): it ends through its runner. */
  claimed: boolean;
  /** Asked to stop already (its runner was told). */
  cancelRequested: boolean;
  /** Why it was asked to stop (superseded, fail-fast), when it was asked on its own. */
  cancelReason: string | null;
}

export interface RunView {
  cancel: CancelLevel;
  /** Why jobs end on this run's cancel, e.g. "canceled by ana@example.com". */
  cancelReason: string;
}

export type JobDecision =
  /** Its needs are met and its `if` holds: runners may take it. */
  | { jobId: string; action: 'queue' }
  /** Its `if` does not hold: it never runs. */
  | { jobId: string; action: 'skip' }
  /** It has not started: it ends canceled now. */
  | { jobId: string; action: 'cancel'; reason: string }
  /** A runner holds it: the runner is told to stop it, and it ends when the runner says so. */
  | { jobId: string; action: 'stop'; reason: string };

/** Whether a job's `if` holds for an outcome of its needs. */
export type ConditionHolds = (job: JobView, outcome: NeedsOutcome) => boolean;

const FAILED: readonly RunStatus[] = ['failed', 'timed_out', 'runner_lost'];
export const FAIL_FAST_REASON = 'canceled: another instance of its matrix failed (fail-fast)';

function failedHard(job: JobView): boolean {
  return FAILED.includes(job.status) && !job.continueOnError;
}

/** How the needed jobs ended, worst first: a failure, then a cancel, then a skip. */
export function needsOutcome(needed: readonly JobView[]): NeedsOutcome {
  if (needed.some(failedHard)) return 'failure';
  if (needed.some((j) => j.status === 'canceled')) return 'cancelled';
  if (needed.some((j) => j.status === 'skipped')) return 'skipped';
  return 'success';
}

function unstarted(job: JobView): boolean {
  return job.status === 'waiting' || (job.status === 'queued' && !job.claimed);
}

/** Cancel a job that has not started, stop one a runner holds (once). */
function end(job: JobView, reason: string): JobDecision | undefined {
  if (unstarted(job)) return { jobId: job.id, action: 'cancel', reason };
  return job.cancelRequested ? undefined : { jobId: job.id, action: 'stop', reason };
}

/**
 * The decision for one job that has not ended, given the other jobs of its run (rows are read
 * top to bottom; the first that applies decides):
 *
 * | when                                                   | not started        | held by a runner |
 * |--------------------------------------------------------|--------------------|------------------|
 * | the run's cancel is forced                              | cancel             | stop             |
 * | the job was asked to stop (superseded, fail-fast)       | cancel             | (runner ends it) |
 * | a matrix sibling failed and fail-fast is on             | cancel             | stop             |
 * | the run is canceled, its needs ended, `if` fails on `cancelled` | cancel     | stop             |
 * | the run is canceled, it waits for an approval           | cancel             | –                |
 * | its needs have not all ended                            | wait               | –                |
 * | waiting: `if` holds on how its needs ended              | queue (once approved) | –             |
 * | waiting: `if` does not hold                             | skip (cancel if the run is canceled) | – |
 *
 * So `always()` and `cancelled()` jobs still run after a plain cancel, as on GitHub; a forced
 * (or second) cancel stops them too.
 */
export function decideJob(job: JobView, jobs: readonly JobView[], run: RunView, holds: ConditionHolds): JobDecision | undefined {
  if (isTerminal(job.status)) return undefined;
  if (run.cancel === 'forced') return end(job, run.cancelReason);
  if (job.cancelRequested) return unstarted(job) ? { jobId: job.id, action: 'cancel', reason: job.cancelReason ?? run.cancelReason } : undefined;
  if (job.failFast && job.jobKey !== null && jobs.some((s) => s.jobKey === job.jobKey && s.failFast && failedHard(s))) return end(job, FAIL_FAST_REASON);
  const needed = jobs.filter((j) => j.jobKey !== null && job.needs.includes(j.jobKey));
  const needsEnded = needed.every((j) => isTerminal(j.status));
  if (run.cancel === 'requested') {
    if (job.status === 'waiting' && job.approvalPending) return end(job, run.cancelReason);
    if (!needsEnded) return undefined;
    return holds(job, 'cancelled') ? (job.status === 'waiting' ? { jobId: job.id, action: 'queue' } : undefined) : end(job, run.cancelReason);
  }
  if (job.status !== 'waiting' || !needsEnded) return undefined;
  if (!holds(job, needsOutcome(needed))) return { jobId: job.id, action: 'skip' };
  return job.approvalPending ? undefined : { jobId: job.id, action: 'queue' };
}

const AFTER: Record<JobDecision['action'], (job: JobView, reason: string | null) => JobView> = {
  queue: (job) => ({ ...job, status: 'queued' }),
  skip: (job) => ({ ...job, status: 'skipped' }),
  cancel: (job) => ({ ...job, status: 'canceled', cancelRequested: true }),
  stop: (job, reason) => ({ ...job, cancelRequested: true, cancelReason: reason }),
};

/**
 * Every decision a run's jobs call for now, until none is left: a job skipped or canceled here
 * may decide its dependants in turn. Each job appears at most once. Pure: the caller applies
 * the decisions (guarded, in one transaction that holds the run's lock).
 */
export function decideJobs(jobs: readonly JobView[], run: RunView, holds: ConditionHolds): JobDecision[] {
  let state = [...jobs];
  const decided: JobDecision[] = [];
  const done = new Set<string>();
  for (let changed = true; changed; ) {
    changed = false;
    for (const job of state) {
      if (done.has(job.id)) continue;
      const decision = decideJob(job, state, run, holds);
      if (!decision) continue;
      decided.push(decision);
      done.add(job.id);
      state = state.map((j) => (j.id === job.id ? AFTER[decision.action](j, 'reason' in decision ? decision.reason : null) : j));
      changed = true;
    }
  }
  return decided;
}
