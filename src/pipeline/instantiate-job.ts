import type { JobTemplate } from './parse-job.js';
import { referencesMatrix, substituteMatrix } from './substitute-matrix.js';
import type { CompiledJob, CompiledWorkflow } from './workflow-model.js';

const STEP_NAME_LENGTH = 60;

/**
 * The jobs a template runs as: itself, or one per matrix combination, with `${{ matrix.* }}`
 * expanded; the workflow's `env` and `concurrency` are folded in as the job's defaults.
 */
export function instantiateJob(template: JobTemplate, workflow: Pick<CompiledWorkflow, 'env' | 'concurrency'>): CompiledJob[] {
  return (template.strategy.combinations ?? [null]).map((matrix) => {
    const sub = (text: string) => substituteMatrix(text, matrix);
    const subEnv = (env: Record<string, string>) => Object.fromEntries(Object.entries(env).map(([k, v]) => [k, sub(v)]));
    const values = matrix ? Object.values(matrix) : [];
    const name = template.name ?? template.id;
    return {
      id: template.id,
      key: matrix ? `${template.id} (${Object.entries(matrix).map(([k, v]) => `${k}=${v}`).join(', ')})` : template.id,
      name: matrix && !referencesMatrix(name) ? `${name} (${values.join(', ')})` : sub(name),
      needs: [...new Set(template.needs.map((n) => n.value))],
      runsOn: template.runsOn.map((label) => sub(label.value)),
      if: template.if,
      matrix,
      env: { ...workflow.env, ...subEnv(template.env) },
      steps: template.steps.map((step) => {
        const run = sub(step.run);
        return { ...step, name: step.name === null ? defaultStepName(run) : sub(step.name), run, env: subEnv(step.env) };
      }),
      timeoutSeconds: template.timeoutSeconds,
      continueOnError: template.continueOnError,
      retry: template.retry && { count: template.retry.count, on: [...template.retry.on] },
      image: template.image === null ? null : sub(template.image.value),
      environment: template.environment === null ? null : sub(template.environment),
      concurrency: template.concurrency ? { ...template.concurrency, group: sub(template.concurrency.group) } : workflow.concurrency,
      maxParallel: template.strategy.maxParallel,
      // Only matrix instances have siblings to cancel.
      failFast: matrix !== null && template.strategy.failFast,
      checkout: { ...template.checkout },
      upload: template.artifacts.upload.map((u) => ({ name: sub(u.name.value), paths: u.paths.map((p) => sub(p.value)) })),
      download: template.artifacts.download.map((d) => ({ name: sub(d.name.value), path: sub(d.path.value) })),
    };
  });
}

/** A step without a name is named after the first line of its command. */
function defaultStepName(run: string): string {
  const line = run.trim().split('\n')[0]!.trim();
  return line.length > STEP_NAME_LENGTH ? `${line.slice(0, STEP_NAME_LENGTH - 1)}…` : line;
}
