import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoff } from './remote-channel.js';

describe('reconnect backoff', () => {
  it('doubles from 250 ms up to a third of the lease (at most 10 s), each wait jittered between half and all of it', () => {
    for (const [attempt, lease, base] of [
      [0, 30, 250],
      [1, 30, 500],
      [4, 30, 4000],
      [6, 30, 10_000],
      [20, 30, 10_000],
      [20, 6, 2000],
      [20, 300, 10_000],
    ] as const) {
      const waits = Array.from({ length: 200 }, () => backoff(attempt, lease));
      expect(Math.min(...waits)).toBeGreaterThanOrEqual(base / 2);
      expect(Math.max(...waits)).toBeLessThanOrEqual(base);
      // Jittered: 200 draws of a continuous range are not all alike.
      expect(new Set(waits).size).toBeGreaterThan(50);
    }
  });

  it('brings a runner back within a third of the lease of its server’s return, however long it was away', () => {
    fc.assert(
      fc.property(fc.integer({ min: 3, max: 3600 }), fc.integer({ min: 0, max: 10_000 }), fc.double({ min: 0, max: 1, noNaN: true }), (lease, attempt, random) => {
        const wait = backoff(attempt, lease, random);
        expect(wait).toBeGreaterThan(0);
        expect(wait).toBeLessThanOrEqual(Math.min(10_000, (lease * 1000) / 3));
      }),
    );
  });

  it('tries often at first: the first five attempts come within 8 s', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 5, maxLength: 5 }), (randoms) => {
        expect(randoms.reduce((sum, r, attempt) => sum + backoff(attempt, 30, r), 0)).toBeLessThanOrEqual(7750);
      }),
    );
  });
});
