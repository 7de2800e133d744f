import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { closestWord } from './closest-word.js';

const FIELDS = ['name', 'script', 'definition', 'path', 'repositoryId', 'defaultEnvironmentId', 'timeoutSeconds', 'labels'];

describe('closestWord', () => {
  it('finds the field a typo meant', () => {
    expect(closestWord('sript', FIELDS)).toBe('script');
    expect(closestWord('Name', FIELDS)).toBe('name');
    expect(closestWord('timeout', FIELDS)).toBe('timeoutSeconds');
    expect(closestWord('repositoryID', FIELDS)).toBe('repositoryId');
  });

  it('suggests nothing for a word unlike any', () => {
    expect(closestWord('colour', FIELDS)).toBeUndefined();
    expect(closestWord('x', [])).toBeUndefined();
  });

  it('maps any one-letter slip of a known word back to it', () => {
    fc.assert(
      fc.property(fc.constantFrom(...FIELDS), fc.nat(), fc.constantFrom(...'qxz'), (word, at, ch) => {
        const i = at % word.length;
        expect(closestWord(word.slice(0, i) + ch + word.slice(i + 1), FIELDS)).toBe(word);
      }),
    );
  });
});
