import type { CompiledWorkflow } from '../../pipeline/workflow-model.js';
import { AppError } from '../app-error.js';

/**
 * The parameters of a run started by hand: the workflow must say it may be (`on: manual`), its
 * inputs' defaults fill what is not given, and a required input or one with `options` is checked.
 * Parameters that are no input pass as they are (a script workflow declares none).
 */
export function manualParameters(plan: CompiledWorkflow, given: Record<string, string>): Record<string, string> {
  const manual = plan.on.manual;
  if (!manual) throw new AppError('not_manual');
  const parameters = { ...given };
  const problems: { field: string; message: string }[] = [];
  for (const [name, input] of Object.entries(manual.inputs)) {
    const value = parameters[name] ?? input.default ?? undefined;
    const field = `parameters.${name}`;
    if (value === undefined) {
      if (input.required) problems.push({ field, message: 'is required' });
      continue;
    }
    if (input.options && !input.options.includes(value)) problems.push({ field, message: `must be one of ${input.options.join(', ')}` });
    parameters[name] = value;
  }
  if (problems.length > 0) {
    throw new AppError('validation_failed', `The workflow's inputs: ${problems.map((p) => `${p.field} ${p.message}`).join('; ')}.`, problems);
  }
  return parameters;
}
