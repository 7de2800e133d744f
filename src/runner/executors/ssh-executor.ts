import { spawn } from 'node:child_process';
import { access, constants, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ExecutorSettings } from '../../config/load-config.js';
import { shellQuote as q } from '../shell-quote.js';
import type { Executor, JobContext, ProbeResult, StepContext, StepResult } from './executor.js';
import { JOB_PATH, spawnStep, stepEnv } from './spawn-step.js';

/** Seconds ssh waits for the TCP connection and the handshake. */
const CONNECT_TIMEOUT_S = 10;
/** Upper bound for the executor's own remote commands (workspace, upload, stop, cleanup). */
const COMMAND_TIMEOUT_MS = 60_000;
/** Upper bound for `probe`, which `furrow doctor` waits for. */
const PROBE_TIMEOUT_MS = 15_000;
/** Job and step ids become remote file names: no separators, no leading dot or dash. */
const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Characters ssh would split a path option at or expand in it (`%h`, `${VAR}`). */
const SSH_UNSAFE_PATH = /[\s"'\\%$]/;
const NO_CLIENT = 'the ssh client was not found; install openssh-client';

/** Where one job lives on the target: the steps' workspace and the executor's own files beside it. */
interface RemoteJob {
  workspace: string;
  scratch: string;
}

/** A step's files in the remote scratch dir. */
function stepFiles(job: RemoteJob, stepId: string) {
  if (!SAFE_ID.test(stepId)) throw new Error(`step id "${stepId}" cannot name a file on the ssh target`);
  const file = (ext: string) => path.posix.join(job.scratch, `step-${stepId}.${ext}`);
  return { upload: file('in'), env: file('env'), script: file('sh'), pid: file('pid'), cancel: file('cancel') };
}
type StepFiles = ReturnType<typeof stepFiles>;

/**
 * Shell functions for finding and signalling a job's remote processes: the step's process group
 * (its bash leads one, set up by setsid, and records its pid in `pidFile`), and every process
 * whose environment carries FURROW_WORKSPACE of the job, also those that left the group.
 */
function reapFunctions(job: RemoteJob, pidFile: string | undefined): string {
  return `p=${q(pidFile ?? '')} m=${q(`FURROW_WORKSPACE=${job.workspace}`)}
targets() {
  pg=$(cat "$p" 2>/dev/null) || pg=
  case $pg in ''|*[!0-9]*) ;; *) [ "$pg" -gt 1 ] && echo "-$pg" ;; esac
  grep -lsxzF -e "$m" /proc/[0-9]*/environ | sed 's|^/proc/\\([0-9]*\\)/environ$|\\1|'
}
reap() { t=$(targets); [ -z "$t" ] || kill -"$1" $t 2>/dev/null; }
alive() { for x in $(targets); do kill -0 "$x" 2>/dev/null && return 0; done; return 1; }`;
}

/**
 * The file bash reads before the script (BASH_ENV): it records the step's pid (its process group)
 * and exports the environment, so that no value appears on a command line.
 */
function envFile(env: Record<string, string>, pidFile: string): string {
  const lines = ['unset BASH_ENV', `echo "$$" > ${q(pidFile)}`];
  for (const [name, value] of Object.entries(env)) {
    if (!ENV_NAME.test(name)) throw new Error(`the variable name "${name}" cannot be set in a shell on the ssh target; use letters, digits and _`);
    lines.push(`export ${name}=${q(value)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The last lines of what ssh or a remote command said, without the host key warning's banner. */
function lastLines(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('@'));
  return lines.slice(-2).join(' ');
}

/**
 * Runs each job on the host FURROW_SSH_TARGET names, reached with the system ssh client. It
 * authenticates with FURROW_SSH_KEY_FILE alone (no agent, no ssh config) and trusts only the host
 * key in FURROW_SSH_KNOWN_HOSTS. Each job gets a workspace under FURROW_SSH_WORK_DIR on the target;
 * each step is uploaded over stdin and runs there under setsid with an environment built only from
 * the job spec, as whichever user the target names. The target needs a POSIX login shell, bash,
 * setsid (util-linux) and Linux /proc, through which a canceled step's processes are found.
 */
export class SshExecutor implements Executor {
  readonly name = 'ssh';

  constructor(readonly settings: ExecutorSettings) {}

  private get ssh() {
    return this.settings.ssh;
  }

  /** What is wrong with the ssh settings, or undefined. */
  private settingsProblem(): string | undefined {
    const { target, keyFile, knownHosts, workDir } = this.ssh;
    const unset = Object.entries({ FURROW_SSH_TARGET: target, FURROW_SSH_KEY_FILE: keyFile, FURROW_SSH_KNOWN_HOSTS: knownHosts })
      .filter(([, v]) => v === undefined)
      .map(([k]) => k);
    if (unset.length > 0) return `set FURROW_SSH_TARGET, FURROW_SSH_KEY_FILE, FURROW_SSH_KNOWN_HOSTS (unset: ${unset.join(', ')})`;
    for (const [name, value] of [['FURROW_SSH_KEY_FILE', keyFile], ['FURROW_SSH_KNOWN_HOSTS', knownHosts]] as const) {
      if (SSH_UNSAFE_PATH.test(value!)) return `${name} must be a path without spaces, quotes, % or $ (ssh would split or expand it), got "${value}"`;
    }
    if (!workDir.startsWith('/')) return `FURROW_SSH_WORK_DIR must be an absolute path on the target, got "${workDir}"`;
    return undefined;
  }

  private remoteJob(jobId: string): RemoteJob {
    const problem = this.settingsProblem();
    if (problem) throw new Error(`the ssh executor is not set up: ${problem}`);
    if (!SAFE_ID.test(jobId)) throw new Error(`job id "${jobId}" cannot name a directory on the ssh target`);
    return { workspace: path.posix.join(this.ssh.workDir, jobId), scratch: path.posix.join(this.ssh.workDir, `.${jobId}`) };
  }

  /** ssh's argv up to the remote command: only the settings' key and known_hosts count. */
  private sshArgv(remoteCommand: string, extra: string[] = [], connectTimeoutS = CONNECT_TIMEOUT_S): string[] {
    const { target, port, keyFile, knownHosts } = this.ssh;
    const options = [
      'BatchMode=yes',
      'IdentitiesOnly=yes',
      'IdentityAgent=none',
      'PreferredAuthentications=publickey',
      'StrictHostKeyChecking=yes',
      `UserKnownHostsFile=${knownHosts}`,
      'GlobalKnownHostsFile=/dev/null',
      'UpdateHostKeys=no',
      'ServerAliveInterval=15',
      'ServerAliveCountMax=4',
      `ConnectTimeout=${connectTimeoutS}`,
      'LogLevel=ERROR',
    ];
    // -F none: the runner user's ~/.ssh/config must not add hosts, keys or proxies. `--` before the
    // target: nothing after it is read as an option.
    return ['ssh', '-F', 'none', '-T', '-p', String(port), '-i', keyFile!, ...options.flatMap((o) => ['-o', o]), ...extra, '--', target!, remoteCommand];
  }

  /** Runs one of the executor's own commands on the target; resolves with its exit code and output. */
  private remote(command: string, opts: { input?: Buffer; timeoutMs?: number; connectTimeoutS?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const [file, ...args] = this.sshArgv(command, [], opts.connectTimeoutS);
    return new Promise((resolve, reject) => {
      const child = spawn(file!, args, {
        env: { PATH: JOB_PATH },
        stdio: [opts.input ? 'pipe' : 'ignore', 'pipe', 'pipe'],
        timeout: opts.timeoutMs ?? COMMAND_TIMEOUT_MS,
        killSignal: 'SIGKILL',
      });
      // The executor's own commands say little; only the end is kept, should a target say more.
      let stdout = '';
      let stderr = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout = (stdout + d).slice(-8192)));
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-8192)));
      if (opts.input) {
        child.stdin!.on('error', () => undefined); // ssh gone early: its exit code tells why
        child.stdin!.end(opts.input);
      }
      child.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'ENOENT' ? new Error(NO_CLIENT) : err));
      child.once('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  /** Like `remote`, but throws a message naming what failed when the command does not succeed. */
  private async remoteOrThrow(what: string, command: string, input?: Buffer): Promise<void> {
    const { code, stderr } = await this.remote(command, input ? { input } : {});
    if (code === 0) return;
    throw new Error(`${what} on ${this.describeTarget()} failed: ${this.explain(code, stderr)}`);
  }

  private describeTarget(): string {
    return `${this.ssh.target} port ${this.ssh.port}`;
  }

  /** Why an ssh call failed, with a hint at the setting to check. */
  private explain(code: number | null, text: string): string {
    const said = lastLines(text) || (code === null ? 'no answer in time' : `exit code ${code}`);
    if (code !== 255) return said;
    if (/host key/i.test(text)) return `${said} (FURROW_SSH_KNOWN_HOSTS, ${this.ssh.knownHosts}, must hold the target's host key)`;
    if (/permission denied/i.test(text)) return `${said} (the target must accept FURROW_SSH_KEY_FILE, ${this.ssh.keyFile})`;
    return said;
  }

  async probe(): Promise<ProbeResult> {
    let version: string;
    try {
      version = await sshVersion();
    } catch {
      return { ok: false, detail: NO_CLIENT };
    }
    const problem = this.settingsProblem();
    if (problem) return { ok: false, detail: problem };
    for (const [name, file] of [['FURROW_SSH_KEY_FILE', this.ssh.keyFile!], ['FURROW_SSH_KNOWN_HOSTS', this.ssh.knownHosts!]]) {
      const unreadable = await access(file, constants.R_OK).then(() => undefined, (err: Error) => err.message);
      if (unreadable) return { ok: false, detail: `${name}: ${unreadable}` };
    }
    const check = 'command -v bash >/dev/null && command -v setsid >/dev/null || { echo "the target needs bash and setsid (util-linux)" >&2; exit 1; }\nid -u';
    try {
      const { code, stdout, stderr } = await this.remote(check, { timeoutMs: PROBE_TIMEOUT_MS, connectTimeoutS: 5 });
      if (code === 0) return { ok: true, detail: `${version}; ${this.describeTarget()} answers; jobs run there as uid ${stdout.trim()}` };
      return { ok: false, detail: `${this.describeTarget()}: ${this.explain(code, stderr)}` };
    } catch (err) {
      return { ok: false, detail: `ssh failed: ${(err as Error).message}` };
    }
  }

  async prepareJob(job: JobContext): Promise<void> {
    if (job.spec.network === 'none') throw new Error('the job asks for no network (network: none), which the ssh executor cannot enforce on its target');
    // The runner checks out and runs the job's ssh-agent on its own host, which the target does not see.
    if (job.spec.checkout) throw new Error('the ssh executor cannot check out the repository on its target yet: set `checkout: false` and fetch in a step, or run the job on a shell, bwrap or podman runner');
    if (job.spec.secrets.some((s) => s.kind === 'ssh')) throw new Error('the ssh executor cannot hand SSH secrets to its target yet: run the job on a shell or bwrap runner');
    const { upload, download } = job.spec.artifacts;
    if (upload.length + download.length > 0) throw new Error('the ssh executor cannot move artifacts to or from its target yet: run the job on a shell, bwrap or podman runner');
    const remote = this.remoteJob(job.spec.jobId);
    const base = q(this.ssh.workDir);
    const [ws, scr] = [q(remote.workspace), q(remote.scratch)];
    // The base dir must be the ssh user's own: under /tmp another user could have made it first.
    await this.remoteOrThrow(
      'creating the job workspace',
      `umask 077
mkdir -p ${base} 2>/dev/null
[ -d ${base} ] && [ ! -h ${base} ] && [ -O ${base} ] || { printf '%s must be a directory the ssh user owns (FURROW_SSH_WORK_DIR)\\n' ${base} >&2; exit 1; }
chmod -R u+rwX ${ws} ${scr} 2>/dev/null
rm -rf ${ws} ${scr} && mkdir -m 700 ${ws} ${scr}`,
    );
  }

  async cleanupJob(job: JobContext): Promise<void> {
    try {
      const remote = this.remoteJob(job.spec.jobId);
      const [ws, scr] = [q(remote.workspace), q(remote.scratch)];
      // Processes a lost connection left running go first; their files after. A process caught
      // in the middle of an exec shows no environment yet: the second pass finds it.
      await this.remote(`${reapFunctions(remote, undefined)}
reap KILL
sleep 0.1
reap KILL
chmod -R u+rwX ${ws} ${scr} 2>/dev/null
rm -rf ${ws} ${scr}`);
    } catch {
      // Nothing to report to: the job's outcome is already known, and the next run starts afresh.
    }
  }

  async runStep(ctx: StepContext): Promise<StepResult> {
    const remote = this.remoteJob(ctx.spec.jobId);
    const files = stepFiles(remote, ctx.step.id);
    const env = envFile(stepEnv(ctx, remote.workspace), files.pid);
    const envLines = env.split('\n').length - 1;
    // One upload carries both files; bash reads the environment through BASH_ENV, so the script
    // keeps its own line numbers in error messages.
    await this.remoteOrThrow(
      'uploading the step',
      `cat > ${q(files.upload)} && head -n ${envLines} ${q(files.upload)} > ${q(files.env)} && tail -n +${envLines + 1} ${q(files.upload)} > ${q(files.script)} && rm -f ${q(files.upload)}`,
      Buffer.concat([Buffer.from(env), Buffer.from(ctx.step.script)]),
    );
    if (ctx.signal.aborted) return { exitCode: null, signal: 'SIGTERM' }; // canceled during the upload: never started
    let stopping: Promise<unknown> | undefined;
    const onAbort = () => (stopping ??= this.stopStep(remote, files));
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    const log = path.join(ctx.scratch, `ssh-${ctx.step.id}.log`);
    let result: StepResult;
    try {
      // Killing this local ssh (what spawnStep does on abort) leaves the remote processes running:
      // without a terminal nothing hangs them up. stopStep ends them over a second connection.
      result = await spawnStep(ctx, this.sshArgv(stepCommand(remote, files), ['-E', log]), { cwd: ctx.workspace, env: { PATH: JOB_PATH } });
    } finally {
      ctx.signal.removeEventListener('abort', onAbort);
      await stopping;
    }
    // Reported like a local step's end by signal: ssh itself says 255 when spawnStep stops it.
    if (ctx.signal.aborted && (result.exitCode === null || result.exitCode === 255 || result.exitCode > 128)) return { exitCode: null, signal: result.signal ?? 'SIGTERM' };
    // 255 is ssh's own failure, or the script's `exit 255`: only ssh writes to its -E log.
    if (result.exitCode === 255) {
      const said = await readFile(log, 'utf8').catch(() => '');
      if (said.trim() !== '') throw new Error(`ssh to ${this.describeTarget()} failed: ${this.explain(255, said)}`);
    }
    return result;
  }

  /** Ends a canceled step on the target: SIGTERM, a second to exit, then SIGKILL. Never throws. */
  private stopStep(remote: RemoteJob, files: StepFiles): Promise<unknown> {
    // The cancel file keeps a step whose connection was still being set up from starting at all.
    const command = `${reapFunctions(remote, files.pid)}
: > ${q(files.cancel)} 2>/dev/null
reap TERM
n=0
while [ $n -lt 10 ] && alive; do sleep 0.1; n=$((n + 1)); done
reap KILL`;
    return this.remote(command, { timeoutMs: 15_000 }).catch(() => undefined);
  }
}

/**
 * The remote side of a step: unless it was canceled meanwhile, bash runs the uploaded script in
 * its own process group (setsid) with a cleared environment (BASH_ENV then sets the spec's); whatever the script
 * left behind is killed when it ends, and its exit code becomes ssh's.
 */
function stepCommand(remote: RemoteJob, files: StepFiles): string {
  return `${reapFunctions(remote, files.pid)}
[ -e ${q(files.cancel)} ] && exit 143
cd ${q(remote.workspace)} || exit 125
setsid -w env -i PATH=${q(JOB_PATH)} BASH_ENV=${q(files.env)} FURROW_WORKSPACE=${q(remote.workspace)} bash --noprofile --norc -e -o pipefail ${q(files.script)}
rc=$?
reap KILL
rm -f "$p"
exit $rc`;
}

/** `OpenSSH_9.2p1` or so; rejects when there is no ssh client. */
function sshVersion(): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('ssh', ['-V'], { env: { PATH: JOB_PATH }, stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
    let out = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.once('error', reject);
    child.once('close', () => resolve(out.split(',')[0]!.trim() || 'ssh'));
  });
}
