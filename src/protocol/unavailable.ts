import type { RunnerRequest, ServerReply } from './messages.js';

/**
 * The `error` code of a reply to a request the server could not handle for now (its database is
 * unavailable, and stayed so while the server retried). Every request is safe to send again.
 */
export const UNAVAILABLE = 'unavailable';

/** Waits between resends of a request answered `unavailable`: quick at first, then every 5 s. */
export function unavailableDelay(attempt: number): number {
  return Math.min(5000, 250 * 2 ** attempt);
}

/**
 * Sends `msg` through `send` until the reply is something other than `unavailable`, waiting
 * longer each time: a database outage on the server delays the runner's requests, it does not
 * fail its job. Stops (answering the last reply) once `stop()` says so.
 */
export async function sendUntilAvailable<R extends ServerReply>(send: (msg: RunnerRequest) => Promise<R>, msg: RunnerRequest, stop: () => boolean = () => false): Promise<R> {
  for (let attempt = 0; ; attempt++) {
    const reply = await send(msg);
    if (reply.type !== 'error' || reply.code !== UNAVAILABLE || stop()) return reply;
    await new Promise((r) => setTimeout(r, unavailableDelay(attempt)));
  }
}
