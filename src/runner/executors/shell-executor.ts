import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { findUseradd, lookupUser, runsAsRoot, slotUserName } from '../job-user.js';
import type { JobContext, ProbeResult, StepContext } from './executor.js';
import { HostExecutor, type StepCommand } from './host-executor.js';
import { JOB_PATH } from './spawn-step.js';

const run = promisify(execFile);

/**
 * Runs each step as `bash FILE` on the runner's host with an environment built only from the job
 * spec. When the runner is root, steps run as the user of the job's slot (FURROW_JOB_USER-N), which
 * no concurrent job shares, and each job gets a cgroup with the configured limits, through which
 * all its processes are killed. Isolation is that user's; see the bwrap and podman executors for more.
 */
export class ShellExecutor extends HostExecutor {
  readonly name = 'shell';

  async probe(): Promise<ProbeResult> {
    let bash: string;
    try {
      bash = (await run('bash', ['--version'], { env: { PATH: JOB_PATH }, timeout: 10_000 })).stdout.split('\n')[0]!;
    } catch (err) {
      return { ok: false, detail: `bash --version failed: ${(err as Error).message.split('\n')[0]}` };
    }
    // The first slot's user stands for the pool: the runner creates and checks all of them as it starts.
    const name = slotUserName(this.settings.jobUser, 0);
    let who = 'jobs run as the runner\'s user (it is not root: no job user per slot)';
    if (runsAsRoot()) {
      const user = await lookupUser(name);
      if (user?.uid === 0) return { ok: false, detail: `the job user ${name} (FURROW_JOB_USER-0) has uid 0; jobs never run as root` };
      if (user) who = `jobs run as ${this.settings.jobUser}-N, one user per job slot (${name} is uid ${user.uid})`;
      else if (await findUseradd()) who = `the job users ${this.settings.jobUser}-N (one per job slot) are created when the runner starts (or by "furrow doctor --fix")`;
      else return { ok: false, detail: `the job user ${name} (FURROW_JOB_USER-0) does not exist and this host has no useradd; create it by hand` };
    }
    return { ok: true, detail: `${bash}; ${who}; cgroups: ${await this.host.describeCgroups()}` };
  }

  override prepareJob(job: JobContext): Promise<void> {
    if (job.spec.network === 'none') {
      return Promise.reject(new Error('the job asks for no network (network: none), which the shell executor cannot enforce: use the bwrap or podman executor'));
    }
    return super.prepareJob(job);
  }

  protected async stepCommand(ctx: StepContext, script: string): Promise<StepCommand> {
    return { argv: ['bash', '--noprofile', '--norc', '-e', '-o', 'pipefail', script], cwd: ctx.workspace };
  }
}
