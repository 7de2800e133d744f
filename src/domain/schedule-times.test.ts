import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cronProblem, decideFire, nextFireAfter, ON_TIME_MS, parseOneOff, upcomingFires, type ScheduleSpec } from './schedule-times.js';

const at = (iso: string) => new Date(iso);
const isoOf = (d: Date | null) => d?.toISOString() ?? null;

describe('cronProblem', () => {
  it('takes 5 fields, 6 with seconds, and macros', () => {
    for (const cron of ['0 3 * * *', '*/5 * * * * *', '@daily', '@hourly', '0 0 * * MON-FRI', '0 9 1,15 * *', '0 0 ? * SUN']) expect(cronProblem(cron), cron).toBeUndefined();
  });

  it('names what is wrong: a value out of range, a count of fields, a time zone, a time that never comes', () => {
    expect(cronProblem('61 * * * *')).toMatch(/minute: 61/);
    expect(cronProblem('0 0 * * 8')).toMatch(/dayOfWeek/);
    expect(cronProblem('* * * *')).toBe('"* * * *" has 4 fields; write 5 (minute hour day month weekday), 6 with seconds first, or a macro such as @daily');
    expect(cronProblem('* * * * * * *')).toMatch(/has 7 fields/);
    expect(cronProblem('@reboot')).toBe('"@reboot" is not a macro Furrow knows (@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)');
    expect(cronProblem('@every 5s')).toMatch(/is not a macro Furrow knows/);
    expect(cronProblem('@DAILY')).toBeUndefined();
    expect(cronProblem('0 0 31 2 *')).toBe('"0 0 31 2 *" never fires');
    expect(cronProblem('0 3 * * *', 'Mars/Olympus')).toMatch(/not a time zone/);
  });
});

describe('fire times', () => {
  it('follow the time zone across DST: 03:00 Berlin is 01:00 UTC in summer and 02:00 in winter', () => {
    const spec: ScheduleSpec = { cron: '0 3 * * *', timezone: 'Europe/Berlin' };
    expect(upcomingFires(spec, at('2026-10-24T12:00:00Z'), 2).map(isoOf)).toEqual(['2026-10-25T02:00:00.000Z', '2026-10-26T02:00:00.000Z']);
    expect(upcomingFires(spec, at('2026-03-28T12:00:00Z'), 2).map(isoOf)).toEqual(['2026-03-29T01:00:00.000Z', '2026-03-30T01:00:00.000Z']);
  });

  it('fire a daily time that DST skips at the first time after it, and one it repeats once', () => {
    const at0230 = { cron: '30 2 * * *', timezone: 'Europe/Berlin' };
    expect(upcomingFires(at0230, at('2026-03-28T12:00:00Z'), 2).map(isoOf)).toEqual(['2026-03-29T01:00:00.000Z', '2026-03-30T00:30:00.000Z']);
    expect(upcomingFires(at0230, at('2026-10-24T12:00:00Z'), 2).map(isoOf)).toEqual(['2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z']);
  });

  it('are strictly after the given time, and a one-off has one', () => {
    const every10 = { cron: '*/10 * * * * *', timezone: 'UTC' };
    expect(isoOf(nextFireAfter(every10, at('2026-01-01T00:00:10Z')))).toBe('2026-01-01T00:00:20.000Z');
    const once = { at: at('2026-01-01T00:00:10Z') };
    expect(upcomingFires(once, at('2026-01-01T00:00:00Z'), 5).map(isoOf)).toEqual(['2026-01-01T00:00:10.000Z']);
    expect(nextFireAfter(once, at('2026-01-01T00:00:10Z'))).toBeNull();
  });
});

