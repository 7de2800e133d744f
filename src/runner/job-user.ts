import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

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

/** Creates `name` as a system user without a login shell or home when it is missing. */
export async function ensureJobUser(name: string): Promise<{ created: boolean; user: JobUser }> {
  const existing = await lookupUser(name);
  if (existing) return { created: false, user: existing };
  await run('useradd', ['--system', '--user-group', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', name]);
  const user = await lookupUser(name);
  if (!user) throw new Error(`useradd did not create ${name}`);
  return { created: true, user };
}
