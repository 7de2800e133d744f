import { describe, expect, it } from 'vitest';
import { expandMatrix } from './expand-matrix.js';

describe('expandMatrix', () => {
  it('builds the cartesian product in axis order', () => {
    expect(expandMatrix({ axes: [['os', ['linux', 'mac']], ['node', ['18', '20']]], include: [], exclude: [] })).toEqual([
      { os: 'linux', node: '18' },
      { os: 'linux', node: '20' },
      { os: 'mac', node: '18' },
      { os: 'mac', node: '20' },
    ]);
  });

  it('removes combinations an exclude entry matches partially', () => {
    const combinations = expandMatrix({
      axes: [['os', ['linux', 'mac']], ['node', ['18', '20']], ['db', ['pg', 'sqlite']]],
      include: [],
      exclude: [{ os: 'mac', node: '18' }, { db: 'sqlite', os: 'linux' }],
    });
    expect(combinations).toEqual([
      { os: 'linux', node: '18', db: 'pg' },
      { os: 'linux', node: '20', db: 'pg' },
      { os: 'mac', node: '20', db: 'pg' },
      { os: 'mac', node: '20', db: 'sqlite' },
    ]);
  });

  it('applies include like GitHub Actions (its documented example)', () => {
    const combinations = expandMatrix({
      axes: [['fruit', ['apple', 'pear']], ['animal', ['cat', 'dog']]],
      include: [
        { color: 'green' },
        { color: 'pink', animal: 'cat' },
        { fruit: 'apple', shape: 'circle' },
        { fruit: 'banana' },
        { fruit: 'banana', animal: 'cat' },
      ],
      exclude: [],
    });
    expect(combinations).toEqual([
      { fruit: 'apple', animal: 'cat', color: 'pink', shape: 'circle' },
      { fruit: 'apple', animal: 'dog', color: 'green', shape: 'circle' },
      { fruit: 'pear', animal: 'cat', color: 'pink' },
      { fruit: 'pear', animal: 'dog', color: 'green' },
      { fruit: 'banana' },
      { fruit: 'banana', animal: 'cat' },
    ]);
  });

  it('never overwrites an original value: a conflicting include adds a combination', () => {
    expect(expandMatrix({ axes: [['os', ['linux']]], include: [{ os: 'windows', shell: 'pwsh' }], exclude: [] })).toEqual([
      { os: 'linux' },
      { os: 'windows', shell: 'pwsh' },
    ]);
  });

  it('with only include entries, each is a combination', () => {
    expect(expandMatrix({ axes: [], include: [{ a: '1' }, { b: '2' }], exclude: [] })).toEqual([{ a: '1' }, { b: '2' }]);
  });

  it('drops a combination that repeats another: each names one job', () => {
    const include = [{ os: 'w', arch: 'x' }, { arch: 'x', os: 'w' }];
    expect(expandMatrix({ axes: [], include: [...include, { os: 'l' }], exclude: [] })).toEqual([{ os: 'w', arch: 'x' }, { os: 'l' }]);
  });
});
