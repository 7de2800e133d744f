import { Cron } from 'croner';

/** When a schedule fires: a cron expression in a time zone, or once at an instant. */
export type ScheduleSpec = { cron: string; timezone: string } | { at: Date };

/** What a schedule does with fire times that passed while no server could fire them. */
export type MissedPolicy = 'run-once' | 'skip';
export const MISSED_POLICIES: readonly MissedPolicy[] = ['run-once', 'skip'];

/**
 * How late a fire may still be on time: later than this (or once the next fire time has come
 * too), the fire was missed, and the schedule's missed policy decides.
 */
export const ON_TIME_MS = 60_000;

const cronOf = (cron: string, timezone: string) => new Cron(cron, { timezone, paused: true, mode: '5-or-6-parts' });

/** Whether `zone` is a time zone the platform knows (IANA names, `UTC`). */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** A known time zone as the platform spells it (`europe/berlin` is `Europe/Berlin`). */
export function canonicalTimeZone(zone: string): string {
  return new Intl.DateTimeFormat('en', { timeZone: zone }).resolvedOptions().timeZone;
}

/** The macros a cron expression may be (croner's, without @reboot, which no schedule can mean). */
const MACROS = ['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly'];

/**
 * What is wrong with a cron expression, or undefined: 5 fields (minute hour day month weekday),
 * 6 with seconds first, or a macro (`@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`).
 * One that can never fire (`0 0 31 2 *`) is wrong too.
 */
export function cronProblem(cron: string, timezone = 'UTC'): string | undefined {
  if (!isTimeZone(timezone)) return `"${timezone}" is not a time zone (like UTC or Europe/Berlin)`;
  const fields = cron.trim().split(/\s+/).length;
  if (cron.trim().startsWith('@') && !MACROS.includes(cron.trim().toLowerCase())) return `"${cron}" is not a macro Furrow knows (${MACROS.join(', ')})`;
  if (!cron.trim().startsWith('@') && fields !== 5 && fields !== 6) {
    return `"${cron}" has ${fields} field${fields === 1 ? '' : 's'}; write 5 (minute hour day month weekday), 6 with seconds first, or a macro such as @daily`;
  }
  let parsed: Cron;
  try {
    parsed = cronOf(cron.trim(), timezone);
  } catch (err) {
    const said = (err as Error).message.replace(/^CronPattern:\s*/, '').replace(/\.$/, '');
    return `"${cron}" is not a cron expression: ${said.charAt(0).toLowerCase()}${said.slice(1)}`;
  }
  if (!parsed.nextRun(new Date())) return `"${cron}" never fires`;
  return undefined;
}

/** The first fire time strictly after `after`, or null when there is none (a one-off's, after it). */
export function nextFireAfter(spec: ScheduleSpec, after: Date): Date | null {
  if ('at' in spec) return spec.at.getTime() > after.getTime() ? spec.at : null;
  return cronOf(spec.cron, spec.timezone).nextRun(after);
}

/** Up to `count` fire times after `after`, in order. */
export function upcomingFires(spec: ScheduleSpec, after: Date, count: number): Date[] {
  if ('at' in spec) return spec.at.getTime() > after.getTime() ? [spec.at] : [];
  return cronOf(spec.cron, spec.timezone).nextRuns(count, after);
}

/** The latest fire time at or before `now`, or null. */
function latestFireBy(spec: ScheduleSpec, now: Date): Date | null {
  if ('at' in spec) return spec.at.getTime() <= now.getTime() ? spec.at : null;
  // previousRuns looks strictly before a whole second: one second on takes `now` itself in.
  return cronOf(spec.cron, spec.timezone).previousRuns(1, new Date(now.getTime() + 1000))[0] ?? null;
}

/** What to do with a schedule whose fire time `due` has come. */
export interface FireDecision {
  /** The fire time to start a run for, or null: none (missed fires skipped). */
  fireFor: Date | null;
  /** Whether `due` was missed (the server was down, or too busy): then the policy decided. */
  missed: boolean;
  /** The next fire time to wait for; null: none (a one-off that is done). */
  next: Date | null;
}

