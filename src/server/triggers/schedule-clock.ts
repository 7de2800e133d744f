import type { Resources } from '../resources.js';
import { claimDueSchedules, msUntilNextFire } from '../store/trigger-store.js';
import { fireSchedule } from './fire-schedule.js';
import { startWakeLoop, type WakeLoop } from './wake-loop.js';

/** Due schedules one round takes and fires at once: each is judged when its start begins. */
const PARALLEL = 4;
/**
 * How long a claimed fire is this instance's: longer than a start may take (planning reads the
 * repository twice at most, each within the git timeout). If the instance dies with it, another
 * takes it after this, and finds the run it started, if any (see fireSchedule).
 */
const holdSeconds = (gitTimeoutSeconds: number) => 2 * gitTimeoutSeconds + 30;

/**
 * Fires schedules when their time comes, on every instance: each due fire is claimed by one of
 * them (see claimDueSchedules). Between rounds the clock sleeps until the next fire time the
 * database holds, or until a change of a schedule (`furrow_triggers`) or the listener's reconnect
 * wakes it.
 */
export function startScheduleClock(res: Pick<Resources, 'database' | 'secretBox' | 'config' | 'listener' | 'logger'>): WakeLoop {
  const { db } = res.database;
  const round = async () => {
    const due = await claimDueSchedules(db, PARALLEL, holdSeconds(res.config.gitTimeoutSeconds));
    await Promise.all(due.map((s) => fireSchedule(res, s).catch((err: Error) => res.logger.warn({ err, triggerId: s.id }, 'a schedule could not fire; it is tried again once its hold has passed'))));
    return { took: due.length, full: due.length === PARALLEL };
  };
  return startWakeLoop(res.listener, 'furrow_triggers', round, () => msUntilNextFire(db), (err) =>
    res.logger.warn({ err }, 'the schedule clock could not reach the database; it tries again in a second'),
  );
}
