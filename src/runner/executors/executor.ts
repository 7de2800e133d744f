import type { JobSpec } from '../../protocol/messages.js';
import type { JobUser } from '../job-user.js';

/** Which of a process's streams a piece of output came from. */
export type OutputStream = 'stdout' | 'stderr';

/**
 * Where a step's output goes; `write` returning false asks the producer to pause until `drain`.
 * `stream` (stdout when left out) keeps a secret split across writes on one stream maskable when
 * the other stream writes between its halves.
 */
export interface OutputSink {
  write(data: Buffer, stream?: OutputStream): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

export interface JobContext {
  spec: JobSpec;
  /**
   * The job's workspace on the runner's host (mode 0700, created by the agent before `prepareJob`
   * and removed after `cleanupJob`): the steps' working directory, or what the executor mounts or
   * copies as such.
   */
  workspace: string;
  /** A private directory outside the workspace for the executor's own files (scripts, keys). */
  scratch: string;
  /**
   * Whom the job's processes run as: the user of the runner's slot that runs it, when the runner
   * is root (no other job uses that user meanwhile); undefined when it is not (the runner's user).
   */
  user: JobUser | undefined;
  /** Who or what canceled the job, once `signal` aborted as canceled, when that is known. */
  cancelReason?: () => string | undefined;
  /** Aborted on cancel or timeout. */
  signal: AbortSignal;
}

export interface StepContext extends JobContext {
  step: JobSpec['steps'][number];
  output: OutputSink;
}

export interface StepResult {
  /** The script's exit code, or null when it ended by a signal. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
}

/** Whether an executor can run jobs on this host, and what it found (for `furrow doctor`). */
export interface ProbeResult {
  ok: boolean;
  /** One line: the version found, or why it cannot work and what to do about it. */
  detail: string;
}

/**
 * How a runner isolates a job. Call order for one job: `prepareJob` once, then `runStep` once per
 * step, in order, never two steps of one job at once, then `cleanupJob` once (also after a failed
 * `prepareJob`, a failed step, a cancel or a timeout). Different jobs may be in any of these calls
 * concurrently. `runStep` resolves only when no process of the step is left; when `signal` aborts
 * it kills the step's process tree within two seconds and resolves with how the step ended.
 * A thrown error from `prepareJob` or `runStep` fails the job with its message, so messages must
 * tell a person what is wrong (e.g. "the workflow names no image; the podman executor needs one").
 */
export interface Executor {
  readonly name: string;
  /** Checks the host once (binaries, kernel features, users); never throws. */
  probe(): Promise<ProbeResult>;
  prepareJob(job: JobContext): Promise<void>;
  runStep(ctx: StepContext): Promise<StepResult>;
  /** Releases what `prepareJob` made (remote workspaces, cgroups); must not throw. */
  cleanupJob(job: JobContext): Promise<void>;
}
