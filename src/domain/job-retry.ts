import { RETRYABLE, type Retryable, type RunStatus } from './run-state.js';

/**
 * A runner that could not renew a job's lease for this many leases kills the job: it may be cut
 * off from a server that has ended the job and will run it again. Server restarts and database
 * outages shorter than that keep jobs running (the server does not count such time against leases).
 */
export const RUNNER_FENCE_LEASES = 3;

/**
 * A retry of a job whose runner vanished waits this many leases past the old lease: by then a
 * cut-off runner has killed the job (after RUNNER_FENCE_LEASES, checked every third of a lease,
 * plus a second for the kill), so the two attempts never overlap.
 */
export const LOST_RETRY_GRACE_LEASES = 3;

/** A job's retry policy: further attempts after an outcome in `on`. */
export interface RetryPolicy {
  count: number;
  on: readonly Retryable[];
}

/**
 * Without `retry` in the workflow, a job whose runner vanished is run once more — unless it runs in
 * an environment: a deployment may have gone through before its runner vanished, so it is not
 * repeated unless the workflow asks for it.
 */
export function effectiveRetry(policy: RetryPolicy | null, inEnvironment: boolean): RetryPolicy {
  if (policy) return policy;
  return inEnvironment ? { count: 0, on: [] } : { count: 1, on: ['runner_lost'] };
}

export interface AttemptView {
  attempt: number;
  maxAttempts: number;
  retryOn: readonly string[];
  cancelRequested: boolean;
}

export type RetryDecision =
  | { retry: false }
  /**
   * `waitOutLease`: the lost attempt may still be running somewhere (its runner may be cut off, not
   * dead), so the next one waits until the old lease plus a grace period has passed; by then a cut-off
   * runner has killed it. A runner that said it no longer runs the job lets the retry start at once.
   */
  | { retry: true; waitOutLease: boolean };

/**
 * Whether a job that just ended with `outcome` runs again. Never after a success, a cancel, or
 * once the run is being canceled; then only while attempts are left and the policy names the outcome.
 */
export function decideRetry(job: AttemptView, outcome: RunStatus, runCanceled: boolean, runnerConfirmedGone: boolean): RetryDecision {
  if (!(RETRYABLE as readonly RunStatus[]).includes(outcome)) return { retry: false };
  if (job.cancelRequested || runCanceled || job.attempt >= job.maxAttempts || !job.retryOn.includes(outcome)) return { retry: false };
  return { retry: true, waitOutLease: outcome === 'runner_lost' && !runnerConfirmedGone };
}
