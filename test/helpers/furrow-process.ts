import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runsAsRoot } from '../../src/runner/job-user.js';
import { removeJobUsers, testJobUser } from './job-users.js';

export const BIN = fileURLToPath(new URL('../../bin/furrow.js', import.meta.url));

/** The environment for a `furrow` child: the test's own, minus anything that would redirect it. */
export function furrowEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FURROW_') && k !== 'DATABASE_URL'));
  return { ...base, FURROW_LOG_LEVEL: 'warn', ...env };
}

/** Another checkout's bin/furrow.js, run from a directory, as a user. */
export interface FurrowAt {
  bin?: string;
  cwd?: string;
  uid?: number;
  gid?: number;
}

/** Runs a `furrow` command to completion. */
export function furrow(args: string[], env: Record<string, string>, stdin?: string, at: FurrowAt = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const { bin = BIN, ...where } = at;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { env: furrowEnv(env), stdio: ['pipe', 'pipe', 'pipe'], ...where });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(stdin ?? '');
  });
}

/** Starts `furrow start` and resolves with its URL once it says it is running. */
export function furrowStart(env: Record<string, string>, at: FurrowAt = {}): Promise<{ child: ChildProcess; url: string; output: () => string; exited: Promise<number | null> }> {
  const { bin = BIN, ...where } = at;
  // As root, each start gets job users of its own, whose processes are killed when it exits.
  const own = runsAsRoot() && env.FURROW_JOB_USER === undefined ? testJobUser('s') : undefined;
  const child = spawn(process.execPath, [bin, 'start'], { env: furrowEnv({ ...(own ? { FURROW_JOB_USER: own } : {}), ...env }), stdio: ['ignore', 'pipe', 'pipe'], ...where });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  if (own) void exited.then(() => removeJobUsers(own));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`furrow start did not come up:\n${output}`)), 60_000);
    const onData = (d: Buffer) => {
      output += d;
      const m = /Furrow is running at (\S+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1]!, output: () => output, exited });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`furrow start exited (${code}):\n${output}`));
    });
  });
}