describe('decideFire', () => {
  const minutely: ScheduleSpec = { cron: '0 * * * * *', timezone: 'UTC' };
  const due = at('2026-01-01T10:00:00Z');

  it('fires a due time that is on time, and waits for the next', () => {
    expect(decideFire(minutely, due, at('2026-01-01T10:00:00.200Z'), 'skip')).toEqual({ fireFor: due, missed: false, next: at('2026-01-01T10:01:00Z') });
  });

  it('after downtime fires once, for the latest time that came, or skips, never a burst', () => {
    const now = at('2026-01-01T13:30:20Z');
    expect(decideFire(minutely, due, now, 'run-once')).toEqual({ fireFor: at('2026-01-01T13:30:00Z'), missed: true, next: at('2026-01-01T13:31:00Z') });
    expect(decideFire(minutely, due, now, 'skip')).toEqual({ fireFor: null, missed: true, next: at('2026-01-01T13:31:00Z') });
  });

  it('counts a fire as missed once the next time has come too, however short the interval', () => {
    const everySecond = { cron: '* * * * * *', timezone: 'UTC' };
    const d = decideFire(everySecond, due, at('2026-01-01T10:00:01.500Z'), 'run-once');
    expect(d).toEqual({ fireFor: at('2026-01-01T10:00:01Z'), missed: true, next: at('2026-01-01T10:00:02Z') });
  });

  it('fires a one-off once, late or not per policy, and leaves nothing next', () => {
    const once = { at: due };
    expect(decideFire(once, due, at('2026-01-01T10:00:05Z'), 'skip')).toEqual({ fireFor: due, missed: false, next: null });
    expect(decideFire(once, due, at('2026-01-02T10:00:00Z'), 'run-once')).toEqual({ fireFor: due, missed: true, next: null });
    expect(decideFire(once, due, at('2026-01-02T10:00:00Z'), 'skip')).toEqual({ fireFor: null, missed: true, next: null });
  });

  it('never fires for a time not yet come or one before the due time, and always moves past now', () => {
    const specs: ScheduleSpec[] = [minutely, { cron: '*/7 * * * * *', timezone: 'UTC' }, { cron: '30 2 * * *', timezone: 'Europe/Berlin' }, { cron: '@hourly', timezone: 'Asia/Kolkata' }];
    fc.assert(
      fc.property(fc.constantFrom(...specs), fc.integer({ min: 0, max: 3 * 86_400_000 }), fc.constantFrom('run-once' as const, 'skip' as const), (spec, lateMs, policy) => {
        const first = nextFireAfter(spec, at('2026-03-27T00:00:00Z'))!;
        const now = new Date(first.getTime() + lateMs);
        const d = decideFire(spec, first, now, policy);
        expect(d.next!.getTime()).toBeGreaterThan(now.getTime());
        if (d.fireFor) {
          expect(d.fireFor.getTime()).toBeGreaterThanOrEqual(first.getTime());
          expect(d.fireFor.getTime()).toBeLessThanOrEqual(now.getTime());
          // The fire is for a time the schedule has: the one after it is past it.
          expect(nextFireAfter(spec, d.fireFor)!.getTime()).toBeGreaterThan(now.getTime());
        }
        expect(d.missed).toBe(lateMs > ON_TIME_MS || nextFireAfter(spec, first)!.getTime() <= now.getTime());
        if (!d.missed) expect(d.fireFor).toEqual(first);
        if (d.missed && policy === 'skip') expect(d.fireFor).toBeNull();
      }),
      { numRuns: 300 },
    );
  });
});

