import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Node } from 'yaml';
import { didYouMean } from './did-you-mean.js';
import type { WorkflowProblem } from './workflow-model.js';

/** A value in the file: where it is (`jobs.build.steps[0]`), its node, and the key that holds it. */
export interface Field {
  path: string;
  /** Null when the key has no value at all. */
  node: Node | null;
  key: Node | null;
}

/** Something read from the file, with the field to blame when a later check finds it wrong. */
export interface Located<T> {
  value: T;
  field: Field;
}

/**
 * Reads the YAML tree field by field. Every mismatch becomes a problem at the offending node and
 * the read returns undefined, so callers skip that value and go on finding further problems.
 */
export class YamlReader {
  readonly problems: WorkflowProblem[] = [];

  constructor(
    private readonly file: string,
    private readonly source: string,
    private readonly lines: LineCounter,
    private readonly doc: Document,
  ) {}

  /** Reports at an offset of the file. */
  reportAt(offset: number, message: string): void {
    const { line, col } = this.lines.linePos(offset);
    this.problems.push({ file: this.file, line, column: col, message });
  }

  /** Reports at the field's value, or its key when the value is missing. */
  report(field: Field, message: string): void {
    const node = field.node?.range && field.node.range[1] > field.node.range[0] ? field.node : (field.key ?? field.node);
    this.reportAt(node?.range?.[0] ?? 0, message);
  }

  /** Reports at the key of a field (an unknown or misplaced key). */
  reportKey(field: Field, message: string): void {
    this.reportAt((field.key ?? field.node)?.range?.[0] ?? 0, message);
  }

  /** Reports at `needle` inside the field's source text when it is there, else at the field. */
  reportWithin(field: Field, needle: string, message: string): void {
    const range = field.node?.range;
    const at = range ? this.source.indexOf(needle, range[0]) : -1;
    if (range && at >= 0 && at < range[1]) this.reportAt(at, message);
    else this.report(field, message);
  }

  /** The top of the document as a field. */
  root(): Field {
    return { path: '', node: this.resolve(this.doc.contents), key: null };
  }

  private resolve(node: unknown): Node | null {
    if (isAlias(node)) return this.resolve(node.resolve(this.doc));
    return (node as Node | null | undefined) ?? null;
  }

  isMissing(field: Field): boolean {
    return field.node === null || (isScalar(field.node) && field.node.value === null);
  }

  isMap(field: Field): boolean {
    return isMap(field.node);
  }

  isList(field: Field): boolean {
    return isSeq(field.node);
  }

  /** A map with any keys (env, jobs, matrix axes), in file order; undefined when not a map. */
  entries(field: Field, what = 'a map'): Field[] | undefined {
    if (!isMap(field.node)) {
      this.report(field, `${label(field)} must be ${what}`);
      return undefined;
    }
    return field.node.items.map((pair) => {
      const key = this.resolve(pair.key);
      const name = isScalar(key) ? String(key.value) : String(key);
      return { path: field.path ? `${field.path}.${name}` : name, node: this.resolve(pair.value), key };
    });
  }

  /** A map whose keys must be among `allowed`; unknown keys are reported. Returns fields by key. */
  map(field: Field, allowed: readonly string[], what = 'a map'): Map<string, Field> | undefined {
    const entries = this.entries(field, what);
    if (!entries) return undefined;
    const fields = new Map<string, Field>();
    for (const entry of entries) {
      const name = keyOf(entry);
      if (allowed.includes(name)) fields.set(name, entry);
      else this.reportKey(entry, `unknown key "${name}" ${field.path ? `in ${field.path}` : 'at the top level'}${didYouMean(name, allowed)}`);
    }
    return fields;
  }

  /** A list's items; undefined when not a list. */
  list(field: Field, what = 'a list'): Field[] | undefined {
    if (!isSeq(field.node)) {
      this.report(field, `${label(field)} must be ${what}`);
      return undefined;
    }
    return field.node.items.map((item, i) => ({ path: `${field.path}[${i}]`, node: this.resolve(item), key: null }));
  }

  /** A single value or a list of them, as a list of fields. */
  oneOrList(field: Field): Field[] {
    return isSeq(field.node) ? (this.list(field) ?? []) : [field];
  }

  /** Any scalar as text; numbers and booleans keep their spelling in the file (`1.10` stays `1.10`). */
  scalar(field: Field, what = 'a string'): string | undefined {
    const node = field.node;
    if (!isScalar(node) || node.value === null) {
      this.report(field, `${label(field)} must be ${what}`);
      return undefined;
    }
    return typeof node.value === 'string' ? node.value : (node.source ?? String(node.value));
  }

  /** A scalar, or empty text when the key has no value (`FOO:` in env). */
  optionalScalar(field: Field): string | undefined {
    return this.isMissing(field) && isScalar(field.node) ? '' : this.scalar(field);
  }

  /** A non-empty string. */
  string(field: Field, what = 'a non-empty string'): string | undefined {
    const node = field.node;
    if (!isScalar(node) || typeof node.value !== 'string' || node.value.trim() === '') {
      this.report(field, `${label(field)} must be ${what}`);
      return undefined;
    }
    return node.value;
  }

  /** One string or a list of strings. */
  strings(field: Field, what = 'a string or a list of strings'): Located<string>[] | undefined {
    const items = this.oneOrList(field);
    const values: Located<string>[] = [];
    for (const item of items) {
      const value = this.scalar(item, item === field ? what : 'a string');
      if (value === undefined) return undefined;
      values.push({ value, field: item });
    }
    return values;
  }

  boolean(field: Field): boolean | undefined {
    if (isScalar(field.node) && typeof field.node.value === 'boolean') return field.node.value;
    this.report(field, `${label(field)} must be true or false`);
    return undefined;
  }

  /** A whole number between min and max; `unit` completes the message ("minutes"). */
  integer(field: Field, min: number, max: number, unit = ''): number | undefined {
    const value = isScalar(field.node) ? field.node.value : undefined;
    if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return value;
    this.report(field, `${label(field)} must be a whole number${unit ? ` of ${unit}` : ''} between ${min} and ${max}`);
    return undefined;
  }

  /** Checks that the field's key is an identifier (job ids, matrix axes, inputs); reports it otherwise. */
  identifier(field: Field, what: string): boolean {
    const name = keyOf(field);
    if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(name)) return true;
    this.reportKey(field, `${what} "${name}" must start with a letter or _ and contain only letters, digits, _ and -`);
    return false;
  }

  /** A map of names to scalars (`env`); `value` reads each entry's value as text. */
  env(field: Field, value: (entry: Field) => string | undefined): Record<string, string> {
    const env: Record<string, string> = {};
    for (const entry of this.entries(field, 'a map of names to values') ?? []) {
      const name = keyOf(entry);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        this.reportKey(entry, `${field.path} has "${name}", which is not a valid environment variable name (letters, digits and _, not starting with a digit)`);
        continue;
      }
      const text = value(entry);
      if (text !== undefined) env[name] = text;
    }
    return env;
  }
}

/** The key a field was read under (its last path segment). */
export function keyOf(field: Field): string {
  return isScalar(field.key) ? String(field.key.value) : String(field.key);
}

function label(field: Field): string {
  return field.path || 'the workflow';
}
