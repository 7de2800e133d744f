/**
 * Where CPU time went during a measurement, read from /proc: the server's Node process, PostgreSQL
 * processes under it (embedded only), and jobs (children the server reaped: bash and what it ran).
 */
import { readdirSync, readFileSync } from 'node:fs';

const CLOCK_TICKS = 100; // USER_HZ: the unit of /proc/PID/stat CPU times on Linux

/** CPU counters of the process tree under `root` and of the whole machine; pass two to cpuUsage(). */
export function cpuSnapshot(root) {
  return { tree: processTree(root), machine: machineTicks() };
}

/** CPU seconds of server, PostgreSQL and jobs between two snapshots, and the machine's busy fraction. */
export function cpuUsage(root, before, after) {
  const d = (pid, key) => (after.tree.get(pid)?.[key] ?? 0) - (before.tree.get(pid)?.[key] ?? 0);
  let postgres = 0;
  for (const [pid, p] of after.tree) if (pid !== root && p.comm.startsWith('postgres')) postgres += d(pid, 'self') + d(pid, 'reaped');
  return {
    serverS: d(root, 'self') / CLOCK_TICKS,
    jobS: d(root, 'reaped') / CLOCK_TICKS,
    postgresS: postgres / CLOCK_TICKS,
    machineBusy: (after.machine.busy - before.machine.busy) / Math.max(1, after.machine.total - before.machine.total),
  };
}

/** CPU ticks from /proc/PID/stat: its own (utime+stime) and its reaped children's (cutime+cstime). */
function procTimes(pid) {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
  return { comm: s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')), ppid: Number(f[1]), self: Number(f[11]) + Number(f[12]), reaped: Number(f[13]) + Number(f[14]) };
}

/** The server and every live descendant (embedded PostgreSQL and its backends, running jobs). */
function processTree(root) {
  const all = new Map();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      all.set(Number(e), procTimes(Number(e)));
    } catch {
      // gone meanwhile
    }
  }
  const tree = new Map();
  const visit = (pid) => {
    const p = all.get(pid);
    if (!p || tree.has(pid)) return;
    tree.set(pid, p);
    for (const [child, c] of all) if (c.ppid === pid) visit(child);
  };
  visit(root);
  return tree;
}

/** Busy and total jiffies of the whole machine (first line of /proc/stat). */
function machineTicks() {
  const v = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = v[3] + (v[4] ?? 0);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}
