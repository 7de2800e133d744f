import { execFile } from 'node:child_process';
import { access, chown, mkdir, readFile, rm } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ExecutorSettings } from '../../config/load-config.js';
import type { JobUser } from '../job-user.js';
import { shellQuote } from '../shell-quote.js';
import type { Executor, JobContext, ProbeResult, StepContext, StepResult } from './executor.js';
import { JOB_PATH, spawnStep, stepEnv, writeStepScript } from './spawn-step.js';

const run = promisify(execFile);

/** Where the workspace appears inside the container (also the steps' HOME and working directory). */
const WORKSPACE = '/workspace';
/** Where a step's script and environment file appear inside the container. */
const STEP_DIR = '/furrow';
/** Seconds a canceled step's container gets between SIGTERM and SIGKILL. */
const STOP_GRACE_SECONDS = 1;
/** podman's --init binary (catatonit): it passes a cancel's SIGTERM on to the script. */
const INIT_PATH = '/usr/libexec/podman/catatonit';
/** Container label through which cleanup finds every container of a job. */
const JOB_LABEL = 'furrow.job';
/** Names the environment file can export (the server allows no others). */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const CAP_SYS_RESOURCE = 24n;

/**
 * What runs inside the container: it loads the step's environment, then runs the script with bash
 * when the image has it, else with the image's sh (with pipefail where that sh knows it). Constant
 * text: nothing of the job is ever parsed as part of a command.
 */
const STEP_COMMAND = `. ${STEP_DIR}/env
if command -v bash >/dev/null 2>&1; then exec bash --noprofile --norc -e -o pipefail ${STEP_DIR}/step.sh; fi
if (set -o pipefail) 2>/dev/null; then exec sh -e -o pipefail ${STEP_DIR}/step.sh; fi
exec sh -e ${STEP_DIR}/step.sh`;

/** Facts about the host, read once: they decide flags of every `podman run`. */
interface HostFacts {
  /** `--runtime` value, or undefined for podman's default. */
  runtime: string | undefined;
  /** podman's default rlimits are above what a runner without CAP_SYS_RESOURCE may set. */
  lowUlimits: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What podman said last on stderr: its error message. */
function podmanError(err: unknown): string {
  const { stderr, message } = err as { stderr?: string; message: string };
  return stderr?.trim().split('\n').at(-1) || message;
}

async function readHostFacts(settings: ExecutorSettings): Promise<HostFacts> {
  // cgroups v1 (no unified cgroup.controllers): crun refuses to run there, runc works.
  const v1 = await access('/sys/fs/cgroup/cgroup.controllers').then(
    () => false,
    () => true,
  );
  const status = await readFile('/proc/self/status', 'utf8').catch(() => '');
  const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  return {
    runtime: settings.podmanRuntime ?? (v1 ? 'runc' : undefined),
    lowUlimits: capEff !== undefined && ((BigInt(`0x${capEff}`) >> CAP_SYS_RESOURCE) & 1n) === 0n,
  };
}

/**
 * Runs each step as one `podman run --rm` of the job's image: the workspace bind-mounted at
 * /workspace, an environment built only from the job spec over the image's own ENV (whose PATH
 * stays), the cgroup limits of the settings, no network when the job asks for none and, when the
 * runner is root, the job user's uid without capabilities. All of a step's processes live in its
 * container (`furrow-<jobId>-<stepId>`), so removing it ends them. Images are pulled only when
 * missing: tags already present are not refreshed.
 */
export class PodmanExecutor implements Executor {
  readonly name = 'podman';
  /** The user of each prepared job (undefined: the runner is not root; the image's user runs). */
  private readonly jobs = new Map<string, JobUser | undefined>();
  private facts: Promise<HostFacts> | undefined;

  constructor(readonly settings: ExecutorSettings) {}

  private hostFacts(): Promise<HostFacts> {
    return (this.facts ??= readHostFacts(this.settings));
  }

