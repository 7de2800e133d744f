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
  // A step is skipped from queued (its `if` said no); a job only from waiting. A job no runner
  // took within the queue timeout ends timed_out.
  queued: ['running', 'canceled', 'failed', 'skipped', 'timed_out'],
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

/** The outcomes after which a job may be retried (per the workflow's `retry.on`). */
export const RETRYABLE = ['runner_lost', 'failed', 'timed_out'] as const;
export type Retryable = (typeof RETRYABLE)[number];
