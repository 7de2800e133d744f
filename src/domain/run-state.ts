export type RunStatus = 'waiting' | 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled' | 'timed_out' | 'runner_lost' | 'skipped';

/**
 * The one place that says how runs, jobs and steps move between states. Stores apply a transition
 * with `UPDATE … WHERE status IN (sourcesOf(to))`, so a race can never move a terminal state.
 * `runner_lost` is a job's end when its runner vanished (the lease expired); a run never takes it.
 */
export const TERMINAL: readonly RunStatus[] = ['succeeded', 'failed', 'canceled', 'timed_out', 'runner_lost', 'skipped'];

const NEXT: Record<RunStatus, readonly RunStatus[]> = {
  // A job waits for the jobs it needs, or for an approval; it is then queued or skipped.
  waiting: ['queued', 'skipped', 'canceled', 'failed'],
  // A step is skipped from queued (its `if` said no); a job only from waiting.
  queued: ['running', 'canceled', 'failed', 'skipped'],
  running: ['succeeded', 'failed', 'canceled', 'timed_out', 'runner_lost'],
  succeeded: [],
  failed: [],
  canceled: [],
  timed_out: [],
  runner_lost: [],
  skipped: [],
};

export function isTerminal(status: RunStatus): boolean {
  return TERMINAL.includes(status);
}

export function canTransition(from: RunStatus, to: RunStatus): boolean {
  return NEXT[from].includes(to);
}

/** Every state from which `to` may be entered. */
export function sourcesOf(to: RunStatus): RunStatus[] {
  return (Object.keys(NEXT) as RunStatus[]).filter((from) => NEXT[from].includes(to));
}

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

/** The outcomes after which a job may be retried (per the workflow's `retry.on`). */
export const RETRYABLE = ['runner_lost', 'failed', 'timed_out'] as const;
export type Retryable = (typeof RETRYABLE)[number];
