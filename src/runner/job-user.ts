import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { access, constants, readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Where useradd lives; looked up here, as a runner's PATH may lack the sbin directories. */
const USERADD_PATHS = ['/usr/sbin/useradd', '/sbin/useradd', '/usr/bin/useradd', '/bin/useradd'];

/** The account a job's processes run as. */
export interface JobUser {
  name: string;
  uid: number;
  gid: number;
}

/** The entry for `name` in /etc/passwd, or undefined when there is none. */
export async function lookupUser(name: string): Promise<JobUser | undefined> {
  const passwd = await readFile('/etc/passwd', 'utf8');
  for (const line of passwd.split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === name && uid !== undefined && gid !== undefined) return { name, uid: Number(uid), gid: Number(gid) };
  }
  return undefined;
}

/** Whether this process could start jobs as another user (it runs as root). */
export function runsAsRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * The user jobs must run as: `name` when this process runs as root (jobs never run as root),
 * undefined when it runs as an ordinary user (jobs then run as that user). Throws when root has
 * no such user, with the command that creates it.
 */
export async function resolveJobUser(name: string): Promise<JobUser | undefined> {
  if (!runsAsRoot()) return undefined;
  const user = await lookupUser(name);
  if (!user) throw new Error(`the runner runs as root and the job user "${name}" (FURROW_JOB_USER) does not exist; run "furrow doctor --fix" to create it`);
  if (user.uid === 0) throw new Error(`the job user "${name}" (FURROW_JOB_USER) has uid 0; jobs never run as root`);
  return user;
}

/** The useradd program of this host, or undefined when it has none. */
export async function findUseradd(): Promise<string | undefined> {
  for (const file of USERADD_PATHS) if (await access(file, constants.X_OK).then(() => true, () => false)) return file;
  return undefined;
}

/** Creates `name` as a system user without a login shell or home when it is missing. */
export async function ensureJobUser(name: string): Promise<{ created: boolean; user: JobUser }> {
  const existing = await lookupUser(name);
  if (existing) return { created: false, user: existing };
  const useradd = await findUseradd();
  if (!useradd) throw new Error(`cannot create the job user "${name}": this host has no useradd; create the user by hand`);
  const added = await run(useradd, ['--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', name]).then(
    () => undefined,
    (err: Error & { stderr?: string }) => err,
  );
  const user = await lookupUser(name);
  // A failure is fine when another process created the user meanwhile.
  if (!user) throw new Error(`useradd could not create ${name}: ${added?.stderr?.trim() || added?.message || 'no such user afterwards'}`);
  return { created: !added, user };
}

/**
 * The user of job slot `index` (0-based): each job a runner runs at once has a slot, and each slot
 * its own user, so that concurrent jobs cannot read, signal or trace each other's processes.
 */
export function slotUserName(base: string, index: number): string {
  return `${base}-${index}`;
}

/** The users of slots 0..capacity-1. */
export function slotUserNames(base: string, capacity: number): string[] {
  return Array.from({ length: capacity }, (_, i) => slotUserName(base, i));
}

/**
 * When this process runs as root, creates the users of slots 0..capacity-1 that are missing, so
 * that a runner on a fresh machine can run jobs at once. Says through `log` what it did or why it
 * could not, and never throws: without the users, the runner refuses to start with
 * resolveJobUser's message instead.
 */
export async function ensureSlotUsersWhenRoot(base: string, capacity: number, log: (level: 'info' | 'warn', msg: string) => void): Promise<void> {
  if (!runsAsRoot()) return;
  for (const name of slotUserNames(base, capacity)) {
    try {
      const { created, user } = await ensureJobUser(name);
      if (created) log('info', `created the job user ${name} (uid ${user.uid}); the jobs of one slot run as this user`);
    } catch (err) {
      log('warn', `jobs cannot run until the job user exists: ${(err as Error).message}`);
    }
  }
}

/**
 * Whether `user` may pass through directory `dir` (search permission by owner, group or other).
 * A directory not made yet counts as passable: the runner makes its directories 0711 or 0755.
 */
function traversable(dir: string, user: JobUser): boolean {
  const s = statSync(dir, { throwIfNoEntry: false });
  if (!s) return true;
  // Only the primary group counts: job processes start without supplementary groups.
  const bit = s.uid === user.uid ? 0o100 : s.gid === user.gid ? 0o010 : 0o001;
  return (s.mode & bit) !== 0;
}

/**
 * Throws, saying which directory to open up, when `user` cannot reach `dir` because a directory
 * above it is not traversable for it. ACLs are not read. The directories are looked at
 * synchronously: this runs before every job, and a few stat calls take microseconds where each
 * trip through the thread pool waits behind every other file operation of a busy runner.
 */
export async function assertReachable(dir: string, user: JobUser): Promise<void> {
  const above: string[] = [];
  for (let d = path.dirname(path.resolve(dir)); ; d = path.dirname(d)) {
    above.unshift(d);
    if (d === path.dirname(d)) break;
  }
  for (const d of above) {
    if (!traversable(d, user)) {
      throw new Error(
        `the job user ${user.name} cannot reach ${dir}: ${d} is not traversable for it; run "chmod o+x ${d}" or move the work dir (FURROW_DATA_DIR, FURROW_WORK_DIR or FURROW_RUNNER_WORK_DIR) elsewhere`,
      );
    }
  }
}
