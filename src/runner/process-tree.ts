import { readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';

/**
 * Live (non-zombie) processes of a job: those in its process group, and those whose environment
 * carries `marker` (FURROW_JOB_ID=…) because they left the group with setsid. Zombies are skipped:
 * they are dead, merely not yet reaped by whoever adopted them. Linux only (reads /proc).
 */
async function jobProcesses(pgid: number, marker: string): Promise<number[]> {
  const needle = Buffer.from(`\0${marker}\0`);
  return scanProcesses((pid) => {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name: state, ppid, pgrp, …
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (state === 'Z' || state === 'X') return false;
    if (Number(pgrp) === pgid) return true;
    return Buffer.concat([Buffer.from([0]), readFileSync(`/proc/${pid}/environ`), Buffer.from([0])]).includes(needle);
  });
}

/**
 * The pids for which `matches` holds, reading /proc synchronously: one call per file where the
 * asynchronous API takes four trips through the thread pool, which every other file operation of
 * the process (and of a busy server) waits behind. A pass over a few hundred processes takes
 * about a millisecond. A process gone meanwhile, or not ours to read, does not match.
 */
async function scanProcesses(matches: (pid: number) => boolean): Promise<number[]> {
  const entries = await readdir('/proc').catch(() => [] as string[]);
  const found: number[] = [];
  for (const e of entries) {
    const pid = Number(e);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      if (matches(pid)) found.push(pid);
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Ends every process of a job: SIGTERM to its process group, up to `graceMs` for them to exit,
 * then SIGKILL to whatever is left (group members and marked escapees). Resolves once none lives.
 */
export async function killProcessTree(pgid: number, marker: string, graceMs: number): Promise<void> {
  if (graceMs > 0) {
    signal(-pgid, 'SIGTERM');
    for (const pid of await jobProcesses(pgid, marker)) signal(pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && (await jobProcesses(pgid, marker)).length > 0) await sleep(20);
  }
  for (let round = 0; round < 50; round++) {
    signal(-pgid, 'SIGKILL');
    const left = await jobProcesses(pgid, marker);
    if (left.length === 0) return;
    for (const pid of left) signal(pid, 'SIGKILL');
    await sleep(20);
  }
}

/** Live (non-zombie) processes with `uid` as their real, effective, saved or filesystem uid. */
export function userProcesses(uid: number): Promise<number[]> {
  return scanProcesses((pid) => {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const state = /^State:\s+(\S)/m.exec(status)?.[1];
    const uids = /^Uid:\s+(.*)$/m.exec(status)?.[1]?.split(/\s+/).map(Number) ?? [];
    return state !== undefined && state !== 'Z' && state !== 'X' && uids.includes(uid);
  });
}

/** How long killUserProcesses keeps at it before giving up on a process SIGKILL does not end. */
const USER_KILL_WAIT_MS = 5000;

/**
 * SIGKILLs every process of `uid` until none is left: whatever left the process group, cleared
 * its environment or daemonized. Rounds repeat because a process may fork while /proc is read.
 * Resolves with how many were killed; gives up after USER_KILL_WAIT_MS on a process stuck in the kernel.
 */
export async function killUserProcesses(uid: number): Promise<number> {
  const killed = new Set<number>();
  for (const deadline = Date.now() + USER_KILL_WAIT_MS; Date.now() < deadline; ) {
    const left = await userProcesses(uid);
    if (left.length === 0) break;
    for (const pid of left) {
      signal(pid, 'SIGKILL');
      killed.add(pid);
    }
    await sleep(10);
  }
  return killed.size;
}
