import type { JobSpec } from '../../protocol/messages.js';

/** Where a step's output goes; `write` returning false asks the producer to pause until `drain`. */
export interface OutputSink {
  write(data: Buffer): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

export interface StepContext {
  spec: JobSpec;
  step: JobSpec['steps'][number];
  /** The job's workspace: the step's working directory, removed by the agent afterwards. */
  workspace: string;
  /** A private directory outside the workspace for the executor's own files (scripts, keys). */
  scratch: string;
  output: OutputSink;
  /** Aborted on cancel or timeout: the executor must then end the step's whole process tree. */
  signal: AbortSignal;
}

export interface StepResult {
  /** The script's exit code, or null when it ended by a signal. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * How a runner isolates a job. The agent calls `runStep` once per step, in order, never two
 * steps of one job at once (steps of different jobs may run concurrently). `runStep` resolves
 * only when no process of the step is left; when `signal` aborts it kills the step's process tree
 * within two seconds and resolves with how the step ended.
 */
export interface Executor {
  readonly name: string;
  runStep(ctx: StepContext): Promise<StepResult>;
}
