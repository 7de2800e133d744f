import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load-config.js';
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
async function work(steps: ReturnType<typeof stepSpec>[], secrets: string[] = []) {
  const executor = new ShellExecutor(loadConfig({}).executor);
  const job = await makeJob(dir, { steps }, undefined, user);
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
  return { outcome, log: sink.text, reports };
}

describe('a job’s steps on the runner', () => {
  it('ends a step at its own timeout, fails the job timed_out, and still runs the steps meant for failures', async () => {
    const { outcome, log, reports } = await work([
      { ...stepSpec('echo before; sleep 30'), name: 'slow', timeoutSeconds: 1 },
      stepSpec('echo skipped after a failure'),
      { ...stepSpec('echo cleanup'), when: { success: false, failure: true } },
    ]);
    expect(outcome).toMatchObject({ status: 'timed_out', error: 'step "slow" timed out after 1s' });
    expect(reports).toEqual([['0', 'running'], ['0', 'timed_out'], ['1', 'skipped'], ['2', 'running'], ['2', 'succeeded']]);
    expect(log).toBe('before\ncleanup\n');
  });

  it('lets a continue-on-error step fail without failing the job, and masks secrets split across writes', async () => {
    const { outcome, log } = await work([{ ...stepSpec('exit 4'), continueOnError: true }, stepSpec("printf 'tok'; sleep 0.2; printf 'en-value\\n'")], ['token-value']);
    expect(outcome).toEqual({ status: 'succeeded', exitCode: 0 });
    expect(log).toBe('***\n');
  });
});
