/**
 * The lines a runner writes into a job's log around each step, and the header the server writes
 * before each job in a run's log (documented in docs/api.md, "Logs"):
 *
 *     ##[furrow 0123456789abcdef] start STEP_ID: NAME
 *     ##[furrow 0123456789abcdef] end STEP_ID: STATUS in 1.25s (REASON)
 *     ##[furrow job JOB_ID 1234] NAME
 *
 * A step marker carries the job's key: 16 hex digits the runner draws when the job starts and
 * never hands to the job's processes, so output that merely looks like a marker is told apart by
 * its key (the first line of every job's log is a marker, which names the key). A job header names
 * the exact number of bytes of that job's log that follow it, so a reader skips the log whole and
 * nothing inside it can pass for the next header.
 */

export const MARKER_PREFIX = '##[furrow ';

export type StepEndStatus = 'succeeded' | 'failed' | 'canceled' | 'timed_out';

export interface StepEnd {
  status: StepEndStatus;
  /** The step's exit code, null when it ended by a signal or the runner could not run it. */
  exitCode: number | null;
  /** The signal that ended it, if any. */
  signal?: string | null | undefined;
  durationMs: number;
  /** The timeout that ended it, when it timed out. */
  timedOutAfterSeconds?: number | null | undefined;
  /** Whether it was the job's timeout (not the step's own) that ended the step. */
  jobTimedOut?: boolean;
  /** Who or what canceled it, e.g. `canceled by ana@example.com`, when known. */
  cancelReason?: string | undefined;
}

/** Keeps a name on its one line: control characters (a newline, an escape) become spaces. */
const oneLine = (text: string) => text.replace(/\p{Cc}/gu, ' ');

/** `90` → `1.5 min`, `600` → `10 min`, `7200` → `2 h`, `45` → `45 s`. */
export function formatSeconds(seconds: number): string {
  if (seconds >= 3600 && seconds % 360 === 0) return `${seconds / 3600} h`;
  if (seconds >= 60 && seconds % 6 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

/**
 * Why a step ended, as a person reads it: `exit 1`, `killed by SIGKILL`, `timed out after 10 min`,
 * `canceled` (or who canceled it: `canceled by ana@example.com`), or `error, see above` when the
 * runner could not run it (its message is logged).
 */
export function endReason(end: StepEnd): string {
  if (end.status === 'timed_out') return `${end.jobTimedOut ? 'the job ' : ''}timed out after ${formatSeconds(end.timedOutAfterSeconds ?? 0)}`;
  if (end.status === 'canceled') return end.cancelReason ? oneLine(end.cancelReason) : 'canceled';
  if (end.exitCode !== null) return `exit ${end.exitCode}`;
  return end.signal ? `killed by ${end.signal}` : 'error, see above';
}

export function stepStartLine(key: string, stepId: string, name: string): string {
  return `${MARKER_PREFIX}${key}] start ${stepId}: ${oneLine(name)}\n`;
}

export function stepEndLine(key: string, stepId: string, end: StepEnd): string {
  return `${MARKER_PREFIX}${key}] end ${stepId}: ${end.status} in ${(end.durationMs / 1000).toFixed(2)}s (${endReason(end)})\n`;
}

export function jobHeaderLine(jobId: string, logBytes: number, name: string): string {
  return `${MARKER_PREFIX}job ${jobId} ${logBytes}] ${oneLine(name)}\n`;
}

export type LogMarker =
  | { kind: 'start'; key: string; stepId: string; name: string }
  | { kind: 'end'; key: string; stepId: string; status: StepEndStatus; durationSeconds: number; reason: string }
  | { kind: 'job'; jobId: string; logBytes: number; name: string };

const STEP = /^##\[furrow ([0-9a-f]{16})\] (?:start (\S+): (.*)|end (\S+): (succeeded|failed|canceled|timed_out) in (\d+\.\d\d)s \((.*)\))$/;
const JOB = /^##\[furrow job (\S+) (\d+)\] (.*)$/;

/** Reads one log line (without its newline) as a marker; undefined when it is none. */
export function parseMarker(line: string): LogMarker | undefined {
  if (!line.startsWith(MARKER_PREFIX)) return undefined;
  const job = JOB.exec(line);
  if (job) return { kind: 'job', jobId: job[1]!, logBytes: Number(job[2]), name: job[3]! };
  const step = STEP.exec(line);
  if (!step) return undefined;
  if (step[2] !== undefined) return { kind: 'start', key: step[1]!, stepId: step[2], name: step[3]! };
  return { kind: 'end', key: step[1]!, stepId: step[4]!, status: step[5] as StepEndStatus, durationSeconds: Number(step[6]), reason: step[7]! };
}
