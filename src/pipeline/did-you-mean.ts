/** Edit distance (insertions, deletions, substitutions, adjacent swaps) between two words. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The hint for a misspelt name: ` (did you mean "steps"?)` when one candidate is close (a third of
 * its length, at least one edit), otherwise ` (allowed: a, b, c)` so the reader sees the choices.
 */
export function didYouMean(word: string, candidates: readonly string[]): string {
  let best: { candidate: string; cost: number } | undefined;
  for (const candidate of candidates) {
    const cost = distance(word.toLowerCase(), candidate.toLowerCase());
    if (cost <= Math.max(1, Math.floor(candidate.length / 3)) && (!best || cost < best.cost)) best = { candidate, cost };
  }
  if (best) return ` (did you mean "${best.candidate}"?)`;
  return candidates.length > 0 ? ` (allowed: ${candidates.join(', ')})` : '';
}