  async probe(): Promise<ProbeResult> {
    const { runtime } = await this.hostFacts();
    let info: string;
    try {
      const global = runtime ? ['--runtime', runtime] : [];
      ({ stdout: info } = await run('podman', [...global, 'info', '--format', '{{.Version.Version}} {{.Host.OCIRuntime.Name}} {{.Host.CgroupsVersion}}'], { timeout: 30_000 }));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ok: false, detail: 'podman is not installed; install podman and runc (scripts/install-host-packages.sh)' };
      return { ok: false, detail: `podman info failed: ${podmanError(err)}` };
    }
    const [version, runtimeName, cgroups] = info.trim().split(' ');
    if (!(await access(INIT_PATH).then(() => true, () => false))) return { ok: false, detail: `podman ${version} lacks its --init binary ${INIT_PATH}; install catatonit` };
    return { ok: true, detail: `podman ${version}, runtime ${runtimeName}, cgroups ${cgroups}` };
  }

  async prepareJob(job: JobContext): Promise<void> {
    const { image, env } = job.spec;
    if (!image) throw new Error('the workflow names no image; the podman executor needs one');
    // The job's ssh-agent listens on the runner's host, outside the container.
    if (job.spec.secrets.some((s) => s.kind === 'ssh')) throw new Error('the podman executor cannot hand SSH secrets to a container yet: run the job on a shell or bwrap runner');
    const bad = Object.keys(env).find((name) => !ENV_NAME.test(name));
    if (bad !== undefined) throw new Error(`"${bad}" cannot be passed into a container as an environment variable (letters, digits and _ only)`);
    const { user } = job;
    if (user) await chown(job.workspace, user.uid, user.gid);
    try {
      await run('podman', ['image', 'exists', '--', image]);
    } catch {
      try {
        await run('podman', ['pull', '--quiet', '--', image], { signal: job.signal });
      } catch (err) {
        throw new Error(`the image "${image}" is not on this runner and pulling it failed: ${podmanError(err)}`);
      }
    }
    this.jobs.set(job.spec.jobId, user);
  }

  async runStep(ctx: StepContext): Promise<StepResult> {
    // Without prepareJob the step could run as the image's user, which may be root.
    if (!this.jobs.has(ctx.spec.jobId)) throw new Error(`job ${ctx.spec.jobId} was not prepared`);
    const user = this.jobs.get(ctx.spec.jobId);
    const stepDir = path.join(ctx.scratch, `step-${ctx.step.id}`);
    const name = `furrow-${ctx.spec.jobId}-${ctx.step.id}`.replace(/[^A-Za-z0-9_.-]/g, '-');
    try {
      await this.writeStepFiles(ctx, stepDir, user);
      const args = await this.runArgs(ctx, name, stepDir, user);
      // podman's own environment: a client without the runner's variables passes none of them on.
      const step = spawnStep(ctx, ['podman', ...args], { cwd: ctx.workspace, env: { PATH: JOB_PATH, HOME: userInfo().homedir } });
      // spawnStep kills the client on abort, which does not reach a container ignoring SIGTERM
      // (nor one not created yet): removing it does. The step resolves once its output pipes
      // close, and with the passthrough log driver the container's processes hold them.
      let removing: Promise<void> | undefined;
      const onAbort = () => void (removing = this.removeContainer(name, step));
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      if (ctx.signal.aborted) onAbort();
      try {
        const result = await step;
        // A signalled client's exit status says nothing of the script's (it may even be 0).
        return removing ? { exitCode: null, signal: 'SIGTERM' } : result;
      } finally {
        ctx.signal.removeEventListener('abort', onAbort);
        await removing;
      }
    } finally {
      // The environment file holds the job's secrets: it lives no longer than the step.
      await rm(stepDir, { recursive: true, force: true });
    }
  }

