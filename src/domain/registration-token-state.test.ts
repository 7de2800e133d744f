import fc from 'fast-check';
import { describe, it } from 'vitest';
import { registrationTokenState } from './registration-token-state.js';

describe('registration token state', () => {
  const facts = fc.record({ revoked: fc.boolean(), expired: fc.boolean(), uses: fc.nat(20), maxUses: fc.integer({ min: 1, max: 20 }) });

  it('is usable exactly when it is neither revoked nor expired and has a use left', () => {
    fc.assert(fc.property(facts, (t) => (registrationTokenState(t) === 'usable') === (!t.revoked && !t.expired && t.uses < t.maxUses)));
  });

  it('names revocation first, then expiry, then exhaustion', () => {
    fc.assert(
      fc.property(facts, (t) => {
        const state = registrationTokenState(t);
        if (t.revoked) return state === 'revoked';
        if (t.expired) return state === 'expired';
        return state === (t.uses >= t.maxUses ? 'used_up' : 'usable');
      }),
    );
  });
});
