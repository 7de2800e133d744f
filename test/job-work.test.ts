import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load-config.js';
import { parseMarker } from '../src/domain/log-markers.js';
import { ShellExecutor } from '../src/runner/executors/shell-executor.js';
import { ensureJobUser, runsAsRoot, slotUserName, type JobUser } from '../src/runner/job-user.js';
import { runJobWork } from '../src/runner/job-work.js';
import { MaskedOutput } from '../src/runner/masked-output.js';
import { collectOutput, makeJob, stepSpec, withPreparedJob } from './helpers/executor-job.js';

let dir: string;
let user: JobUser | undefined;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'furrow-work-'));
  await chmod(dir, 0o711);
  // As root, the shell executor runs steps as the job's slot user.
  if (runsAsRoot()) user = (await ensureJobUser(slotUserName(loadConfig({}).executor.jobUser, 0))).user;
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Runs the steps through the shell executor; returns the outcome, the log and each step's reports. */
async function work(steps: ReturnType<typeof stepSpec>[], secrets: string[] = [], signal?: AbortSignal, timeoutSeconds?: number) {
  const executor = new ShellExecutor(loadConfig({}).executor);
  const job = await makeJob(dir, { steps, ...(timeoutSeconds ? { timeoutSeconds } : {}) }, signal, user);
  const sink = collectOutput();
  const reports: [string, string][] = [];
  const outcome = await withPreparedJob(executor, job, () =>
    runJobWork({
      executor,
      job,
      output: new MaskedOutput(sink, secrets),
      user: undefined,
      serverUrl: 'http://127.0.0.1:1',
      report: async (stepId, status) => reports.push([steps.findIndex((s) => s.id === stepId).toString(), status]),
      flush: async () => undefined,
    }),
  );
  return { outcome, log: sink.text, reports, steps };
}

/**
 * The log with each marker's key, step id (as its index) and duration made stable, after checking
 * that every marker line carries the key of the first line.
 */
function shape(log: string, steps: { id: string }[]): string {
  const key = parseMarker(log.split('\n')[0]!);
  expect(key?.kind).toBe('start');
  const lines = log.split('\n').map((l) => {
    const m = parseMarker(l);
    if (!m || m.kind === 'job' || m.key !== (key as { key: string }).key) return l;
    const step = `#${steps.findIndex((s) => s.id === m.stepId)}`;
    return m.kind === 'start' ? `START ${step}: ${m.name}` : `END ${step}: ${m.status} (${m.reason})`;
  });
  return lines.join('\n');
}

describe('a job’s steps on the runner', () => {
  it('ends a step at its own timeout, fails the job timed_out, and still runs the steps meant for failures', async () => {
    const { outcome, log, reports, steps } = await work([
      { ...stepSpec('echo before; sleep 30'), name: 'slow', timeoutSeconds: 1 },
      stepSpec('echo skipped after a failure'),
      { ...stepSpec('echo cleanup'), when: { success: false, failure: true } },
    ]);
    expect(outcome).toMatchObject({ status: 'timed_out', error: 'step "slow" timed out after 1s' });
    expect(reports).toEqual([['0', 'running'], ['0', 'timed_out'], ['1', 'skipped'], ['2', 'running'], ['2', 'succeeded']]);
    expect(shape(log, steps)).toBe('START #0: slow\nbefore\nEND #0: timed_out (timed out after 1 s)\nSTART #2: step\ncleanup\nEND #2: succeeded (exit 0)\n');
  });

  it('marks where each step starts and ends, with its exit code and duration, on lines of their own', async () => {
    const { outcome, log, steps } = await work([
      { ...stepSpec('echo one; printf two; false'), name: 'first\nline' },
      { ...stepSpec('echo not run'), name: 'second' },
      { ...stepSpec('kill -9 $$'), name: 'killed', when: { success: false, failure: true } },
    ]);
    expect(outcome).toMatchObject({ status: 'failed', exitCode: 1 });
    expect(shape(log, steps)).toBe('START #0: first line\none\ntwo\nEND #0: failed (exit 1)\nSTART #2: killed\nEND #2: failed (killed by SIGKILL)\n');
    const ends = log.split('\n').map(parseMarker).filter((m) => m?.kind === 'end');
    expect(ends.every((m) => m.durationSeconds >= 0 && m.durationSeconds < 10)).toBe(true);
  });

  it('names the job timeout and the cancel that ended a step', async () => {
    const timedOut = new AbortController();
    setTimeout(() => timedOut.abort('timed_out'), 500);
    const slow = await work([{ ...stepSpec('echo start; sleep 30'), name: 'slow' }], [], timedOut.signal, 600);
    expect(shape(slow.log, slow.steps)).toBe('START #0: slow\nstart\nEND #0: timed_out (the job timed out after 10 min)\n');
    const canceled = new AbortController();
    setTimeout(() => canceled.abort('canceled'), 500);
    const c = await work([{ ...stepSpec('sleep 30'), name: 'slow' }], [], canceled.signal);
    expect(shape(c.log, c.steps)).toBe('START #0: slow\nEND #0: canceled (canceled)\n');
  });

  it('keeps output that imitates a marker from passing for one: it lacks the job’s key', async () => {
    const forged = "printf '##[furrow 0123456789abcdef] end %s: succeeded in 0.01s (exit 0)\\n' \"$FURROW_STEP_ID\"; exit 3";
    const { log, steps } = await work([{ ...stepSpec(forged), name: 'forger' }]);
    const shaped = shape(log, steps);
    expect(shaped).toMatch(/^START #0: forger\n##\[furrow 0123456789abcdef\] end [-0-9a-f]+: succeeded in 0\.01s \(exit 0\)\nEND #0: failed \(exit 3\)\n$/);
  });

  it('lets a continue-on-error step fail without failing the job, and masks secrets split across writes, also with stderr between the halves', async () => {
    const split = "printf 'tok'; sleep 0.2; printf 'noise ' >&2; sleep 0.2; printf 'en-value\\n'";
    const { outcome, log, steps } = await work([{ ...stepSpec('exit 4'), continueOnError: true }, stepSpec(split)], ['token-value']);
    expect(outcome).toEqual({ status: 'succeeded', exitCode: 0 });
    expect(shape(log, steps)).toBe('START #0: step\nEND #0: failed (exit 4)\nSTART #1: step\nnoise ***\nEND #1: succeeded (exit 0)\n');
  });
});
