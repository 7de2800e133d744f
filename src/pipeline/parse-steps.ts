import type { JobContext } from './job-context.js';
import type { CompiledStep } from './workflow-model.js';
import { keyOf, type Field } from './yaml-reader.js';

const STEP_KEYS = ['name', 'run', 'env', 'timeout-minutes', 'continue-on-error', 'if'];

/** A step before matrix expansion; without a `name`, it is named after its command later. */
export type StepTemplate = Omit<CompiledStep, 'name'> & { name: string | null };

/** Reads `steps:`, a non-empty list of `run` steps. */
export function parseSteps(field: Field | undefined, jobField: Field, ctx: JobContext): StepTemplate[] {
  const { reader } = ctx;
  if (!field) {
    reader.reportKey(jobField, `${jobField.path} needs steps: a list of commands like - run: make test`);
    return [];
  }
  const items = reader.list(field, 'a list of steps like - run: make test') ?? [];
  if (reader.isList(field) && items.length === 0) reader.report(field, `${field.path} must list at least one step`);
  const steps: StepTemplate[] = [];
  for (const item of items) {
    const uses = reader.isMap(item) ? reader.entries(item)?.find((entry) => keyOf(entry) === 'uses') : undefined;
    if (uses) {
      reader.reportKey(uses, 'steps with `uses` are not supported; write the commands in `run` (the repository is checked out before the first step)');
      continue;
    }
    const fields = reader.map(item, STEP_KEYS, 'a map like {name: Test, run: make test}');
    if (!fields) continue;
    const runField = fields.get('run');
    if (!runField) reader.report(item, `${item.path} needs run: the commands to run`);
    const run = runField && ctx.text(runField, 'the commands to run (a string)');
    const nameField = fields.get('name');
    const env = fields.get('env');
    const continueOnError = fields.get('continue-on-error');
    steps.push({
      name: (nameField && ctx.text(nameField)) ?? null,
      run: run ?? '',
      env: env ? ctx.env(env) : {},
      timeoutSeconds: ctx.timeoutSeconds(fields.get('timeout-minutes')),
      continueOnError: (continueOnError && reader.boolean(continueOnError)) ?? false,
      if: ctx.condition(fields.get('if')),
    });
  }
  return steps;
}
