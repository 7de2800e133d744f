import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseDuration } from './parse-duration.js';

describe('parse duration', () => {
  it('reads a whole number with one unit', () => {
    expect([parseDuration('90s'), parseDuration('15m'), parseDuration('1h'), parseDuration('7d'), parseDuration('2w')]).toEqual([90, 900, 3600, 604_800, 1_209_600]);
  });

  it('refuses anything else', () => {
    for (const bad of ['', '1', 'h', '0h', '-1h', '1.5h', '1 h', '1hour', '1h30m', '1H']) expect(parseDuration(bad), bad).toBeUndefined();
  });

  it('multiplies by the unit for every count', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 999_999 }), fc.constantFrom(['s', 1], ['m', 60], ['h', 3600], ['d', 86_400]), (n, [u, f]) => parseDuration(`${n}${u}`) === n * (f as number)));
  });
});
