import { execFile } from 'node:child_process';
import { lstat, readFile, readlink, realpath } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { JobSpec } from '../../protocol/messages.js';
import { resolveJobUser, slotUserName, type JobUser } from '../job-user.js';
import type { JobContext, ProbeResult, StepContext } from './executor.js';
import { HostExecutor, type StepCommand } from './host-executor.js';
import { JOB_PATH } from './spawn-step.js';

const run = promisify(execFile);

/**
 * Host paths a sandbox shows, read-only: programs, libraries and configuration. Everything else
 * (/home, /root, /var, /srv, /opt, /run, /mnt, the server's data dir wherever it is) is absent.
 */
const SYSTEM_PATHS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/etc'];

/** Read-only binds of the system directories; merged-/usr links (/bin -> usr/bin) stay links. */
async function systemMounts(): Promise<string[]> {
  const args: string[] = [];
  for (const p of SYSTEM_PATHS) {
    const stat = await lstat(p).catch(() => undefined);
    if (stat?.isSymbolicLink()) args.push('--symlink', await readlink(p), p);
    else if (stat?.isDirectory()) args.push('--ro-bind', p, p);
  }
  // A resolv.conf linked into /run (systemd-resolved) would dangle, as /run is not shown.
  const resolv = await realpath('/etc/resolv.conf').catch(() => undefined);
  if (resolv && !/^\/(etc|usr)\//.test(resolv)) args.push('--ro-bind', resolv, resolv);
  return args;
}

/** Namespaces and the fresh system of every sandbox; the job's own mounts follow. */
async function sandboxArgs(network: JobSpec['network']): Promise<string[]> {
  return [
    // A user namespace of its own that cannot nest further ones: less kernel surface for the job.
    '--unshare-user',
    '--disable-userns',
    '--unshare-pid',
    '--unshare-ipc',
    '--unshare-uts',
    ...(network === 'none' ? ['--unshare-net'] : []),
    '--die-with-parent',
    // No controlling terminal to push input into (TIOCSTI).
    '--new-session',
    ...(await systemMounts()),
    '--dev', '/dev',
    '--proc', '/proc',
    '--tmpfs', '/tmp',
  ];
}

/**
 * The job's paths, each where it is on the host: the workspace writable, the step's script
 * read-only. The directories holding them (the runner's work dir, with its credential and the
 * other jobs' workspaces) are covered by empty tmpfs first, made read-only like the root after.
 */
function jobMounts(job: JobContext, script: string): string[] {
  // The job's ssh-agent (SSH secrets) listens in the scratch dir: its socket is shown too.
  const sock = job.spec.env.SSH_AUTH_SOCK;
  const agent = sock?.startsWith(`${job.scratch}/`) ? sock : undefined;
  const masks = [...new Set([path.dirname(job.workspace), path.dirname(job.scratch)])]
    .filter((d) => d !== '/' && d !== '/tmp') // already fresh in the sandbox
    .sort((a, b) => a.length - b.length);
  return [
    ...masks.flatMap((d) => ['--tmpfs', d]),
    '--bind', job.workspace, job.workspace,
    '--ro-bind', script, script,
    ...(agent ? ['--bind', agent, agent] : []),
    ...masks.flatMap((d) => ['--remount-ro', d]),
    '--remount-ro', '/',
  ];
}

/** The sysctl that keeps unprivileged users from creating user namespaces, if one does. */
async function userNamespaceBlocker(): Promise<string | undefined> {
  const sysctl = (name: string) => readFile(`/proc/sys/${name.replaceAll('.', '/')}`, 'utf8').then((v) => v.trim(), () => undefined);
  if ((await sysctl('kernel.unprivileged_userns_clone')) === '0') return 'unprivileged user namespaces are disabled: set sysctl kernel.unprivileged_userns_clone=1';
  if ((await sysctl('user.max_user_namespaces')) === '0') return 'user namespaces are disabled: set sysctl user.max_user_namespaces to a positive number (e.g. 15000)';
  if ((await sysctl('kernel.apparmor_restrict_unprivileged_userns')) === '1') {
    return 'AppArmor restricts unprivileged user namespaces: set sysctl kernel.apparmor_restrict_unprivileged_userns=0 or give /usr/bin/bwrap an AppArmor profile that allows userns';
  }
  return undefined;
}

/**
 * Runs each step as `bash FILE` in a bubblewrap sandbox: the host's system directories read-only,
 * fresh /dev, /proc and /tmp, the workspace as the only writable host path, own user, PID, IPC and
 * UTS namespaces (and network namespace for `network: none`). When the runner is root, bwrap
 * itself starts as the job's slot user (FURROW_JOB_USER-N), really dropped to it: bwrap's own `--uid` only
 * renames root inside the sandbox. As root, each job also gets a cgroup with the configured limits.
 */
export class BwrapExecutor extends HostExecutor {
  readonly name = 'bwrap';

  async probe(): Promise<ProbeResult> {
    const options = { env: { PATH: JOB_PATH }, cwd: '/', timeout: 10_000 };
    let version: string;
    try {
      version = (await run('bwrap', ['--version'], options)).stdout.trim();
    } catch (err) {
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      return { ok: false, detail: missing ? 'bwrap not found: install bubblewrap (scripts/install-host-packages.sh)' : `bwrap --version failed: ${(err as Error).message}` };
    }
    let user: JobUser | undefined;
    try {
      user = await resolveJobUser(slotUserName(this.settings.jobUser, 0));
    } catch (err) {
      return { ok: false, detail: (err as Error).message };
    }
    const who = user ? `one user per job slot, ${this.settings.jobUser}-N (${user.name} is uid ${user.uid})` : 'the runner\'s user (it is not root)';
    // The smallest real sandbox, with every namespace a job may get, as the user jobs run as.
    const trial = [...(await sandboxArgs('none')), '--remount-ro', '/', '--', 'true'];
    try {
      await run('bwrap', trial, { ...options, ...(user ? { uid: user.uid, gid: user.gid } : {}) });
    } catch (err) {
      const said = String((err as { stderr?: string }).stderr ?? '').trim() || (err as Error).message;
      if (said.includes('Unknown option')) return { ok: false, detail: `${version} is too old: bubblewrap 0.8 or newer is needed (${said})` };
      const blocker = await userNamespaceBlocker();
      return { ok: false, detail: `bwrap cannot create a sandbox as ${who}: ${blocker ? `${blocker} (${said})` : said}` };
    }
    return { ok: true, detail: `${version}; jobs run as ${who}; cgroups: ${await this.host.describeCgroups()}` };
  }

  protected async stepCommand(ctx: StepContext, script: string): Promise<StepCommand> {
    const argv = [
      'bwrap',
      ...(await sandboxArgs(ctx.spec.network)),
      ...jobMounts(ctx, script),
      '--chdir', ctx.workspace,
      '--', 'bash', '--noprofile', '--norc', '-e', '-o', 'pipefail', script,
    ];
    // bwrap starts outside the sandbox, in /; it hands its environment, built from the spec alone, to the step.
    return { argv, cwd: '/' };
  }
}
