import { describe, expect, it } from 'vitest';
import { backoff } from './remote-channel.js';

describe('reconnect backoff', () => {
  it('doubles from half a second up to 30 s, each wait jittered between half and all of it', () => {
    for (const [attempt, base] of [
      [0, 500],
      [1, 1000],
      [4, 8000],
      [6, 30_000],
      [20, 30_000],
    ] as const) {
      const waits = Array.from({ length: 200 }, () => backoff(attempt));
      expect(Math.min(...waits)).toBeGreaterThanOrEqual(base / 2);
      expect(Math.max(...waits)).toBeLessThanOrEqual(base);
      // Jittered: 200 draws of a continuous range are not all alike.
      expect(new Set(waits).size).toBeGreaterThan(50);
    }
  });
});
