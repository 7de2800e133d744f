import { describe, expect, it } from 'vitest';
import { fieldParameters, MAX_FIELD_CHARS } from './webhook-fields.js';

describe('fieldParameters', () => {
  it('reads paths through maps and lists, passes strings as they are and other values as JSON', () => {
    const body = { release: { tag: 'v1', assets: [{ name: 'a.tgz' }], draft: false, n: 3 }, s: 'x'.repeat(MAX_FIELD_CHARS + 10) };
    expect(fieldParameters(body, { TAG: 'release.tag', ASSET: 'release.assets.0.name', DRAFT: 'release.draft', N: 'release.n', ALL: 'release.assets', NONE: 'release.missing', DEEP: 'release.tag.length' })).toEqual({
      TAG: 'v1',
      ASSET: 'a.tgz',
      DRAFT: 'false',
      N: '3',
      ALL: '[{"name":"a.tgz"}]',
    });
    expect(fieldParameters(body, { S: 's' }).S).toHaveLength(MAX_FIELD_CHARS);
    expect(fieldParameters('text', { A: 'a' })).toEqual({});
    expect(fieldParameters({ constructor: 1 }, { P: '__proto__' })).toEqual({});
  });
});
