import { spawn, type ChildProcess } from 'node:child_process';
import { lstatSync } from 'node:fs';
import { access, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { JOB_PATH } from './executors/spawn-step.js';
import { lookupUser, resolveJobUser, slotUserName, slotUserNames, type JobUser } from './job-user.js';
import { killUserProcesses, pidMark, type PidMark } from './process-tree.js';

/** A job's workspace (`<job id>`) or scratch dir (`.<job id>`) in the runner's work dir. */
const JOB_DIR = /^\.?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Where a root runner records which job users it holds, one file per FURROW_JOB_USER holding its pid. */
const CLAIMS_DIR = '/run/furrow-job-users';
/** Bases claimed by runners of this process (several agents may share one process, e.g. in tests). */
const claimedHere = new Set<string>();
/** World-writable directories where a job running as its slot's user may have left files. */
const SHARED_TMP = ['/tmp', '/var/tmp', '/dev/shm'];

/**
 * Runs as root beside the runner, in a session of its own, and waits on a pipe from it: when the
 * runner ends, however it ends (SIGKILL too), the pipe closes and it kills every process of the
 * slot users ($1, comma-separated uids), also those that daemonized. Constant text: the uids are
 * its argument.
 */
const SENTINEL = 'while read -r _; do :; done; while pkill -KILL -U "$1"; do sleep 0.05; done';

/**
 * The job slots of a runner: slot i runs one job at a time, as its own user when the runner is
 * root (FURROW_JOB_USER-i; see slotUserName). A slot is free again only once every process of its
 * user is dead and its files in the shared temporary dirs are gone, so nothing of one job reaches
 * the next or a concurrent one. As an ordinary user there is no pool: jobs run as the runner's user.
 */
export class JobSlots {
  private sentinel: ChildProcess | undefined;
  /**
   * Per slot, where pid allocation stood when its job began, while its user had no process: the
   * release then looks only at newer processes. Undefined where the last cleanup gave up on one.
   */
  private readonly born: (PidMark | undefined)[] = [];
  private readonly clean: boolean[] = [];

  private constructor(
    /** Each slot's user; empty when the runner is not root. */
    private readonly users: JobUser[],
    /** Users of slots beyond the capacity (an earlier run had more): cleaned up at start only. */
    private readonly former: JobUser[],
    private readonly workDir: string,
    /** The FURROW_JOB_USER this runner holds, undefined when it holds none (not root). */
    private readonly claimed: string | undefined,
  ) {}

  /** Looks up the users of `capacity` slots (when root); throws naming the missing one. */
  static async open(base: string | undefined, capacity: number, workDir: string): Promise<JobSlots> {
    const users: JobUser[] = [];
    for (const name of base ? slotUserNames(base, capacity) : []) {
      const user = await resolveJobUser(name);
      if (user) users.push(user);
    }
    if (new Set(users.map((u) => u.uid)).size !== users.length) throw new Error(`the job users ${users.map((u) => u.name).join(', ')} must have distinct uids`);
    const former: JobUser[] = [];
    for (let i = capacity; base && users.length > 0; i++) {
      const user = await lookupUser(slotUserName(base, i));
      if (!user || user.uid === 0) break;
      former.push(user);
    }
    if (users.length > 0) await claim(base!);
    return new JobSlots(users, former, workDir, users.length > 0 ? base : undefined);
  }

  /** Slot `index`'s user, or undefined when the runner is not root. */
  user(index: number): JobUser | undefined {
    return this.users[index];
  }

  /**
   * Before the first job: kills what jobs of a runner that crashed left running as the slot users,
   * removes their files and leftover workspaces, and starts the sentinel that kills the slot users'
   * processes should this runner die. Resolves with how many processes and job dirs it removed.
   */
  async start(): Promise<{ processes: number; dirs: number }> {
    const killed = await Promise.all([...this.users, ...this.former].map((u) => freeUser(u)));
    this.users.forEach((_, i) => (this.clean[i] = !killed[i]!.left));
    const entries = await readdir(this.workDir).catch(() => [] as string[]);
    const left = entries.filter((e) => JOB_DIR.test(e));
    await Promise.all(left.map((e) => rm(path.join(this.workDir, e), { recursive: true, force: true })));
    if (this.users.length > 0) this.startSentinel();
    return { processes: killed.reduce((a, b) => a + b.killed, 0), dirs: left.length };
  }

  /** Slot `index` begins a job: before anything of it runs as the slot's user. */
  occupy(index: number): void {
    this.born[index] = this.clean[index] ? pidMark() : undefined;
  }

  /**
   * Frees slot `index` after its job: kills every process of its user and removes its temporary
   * files. Resolves with how many processes it killed.
   */
  async release(index: number): Promise<number> {
    const user = this.users[index];
    if (!user) return 0;
    const { killed, left } = await freeUser(user, this.born[index]);
    this.clean[index] = !left;
    return killed;
  }

  /** Stops the sentinel and gives up the job users (the runner stops; its jobs are done). */
  stop(): void {
    this.sentinel?.stdin?.end();
    this.sentinel = undefined;
    if (this.claimed && claimedHere.delete(this.claimed)) void rm(path.join(CLAIMS_DIR, this.claimed), { force: true });
  }

  private startSentinel(): void {
    const uids = this.users.map((u) => u.uid).join(',');
    const sentinel = spawn('/bin/sh', ['-c', SENTINEL, 'furrow-sentinel', uids], { env: { PATH: JOB_PATH }, stdio: ['pipe', 'ignore', 'ignore'], detached: true, cwd: '/' });
    sentinel.stdin.on('error', () => undefined);
    sentinel.on('error', () => undefined);
    // Neither the pipe nor the child keeps the runner's event loop alive.
    sentinel.unref();
    (sentinel.stdin as unknown as { unref?: () => void }).unref?.();
    this.sentinel = sentinel;
  }
}

/**
 * Makes this process the only runner on the host using the job users of `base`: two runners sharing
 * them would kill each other's jobs. A claim whose process is gone (a crash) is taken over.
 */
async function claim(base: string): Promise<void> {
  const refuse = (holder: string) =>
    new Error(`another runner on this host (${holder}) runs jobs as ${base}-N; give each runner its own FURROW_JOB_USER`);
  if (claimedHere.has(base)) throw refuse('in this process');
  const file = path.join(CLAIMS_DIR, base);
  await mkdir(CLAIMS_DIR, { recursive: true, mode: 0o755 });
  const made = await writeFile(file, `${process.pid}\n`, { flag: 'wx' }).then(() => true, (err: NodeJS.ErrnoException) => (err.code === 'EEXIST' ? false : Promise.reject(err)));
  if (!made) {
    const holder = Number((await readFile(file, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && (await access(`/proc/${holder}`).then(() => true, () => false))) throw refuse(`pid ${holder}`);
    await writeFile(file, `${process.pid}\n`);
  }
  claimedHere.add(base);
}


/**
 * Kills every process of `user` (those created after `born` when given: it had none then) and
 * removes its files in the shared temporary dirs; see killUserProcesses for what it resolves with.
 */
async function freeUser(user: JobUser, born?: PidMark): Promise<{ killed: number; left: boolean }> {
  const result = await killUserProcesses(user.uid, born);
  await Promise.all(SHARED_TMP.map((dir) => removeOwnedBy(dir, user.uid)));
  return result;
}

/**
 * Removes the entries of `dir` (not deeper) that belong to `uid`; never follows a link. Owners are
 * read synchronously (see scanProcesses in process-tree.ts): this runs after every job.
 */
async function removeOwnedBy(dir: string, uid: number): Promise<void> {
  const entries = await readdir(dir).catch(() => [] as string[]);
  const owned = entries.map((e) => path.join(dir, e)).filter((file) => lstatSync(file, { throwIfNoEntry: false })?.uid === uid);
  await Promise.all(owned.map((file) => rm(file, { recursive: true, force: true }).catch(() => undefined)));
}
