import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runsAsRoot } from '../../src/runner/job-user.js';
import { BIN, furrowEnv } from './furrow-process.js';
import { removeJobUsers, testJobUser } from './job-users.js';

export interface RunnerProcess {
  child: ChildProcess;
  workDir: string;
  output(): string;
  exited: Promise<number | null>;
  /** Signals the runner and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Removes its work dir and the job users it made for itself (after it exited). */
  cleanup(): Promise<void>;
}

/** A free TCP port on loopback (for a server that must come back on the same address). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/**
 * Starts `furrow runner` as a child process and resolves once it says it is connected.
 * `args` are its flags; `workDir` defaults to a fresh temporary directory. A registration token
 * goes in as the runner takes it: `token` in the environment (FURROW_RUNNER_TOKEN), never in `args`;
 * `stdin`, when given, is written to its standard input (for `--token-stdin`).
 */
const usersByWorkDir = new Map<string, string>();
/** The job users of the runner on `workDir`: the same for a restart on it. */
function ownUsers(workDir: string): string {
  const known = usersByWorkDir.get(workDir) ?? testJobUser('r');
  usersByWorkDir.set(workDir, known);
  return known;
}

export async function startRunner(
  args: string[],
  opts: { env?: Record<string, string>; workDir?: string; waitFor?: RegExp; token?: string; stdin?: string } = {},
): Promise<RunnerProcess> {
  const workDir = opts.workDir ?? (await mkdtemp(path.join(tmpdir(), 'furrow-runner-')));
  await chmod(workDir, 0o711);
  // As root, job users of its own (see removeJobUsers), the same for a restart on the same work dir.
  const own = runsAsRoot() && opts.env?.FURROW_JOB_USER === undefined ? ownUsers(workDir) : undefined;
  const child = spawn(process.execPath, [BIN, 'runner', '--work-dir', workDir, ...args], {
    env: furrowEnv({ FURROW_LOG_LEVEL: 'info', FURROW_SHUTDOWN_GRACE_SECONDS: '10', ...(own ? { FURROW_JOB_USER: own } : {}), ...(opts.token ? { FURROW_RUNNER_TOKEN: opts.token } : {}), ...opts.env }),
    stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (opts.stdin !== undefined) child.stdin!.end(opts.stdin);
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))));
  const runner: RunnerProcess = {
    child,
    workDir,
    output: () => output,
    exited,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
    async cleanup() {
      await rm(workDir, { recursive: true, force: true });
      if (own) await removeJobUsers(own);
    },
  };
  const waitFor = opts.waitFor ?? /is connected to/;
  await new Promise<void>((resolve, reject) => {
    // A runner that never connected is nobody's to stop: end it here rather than leave it running.
    const timer = setTimeout(() => (child.kill('SIGKILL'), reject(new Error(`furrow runner did not connect:\n${output}`))), 30_000);
    const check = () => {
      if (waitFor.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      if (!waitFor.test(output)) reject(new Error(`furrow runner exited (${code}):\n${output}`));
    });
  });
  return runner;
}
