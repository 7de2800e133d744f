import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ExecutorSettings } from '../../config/load-config.js';
import { killProcessTree } from '../process-tree.js';
import type { Executor, JobContext, ProbeResult, StepContext, StepResult } from './executor.js';

/** PATH for job processes: the runner's own environment is never passed on. */
const JOB_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Time between the polite SIGTERM and the SIGKILL when a step is canceled or times out. */
const KILL_GRACE_MS = 1000;

/**
 * Runs each step as `bash FILE` on the runner's host, in its own process group, with an
 * environment built only from the job spec. Isolation is the host user's; see the bwrap and
 * podman executors for more.
 */
export class ShellExecutor implements Executor {
  readonly name = 'shell';

  constructor(readonly settings: ExecutorSettings) {}

  async probe(): Promise<ProbeResult> {
    return { ok: true, detail: 'bash on this host' };
  }

  async prepareJob(_job: JobContext): Promise<void> {}

  async cleanupJob(_job: JobContext): Promise<void> {}

  async runStep(ctx: StepContext): Promise<StepResult> {
    const file = path.join(ctx.scratch, `step-${ctx.step.id}.sh`);
    await writeFile(file, ctx.step.script, { mode: 0o600 });
    const env = {
      PATH: JOB_PATH,
      HOME: ctx.workspace,
      LANG: 'C.UTF-8',
      ...ctx.spec.env,
      FURROW_WORKSPACE: ctx.workspace,
      FURROW_STEP_ID: ctx.step.id,
    };
    const child = spawn('bash', ['--noprofile', '--norc', '-e', '-o', 'pipefail', file], {
      cwd: ctx.workspace,
      env,
      detached: true, // own process group, so the whole tree can be signalled at once
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const marker = `FURROW_JOB_ID=${ctx.spec.jobId}`;
    const streams = [child.stdout!, child.stderr!];
    for (const s of streams) {
      s.on('data', (d: Buffer) => {
        if (!ctx.output.write(d)) {
          for (const t of streams) t.pause();
          ctx.output.once('drain', () => streams.forEach((t) => t.resume()));
        }
      });
    }
    const onAbort = () => void killProcessTree(child.pid!, marker, KILL_GRACE_MS);
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    const result = await new Promise<StepResult>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code, signal) => resolve({ exitCode: code, signal }));
    });
    ctx.signal.removeEventListener('abort', onAbort);
    // Background processes the script left behind do not outlive the step.
    await killProcessTree(child.pid!, marker, 0);
    await Promise.all(streams.map((s) => (s.readableEnded || s.destroyed ? undefined : new Promise((r) => s.once('close', r)))));
    return result;
  }
}
