/** Edit distance (insertions, deletions, substitutions), ignoring letter case. */
function distance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const row = [i];
    for (let j = 1; j <= y.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[y.length]!;
}

/**
 * The known word a mistyped one most likely meant (`timeout` → `timeoutSeconds` is too far;
 * `sript` → `script` is not): the nearest within a third of its length (at least 2 edits), or
 * one that starts with it; undefined when none is close.
 */
export function closestWord(word: string, known: readonly string[]): string | undefined {
  let best: { word: string; d: number } | undefined;
  for (const k of known) {
    const d = distance(word, k);
    if (!best || d < best.d) best = { word: k, d };
  }
  if (best && best.d <= Math.max(2, Math.floor(word.length / 3))) return best.word;
  return word.length >= 3 ? known.find((k) => k.toLowerCase().startsWith(word.toLowerCase())) : undefined;
}
