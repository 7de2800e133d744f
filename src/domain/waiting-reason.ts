/** How the runners that could take a queued job stand, counted by the store. */
export interface RunnerCounts {
  /** Labels the job needs. */
  labels: readonly string[];
  /** Registered runners with those labels that may serve the job's organization. */
  matching: number;
  /** …of which online. */
  online: number;
  /** …of which online and not paused. */
  active: number;
  /** …of which online, not paused and below capacity. */
  free: number;
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/**
 * Why a queued job has not started, in words a user can act on; null when a runner is free to take
 * it (it is about to start).
 */
export function waitingReason(c: RunnerCounts): string | null {
  const labels = c.labels.length > 0 ? ` has labels ${c.labels.join(',')}` : '';
  if (c.matching === 0) return labels ? `no runner${labels}` : 'no runner is registered for this project';
  if (c.online === 0) return labels ? `no online runner${labels}` : `no runner is online (${plural(c.matching, 'runner is', 'runners are')} registered)`;
  if (c.active === 0) return c.online === 1 ? 'the only matching runner is paused' : `all ${c.online} matching runners are paused`;
  if (c.free === 0) return c.active === 1 ? 'the only matching runner is busy' : `all ${c.active} matching runners are busy`;
  return null;
}
