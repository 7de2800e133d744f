import { checkCondition } from './condition.js';
import { checkExpressions } from './substitute-matrix.js';
import type { Field, Located, YamlReader } from './yaml-reader.js';

/**
 * Reads texts that are expanded per matrix instance (in a job, or the workflow's `env` with no
 * matrix), reporting every `${{ }}` that cannot be expanded.
 */
export class JobContext {
  constructor(
    readonly reader: YamlReader,
    /** The keys of the job's matrix, null when it has none. */
    readonly matrixKeys: readonly string[] | null,
  ) {}

  /** A scalar whose `${{ matrix.* }}` are expanded later. */
  text(field: Field, what?: string): string | undefined {
    return this.checked(field, this.reader.scalar(field, what));
  }

  /** A text with its place in the file, for checks after matrix expansion. */
  located(field: Field, what?: string): Located<string> | undefined {
    const value = this.text(field, what);
    return value === undefined ? undefined : { value, field };
  }

  /** An `env` map whose values are expanded texts (an empty value is the empty string). */
  env(field: Field): Record<string, string> {
    return this.reader.env(field, (entry) => this.checked(entry, this.reader.optionalScalar(entry)));
  }

  /** `timeout-minutes` as seconds. */
  timeoutSeconds(field: Field | undefined): number | null {
    const minutes = field && this.reader.integer(field, 1, 10080, 'minutes');
    return minutes ? minutes * 60 : null;
  }

  /** An `if` expression (checked, evaluated when the job or step is about to start). */
  condition(field: Field | undefined): string | null {
    const source = field && this.reader.scalar(field, 'an expression');
    if (source === undefined) return null;
    const error = checkCondition(source);
    if (error) this.reader.report(field!, `${field!.path}: ${error}`);
    return source.trim();
  }

  private checked(field: Field, value: string | undefined): string | undefined {
    for (const problem of checkExpressions(value ?? '', this.matrixKeys)) this.reader.reportWithin(field, problem.expression, `${field.path} ${problem.message}`);
    return value;
  }
}
