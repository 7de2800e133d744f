import { access, constants, mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { runsAsRoot } from './job-user.js';

const ROOT = '/sys/fs/cgroup';
/** Job cgroups live under `furrow/` at the top of each hierarchy, beside the runner's own cgroup. */
const PARENT = 'furrow';
/** Controllers a job can be limited by; pids first, as it is the cheapest to track a job with on v1. */
const CONTROLLERS = ['pids', 'memory', 'cpu'] as const;
const CPU_PERIOD_US = 100_000;
/** How long `kill` keeps at it before giving up on a process SIGKILL does not end. */
const KILL_WAIT_MS = 5000;

export type CgroupController = (typeof CONTROLLERS)[number];

/** Limits per job; 0 means none. */
export interface CgroupLimits {
  memoryMb: number;
  pidsMax: number;
  cpuPercent: number;
}

/** What the host offers this process: a cgroup version and the controllers it can write, or why none. */
export type CgroupSupport = { available: true; version: 1 | 2; controllers: CgroupController[] } | { available: false; reason: string };

const exists = (file: string) => access(file).then(() => true, () => false);
const writable = (dir: string) => access(dir, constants.W_OK).then(() => true, () => false);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Finds the cgroup version at /sys/fs/cgroup (v2 when it holds cgroup.controllers, else v1 with
 * one hierarchy per controller) and which of memory, pids and cpu this process can use. Creating
 * cgroups and moving processes into them takes root, so without it there are none.
 */
export async function detectCgroups(): Promise<CgroupSupport> {
  if (!runsAsRoot()) return { available: false, reason: 'the runner does not run as root' };
  const offered = await readFile(path.join(ROOT, 'cgroup.controllers'), 'utf8').catch(() => undefined);
  if (offered !== undefined) {
    if (!(await writable(ROOT))) return { available: false, reason: `${ROOT} (cgroup v2) is not writable` };
    const names = offered.trim().split(/\s+/);
    return { available: true, version: 2, controllers: CONTROLLERS.filter((c) => names.includes(c)) };
  }
  const controllers: CgroupController[] = [];
  for (const c of CONTROLLERS) if ((await exists(path.join(ROOT, c, 'cgroup.procs'))) && (await writable(path.join(ROOT, c)))) controllers.push(c);
  if (controllers.length === 0) return { available: false, reason: `no cgroup v2 at ${ROOT} and no writable v1 pids, memory or cpu hierarchy` };
  return { available: true, version: 1, controllers };
}

/** The controllers `limits` ask for, in CONTROLLERS order. */
export function limitedControllers(limits: CgroupLimits): CgroupController[] {
  return CONTROLLERS.filter((c) => (c === 'pids' ? limits.pidsMax : c === 'memory' ? limits.memoryMb : limits.cpuPercent) > 0);
}

/**
 * One line for `furrow doctor` and probes: the cgroup version and writable controllers (or why
 * there are none) and the configured limits; `enforced` is false when a limit is set whose
 * controller this host does not offer.
 */
export function describeCgroups(support: CgroupSupport, limits: CgroupLimits): { enforced: boolean; detail: string } {
  const set = [
    limits.memoryMb > 0 ? `memory ${limits.memoryMb} MiB` : '',
    limits.pidsMax > 0 ? `pids ${limits.pidsMax}` : '',
    limits.cpuPercent > 0 ? `cpu ${limits.cpuPercent}%` : '',
  ].filter((l) => l !== '');
  const configured = `limits: ${set.length > 0 ? set.join(', ') : 'none'}`;
  if (!support.available) {
    const tracking = 'steps are tracked by process group';
    return set.length > 0
      ? { enforced: false, detail: `none (${support.reason}); ${configured} NOT enforced; ${tracking}` }
      : { enforced: true, detail: `none (${support.reason}); ${configured}; ${tracking}` };
  }
  const missing = limitedControllers(limits).filter((c) => !support.controllers.includes(c));
  const offered = support.controllers.length > 0 ? support.controllers.join(', ') : 'no controllers';
  // Jobs without limits get no cgroup (entering one delays every step): see HostJobs.
  const detail = `v${support.version}, writable: ${offered}; ${configured}${set.length > 0 ? '' : ' (jobs get no cgroup; steps are tracked by process group)'}`;
  return missing.length > 0 ? { enforced: false, detail: `${detail}; NOT enforced: ${missing.join(', ')} (no such controller)` } : { enforced: true, detail };
}

/** The files and values that set `limits` in one controller's directory, in the order they must be written. */
function limitFiles(version: 1 | 2, controller: CgroupController, limits: CgroupLimits): [string, string][] {
  const bytes = String(limits.memoryMb * 1024 * 1024);
  const quota = String(limits.cpuPercent * (CPU_PERIOD_US / 100));
  switch (controller) {
    case 'pids':
      return [['pids.max', String(limits.pidsMax)]];
    case 'memory':
      // No swap beyond the limit, or a job would swap instead of being stopped at it.
      return version === 1
        ? [['memory.limit_in_bytes', bytes], ['memory.memsw.limit_in_bytes', bytes]]
        : [['memory.max', bytes], ['memory.swap.max', '0']];
    case 'cpu':
      return version === 1
        ? [['cpu.cfs_period_us', String(CPU_PERIOD_US)], ['cpu.cfs_quota_us', quota]]
        : [['cpu.max', `${quota} ${CPU_PERIOD_US}`]];
  }
}

/** Limit files a kernel may lack (memsw without swap accounting, swap.max without swap): skipped then. */
const OPTIONAL_FILES = new Set(['memory.memsw.limit_in_bytes', 'memory.swap.max']);

async function writeIfPresent(file: string, value: string): Promise<void> {
  if (await exists(file)) await writeFile(file, value);
}

/** v2: enables `controllers` for furrow/ and its children, which a child needs to use them. */
async function enableControllers(controllers: CgroupController[]): Promise<void> {
  const parent = path.join(ROOT, PARENT);
  await mkdir(parent, { recursive: true });
  for (const dir of [ROOT, parent]) {
    const file = path.join(dir, 'cgroup.subtree_control');
    const enabled = (await readFile(file, 'utf8')).trim().split(/\s+/);
    const missing = controllers.filter((c) => !enabled.includes(c));
    if (missing.length > 0) await writeFile(file, missing.map((c) => `+${c}`).join(' '));
  }
}

/** Live (non-zombie) processes listed in a cgroup.procs file. */
async function liveMembers(procsFile: string): Promise<number[]> {
  const text = await readFile(procsFile, 'utf8').catch(() => '');
  const pids = text.split('\n').filter((l) => l !== '').map(Number);
  const live = await Promise.all(
    pids.map(async (pid) => {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
      const state = stat?.[stat.lastIndexOf(')') + 2]; // the field after the parenthesised command name
      return state === undefined || state === 'Z' || state === 'X' ? undefined : pid;
    }),
  );
  return live.filter((p): p is number => p !== undefined);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/**
 * One job's cgroup: a directory `furrow/<jobId>` in each hierarchy it uses (v1) or one directory
 * (v2), with the job's limits set. Every process the job starts is inside it and cannot leave (the
 * directories belong to root), so it is how the job's processes are found and killed, also those
 * that called setsid or cleared their environment.
 */
export class JobCgroup {
  private constructor(
    /** The job's directory in each hierarchy; the first one lists the job's processes. */
    readonly dirs: string[],
    private readonly version: 1 | 2,
  ) {}

  /**
   * Creates the job's cgroup with `limits` (limits whose controller the host lacks are not set;
   * `furrow doctor` says so). On v1 it uses the hierarchies of the limited controllers, or one
   * hierarchy only to track the job when there are no limits.
   */
  static async create(support: Extract<CgroupSupport, { available: true }>, jobId: string, limits: CgroupLimits): Promise<JobCgroup> {
    if (!/^[A-Za-z0-9_-]+$/.test(jobId)) throw new Error(`job id ${JSON.stringify(jobId)} cannot name a cgroup`);
    const { version } = support;
    const wanted = limitedControllers(limits).filter((c) => support.controllers.includes(c));
    const hierarchies = wanted.length > 0 ? wanted : support.controllers.slice(0, 1);
    const dirOf = (c: CgroupController) => (version === 2 ? path.join(ROOT, PARENT, jobId) : path.join(ROOT, c, PARENT, jobId));
    const cgroup = new JobCgroup(version === 2 ? [dirOf('pids')] : hierarchies.map(dirOf), version);
    try {
      if (version === 2) await enableControllers(wanted);
      for (const dir of cgroup.dirs) await mkdir(dir, { recursive: true });
      for (const c of wanted) {
        for (const [file, value] of limitFiles(version, c, limits)) {
          const target = path.join(dirOf(c), file);
          await (OPTIONAL_FILES.has(file) ? writeIfPresent(target, value) : writeFile(target, value));
        }
      }
    } catch (err) {
      await cgroup.remove();
      throw new Error(`could not set up the job's cgroup: ${(err as Error).message}`);
    }
    return cgroup;
  }

  /** Moves `pid` into the job's cgroup in every hierarchy; do it before the process can fork. */
  async enter(pid: number): Promise<void> {
    for (const dir of this.dirs) await writeFile(path.join(dir, 'cgroup.procs'), String(pid));
  }

  /** The job's live processes. */
  processes(): Promise<number[]> {
    return liveMembers(path.join(this.dirs[0]!, 'cgroup.procs'));
  }

  /**
   * Ends every process in the cgroup: SIGTERM, up to `graceMs` for them to exit, then SIGKILL
   * until none is left (again and again, as a process may fork while the list is read).
   * Resolves once the cgroup holds no live process, or after KILL_WAIT_MS of a process that
   * SIGKILL has not ended yet (stuck in the kernel).
   */
  async kill(graceMs: number): Promise<void> {
    if (graceMs > 0) {
      for (const pid of await this.processes()) signal(pid, 'SIGTERM');
      const deadline = Date.now() + graceMs;
      while (Date.now() < deadline && (await this.processes()).length > 0) await sleep(20);
    }
    // cgroup.kill (v2, Linux 5.14+) kills the whole cgroup at once, forks included.
    if (this.version === 2) await writeIfPresent(path.join(this.dirs[0]!, 'cgroup.kill'), '1').catch(() => undefined);
    for (const deadline = Date.now() + KILL_WAIT_MS; Date.now() < deadline; ) {
      const left = await this.processes();
      if (left.length === 0) return;
      for (const pid of left) signal(pid, 'SIGKILL');
      await sleep(10);
    }
  }

  /** Kills what is left of the job and removes its directories; never throws. */
  async remove(): Promise<void> {
    await this.kill(0);
    for (const dir of this.dirs) {
      // The kernel may take a moment to let go of processes that just died.
      for (let attempt = 0; attempt < 50; attempt++) {
        const err = await rmdir(dir).then(() => undefined, (e: NodeJS.ErrnoException) => e);
        if (err?.code !== 'EBUSY') break;
        await sleep(20);
      }
    }
  }
}