/**
 * Decides a due fire. On time (less than ON_TIME_MS late, and the next fire time still ahead):
 * a run for `due`. Missed: with `run-once` one run, for the latest fire time that has come (never
 * a burst of the ones in between); with `skip`, none. Either way, the next fire time after `now`.
 */
export function decideFire(spec: ScheduleSpec, due: Date, now: Date, policy: MissedPolicy): FireDecision {
  const following = nextFireAfter(spec, due);
  const missed = now.getTime() - due.getTime() > ON_TIME_MS || (following !== null && following.getTime() <= now.getTime());
  if (!missed) return { fireFor: due, missed, next: following };
  const next = nextFireAfter(spec, now);
  return { fireFor: policy === 'run-once' ? (latestFireBy(spec, now) ?? due) : null, missed, next };
}

/** Seconds per unit of `now + N units`, under each name a unit goes by. */
const UNIT_SECONDS: ReadonlyMap<string, number> = new Map(
  (
    [
      [1, ['s', 'sec', 'secs', 'second', 'seconds']],
      [60, ['m', 'min', 'mins', 'minute', 'minutes']],
      [3600, ['h', 'hr', 'hrs', 'hour', 'hours']],
      [86_400, ['d', 'day', 'days']],
      [604_800, ['w', 'week', 'weeks']],
    ] as const
  ).flatMap(([seconds, names]) => names.map((n) => [n, seconds])),
);
const NAMED_TIMES: ReadonlyMap<string, [number, number]> = new Map([
  ['midnight', [0, 0]],
  ['noon', [12, 0]],
  ['teatime', [16, 0]],
]);

/** The calendar date and time of day of `instant` in `timezone`. */
function wallClock(instant: Date, timezone: string) {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-CA', { timeZone: timezone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' })
      .formatToParts(instant)
      .map((p) => [p.type, Number(p.value)]),
  );
  return { year: parts.year!, month: parts.month!, day: parts.day!, hour: parts.hour!, minute: parts.minute!, second: parts.second! };
}

/** Whether the date exists (in the years a schedule can mean) and the time is one of a day. */
function isWallTime(year: number, month: number, day: number, hour: number, minute: number, second: number): boolean {
  if (year < 1970 || year > 9999) return false;
  const probe = new Date(Date.UTC(year, month - 1, day));
  return probe.getUTCMonth() === month - 1 && probe.getUTCDate() === day && hour <= 23 && minute <= 59 && second <= 59;
}

/**
 * The instant of a wall-clock time in `timezone`; a time a DST change skips moves to the first
 * one after it, and one it repeats is taken the first time. Undefined for a date that does not exist.
 */
function instantOf(timezone: string, year: number, month: number, day: number, hour: number, minute: number, second: number): Date | undefined {
  if (!isWallTime(year, month, day, hour, minute, second)) return undefined;
  return new Cron(`${second} ${minute} ${hour} ${day} ${month} * ${year}`, { timezone, paused: true, mode: '7-part' }).nextRun(new Date(Date.UTC(year, month - 1, day) - 2 * 86_400_000)) ?? undefined;
}

/** The wall-clock date `days` after the one of `now` in `timezone`. */
function dayAfter(now: Date, timezone: string, days: number) {
  const { year, month, day } = wallClock(now, timezone);
  const d = new Date(Date.UTC(year, month - 1, day + days));
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
}

