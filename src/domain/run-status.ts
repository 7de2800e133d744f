import type { RunStatus } from './run-state.js';

/**
 * A run's status follows from its jobs' latest attempts: running while any job is active (or
 * some have ended and others still wait), queued while all wait, otherwise the worst outcome
 * (timed_out before failed before canceled before succeeded); skipped jobs do not count (a run
 * whose jobs were all skipped is skipped), and a
 * job whose runner was lost and that was not retried counts as failed. Callers pass a failed job
 * that may fail (`continue-on-error`) as succeeded.
 */
export function runStatusOf(jobs: readonly RunStatus[]): RunStatus {
  if (jobs.length === 0) return 'queued';
  if (jobs.some((s) => s === 'running')) return 'running';
  const pending = (s: RunStatus) => s === 'queued' || s === 'waiting';
  if (jobs.some(pending)) return jobs.some((s) => !pending(s)) ? 'running' : 'queued';
  if (jobs.includes('timed_out')) return 'timed_out';
  if (jobs.includes('failed') || jobs.includes('runner_lost')) return 'failed';
  if (jobs.includes('canceled')) return 'canceled';
  // Every job's `if` said no: nothing ran.
  if (jobs.every((s) => s === 'skipped')) return 'skipped';
  return 'succeeded';
}
