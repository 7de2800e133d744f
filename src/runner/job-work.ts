import { randomBytes } from 'node:crypto';
import { stepEndLine, stepStartLine, type StepEnd } from '../domain/log-markers.js';
import type { FinalStatus, JobSpec } from '../protocol/messages.js';
import { downloadArtifacts, uploadArtifacts } from './artifacts.js';
import { runCheckout } from './checkout.js';
import type { Executor, JobContext } from './executors/executor.js';
import type { JobUser } from './job-user.js';
import type { MaskedOutput } from './masked-output.js';

/** How a job ended, as the runner reports it in `done`. */
export interface JobOutcome {
  status: FinalStatus;
  exitCode: number | null;
  error?: string | undefined;
}

export interface JobWork {
  executor: Executor;
  /** The prepared job (its spec's env already holds the env secrets). */
  job: JobContext;
  output: MaskedOutput;
  /** The job user, when the runner runs as root: checkouts and artifact transfers run as it. */
  user: JobUser | undefined;
  serverUrl: string;
  /** Tells the server a step's state; resolves once it was taken (awaited before the outcome is sent). */
  report(stepId: string, status: 'running' | 'skipped' | FinalStatus, exitCode?: number | null): Promise<unknown>;
  /** Resolves once the log holds everything written so far. */
  flush(): Promise<void>;
}

const line = (text: string) => Buffer.from(`${text}\n`);

/** Ends a step's section of the log: writes its end marker. */
type EndMark = (end: Omit<StepEnd, 'durationMs'>) => void;

/**
 * Writes the start marker of a step (see domain/log-markers.ts) under the job's key, drawn here
 * and never passed to the job's processes, so their output cannot pass for a marker.
 */
function stepMarker(w: JobWork): (id: string, name: string) => EndMark {
  const key = randomBytes(8).toString('hex');
  return (id, name) => {
    w.output.mark(stepStartLine(key, id, name));
    const started = performance.now();
    return (end) => w.output.mark(stepEndLine(key, id, { ...end, durationMs: performance.now() - started }));
  };
}

/** The end of a step the job's cancel or timeout ended. */
function abortedEnd(job: JobContext, exitCode: number | null): Omit<StepEnd, 'durationMs'> {
  const status = job.signal.reason as FinalStatus;
  return { status, exitCode, timedOutAfterSeconds: job.spec.timeoutSeconds, jobTimedOut: true, cancelReason: job.cancelReason?.() };
}

/** The outcome of an aborted job: the abort's reason (canceled or timed_out). */
function abortedOutcome(job: JobContext): JobOutcome {
  const status = job.signal.reason as FinalStatus;
  return { status, exitCode: null, error: status === 'timed_out' ? `timed out after ${job.spec.timeoutSeconds}s` : (job.cancelReason?.() ?? 'canceled') };
}

/**
 * What a job does between prepare and cleanup: checks out its commit, downloads the artifacts it
 * needs, runs its steps (each step's `when` decides whether it runs after an earlier failure; a
 * step may fail without failing the job; a step may time out on its own), then uploads its
 * artifacts when every step succeeded.
 */
export async function runJobWork(w: JobWork): Promise<JobOutcome> {
  const { job, output } = w;
  const { spec } = job;
  const mark = stepMarker(w);
  const transfer = { serverUrl: w.serverUrl, spec, workspace: job.workspace, user: w.user, output: (d: Buffer) => output.write(d), signal: job.signal };
  if (spec.checkout) {
    const failed = await checkout(w, spec.checkout, mark(spec.checkout.stepId, `checkout ${spec.checkout.commit.slice(0, 12)}`));
    if (failed) return failed;
  }
  if (spec.artifacts.download.length > 0) {
    const failed = await transferStep(w, mark('artifacts-download', 'download artifacts'), () => downloadArtifacts(transfer));
    if (failed) return failed;
  }
  const outcome = await runSteps(w, mark);
  if (outcome.status === 'succeeded' && spec.artifacts.upload.length > 0) {
    return (await transferStep(w, mark('artifacts-upload', 'upload artifacts'), () => uploadArtifacts(transfer))) ?? outcome;
  }
  return outcome;
}

