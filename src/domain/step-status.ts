import type { RunStatus } from './run-state.js';

/**
 * How a step still open when its job ends is closed: one that never started was skipped (its
 * job was) or canceled (its job ended before reaching it); one that was running ends as its job did.
 */
export function closedStepStatus(step: 'queued' | 'running', job: RunStatus): RunStatus {
  if (step === 'running') return job;
  return job === 'skipped' ? 'skipped' : 'canceled';
}
