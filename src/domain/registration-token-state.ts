/** What the store knows about a registration token when a runner presents it. */
export interface RegistrationTokenFacts {
  revoked: boolean;
  /** Its expiry time has passed (by the database's clock). */
  expired: boolean;
  uses: number;
  maxUses: number;
}

export type RegistrationTokenState = 'usable' | 'revoked' | 'expired' | 'used_up';

/**
 * Whether a registration token may register one more runner, and if not, why. A revoked token
 * says so even when it has also expired or been used up: revoking is what its owner did last.
 */
export function registrationTokenState(t: RegistrationTokenFacts): RegistrationTokenState {
  if (t.revoked) return 'revoked';
  if (t.expired) return 'expired';
  if (t.uses >= t.maxUses) return 'used_up';
  return 'usable';
}
