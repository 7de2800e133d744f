import { chown } from 'node:fs/promises';
import type { ExecutorSettings } from '../../config/load-config.js';
import { describeCgroups, detectCgroups, JobCgroup, limitedControllers, type CgroupSupport } from '../cgroups.js';
import { assertReachable, type JobUser } from '../job-user.js';
import type { JobContext } from './executor.js';

/** What preparing a job set up for its steps and its cleanup. */
export interface PreparedJob {
  user: JobUser | undefined;
  cgroup: JobCgroup | undefined;
}

/**
 * The per-job setup of the executors that start job processes on this host (shell, bwrap): the
 * job's slot user owns the workspace, and the job gets a cgroup with the configured limits.
 */
export class HostJobs {
  private readonly jobs = new Map<string, PreparedJob>();
  private cgroups: Promise<CgroupSupport> | undefined;

  constructor(private readonly settings: ExecutorSettings) {}

  /** The host's cgroups, looked up once. */
  cgroupSupport(): Promise<CgroupSupport> {
    return (this.cgroups ??= detectCgroups());
  }

  /** One line on the cgroups and limits, for probes. */
  async describeCgroups(): Promise<string> {
    return describeCgroups(await this.cgroupSupport(), this.settings.limits).detail;
  }

  async prepare(job: JobContext): Promise<void> {
    const { user } = job;
    if (user) {
      await assertReachable(job.workspace, user);
      // The agent made both as root with mode 0700: now only the job user may enter them.
      await Promise.all([chown(job.workspace, user.uid, user.gid), chown(job.scratch, user.uid, user.gid)]);
    }
    // A cgroup only where limits are set: moving a process into a v1 cgroup costs an RCU grace
    // period (10–20 ms measured here) before the step may start. Without one, the step's processes
    // are found by process group and by the job's FURROW_JOB_ID marker, which misses only a
    // process that both left the group and cleared its environment.
    const support = await this.cgroupSupport();
    const limited = limitedControllers(this.settings.limits).length > 0;
    const cgroup = support.available && limited ? await JobCgroup.create(support, job.spec.jobId, this.settings.limits) : undefined;
    this.jobs.set(job.spec.jobId, { user, cgroup });
  }

  /** The job's setup; throws when it was not prepared (its steps would run as the runner's user). */
  get(jobId: string): PreparedJob {
    const prepared = this.jobs.get(jobId);
    if (!prepared) throw new Error(`job ${jobId} was not prepared`);
    return prepared;
  }

  async cleanup(job: JobContext): Promise<void> {
    const prepared = this.jobs.get(job.spec.jobId);
    this.jobs.delete(job.spec.jobId);
    await prepared?.cgroup?.remove();
  }
}