/** `14:30`, `2:30pm`, `9am`, `14:30:15`, or a named time: hour, minute, second. */
function timeOfDay(text: string): [number, number, number] | undefined {
  const named = NAMED_TIMES.get(text);
  if (named) return [...named, 0];
  const m = /^(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?\s*(am|pm)?$/.exec(text);
  if (!m || (m[2] === undefined && !m[4])) return undefined;
  let hour = Number(m[1]);
  if (m[4]) {
    if (hour < 1 || hour > 12) return undefined;
    hour = (hour % 12) + (m[4] === 'pm' ? 12 : 0);
  }
  return [hour, Number(m[2] ?? 0), Number(m[3] ?? 0)];
}

export type OneOffTime = { at: Date } | { problem: string };

/**
 * Reads a one-off time as at(1) would, with `now` and `timezone` for what is relative: an ISO
 * date or date and time (`2026-12-24`, `2026-12-24T18:00`, with or without an offset; without one
 * it is a time in `timezone`), `now`, `now + 15 minutes` (seconds, minutes, hours, days, weeks),
 * a time of day (`14:30`, `2:30pm`, `noon`, `midnight`, `teatime`: the next one to come), and
 * `today` or `tomorrow` before or after one (`tomorrow 02:00`; `tomorrow` alone is this time
 * tomorrow).
 */
export function parseOneOff(input: string, now: Date, timezone: string): OneOffTime {
  const text = input.trim().toLowerCase().replace(/\s+/g, ' ');
  const hint = 'write an ISO date and time (2026-12-24T18:00), "now + 15 minutes", "14:30", or "tomorrow 02:00"';
  if (!isTimeZone(timezone)) return { problem: `"${timezone}" is not a time zone (like UTC or Europe/Berlin)` };
  if (text === 'now') return { at: new Date(Math.ceil(now.getTime() / 1000) * 1000) };
  const relative = /^now ?\+ ?(\d{1,6}) ?([a-z]+)$/.exec(text);
  if (relative) {
    const seconds = UNIT_SECONDS.get(relative[2]!);
    if (!seconds) return { problem: `"${input}": "${relative[2]}" is not a unit; use seconds, minutes, hours, days or weeks` };
    return { at: new Date(Math.ceil(now.getTime() / 1000) * 1000 + Number(relative[1]) * seconds * 1000) };
  }
  const iso = /^(\d{4})-(\d{2})-(\d{2})(?:[t ](\d{2}):(\d{2})(?::(\d{2}))?(z|[+-]\d{2}:?\d{2})?)?$/.exec(text);
  if (iso) {
    const [, y, mo, d, h = '0', mi = '0', s = '0', offset] = iso;
    if (offset) {
      if (!isWallTime(Number(y), Number(mo), Number(d), Number(h), Number(mi), Number(s))) return { problem: `"${input}" is not a valid date and time` };
      const at = new Date(`${y}-${mo}-${d}T${h.padStart(2, '0')}:${mi}:${s.padStart(2, '0')}${offset === 'z' ? 'Z' : offset.replace(/^([+-]\d{2})(\d{2})$/, '$1:$2')}`);
      return Number.isNaN(at.getTime()) ? { problem: `"${input}" is not a valid date and time` } : { at };
    }
    const at = instantOf(timezone, Number(y), Number(mo), Number(d), Number(h), Number(mi), Number(s));
    return at ? { at } : { problem: `"${input}" is not a valid date and time` };
  }
  const words = text.split(' ');
  const dayWord = words.find((w) => w === 'today' || w === 'tomorrow');
  const rest = words.filter((w) => w !== dayWord).join(' ');
  if (dayWord && rest === '') {
    return dayWord === 'today' ? { problem: `"${input}": say which time today, such as "today 18:00"` } : { at: new Date(Math.ceil(now.getTime() / 1000) * 1000 + 86_400_000) };
  }
  const time = timeOfDay(rest);
  if (!time) return { problem: `"${input}" is not a time Furrow reads: ${hint}` };
  const [hour, minute, second] = time;
  const on = (days: number) => {
    const { year, month, day } = dayAfter(now, timezone, days);
    return instantOf(timezone, year, month, day, hour, minute, second);
  };
  const at = dayWord === 'tomorrow' ? on(1) : on(0);
  if (!at) return { problem: `"${input}" is not a valid time of day` };
  if (dayWord === 'today' && at.getTime() <= now.getTime()) return { problem: `"${input}" has passed already` };
  if (!dayWord && at.getTime() <= now.getTime()) return { at: on(1)! };
  return { at };
}
