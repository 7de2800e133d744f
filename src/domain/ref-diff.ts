import type { RefChange } from './forge-event.js';

/**
 * How the refs of a repository changed between two looks (ref name → commit): each ref added,
 * moved or gone, sorted by name. The paths are not known from refs alone.
 */
export function diffRefs(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>): RefChange[] {
  const changes: RefChange[] = [];
  for (const [ref, commit] of after) {
    const was = before.get(ref);
    if (was === undefined) changes.push({ ref, type: 'added', before: null, after: commit, paths: null });
    else if (was !== commit) changes.push({ ref, type: 'changed', before: was, after: commit, paths: null });
  }
  for (const [ref, commit] of before) if (!after.has(ref)) changes.push({ ref, type: 'removed', before: commit, after: null, paths: [] });
  return changes.sort((a, b) => (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0));
}

/**
 * When to poll a repository next: after the interval, jittered by ±10% (`random` in [0, 1)) so
 * that repositories added together spread out; after failures, the interval doubles with each
 * (up to an hour, or the interval when that is longer).
 */
export function nextPollDelaySeconds(intervalSeconds: number, failures: number, random: number): number {
  const base = failures === 0 ? intervalSeconds : Math.min(Math.max(3600, intervalSeconds), intervalSeconds * 2 ** Math.min(failures, 12));
  return base * (0.9 + 0.2 * random);
}