async function checkout(w: JobWork, checkoutSpec: NonNullable<JobSpec['checkout']>, end: EndMark): Promise<JobOutcome | undefined> {
  const { job, output } = w;
  const reported = w.report(checkoutSpec.stepId, 'running');
  const r = await runCheckout(checkoutSpec, { workspace: job.workspace, scratch: job.scratch, user: w.user, output: (d) => output.write(d), signal: job.signal });
  const status: FinalStatus = job.signal.aborted ? (job.signal.reason as FinalStatus) : r.exitCode === 0 ? 'succeeded' : 'failed';
  end(job.signal.aborted ? abortedEnd(job, r.exitCode) : { status, exitCode: r.exitCode });
  await Promise.all([reported, w.flush()]);
  await w.report(checkoutSpec.stepId, status, r.exitCode);
  if (job.signal.aborted) return abortedOutcome(job);
  return status === 'succeeded' ? undefined : { status: 'failed', exitCode: r.exitCode, error: `checking out ${checkoutSpec.commit.slice(0, 12)} failed (see the log)` };
}

/** Runs an artifact transfer; a failure fails the job with its message, also written to the log. */
async function transferStep(w: JobWork, end: EndMark, transfer: () => Promise<void>): Promise<JobOutcome | undefined> {
  try {
    await transfer();
    end({ status: 'succeeded', exitCode: 0 });
    return undefined;
  } catch (err) {
    if (w.job.signal.aborted) {
      end(abortedEnd(w.job, null));
      return abortedOutcome(w.job);
    }
    const message = (err as Error).message;
    w.output.write(line(message));
    end({ status: 'failed', exitCode: null });
    return { status: 'failed', exitCode: null, error: message };
  }
}

async function runSteps(w: JobWork, mark: (id: string, name: string) => EndMark): Promise<JobOutcome> {
  const { job, output, executor } = w;
  let outcome: JobOutcome = { status: 'succeeded', exitCode: 0 };
  for (const step of job.spec.steps) {
    if (job.signal.aborted) break;
    if (!(outcome.status === 'succeeded' ? step.when.success : step.when.failure)) {
      await w.report(step.id, 'skipped');
      continue;
    }
    // The step's own timeout, inside the job's: either ends the step.
    const stepAbort = new AbortController();
    const onJobAbort = () => stepAbort.abort(job.signal.reason);
    job.signal.addEventListener('abort', onJobAbort, { once: true });
    const timer = step.timeoutSeconds ? setTimeout(() => stepAbort.abort('timed_out'), step.timeoutSeconds * 1000) : undefined;
    // Reported while the step starts, not before: the answer is awaited before the outcome is sent.
    const reported = w.report(step.id, 'running');
    reported.catch(() => undefined);
    const end = mark(step.id, step.name);
    try {
      const r = await executor.runStep({ ...job, signal: stepAbort.signal, step, output });
      const stepStatus: FinalStatus = stepAbort.signal.aborted ? (stepAbort.signal.reason as FinalStatus) : r.exitCode === 0 ? 'succeeded' : 'failed';
      if (job.signal.aborted) end(abortedEnd(job, r.exitCode));
      else end({ status: stepStatus, exitCode: r.exitCode, signal: r.signal, timedOutAfterSeconds: step.timeoutSeconds });
      await Promise.all([reported, w.flush()]);
      await w.report(step.id, stepStatus, r.exitCode);
      if (job.signal.aborted) break;
      if (stepStatus === 'succeeded' || step.continueOnError) continue;
      if (outcome.status === 'succeeded') {
        const error = stepStatus === 'timed_out' ? `step "${step.name}" timed out after ${step.timeoutSeconds}s` : r.exitCode === null ? `killed by ${r.signal}` : undefined;
        outcome = { status: stepStatus, exitCode: r.exitCode, error };
      }
    } catch (err) {
      end({ status: 'failed', exitCode: null });
      throw err;
    } finally {
      clearTimeout(timer);
      job.signal.removeEventListener('abort', onJobAbort);
    }
  }
  return job.signal.aborted ? abortedOutcome(job) : outcome;
}
