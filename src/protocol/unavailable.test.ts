import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { RunnerRequest, ServerReply } from './messages.js';
import { sendUntilAvailable, UNAVAILABLE, unavailableDelay } from './unavailable.js';

const unavailable: ServerReply = { type: 'error', code: UNAVAILABLE, message: 'the database is unavailable' };
const extend: RunnerRequest = { type: 'extend', jobId: 'j' };

describe('sendUntilAvailable', () => {
  it('sends again while the server answers unavailable, and answers the first other reply', async () => {
    const replies: ServerReply[] = [unavailable, unavailable, { type: 'ack', cancel: false }];
    const sent: RunnerRequest[] = [];
    const reply = await sendUntilAvailable(async (m) => (sent.push(m), replies.shift()!), extend);
    expect(reply).toEqual({ type: 'ack', cancel: false });
    expect(sent).toEqual([extend, extend, extend]);
  });

  it('passes other errors through at once, and stops resending when told to', async () => {
    const refused: ServerReply = { type: 'error', code: 'not_registered', message: 'register first' };
    let calls = 0;
    expect(await sendUntilAvailable(async () => (calls++, refused), extend)).toBe(refused);
    expect(calls).toBe(1);
    expect(await sendUntilAvailable(async () => unavailable, extend, () => true)).toBe(unavailable);
  });

  it('waits longer each time, from 250 ms to at most 5 s', () => {
    expect(unavailableDelay(0)).toBe(250);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1000 }), (attempt) => {
        expect(unavailableDelay(attempt + 1)).toBeGreaterThanOrEqual(unavailableDelay(attempt));
        expect(unavailableDelay(attempt)).toBeLessThanOrEqual(5000);
      }),
    );
  });
});
