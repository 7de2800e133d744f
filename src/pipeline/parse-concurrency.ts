import type { JobContext } from './job-context.js';
import type { CompiledWorkflow } from './workflow-model.js';
import type { Field } from './yaml-reader.js';

/** Reads `concurrency:`, a group name or `{group, cancel-in-progress}`. */
export function parseConcurrency(field: Field | undefined, ctx: JobContext): CompiledWorkflow['concurrency'] {
  if (!field) return null;
  if (!ctx.reader.isMap(field)) {
    const group = ctx.text(field, 'a group name or {group, cancel-in-progress}');
    return group === undefined ? null : { group, cancelInProgress: false };
  }
  const fields = ctx.reader.map(field, ['group', 'cancel-in-progress']);
  const groupField = fields?.get('group');
  if (fields && !groupField) ctx.reader.report(field, `${field.path} needs a group name`);
  const group = groupField && ctx.text(groupField);
  const cancel = fields?.get('cancel-in-progress');
  return group === undefined ? null : { group, cancelInProgress: (cancel && ctx.reader.boolean(cancel)) ?? false };
}
