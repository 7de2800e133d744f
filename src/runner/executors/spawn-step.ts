import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { closeSync, fchownSync, openSync, writeFileSync } from 'node:fs';
import type { JobCgroup } from '../cgroups.js';
import type { JobUser } from '../job-user.js';
import { killProcessTree, pidMark, processTree } from '../process-tree.js';
import type { StepContext, StepResult } from './executor.js';

/** PATH for job processes and the git and ssh commands run for them: the runner's own environment is never passed on. */
export const JOB_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/**
 * How long output may stay open, with nothing read meanwhile, once every process of the step that
 * the runner can find is gone: it is then held by one it cannot find (`setsid env -i …`).
 */
const HELD_OUTPUT_MS = 2000;
/** Time between the polite SIGTERM and the SIGKILL when a step is canceled or times out. */
const KILL_GRACE_MS = 1000;
/**
 * Holds a step at its first instruction until the runner has put it into the job's cgroup and
 * writes a line, then runs the step's argv; a closed pipe without a line ends it unrun.
 */
const CGROUP_GATE = 'read -r _ && exec "$@" </dev/null';
/**
 * Heads every step's process chain: the step's first process gets SIGKILL when the runner dies,
 * even by SIGKILL (PR_SET_PDEATHSIG, kept across exec). Processes the step forks are not covered:
 * as root, JobSlots kills them by their slot user.
 */
const DIE_WITH_RUNNER = ['setpriv', '--pdeathsig', 'KILL', '--'];

export interface SpawnStepOptions {
  cwd: string;
  env: Record<string, string>;
  /** The user the step runs as (the runner is root); its supplementary groups are dropped too. */
  user?: JobUser | undefined;
  /**
   * The job's cgroup: the step is in it before it can start anything, and it is how the step's
   * processes are found and killed, also those that left its process group.
   */
  cgroup?: JobCgroup | undefined;
}

/**
 * Writes a step's script, owned by `user` when given. `wx` never follows a link planted at its
 * path by an earlier step of the job (the scratch dir belongs to the job user). Synchronous: a
 * script is small, and four trips through the thread pool would each wait behind every other file
 * operation of a busy runner, on the way to the step's start.
 */
export function writeStepScript(file: string, script: string, user: JobUser | undefined): void {
  const fd = openSync(file, 'wx', 0o600);
  try {
    writeFileSync(fd, script);
    if (user) fchownSync(fd, user.uid, user.gid);
  } finally {
    closeSync(fd);
  }
}

/** A step's environment, built only from the job spec; `workspace` is the path the step sees. */
export function stepEnv(ctx: StepContext, workspace: string): Record<string, string> {
  return {
    PATH: JOB_PATH,
    HOME: workspace,
    LANG: 'C.UTF-8',
    ...ctx.spec.env,
    ...ctx.step.env,
    FURROW_WORKSPACE: workspace,
    FURROW_STEP_ID: ctx.step.id,
  };
}

/**
 * Runs `argv` (looked up in `env.PATH`) for a step in its own process group, pipes its stdout and
 * stderr to `ctx.output` (pausing while the sink asks to), kills the whole tree within two seconds
 * when `ctx.signal` aborts, and kills whatever the step left behind once it exits. Resolves when
 * no process of the step is left and its output has been read.
 */
export async function spawnStep(ctx: StepContext, argv: string[], options: SpawnStepOptions): Promise<StepResult> {
  const { user, cgroup } = options;
  const [command, ...args] = [...DIE_WITH_RUNNER, ...(cgroup ? ['/bin/sh', '-c', CGROUP_GATE, 'sh', ...argv] : argv)];
  const born = cgroup ? undefined : pidMark();
  const child = spawn(command!, args, {
    cwd: options.cwd,
    env: options.env,
    detached: true, // own process group, so the whole tree can be signalled at once
    stdio: [cgroup ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    ...(user ? { uid: user.uid, gid: user.gid } : {}),
  });
  const exited = new Promise<StepResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve({ exitCode: code, signal }));
  });
  exited.catch(() => undefined); // awaited below, after the cgroup is entered; this keeps an early failure handled
  const tree = child.pid !== undefined ? processTree(child.pid, `FURROW_JOB_ID=${ctx.spec.jobId}`, born) : undefined;
  const streams = [child.stdout!, child.stderr!];
  for (const [i, s] of streams.entries()) {
    s.on('data', (d: Buffer) => {
      if (!ctx.output.write(d, i === 0 ? 'stdout' : 'stderr')) {
        for (const t of streams) t.pause();
        ctx.output.once('drain', () => streams.forEach((t) => t.resume()));
      }
    });
  }
  const killAll = async (graceMs: number) => {
    if (cgroup) await cgroup.kill(graceMs);
    else if (tree) await killProcessTree(tree, graceMs);
  };
  // Awaited before the step returns: a kill still sweeping for the job's marked processes must
  // not reach the next step of the same job.
  let aborting: Promise<void> | undefined;
  const onAbort = () => void (aborting = killAll(KILL_GRACE_MS));
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  if (ctx.signal.aborted) onAbort(); // aborted while the step was being set up
  let entering: Error | undefined;
  if (cgroup && child.pid !== undefined) {
    child.stdin!.on('error', () => undefined); // the gate may be gone already (killed); its exit tells
    try {
      await cgroup.enter(child.pid);
    } catch (err) {
      entering = new Error(`could not put the step into the job's cgroup: ${(err as Error).message}`);
    }
    // Checked after entering: an abort before that found the cgroup empty, so the step must not start.
    child.stdin!.end(entering || ctx.signal.aborted ? '' : '\n');
  }
  let result: StepResult;
  try {
    result = await exited;
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
  }
  await aborting;
  // Background processes the script left behind do not outlive the step.
  await killAll(0);
  const held = await Promise.all(streams.map((s) => untilClosed(s)));
  if (held.some(Boolean)) ctx.output.write(Buffer.from(`a process the step left running (one that left its process group and cleared its environment) holds the step's output open: the step ends without reading more of it\n`), 'stderr');
  if (entering) throw entering;
  return result;
}

/**
 * Resolves once `stream` closes (false), or once it stayed open for HELD_OUTPUT_MS without a read
 * and without waiting on the log's backpressure (true): then it is destroyed, and its holder gets
 * EPIPE or SIGPIPE when it writes.
 */
function untilClosed(stream: Readable): Promise<boolean> {
  if (stream.readableEnded || stream.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(check, HELD_OUTPUT_MS);
    };
    const check = () => {
      if (stream.isPaused()) return arm();
      stream.off('data', arm);
      stream.destroy();
      resolve(true);
    };
    stream.on('data', arm);
    stream.once('close', () => {
      clearTimeout(timer);
      stream.off('data', arm);
      resolve(false);
    });
    arm();
  });
}
