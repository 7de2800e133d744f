export type MatrixCombination = Record<string, string>;

/** A job's `strategy.matrix`, its values already strings. */
export interface MatrixSpec {
  /** The axes in file order, each with its values. */
  axes: [string, string[]][];
  include: MatrixCombination[];
  exclude: MatrixCombination[];
}

const matches = (combination: MatrixCombination, partial: MatrixCombination, keys: Iterable<string>) =>
  [...keys].every((key) => combination[key] === partial[key]);

/**
 * Expands a matrix the way GitHub Actions does: the cartesian product of the axes, minus every
 * combination an `exclude` entry matches (on the keys it names), then each `include` entry
 * extends every product combination it agrees with on the original axes (later entries may
 * overwrite values added by earlier ones, never original values); an entry that extends
 * nothing becomes a combination of its own. A combination that repeats another is dropped: each
 * names one job of the run.
 */
export function expandMatrix(spec: MatrixSpec): MatrixCombination[] {
  let product: MatrixCombination[] = spec.axes.length > 0 ? [{}] : [];
  for (const [axis, values] of spec.axes) product = product.flatMap((combination) => values.map((value) => ({ ...combination, [axis]: value })));
  product = product.filter((combination) => !spec.exclude.some((entry) => matches(combination, entry, Object.keys(entry))));
  const axes = spec.axes.map(([axis]) => axis);
  const added: MatrixCombination[] = [];
  for (const entry of spec.include) {
    const original = Object.keys(entry).filter((key) => axes.includes(key));
    const extended = product.filter((combination) => matches(combination, entry, original));
    for (const combination of extended) Object.assign(combination, entry);
    if (extended.length === 0) added.push({ ...entry });
  }
  const seen = new Set<string>();
  return [...product, ...added].filter((combination) => {
    const id = JSON.stringify(Object.entries(combination).sort(([a], [b]) => (a < b ? -1 : 1)));
    return !seen.has(id) && seen.add(id);
  });
}
