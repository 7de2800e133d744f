import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { secretKeyFit } from './secret-key-fit.js';

describe('secretKeyFit', () => {
  it('is opens-none exactly when something is sealed and nothing opens', () => {
    fc.assert(
      fc.property(fc.nat(1000), fc.nat(1000), (a, b) => {
        const [opened, sealed] = a <= b ? [a, b] : [b, a];
        const fit = secretKeyFit(sealed, opened);
        expect(fit === 'opens-none').toBe(sealed > 0 && opened === 0);
        expect(fit === 'nothing-sealed').toBe(sealed === 0);
        expect(fit === 'opens-all').toBe(sealed > 0 && opened === sealed);
      }),
    );
  });
});
