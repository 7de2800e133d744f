import type { Resources } from '../resources.js';
import { claimDueSchedules, msUntilNextFire } from '../store/trigger-store.js';
import { fireSchedule } from './fire-schedule.js';

/** Due schedules one round takes and fires at once: each is judged when its start begins. */
const PARALLEL = 4;
/** The longest the clock sleeps without looking, in case a wake-up was lost. */
const MAX_SLEEP_MS = 30_000;
/** The wait after a round that took nothing although a fire was due (another transaction holds it). */
const BUSY_SLEEP_MS = 100;

/**
 * How long a claimed fire is this instance's: longer than a start may take (planning reads the
 * repository twice at most, each within the git timeout). If the instance dies with it, another
 * takes it after this, and finds the run it started, if any (see fireSchedule).
 */
const holdSeconds = (gitTimeoutSeconds: number) => 2 * gitTimeoutSeconds + 30;

export interface ScheduleClock {
  /** Stops taking fires, and waits for the round in progress. */
  stop(): Promise<void>;
}

/**
 * Fires schedules when their time comes, on every instance: each due fire is claimed by one of
 * them (see claimDueSchedules). Between rounds the clock sleeps until the next fire time the
 * database holds, or until a change of a schedule (`furrow_triggers`) or the listener's reconnect
 * wakes it.
 */
export function startScheduleClock(res: Pick<Resources, 'database' | 'secretBox' | 'config' | 'listener' | 'logger'>): ScheduleClock {
  const { db } = res.database;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  // A nudge during a round is kept for the sleep after it: the change may have come after the
  // round looked.
  let nudged = false;
  const nudge = () => (wake ? wake() : (nudged = true));
  res.listener.on('furrow_triggers', nudge);
  res.listener.on('reconnect', nudge);

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (nudged) {
        nudged = false;
        return resolve();
      }
      wake = () => {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      };
      timer = setTimeout(wake, ms);
    });

  /** Fires what is due; resolves with how many it took. */
  const round = async (): Promise<number> => {
    const due = await claimDueSchedules(db, PARALLEL, holdSeconds(res.config.gitTimeoutSeconds));
    await Promise.all(due.map((s) => fireSchedule(res, s).catch((err: Error) => res.logger.warn({ err, triggerId: s.id }, 'a schedule could not fire; it is tried again once its hold has passed'))));
    return due.length;
  };

  const loop = (async () => {
    while (!stopped) {
      let waitMs = MAX_SLEEP_MS;
      try {
        const took = await round();
        if (took === PARALLEL) continue;
        waitMs = Math.min(MAX_SLEEP_MS, (await msUntilNextFire(db)) ?? MAX_SLEEP_MS);
        if (took === 0 && waitMs <= 0) waitMs = BUSY_SLEEP_MS;
      } catch (err) {
        res.logger.warn({ err }, 'the schedule clock could not reach the database; it tries again in a second');
        waitMs = 1000;
      }
      if (!stopped) await sleep(waitMs);
    }
  })();

  return {
    async stop() {
      stopped = true;
      res.listener.off('furrow_triggers', nudge);
      res.listener.off('reconnect', nudge);
      nudge();
      await loop;
    },
  };
}
