/**
 * How the instance's secret key fits what is sealed in the database. `opens-none` — values are
 * sealed and the key opens none of them — almost certainly means the wrong key, not lost values:
 * rekeying then would throw away every deploy key that the right key still opens.
 */
export type SecretKeyFit = 'nothing-sealed' | 'opens-all' | 'opens-some' | 'opens-none';

export function secretKeyFit(sealed: number, opened: number): SecretKeyFit {
  if (sealed === 0) return 'nothing-sealed';
  if (opened === 0) return 'opens-none';
  return opened >= sealed ? 'opens-all' : 'opens-some';
}
