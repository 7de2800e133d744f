import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { endReason, formatSeconds, jobHeaderLine, parseMarker, stepEndLine, stepStartLine, type StepEndStatus } from './log-markers.js';

const key = '0123456789abcdef';
const read = (line: string) => parseMarker(line.replace(/\n$/, ''));

describe('log markers', () => {
  it('reads back every marker it writes, on one line, whatever the names', () => {
    const status = fc.constantFrom<StepEndStatus>('succeeded', 'failed', 'canceled', 'timed_out');
    fc.assert(
      fc.property(fc.uuid(), fc.string(), status, fc.integer({ min: 0, max: 10 ** 8 }), fc.option(fc.integer({ min: 0, max: 255 })), (id, name, s, ms, exitCode) => {
        const start = stepStartLine(key, id, name);
        expect(start.indexOf('\n')).toBe(start.length - 1);
        expect(read(start)).toEqual({ kind: 'start', key, stepId: id, name: name.replace(/\p{Cc}/gu, ' ') });
        const end = { status: s, exitCode, durationMs: ms, timedOutAfterSeconds: 60 };
        const line = stepEndLine(key, id, end);
        expect(line.indexOf('\n')).toBe(line.length - 1);
        expect(read(line)).toEqual({ kind: 'end', key, stepId: id, status: s, durationSeconds: Number((ms / 1000).toFixed(2)), reason: endReason(end) });
        const header = jobHeaderLine(id, ms, name);
        expect(read(header)).toEqual({ kind: 'job', jobId: id, logBytes: ms, name: name.replace(/\p{Cc}/gu, ' ') });
      }),
    );
  });

  it('says why a step ended as a person would', () => {
    const base = { durationMs: 0, exitCode: null };
    expect(endReason({ ...base, status: 'failed', exitCode: 1 })).toBe('exit 1');
    expect(endReason({ ...base, status: 'failed', signal: 'SIGKILL' })).toBe('killed by SIGKILL');
    expect(endReason({ ...base, status: 'timed_out', timedOutAfterSeconds: 600 })).toBe('timed out after 10 min');
    expect(endReason({ ...base, status: 'timed_out', timedOutAfterSeconds: 3600, jobTimedOut: true })).toBe('the job timed out after 1 h');
    expect(endReason({ ...base, status: 'canceled' })).toBe('canceled');
    expect(endReason({ ...base, status: 'canceled', cancelReason: 'canceled by ana@example.com' })).toBe('canceled by ana@example.com');
    expect(endReason({ ...base, status: 'canceled', cancelReason: 'a\nb' })).toBe('a b');
    expect(endReason({ ...base, status: 'failed' })).toBe('error, see above');
    expect([45, 90, 600, 5400, 7200, 100].map(formatSeconds)).toEqual(['45 s', '1.5 min', '10 min', '1.5 h', '2 h', '100 s']);
  });

  it('takes no other line for a marker', () => {
    for (const line of ['##[furrow 0123] start a: b', '##[furrow 0123456789ABCDEF] start a: b', ' ##[furrow 0123456789abcdef] start a: b', '##[furrow job x y] z', 'plain output']) {
      expect(parseMarker(line)).toBeUndefined();
    }
  });
});
