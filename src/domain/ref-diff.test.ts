import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { diffRefs, nextPollDelaySeconds } from './ref-diff.js';

const refs = fc.dictionary(fc.constantFrom('refs/heads/main', 'refs/heads/dev', 'refs/tags/v1', 'refs/tags/v2', 'refs/heads/x/y'), fc.constantFrom('a', 'b', 'c').map((c) => c.repeat(40)));

describe('diffRefs', () => {
  it('applied to the refs before, its changes give the refs after', () => {
    fc.assert(
      fc.property(refs, refs, (a, b) => {
        const before = new Map(Object.entries(a));
        const after = new Map(Object.entries(b));
        const changes = diffRefs(before, after);
        const replayed = new Map(before);
        for (const c of changes) {
          expect(replayed.get(c.ref) ?? null).toBe(c.before);
          if (c.after === null) replayed.delete(c.ref);
          else replayed.set(c.ref, c.after);
        }
        expect(Object.fromEntries([...replayed].sort())).toEqual(Object.fromEntries([...after].sort()));
        expect(changes.every((c) => c.type === (c.before === null ? 'added' : c.after === null ? 'removed' : 'changed'))).toBe(true);
      }),
    );
  });
});

describe('nextPollDelaySeconds', () => {
  it('jitters the interval by a tenth, and backs off on failures up to an hour', () => {
    expect(nextPollDelaySeconds(60, 0, 0)).toBeCloseTo(54);
    expect(nextPollDelaySeconds(60, 0, 0.999)).toBeLessThan(66);
    expect(nextPollDelaySeconds(60, 3, 0.5)).toBe(480);
    expect(nextPollDelaySeconds(60, 40, 0.5)).toBe(3600);
    expect(nextPollDelaySeconds(7200, 1, 0.5)).toBe(7200);
  });
});
