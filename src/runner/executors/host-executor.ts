import path from 'node:path';
import type { ExecutorSettings } from '../../config/load-config.js';
import type { Executor, JobContext, ProbeResult, StepContext, StepResult } from './executor.js';
import { HostJobs } from './host-jobs.js';
import { spawnStep, stepEnv, writeStepScript } from './spawn-step.js';

/** How a subclass starts a step's script. */
export interface StepCommand {
  argv: string[];
  cwd: string;
}

/**
 * An executor that starts job processes on this host (shell, bwrap), each job set up by HostJobs:
 * a step's script is written to the scratch dir and run as the job user, in the job's cgroup, with
 * an environment built from the spec alone. Subclasses say how the script is started.
 */
export abstract class HostExecutor implements Executor {
  abstract readonly name: string;
  protected readonly host: HostJobs;

  constructor(readonly settings: ExecutorSettings) {
    this.host = new HostJobs(settings);
  }

  abstract probe(): Promise<ProbeResult>;

  /** The command that runs the step's script, written to `script`. */
  protected abstract stepCommand(ctx: StepContext, script: string): Promise<StepCommand>;

  prepareJob(job: JobContext): Promise<void> {
    return this.host.prepare(job);
  }

  cleanupJob(job: JobContext): Promise<void> {
    return this.host.cleanup(job);
  }

  async runStep(ctx: StepContext): Promise<StepResult> {
    const prepared = this.host.get(ctx.spec.jobId);
    const script = path.join(ctx.scratch, `step-${ctx.step.id}.sh`);
    writeStepScript(script, ctx.step.script, prepared.user);
    const { argv, cwd } = await this.stepCommand(ctx, script);
    return spawnStep(ctx, argv, { cwd, env: stepEnv(ctx, ctx.workspace), user: prepared.user, cgroup: prepared.cgroup });
  }
}
