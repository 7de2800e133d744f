export type RunStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled' | 'timed_out';

/**
 * The one place that says how runs, jobs and steps move between states. Stores apply a transition
 * with `UPDATE … WHERE status IN (sourcesOf(to))`, so a race can never move a terminal state.
 */
export const TERMINAL: readonly RunStatus[] = ['succeeded', 'failed', 'canceled', 'timed_out'];

const NEXT: Record<RunStatus, readonly RunStatus[]> = {
  queued: ['running', 'canceled', 'failed'],
  running: ['succeeded', 'failed', 'canceled', 'timed_out'],
  succeeded: [],
  failed: [],
  canceled: [],
  timed_out: [],
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
 * A run's status follows from its jobs: running while any job is active, otherwise the worst
 * outcome (timed_out before failed before canceled before succeeded).
 */
export function runStatusOf(jobs: readonly RunStatus[]): RunStatus {
  if (jobs.length === 0) return 'queued';
  if (jobs.some((s) => s === 'running')) return 'running';
  if (jobs.some((s) => s === 'queued')) return jobs.some((s) => s !== 'queued') ? 'running' : 'queued';
  for (const worst of ['timed_out', 'failed', 'canceled'] as const) if (jobs.includes(worst)) return worst;
  return 'succeeded';
}