  async cleanupJob(job: JobContext): Promise<void> {
    this.jobs.delete(job.spec.jobId);
    try {
      const { stdout } = await run('podman', ['ps', '--all', '--quiet', '--filter', `label=${JOB_LABEL}=${job.spec.jobId}`]);
      const ids = stdout.split('\n').filter((id) => id !== '');
      if (ids.length > 0) await run('podman', ['rm', '--force', '--ignore', '--time', '0', ...ids]);
    } catch {
      // best effort: a step removes its own container; this only catches what a failure left
    }
  }

  /** The step's script and environment file, for the job user alone. */
  private async writeStepFiles(ctx: StepContext, dir: string, user: JobUser | undefined): Promise<void> {
    // The image decides PATH (e.g. /usr/local/go/bin); everything else is as on the host.
    const { PATH: _, ...env } = stepEnv(ctx, WORKSPACE);
    const exports = Object.entries(env).map(([k, v]) => `export ${k}=${shellQuote(v)}\n`);
    await mkdir(dir, { mode: 0o700 });
    if (user) await chown(dir, user.uid, user.gid);
    writeStepScript(path.join(dir, 'env'), exports.join(''), user);
    writeStepScript(path.join(dir, 'step.sh'), ctx.step.script, user);
  }

  private async runArgs(ctx: StepContext, name: string, stepDir: string, user: JobUser | undefined): Promise<string[]> {
    const { runtime, lowUlimits } = await this.hostFacts();
    const { memoryMb, pidsMax, cpuPercent } = this.settings.limits;
    return [
      'run',
      '--rm',
      '--name', name,
      '--label', `${JOB_LABEL}=${ctx.spec.jobId}`,
      '--pull', 'never',
      '--init',
      // A cancel stops the container through `podman rm` (removeContainer). Forwarding the
      // client's SIGTERM as well would start a `runc kill` in the step's process group, which the
      // same cancel kills, and podman would print that failure into the step's output.
      '--sig-proxy=false',
      // The container writes into the step's pipes itself: no copy through podman, no log file.
      '--log-driver', 'passthrough',
      ...(runtime ? ['--runtime', runtime] : []),
      ...(lowUlimits ? ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'] : []),
      ...(memoryMb > 0 ? ['--memory', `${memoryMb}m`] : []),
      ...(pidsMax > 0 ? ['--pids-limit', String(pidsMax)] : []),
      ...(cpuPercent > 0 ? ['--cpus', String(cpuPercent / 100)] : []),
      ...(ctx.spec.network === 'none' ? ['--network', 'none'] : []),
      ...(user ? ['--user', `${user.uid}:${user.gid}`, '--cap-drop', 'all', '--security-opt', 'no-new-privileges'] : []),
      // Absolute: podman takes a relative source for the name of a volume.
      '--volume', `${path.resolve(ctx.workspace)}:${WORKSPACE}`,
      '--volume', `${path.resolve(stepDir)}:${STEP_DIR}:ro`,
      '--workdir', WORKSPACE,
      '--entrypoint', 'sh',
      '--',
      ctx.spec.image!,
      '-c', STEP_COMMAND,
    ];
  }

  /**
   * Stops (SIGTERM, SIGKILL after the grace) and removes a step's container, again and again
   * until the step has ended: a cancel may come before podman has created the container.
   */
  private async removeContainer(name: string, step: Promise<unknown>): Promise<void> {
    let ended = false;
    const settled = step.then(
      () => (ended = true),
      () => (ended = true),
    );
    while (!ended) {
      await run('podman', ['rm', '--force', '--ignore', '--time', String(STOP_GRACE_SECONDS), name]).catch(() => undefined);
      await Promise.race([settled, sleep(100)]);
    }
    // The client is gone, so nothing creates the container any more: one that a process detached
    // from the pipes kept alive goes now.
    await run('podman', ['rm', '--force', '--ignore', '--time', '0', name]).catch(() => undefined);
  }
}
