import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ExecutorSettings } from '../../config/load-config.js';
import { findUseradd, lookupUser, runsAsRoot } from '../job-user.js';
import type { Executor, JobContext, ProbeResult, StepContext, StepResult } from './executor.js';
import { HostJobs } from './host-jobs.js';
import { JOB_PATH, spawnStep, stepEnv, writeStepScript } from './spawn-step.js';

const run = promisify(execFile);

/**
 * Runs each step as `bash FILE` on the runner's host with an environment built only from the job
 * spec. When the runner is root, steps run as the job user (FURROW_JOB_USER) and each job gets a
 * cgroup with the configured limits, through which all its processes are killed. Isolation is that
 * user's; see the bwrap and podman executors for more.
 */
export class ShellExecutor implements Executor {
  readonly name = 'shell';
  private readonly host: HostJobs;

  constructor(readonly settings: ExecutorSettings) {
    this.host = new HostJobs(settings);
  }

  async probe(): Promise<ProbeResult> {
    let bash: string;
    try {
      bash = (await run('bash', ['--version'], { env: { PATH: JOB_PATH }, timeout: 10_000 })).stdout.split('\n')[0]!;
    } catch (err) {
      return { ok: false, detail: `bash --version failed: ${(err as Error).message.split('\n')[0]}` };
    }
    const name = this.settings.jobUser;
    let who = 'jobs run as the runner\'s user (it is not root)';
    if (runsAsRoot()) {
      const user = await lookupUser(name);
      if (user?.uid === 0) return { ok: false, detail: `the job user ${name} (FURROW_JOB_USER) has uid 0; jobs never run as root` };
      if (user) who = `jobs run as ${name} (uid ${user.uid})`;
      else if (await findUseradd()) who = `the job user ${name} is created when the runner starts (or by "furrow doctor --fix")`;
      else return { ok: false, detail: `the job user ${name} (FURROW_JOB_USER) does not exist and this host has no useradd; create it by hand` };
    }
    return { ok: true, detail: `${bash}; ${who}; cgroups: ${await this.host.describeCgroups()}` };
  }

  prepareJob(job: JobContext): Promise<void> {
    return this.host.prepare(job);
  }

  cleanupJob(job: JobContext): Promise<void> {
    return this.host.cleanup(job);
  }

  async runStep(ctx: StepContext): Promise<StepResult> {
    const prepared = this.host.get(ctx.spec.jobId);
    const file = path.join(ctx.scratch, `step-${ctx.step.id}.sh`);
    await writeStepScript(file, ctx.step.script, prepared.user);
    const argv = ['bash', '--noprofile', '--norc', '-e', '-o', 'pipefail', file];
    return spawnStep(ctx, argv, { cwd: ctx.workspace, env: stepEnv(ctx, ctx.workspace), user: prepared.user, cgroup: prepared.cgroup });
  }
}
