import { execFile } from 'node:child_process';
import { chown } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ExecutorSettings } from '../../config/load-config.js';
import { describeCgroups, detectCgroups, JobCgroup, type CgroupSupport } from '../cgroups.js';
import { assertReachable, findUseradd, lookupUser, resolveJobUser, runsAsRoot, type JobUser } from '../job-user.js';
import type { Executor, JobContext, ProbeResult, StepContext, StepResult } from './executor.js';
import { JOB_PATH, spawnStep, stepEnv, writeStepScript } from './spawn-step.js';

const run = promisify(execFile);

/** What `prepareJob` set up for a job's steps and its cleanup. */
interface PreparedJob {
  user: JobUser | undefined;
  cgroup: JobCgroup | undefined;
}

/**
 * Runs each step as `bash FILE` on the runner's host with an environment built only from the job
 * spec. When the runner is root, steps run as the job user (FURROW_JOB_USER) and each job gets a
 * cgroup with the configured limits, through which all its processes are killed. Isolation is that
 * user's; see the bwrap and podman executors for more.
 */
export class ShellExecutor implements Executor {
  readonly name = 'shell';
  private readonly jobs = new Map<string, PreparedJob>();
  private cgroups: Promise<CgroupSupport> | undefined;

  constructor(readonly settings: ExecutorSettings) {}

  /** The host's cgroups, looked up once. */
  private cgroupSupport(): Promise<CgroupSupport> {
    return (this.cgroups ??= detectCgroups());
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
    const cgroups = describeCgroups(await this.cgroupSupport(), this.settings.limits);
    return { ok: true, detail: `${bash}; ${who}; cgroups: ${cgroups.detail}` };
  }

  async prepareJob(job: JobContext): Promise<void> {
    const user = await resolveJobUser(this.settings.jobUser);
    if (user) {
      await assertReachable(job.workspace, user);
      // The agent made both as root with mode 0700: now only the job user may enter them.
      await Promise.all([chown(job.workspace, user.uid, user.gid), chown(job.scratch, user.uid, user.gid)]);
    }
    // A cgroup even without limits: it is the one container a job's processes cannot leave (setsid
    // and a cleared environment escape the process-group and marker search), so kills are complete.
    const support = await this.cgroupSupport();
    const cgroup = support.available ? await JobCgroup.create(support, job.spec.jobId, this.settings.limits) : undefined;
    this.jobs.set(job.spec.jobId, { user, cgroup });
  }

  async cleanupJob(job: JobContext): Promise<void> {
    const prepared = this.jobs.get(job.spec.jobId);
    this.jobs.delete(job.spec.jobId);
    await prepared?.cgroup?.remove();
  }

  async runStep(ctx: StepContext): Promise<StepResult> {
    const prepared = this.jobs.get(ctx.spec.jobId);
    // Without prepareJob the step would run as the runner's user, which may be root.
    if (!prepared) throw new Error(`job ${ctx.spec.jobId} was not prepared`);
    const file = path.join(ctx.scratch, `step-${ctx.step.id}.sh`);
    await writeStepScript(file, ctx.step.script, prepared.user);
    const argv = ['bash', '--noprofile', '--norc', '-e', '-o', 'pipefail', file];
    return spawnStep(ctx, argv, { cwd: ctx.workspace, env: stepEnv(ctx, ctx.workspace), user: prepared.user, cgroup: prepared.cgroup });
  }
}
