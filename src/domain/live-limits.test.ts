import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { logFlow, subscriptionRefusal } from './live-limits.js';

const limits = fc.record({ maxSubscriptionsPerSocket: fc.integer({ min: 1, max: 1000 }), maxSubscriptionsPerUser: fc.integer({ min: 1, max: 1000 }), sendBufferBytes: fc.constant(65536) });

describe('subscriptionRefusal', () => {
  it('admits a subscription exactly while both the socket and the user are under their limits', () => {
    fc.assert(
      fc.property(limits, fc.nat(1100), fc.nat(1100), (l, socket, extra) => {
        const user = socket + extra; // a user holds at least what one of their sockets does
        const refusal = subscriptionRefusal({ socket, user }, l);
        expect(refusal === undefined).toBe(socket < l.maxSubscriptionsPerSocket && user < l.maxSubscriptionsPerUser);
        if (socket >= l.maxSubscriptionsPerSocket) expect(refusal).toContain('FURROW_LIVE_MAX_SUBSCRIPTIONS_PER_SOCKET');
        else if (refusal) expect(refusal).toContain('FURROW_LIVE_MAX_SUBSCRIPTIONS_PER_USER');
      }),
    );
  });
});

describe('logFlow', () => {
  it('keeps a paused socket plus one encoded chunk under the bound, with room to spare', () => {
    fc.assert(
      fc.property(fc.integer({ min: 64 * 1024, max: 1024 * 1024 * 1024 }), (bound) => {
        const { chunkBytes, resumeBelow } = logFlow(bound);
        const encoded = Math.ceil(chunkBytes / 3) * 4 + 200; // base64 plus the JSON around it
        expect(chunkBytes).toBeGreaterThan(0);
        expect(resumeBelow + encoded).toBeLessThan(bound * 0.75);
      }),
    );
  });
});
