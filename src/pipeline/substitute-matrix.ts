import { didYouMean } from './did-you-mean.js';

const EXPRESSION = /\$\{\{(.*?)\}\}/gs;
const MATRIX_REF = /^\s*matrix\.([A-Za-z_][A-Za-z0-9_-]*)\s*$/;

/** Replaces each `${{ matrix.NAME }}` with the instance's value (empty when it has none). */
export function substituteMatrix(text: string, matrix: Record<string, string> | null): string {
  if (!matrix) return text;
  return text.replace(EXPRESSION, (whole, inner: string) => {
    const ref = MATRIX_REF.exec(inner);
    return ref ? (matrix[ref[1]!] ?? '') : whole;
  });
}

/** Whether the text uses `${{ matrix.* }}` (so each matrix instance gets its own value). */
export function referencesMatrix(text: string): boolean {
  return [...text.matchAll(EXPRESSION)].some((m) => MATRIX_REF.test(m[1]!));
}

/** An expression that cannot be expanded: its source text (to locate it) and what is wrong. */
export interface ExpressionProblem {
  expression: string;
  message: string;
}

/**
 * Checks the `${{ }}` expressions of a text that is expanded when the workflow is compiled:
 * only `matrix.*` with a key of the job's matrix (`matrixKeys`, null when it has no matrix).
 */
export function checkExpressions(text: string, matrixKeys: readonly string[] | null): ExpressionProblem[] {
  const problems: ExpressionProblem[] = [];
  for (const [expression, inner] of text.matchAll(EXPRESSION)) {
    const ref = MATRIX_REF.exec(inner!);
    if (ref && !matrixKeys) {
      problems.push({ expression, message: `uses ${expression}, but there is no strategy.matrix here` });
    } else if (ref && !matrixKeys!.includes(ref[1]!)) {
      const hint = didYouMean(ref[1]!, matrixKeys!);
      problems.push({ expression, message: `uses ${expression}, but the matrix has no "${ref[1]}"${hint.startsWith(' (did') ? hint : ` (matrix: ${matrixKeys!.join(', ')})`}` });
    } else if (!ref) {
      problems.push({ expression, message: `uses ${expression}, which is not expanded: ${advice(inner!.trim())}` });
    }
  }
  const unclosed = text.replace(EXPRESSION, '').indexOf('${{');
  if (unclosed >= 0) problems.push({ expression: '${{', message: 'has "${{" without a closing "}}"' });
  return problems;
}

function advice(inner: string): string {
  if (/^secrets\./.test(inner)) return 'secrets reach the job as environment variables (or an ssh-agent); read them as $NAME in scripts';
  return 'only ${{ matrix.* }} is expanded here; use the environment variables FURROW_BRANCH, FURROW_SHA, FURROW_REF, FURROW_EVENT … in scripts (see docs/workflows.md)';
}
