import type { PgListener } from '../live/pg-listener.js';

/**
 * The sleep of a loop that a database notification (or the listener's reconnect, after which
 * notifications may have been missed) cuts short. A nudge while the loop is busy is kept for its
 * next sleep: the change may have come after the loop looked.
 */
class Waker {
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private nudged = false;
  readonly nudge = () => (this.wake ? this.wake() : (this.nudged = true));

  constructor(
    private readonly listener: Pick<PgListener, 'on' | 'off'>,
    private readonly channel: string,
  ) {
    listener.on(channel, this.nudge);
    listener.on('reconnect', this.nudge);
  }

  /** Resolves after `ms`, or at the first nudge. */
  sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.nudged) {
        this.nudged = false;
        return resolve();
      }
      this.wake = () => {
        clearTimeout(this.timer);
        this.wake = undefined;
        resolve();
      };
      this.timer = setTimeout(this.wake, ms);
    });
  }

  /** Stops listening, and ends a sleep in progress. */
  close(): void {
    this.listener.off(this.channel, this.nudge);
    this.listener.off('reconnect', this.nudge);
    this.nudge();
  }
}

/** The longest a loop sleeps without looking, in case a wake-up was lost. */
const MAX_SLEEP_MS = 30_000;
/** The wait after a round that took nothing although something was due (another instance holds it). */
const BUSY_SLEEP_MS = 100;

export interface WakeLoop {
  /** Stops the rounds, and waits for the one in progress. */
  stop(): Promise<void>;
}

/** One round of a loop: how much it took (`full`: as much as it could, so the next round comes at once). */
export interface Round {
  took: number;
  full: boolean;
}

/**
 * Rounds of taking due work from the database, on every instance (the schedule clock, the
 * delivery pump): after a round that was not full it sleeps until the database says the next
 * work is due (`msUntilDue`), or a notification on `channel` wakes it. A round that fails (the
 * database is away) is tried again after a second.
 */
export function startWakeLoop(
  listener: Pick<PgListener, 'on' | 'off'>,
  channel: string,
  round: () => Promise<Round>,
  msUntilDue: () => Promise<number | null>,
  warn: (err: unknown) => void,
): WakeLoop & { nudge: () => void } {
  let stopped = false;
  const waker = new Waker(listener, channel);
  const loop = (async () => {
    while (!stopped) {
      let waitMs = MAX_SLEEP_MS;
      try {
        const r = await round();
        if (r.full) continue;
        waitMs = Math.min(MAX_SLEEP_MS, (await msUntilDue()) ?? MAX_SLEEP_MS);
        if (r.took === 0 && waitMs <= 0) waitMs = BUSY_SLEEP_MS;
      } catch (err) {
        warn(err);
        waitMs = 1000;
      }
      if (!stopped) await waker.sleep(waitMs);
    }
  })();
  return {
    nudge: waker.nudge,
    async stop() {
      stopped = true;
      waker.close();
      await loop;
    },
  };
}
