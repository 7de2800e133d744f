import { readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';

/**
 * The processes of a step or a command: those in its process group (`pgid`, its first process),
 * and those whose environment carries `marker` (FURROW_JOB_ID=…) because they left the group with
 * setsid. Every one of them descends from the first process, so none is older: `since` (its start
 * time) and `born` (where pid allocation stood just before it was spawned) spare reading the files
 * of every other process.
 */
export interface ProcessTree {
  pgid: number;
  marker: string;
  /** Start time of the first process, in clock ticks after boot (field 22 of /proc/PID/stat). */
  since: number;
  born: PidMark | undefined;
}

/** Where pid allocation stood at a moment: see `pidFloor`. */
export interface PidMark {
  /** The last pid handed out (the last field of /proc/loadavg). */
  lastPid: number;
  /** Tasks created since boot (`processes` in /proc/stat). */
  forks: number;
  /** Tasks (threads included) that existed then (/proc/loadavg's fourth field, after the slash). */
  tasks: number;
}

let pidMax: number | undefined;

/** Where pid allocation stands now; undefined where /proc does not tell. */
export function pidMark(): PidMark | undefined {
  try {
    const load = readFileSync('/proc/loadavg', 'utf8').trim().split(' ');
    const forks = Number(/^processes (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]);
    const mark = { lastPid: Number(load[4]), forks, tasks: Number(load[3]?.split('/')[1]) };
    return Object.values(mark).every(Number.isSafeInteger) ? mark : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A pid at or below which no process created after `mark` can be, 0 when there is none. Pids are
 * handed out upwards from the last one, skipping those in use, and start again low only past
 * pid_max. Between the mark and now the cursor moved once per task created and once per pid in use
 * that it skipped; a pid is in use as some live task's pid, process group or session, so at most
 * three per task that existed at the mark or was created since. While that bound stays below
 * pid_max allocation cannot have wrapped, and every newer process has a pid above the mark's.
 */
export function pidFloor(mark: PidMark | undefined): number {
  const now = mark && pidMark();
  if (!mark || !now) return 0;
  try {
    pidMax ??= Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
  } catch {
    return 0;
  }
  const created = now.forks - mark.forks;
  return mark.lastPid + created + 3 * (mark.tasks + created) < pidMax ? mark.lastPid : 0;
}

/** The kernel-thread bit of /proc/PID/stat's flags (PF_KTHREAD). */
const KERNEL_THREAD = 0x00200000;

/** What /proc/PID/stat says of a process: fields after the parenthesised command name. */
function statOf(pid: number): { state: string; pgrp: number; kernel: boolean; started: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Field 3 is the state, 5 the process group, 9 the flags, 22 the start time.
  return { state: fields[0]!, pgrp: Number(fields[2]), kernel: (Number(fields[6]) & KERNEL_THREAD) !== 0, started: Number(fields[19]) };
}

/** The tree headed by `pid`, read right after it was spawned; `born` was taken just before the spawn. */
export function processTree(pid: number, marker: string, born: PidMark | undefined): ProcessTree {
  let since = 0;
  try {
    since = statOf(pid).started;
  } catch {
    // gone already: every process is looked at
  }
  return { pgid: pid, marker, since, born };
}

/**
 * Live (non-zombie) processes of `tree`: zombies are dead, merely not yet reaped by whoever adopted
 * them. Linux only (reads /proc).
 *
 * What /proc shows of an environment is the process's own memory, which changes at two moments an
 * escapee may be caught in: in the middle of an exec it reads empty until the new program's stack
 * is laid out (the arguments first, then the environment), and bash, starting, parses each
 * variable by writing a NUL over its `=` for a moment. The marker is matched in both forms, and a
 * process whose environment reads empty is listed `unsure`: it may be an escapee not told yet.
 */
export function treeProcesses({ pgid, marker, since, born }: ProcessTree): Promise<Scan> {
  const eq = marker.indexOf('=');
  const needles = [marker, `${marker.slice(0, eq)}\0${marker.slice(eq + 1)}`].map((m) => Buffer.from(`\0${m}\0`));
  return scanProcesses(pidFloor(born), (pid) => {
    const { state, pgrp, kernel, started } = statOf(pid);
    if (state === 'Z' || state === 'X') return false;
    if (pgrp === pgid) return true;
    if (started < since || kernel) return false;
    let environ = readFileSync(`/proc/${pid}/environ`);
    if (environ.length === 0) {
      if (readFileSync(`/proc/${pid}/cmdline`).length === 0) return 'unsure';
      environ = readFileSync(`/proc/${pid}/environ`);
      // A program started with an empty environment reads so too, and costs only a short wait.
      if (environ.length === 0) return 'unsure';
    }
    const padded = Buffer.concat([Buffer.from([0]), environ, Buffer.from([0])]);
    return needles.some((n) => padded.includes(n));
  });
}

/** Pids that matched, and those of processes that could not be told yet. */
export interface Scan {
  found: number[];
  unsure: number[];
}

/**
 * The pids above `floor` for which `matches` holds, reading /proc synchronously: one call per file
 * where the asynchronous API takes four trips through the thread pool, which every other file
 * operation of the process (and of a busy server) waits behind. A process gone meanwhile, or not
 * ours to read, does not match.
 */
async function scanProcesses(floor: number, matches: (pid: number) => boolean | 'unsure'): Promise<Scan> {
  const entries = await readdir('/proc').catch(() => [] as string[]);
  const scan: Scan = { found: [], unsure: [] };
  for (const e of entries) {
    const pid = Number(e);
    if (!Number.isInteger(pid) || pid <= floor || pid === process.pid) continue;
    try {
      const verdict = matches(pid);
      if (verdict === 'unsure') scan.unsure.push(pid);
      else if (verdict) scan.found.push(pid);
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return scan;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Scans, 20 ms apart, that killProcessTree gives a process whose environment reads empty to show it. */
const UNSURE_SCANS = 5;

/**
 * Ends every process of `tree`: SIGTERM to its process group, up to `graceMs` for them to exit,
 * then SIGKILL to whatever is left (group members and marked escapees). Resolves once none lives,
 * after looking again at processes whose environment read empty (see treeProcesses).
 */
export async function killProcessTree(tree: ProcessTree, graceMs: number): Promise<void> {
  const { pgid } = tree;
  if (graceMs > 0) {
    signal(-pgid, 'SIGTERM');
    for (const pid of (await treeProcesses(tree)).found) signal(pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && (await treeProcesses(tree)).found.length > 0) await sleep(20);
  }
  for (let round = 0, unsureScans = 0; round < 50; round++) {
    signal(-pgid, 'SIGKILL');
    const left = await treeProcesses(tree);
    if (left.found.length === 0 && (left.unsure.length === 0 || ++unsureScans > UNSURE_SCANS)) return;
    for (const pid of left.found) signal(pid, 'SIGKILL');
    await sleep(20);
  }
}

/**
 * Live (non-zombie) processes with `uid` as their real, effective, saved or filesystem uid; with
 * `born`, only those created after that mark (the user had none then).
 */
export async function userProcesses(uid: number, born?: PidMark): Promise<number[]> {
  const { found } = await scanProcesses(pidFloor(born), (pid) => {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const state = /^State:\s+(\S)/m.exec(status)?.[1];
    const uids = /^Uid:\s+(.*)$/m.exec(status)?.[1]?.split(/\s+/).map(Number) ?? [];
    return state !== undefined && state !== 'Z' && state !== 'X' && uids.includes(uid);
  });
  return found;
}

/** How long killUserProcesses keeps at it before giving up on a process SIGKILL does not end. */
const USER_KILL_WAIT_MS = 5000;

/**
 * SIGKILLs every process of `uid` until none is left: whatever left the process group, cleared
 * its environment or daemonized. Rounds repeat because a process may fork while /proc is read.
 * `born` says the user had no process at that mark. Resolves with how many were killed, and
 * whether one is left: it gives up after USER_KILL_WAIT_MS on a process stuck in the kernel.
 */
export async function killUserProcesses(uid: number, born?: PidMark): Promise<{ killed: number; left: boolean }> {
  const killed = new Set<number>();
  for (const deadline = Date.now() + USER_KILL_WAIT_MS; ; ) {
    const left = await userProcesses(uid, born);
    if (left.length === 0) return { killed: killed.size, left: false };
    if (Date.now() >= deadline) return { killed: killed.size, left: true };
    for (const pid of left) {
      signal(pid, 'SIGKILL');
      killed.add(pid);
    }
    await sleep(10);
  }
}
