import type { JobContext } from './job-context.js';
import type { CompiledWorkflow } from './workflow-model.js';
import type { Field } from './yaml-reader.js';

/** Reads `concurrency:`, a group name or `{group, cancel-in-progress, supersede}`. */
export function parseConcurrency(field: Field | undefined, ctx: JobContext): CompiledWorkflow['concurrency'] {
  if (!field) return null;
  if (!ctx.reader.isMap(field)) {
    const group = ctx.text(field, 'a group name or {group, cancel-in-progress, supersede}');
    return group === undefined ? null : { group, cancelInProgress: false };
  }
  const fields = ctx.reader.map(field, ['group', 'cancel-in-progress', 'supersede']);
  const groupField = fields?.get('group');
  if (fields && !groupField) ctx.reader.report(field, `${field.path} needs a group name`);
  const group = groupField && ctx.text(groupField);
  const flag = (key: string) => {
    const f = fields?.get(key);
    return (f && ctx.reader.boolean(f)) ?? false;
  };
  const cancelInProgress = flag('cancel-in-progress');
  const supersede = flag('supersede');
  if (cancelInProgress && supersede) ctx.reader.report(fields!.get('supersede')!, `${field.path} takes cancel-in-progress or supersede, not both`);
  if (group === undefined) return null;
  return supersede && !cancelInProgress ? { group, cancelInProgress, supersede } : { group, cancelInProgress };
}
