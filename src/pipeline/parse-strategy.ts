import { expandMatrix, type MatrixCombination, type MatrixSpec } from './expand-matrix.js';
import { keyOf, type Field, type Located, type YamlReader } from './yaml-reader.js';

/** GitHub's limit: more instances than this is almost certainly a mistake. */
const MAX_MATRIX_INSTANCES = 256;

export interface Strategy {
  /** The expanded combinations, or null when the job has no matrix. */
  combinations: MatrixCombination[] | null;
  /** Every key a combination may have: the axes, then the keys `include` adds. */
  matrixKeys: string[] | null;
  maxParallel: number | null;
  failFast: boolean;
}

/** Reads `strategy:` and expands its matrix; problems leave `combinations` null. */
export function parseStrategy(field: Field | undefined, reader: YamlReader): Strategy {
  const strategy: Strategy = { combinations: null, matrixKeys: null, maxParallel: null, failFast: true };
  const fields = field && reader.map(field, ['matrix', 'max-parallel', 'fail-fast']);
  if (!fields) return strategy;
  const maxParallel = fields.get('max-parallel');
  if (maxParallel) strategy.maxParallel = reader.integer(maxParallel, 1, MAX_MATRIX_INSTANCES) ?? null;
  const failFast = fields.get('fail-fast');
  if (failFast) strategy.failFast = reader.boolean(failFast) ?? true;
  const matrix = fields.get('matrix');
  const before = reader.problems.length;
  const spec = matrix && readMatrix(matrix, reader);
  if (!spec) return strategy;
  // Known even when the matrix has problems, so its uses are not reported as well.
  strategy.matrixKeys = [...new Set([...spec.axes.map(([axis]) => axis), ...spec.include.flatMap((entry) => Object.keys(entry))])];
  if (reader.problems.length > before) return strategy;
  const combinations = expandMatrix(spec);
  if (combinations.length === 0) reader.report(matrix, `${matrix.path} has no combinations left (exclude removes them all)`);
  else if (combinations.length > MAX_MATRIX_INSTANCES) reader.report(matrix, `${matrix.path} expands to ${combinations.length} jobs; at most ${MAX_MATRIX_INSTANCES} are allowed`);
  else strategy.combinations = combinations;
  return strategy;
}

/** Reads the matrix; problems are reported, and the spec is returned as far as it could be read. */
function readMatrix(field: Field, reader: YamlReader): MatrixSpec | undefined {
  const entries = reader.entries(field, 'a map of axes (os: [linux, mac]) with optional include and exclude lists');
  if (!entries) return undefined;
  const spec: MatrixSpec = { axes: [], include: [], exclude: [] };
  let excludes: Located<MatrixCombination>[] = [];
  for (const entry of entries) {
    const name = keyOf(entry);
    if (name === 'include') spec.include = readCombinations(entry, reader).map((c) => c.value);
    else if (name === 'exclude') excludes = readCombinations(entry, reader);
    else if (reader.identifier(entry, 'matrix axis')) spec.axes.push([name, readAxis(entry, reader)]);
  }
  const axes = spec.axes.map(([axis]) => axis);
  for (const exclude of excludes) {
    const unknown = Object.keys(exclude.value).filter((key) => !axes.includes(key));
    if (unknown.length > 0) reader.report(exclude.field, `${exclude.field.path} names "${unknown.join('", "')}", which is not an axis of the matrix (axes: ${axes.join(', ') || 'none'})`);
  }
  spec.exclude = excludes.map((e) => e.value);
  if (spec.axes.length === 0 && spec.include.length === 0) reader.report(field, `${field.path} needs at least one axis (os: [linux, mac]) or include entry`);
  return spec;
}

function readAxis(field: Field, reader: YamlReader): string[] {
  const items = reader.list(field, 'a list of values');
  if (items?.length === 0) reader.report(field, `${field.path} must list at least one value`);
  const values: string[] = [];
  for (const item of items ?? []) {
    const value = reader.scalar(item, 'a string, number or boolean');
    if (value !== undefined && values.includes(value)) reader.report(item, `${field.path} lists "${value}" twice`);
    else if (value !== undefined) values.push(value);
  }
  return values;
}

function readCombinations(field: Field, reader: YamlReader): Located<MatrixCombination>[] {
  return (reader.list(field, 'a list of maps (- os: linux)') ?? []).map((item) => {
    const combination: MatrixCombination = {};
    for (const entry of reader.entries(item, 'a map of axis values') ?? []) {
      const value = reader.scalar(entry, 'a string, number or boolean');
      if (value !== undefined) combination[keyOf(entry)] = value;
    }
    return { value: combination, field: item };
  });
}
