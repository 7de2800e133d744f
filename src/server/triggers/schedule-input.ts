import { canonicalTimeZone, cronProblem, isTimeZone, nextFireAfter, parseOneOff, type MissedPolicy, type ScheduleSpec } from '../../domain/schedule-times.js';
import { checkParameters } from '../../domain/run-parameters.js';
import { AppError } from '../app-error.js';
import type { ScheduleFields } from '../store/trigger-store.js';

/** A schedule as the API takes it; on a change, what is not given stays. */
export interface ScheduleInput {
  cron?: string | undefined;
  at?: string | undefined;
  timezone?: string | undefined;
  description?: string | undefined;
  missed?: MissedPolicy | undefined;
  ref?: string | null | undefined;
  parameters?: Record<string, string> | undefined;
  enabled?: boolean | undefined;
}

export const NEW_SCHEDULE: ScheduleFields = { description: '', cron: null, timezone: 'UTC', at: null, missed: 'run-once', ref: null, parameters: {}, enabled: true, disabledReason: null, nextFireAt: null };

/**
 * A schedule's fields after `input` is applied to `current` (NEW_SCHEDULE for a new one): a cron
 * expression replaces a one-off time and the other way round. Its next fire time is computed from
 * `now` when its times change, when it is enabled, and for a new one; otherwise it stays (a fire
 * that is due is not dropped by a change of its description). New times start a schedule that
 * stopped by itself again. Refuses (400 `validation_failed`, each problem in `details`) both at
 * once, neither, a cron expression or time zone that is wrong, a one-off time it cannot read or
 * that has passed.
 */
export function applyScheduleInput(current: ScheduleFields, input: ScheduleInput, now: Date): ScheduleFields {
  const problems: { field: string; message: string }[] = [];
  if (input.cron !== undefined && input.at !== undefined) problems.push({ field: 'at', message: 'cannot be given with cron: give one of them' });
  const zone = input.timezone ?? current.timezone;
  const known = isTimeZone(zone);
  if (!known) problems.push({ field: 'timezone', message: `"${zone}" is not a time zone (like UTC or Europe/Berlin)` });
  const timezone = known ? canonicalTimeZone(zone) : zone;
  const cron = input.at !== undefined ? null : (input.cron?.trim() ?? current.cron);
  let at = input.cron !== undefined ? null : current.at;
  if (input.at !== undefined && known) {
    const read = parseOneOff(input.at, now, timezone);
    if ('problem' in read) problems.push({ field: 'at', message: read.problem });
    else if (read.at.getTime() < now.getTime() - 1000) problems.push({ field: 'at', message: `"${input.at}" (${read.at.toISOString()}) has passed already` });
    else at = read.at;
  }
  if (cron !== null && known) {
    const problem = cronProblem(cron, timezone);
    if (problem) problems.push({ field: 'cron', message: problem });
  }
  if (cron === null && at === null && input.at === undefined) problems.push({ field: 'cron', message: 'or at is required: cron for a cron expression, at for a one-off time' });
  // Reserved names are refused here; what the project's environments and secrets set, when a run starts.
  if (input.parameters) problems.push(...checkParameters(input.parameters, { inputs: null, protectedNames: new Map() }));
  if (problems.length > 0) throw new AppError('validation_failed', `The schedule: ${problems.map((p) => `${p.field} ${p.message}`).join('; ')}.`, problems);
  const spec = specOf({ cron, timezone, at });
  const timesGiven = input.cron !== undefined || input.at !== undefined || input.timezone !== undefined;
  const enabled = input.enabled ?? (timesGiven && current.disabledReason !== null ? true : current.enabled);
  const rearm = timesGiven || enabled !== current.enabled || current.nextFireAt === null;
  // A one-off time given now may be this very second ("now"); a stored one must still lie ahead.
  const nextFireAt = !enabled ? null : !rearm ? current.nextFireAt : 'at' in spec && input.at !== undefined ? spec.at : nextFireAfter(spec, now);
  if (enabled && nextFireAt === null) {
    throw new AppError('validation_failed', 'The schedule: at has passed already; give a new one-off time to enable it again.', [{ field: 'at', message: 'has passed already' }]);
  }
  return {
    description: input.description ?? current.description,
    cron,
    timezone,
    at,
    missed: input.missed ?? current.missed,
    ref: input.ref !== undefined ? input.ref : current.ref,
    parameters: input.parameters ?? current.parameters,
    enabled,
    disabledReason: enabled ? null : (input.enabled === false ? null : current.disabledReason),
    nextFireAt,
  };
}

/** When a schedule with these fields fires. */
export function specOf(fields: Pick<ScheduleFields, 'cron' | 'timezone' | 'at'>): ScheduleSpec {
  return fields.cron !== null ? { cron: fields.cron, timezone: fields.timezone } : { at: fields.at! };
}
