import { describe, expect, it } from 'vitest';
import { matchesRefPatterns } from './ref-pattern.js';

describe('matchesRefPatterns', () => {
  it('reads *, ** and ? as GitHub does, and everything else as itself', () => {
    const cases: [string, string, boolean][] = [
      ['main', 'main', true],
      ['main', 'mainline', false],
      ['release/*', 'release/1.0', true],
      ['release/*', 'release/1.0/hotfix', false],
      ['release/**', 'release/1.0/hotfix', true],
      ['feature-?', 'feature-a', true],
      ['feature-?', 'feature-/', false],
      ['v1.*', 'v1.2', true],
      ['v1.*', 'v1x2', false],
      ['(x)+[y]', '(x)+[y]', true],
      ['*', 'a/b', false],
      ['**', 'a/b', true],
    ];
    for (const [pattern, name, expected] of cases) expect(matchesRefPatterns([pattern], name), `${pattern} ~ ${name}`).toBe(expected);
  });

  it('applies ! in order: excluded after a match, and included again by a later pattern', () => {
    const patterns = ['release/**', '!release/**-alpha', 'release/2.0-alpha'];
    expect(matchesRefPatterns(patterns, 'release/1.0')).toBe(true);
    expect(matchesRefPatterns(patterns, 'release/1.0-alpha')).toBe(false);
    expect(matchesRefPatterns(patterns, 'release/2.0-alpha')).toBe(true);
    expect(matchesRefPatterns(patterns, 'main')).toBe(false);
    expect(matchesRefPatterns([], 'main')).toBe(false);
  });
});
