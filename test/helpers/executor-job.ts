import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { JobSpec } from '../../src/protocol/messages.js';
import type { Executor, JobContext, OutputSink, StepResult } from '../../src/runner/executors/executor.js';
import type { JobUser } from '../../src/runner/job-user.js';

/**
 * A spec with fresh ids, no image, the default network and FURROW_JOB_ID; `overrides` replace
 * whole fields (pass `jobId` too to name it in `env`).
 */
function jobSpec(overrides: Partial<JobSpec> = {}): JobSpec {
  const jobId = overrides.jobId ?? randomUUID();
  return {
    jobId,
    runId: randomUUID(),
    projectId: randomUUID(),
    workflowId: randomUUID(),
    runNumber: 1,
    name: 'test',
    attempt: 1,
    timeoutSeconds: 60,
    leaseSeconds: 30,
    image: null,
    network: 'default',
    env: { FURROW_JOB_ID: jobId },
    secrets: [],
    checkout: null,
    artifacts: { token: '', upload: [], download: [] },
    steps: [],
    ...overrides,
  };
}

/** A step running `script` that stops the job when it fails, as a workflow's plain `run` step does. */
export function stepSpec(script: string, id: string = randomUUID()): JobSpec['steps'][number] {
  return { id, name: 'step', script, env: {}, timeoutSeconds: null, continueOnError: false, when: { success: true, failure: false } };
}

/**
 * A job as the agent lays it out: the spec, and an empty 0700 workspace and scratch dir in `dir`,
 * run as `user` (a slot's user when the tests run as root).
 */
export async function makeJob(dir: string, spec: Partial<JobSpec> = {}, signal = new AbortController().signal, user?: JobUser): Promise<JobContext> {
  const full = jobSpec(spec);
  const job = { spec: full, workspace: path.join(dir, full.jobId), scratch: path.join(dir, `.${full.jobId}`), user, signal };
  await Promise.all([mkdir(job.workspace, { mode: 0o700 }), mkdir(job.scratch, { mode: 0o700 })]);
  return job;
}

/** Makes a sink ask the producer to pause on every `every`-th write, and emit `drain` `drainMs` later. */
export interface Pausing {
  every: number;
  drainMs: number;
}

/** A step's output as the agent's log sink receives it. */
class CollectedOutput extends EventEmitter implements OutputSink {
  readonly chunks: Buffer[] = [];
  /** How often it asked the producer to pause. */
  pauses = 0;

  constructor(private readonly pausing?: Pausing) {
    super();
  }

  write(data: Buffer): boolean {
    this.chunks.push(data);
    if (!this.pausing || this.chunks.length % this.pausing.every !== 0) return true;
    this.pauses++;
    setTimeout(() => this.emit('drain'), this.pausing.drainMs);
    return false;
  }

  get text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }

  /** Resolves once the output holds `text`; throws after `ms` without it. */
  async until(text: string, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.text.includes(text)) {
      if (Date.now() > deadline) throw new Error(`the output did not show ${JSON.stringify(text)} within ${ms} ms: ${JSON.stringify(this.text)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/** A sink that collects a step's output; with `pausing`, one that keeps asking for pauses. */
export function collectOutput(pausing?: Pausing): CollectedOutput {
  return new CollectedOutput(pausing);
}

/** How a step ended, what it wrote and the id it ran under (its FURROW_STEP_ID). */
export type StepRun = StepResult & { output: string; stepId: string };

/** Runs `script` as a step, with a fresh id, of the prepared `job`. */
export async function runStep(ex: Executor, job: JobContext, script: string, output = collectOutput()): Promise<StepRun> {
  const stepId = randomUUID();
  const result = await ex.runStep({ ...job, step: stepSpec(script, stepId), output });
  return { ...result, output: output.text, stepId };
}

/** Prepares `job`, runs `use`, and cleans the job up however either ends, as the agent does. */
export async function withPreparedJob<T>(ex: Executor, job: JobContext, use: () => Promise<T>): Promise<T> {
  try {
    await ex.prepareJob(job);
    return await use();
  } finally {
    await ex.cleanupJob(job);
  }
}

/** Runs `scripts` as the steps of `job`, one after another, from prepareJob to cleanupJob. */
export function runJob(ex: Executor, job: JobContext, scripts: string[]): Promise<StepRun[]> {
  return withPreparedJob(ex, job, async () => {
    const runs: StepRun[] = [];
    for (const script of scripts) runs.push(await runStep(ex, job, script));
    return runs;
  });
}