describe('parseOneOff', () => {
  // A Thursday, 10:20:30.4 in Berlin (UTC+1 in winter).
  const now = at('2026-12-03T09:20:30.400Z');
  const read = (text: string, tz = 'Europe/Berlin') => {
    const r = parseOneOff(text, now, tz);
    return 'at' in r ? r.at.toISOString() : r.problem;
  };

  it('reads ISO dates in the time zone unless they carry an offset', () => {
    expect(read('2026-12-24T18:00')).toBe('2026-12-24T17:00:00.000Z');
    expect(read('2026-12-24 18:00:30')).toBe('2026-12-24T17:00:30.000Z');
    expect(read('2026-12-24')).toBe('2026-12-23T23:00:00.000Z');
    expect(read('2026-12-24T18:00Z')).toBe('2026-12-24T18:00:00.000Z');
    expect(read('2026-12-24T18:00+05:30')).toBe('2026-12-24T12:30:00.000Z');
    expect(read('2026-07-01T12:00')).toBe('2026-07-01T10:00:00.000Z');
  });

  it('reads at(1)-style forms relative to now', () => {
    expect(read('now')).toBe('2026-12-03T09:20:31.000Z');
    expect(read('now + 15 minutes')).toBe('2026-12-03T09:35:31.000Z');
    expect(read('now+2h')).toBe('2026-12-03T11:20:31.000Z');
    expect(read('NOW + 1 week')).toBe('2026-12-10T09:20:31.000Z');
    expect(read('now + 30 seconds')).toBe('2026-12-03T09:21:01.000Z');
    expect(read('tomorrow 02:00')).toBe('2026-12-04T01:00:00.000Z');
    expect(read('02:00 tomorrow')).toBe('2026-12-04T01:00:00.000Z');
    expect(read('today 18:00')).toBe('2026-12-03T17:00:00.000Z');
    expect(read('18:00')).toBe('2026-12-03T17:00:00.000Z');
    expect(read('09:00')).toBe('2026-12-04T08:00:00.000Z'); // passed today: tomorrow's
    expect(read('2:30pm')).toBe('2026-12-03T13:30:00.000Z');
    expect(read('9am')).toBe('2026-12-04T08:00:00.000Z');
    expect(read('noon')).toBe('2026-12-03T11:00:00.000Z');
    expect(read('midnight')).toBe('2026-12-03T23:00:00.000Z');
    expect(read('teatime tomorrow')).toBe('2026-12-04T15:00:00.000Z');
    expect(read('tomorrow 2:30 pm')).toBe('2026-12-04T13:30:00.000Z');
    expect(read('tomorrow')).toBe('2026-12-04T09:20:31.000Z');
    expect(read('18:00', 'America/New_York')).toBe('2026-12-03T23:00:00.000Z');
  });

  it('moves a time a DST change skips to the first one after it', () => {
    expect(read('2026-03-29T02:30')).toBe('2026-03-29T01:00:00.000Z');
  });

  it('says what it cannot read, and how to write it', () => {
    expect(read('next friday')).toMatch(/is not a time Furrow reads: write an ISO date/);
    expect(read('now + 5 fortnights')).toMatch(/"fortnights" is not a unit/);
    expect(read('now + 500 ms')).toMatch(/"ms" is not a unit/);
    expect(read('2026-02-30')).toMatch(/not a valid date/);
    expect(read('2027-02-30T10:00Z')).toMatch(/not a valid date/);
    expect(read('2027-04-31T10:00+02:00')).toMatch(/not a valid date/);
    expect(read('25:00')).toMatch(/not a valid time of day/);
    expect(read('13pm')).toMatch(/is not a time Furrow reads/);
    expect(read('today 08:00')).toMatch(/has passed already/);
    expect(read('today')).toMatch(/say which time today/);
    expect(read('18:00', 'Nowhere/City')).toMatch(/not a time zone/);
  });
});

describe('any text', () => {
  it('gets an answer and never an exception, as a cron expression and as a one-off time', () => {
    const piece = fc.constantFrom('*', '0', '61', '1-5', '*/0', '*/7', 'L', 'W', '#', '?', 'MON', 'now', '+', '9999', '0000', '-', ':', 'T', 'Z', 'am', 'tomorrow', '@daily', '1e9', '00', '12:00', '2026-02-29', '0000-01-01', '99999-01-01');
    const text = fc.oneof(fc.string({ maxLength: 40 }), fc.array(piece, { maxLength: 8 }).map((a) => a.join(' ')), fc.array(piece, { maxLength: 4 }).map((a) => a.join('')));
    fc.assert(
      fc.property(text, fc.constantFrom('UTC', 'Europe/Berlin', 'Pacific/Chatham'), (input, tz) => {
        const problem = cronProblem(input, tz);
        expect(problem === undefined || typeof problem === 'string').toBe(true);
        const read = parseOneOff(input, new Date('2026-06-01T12:00:00Z'), tz);
        expect('at' in read ? Number.isFinite(read.at.getTime()) : typeof read.problem === 'string').toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});
