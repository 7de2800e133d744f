import { decideFire, nextFireAfter } from '../../domain/schedule-times.js';
import { AppError } from '../app-error.js';
import { mayStartLater, retryDelaySeconds, startRun, type RunStartDeps } from '../runs/start-run.js';
import { runOfTrigger } from '../store/run-store.js';
import { finishFire, retryFireLater, type DueSchedule, type FireOutcome } from '../store/trigger-store.js';
import { specOf } from './schedule-input.js';

/** What the run of a schedule's fire time is keyed by. */
const fireKey = (triggerId: string, at: Date) => `schedule:${triggerId}:${at.toISOString()}`;

/**
 * Fires a due schedule that this instance claimed: decides with its missed policy, starts the
 * run through the one start entry point (keyed by the fire time, so that a second start for it
 * finds the first run), and moves the schedule on. A start that failed for a passing reason is
 * tried again later (a fire that then comes too late counts as missed); one that failed for good
 * is recorded on the schedule and as `trigger.failed`, and the schedule waits for its next time.
 */
export async function fireSchedule(deps: RunStartDeps, s: DueSchedule): Promise<void> {
  const spec = specOf(s);
  // Taken over from an instance that died (or failed to move it on) after starting its run: that
  // run stands, and the time after it is decided as its own fire. A fire no claim held before has
  // no run yet.
  const started = s.heldBefore ? await runOfTrigger(deps.database.db, s.workflowId, fireKey(s.id, s.due)) : undefined;
  if (started) {
    const next = nextFireAfter(spec, s.due);
    return finishFire(deps.database.db, s, { next, firedFor: s.due, runId: started.id, error: null, disabledReason: next ? null : 'it fired at its one time', activity: null });
  }
  const decision = decideFire(spec, s.due, s.now, s.missed);
  const done = (reason: string) => (decision.next === null ? reason : null);
  const outcome: FireOutcome = { next: decision.next, firedFor: decision.fireFor, runId: null, error: null, disabledReason: null, activity: null };
  if (!decision.fireFor) {
    outcome.error = `missed the fire time ${s.due.toISOString()} (no server fired it in time) and skipped it, as the schedule says`;
    outcome.disabledReason = done('its one fire time was missed and skipped');
    outcome.activity = { type: 'trigger.skipped', payload: { due: s.due.toISOString() } };
    return finishFire(deps.database.db, s, outcome);
  }
  const scheduledFor = decision.fireFor.toISOString();
  try {
    const run = await startRun(deps, {
      workflowId: s.workflowId,
      target: { ref: s.ref ?? undefined, event: 'schedule' },
      parameters: s.parameters,
      reason: { type: 'schedule', triggerId: s.id, scheduledFor, ...(decision.missed ? { late: true } : {}) },
      actorUserId: null,
      triggerKey: fireKey(s.id, decision.fireFor),
    });
    outcome.runId = run.id;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (mayStartLater(err)) return retryFireLater(deps.database.db, s, retryDelaySeconds(s.failures), message);
    outcome.error = `the run for ${scheduledFor} did not start: ${message}`;
    outcome.activity = { type: 'trigger.failed', payload: { scheduledFor, code: err instanceof AppError ? err.code : 'error', message } };
  }
  outcome.disabledReason = done(outcome.runId ? 'it fired at its one time' : 'its one time came, and its run did not start');
  await finishFire(deps.database.db, s, outcome);
}
