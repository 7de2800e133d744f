import { spawn, type ChildProcess } from 'node:child_process';
import { access, chown, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { JOB_PATH } from './executors/spawn-step.js';
import type { JobUser } from './job-user.js';


/** A job's own ssh-agent holding its SSH secrets; steps reach it through SSH_AUTH_SOCK. */
export interface JobSshAgent {
  socket: string;
  stop(): void;
}

function asUser(user: JobUser | undefined) {
  return user ? { uid: user.uid, gid: user.gid } : {};
}

async function waitForSocket(socket: string, agent: ChildProcess): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (agent.exitCode !== null) throw new Error(`ssh-agent exited (${agent.exitCode}) before it listened`);
    if (await access(socket).then(() => true, () => false)) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('ssh-agent did not start listening within 2 seconds');
}

/** Adds one key, given on standard input so it never touches the disk or a command line. */
function addKey(socket: string, key: string, user: JobUser | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const add = spawn('ssh-add', ['-q', '-'], { env: { PATH: JOB_PATH, SSH_AUTH_SOCK: socket }, stdio: ['pipe', 'ignore', 'pipe'], ...asUser(user) });
    let stderr = '';
    add.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    add.on('error', reject);
    add.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`ssh-add refused an SSH secret: ${stderr.trim() || `exit ${code}`}`))));
    add.stdin.end(key.endsWith('\n') ? key : `${key}\n`);
  });
}

/** Where the agent started in `dir` listens. */
export function agentSocket(dir: string): string {
  return path.join(dir, 'agent.sock');
}

/**
 * Starts an ssh-agent as the job user (the agent serves only its own user) with its socket in
 * `dir`, and loads `keys` into it. The agent lives until `stop`.
 */
export async function startSshAgent(dir: string, keys: string[], user: JobUser | undefined): Promise<JobSshAgent> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (user) await chown(dir, user.uid, user.gid);
  const socket = agentSocket(dir);
  const agent = spawn('ssh-agent', ['-D', '-a', socket], { env: { PATH: JOB_PATH }, stdio: 'ignore', ...asUser(user) });
  const stop = () => void (agent.exitCode === null && agent.kill('SIGTERM'));
  try {
    await new Promise<void>((resolve, reject) => {
      agent.once('error', (err) => reject(new Error(`the job's SSH secrets need ssh-agent (openssh-client): ${err.message}`)));
      agent.once('spawn', resolve);
    });
    await waitForSocket(socket, agent);
    for (const key of keys) await addKey(socket, key, user);
    return { socket, stop };
  } catch (err) {
    stop();
    throw err;
  }
}
