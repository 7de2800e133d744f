import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { JOB_PATH } from './executors/spawn-step.js';
import { killProcessTree, pidFloor, pidMark, processTree, treeProcesses, userProcesses, type PidMark, type ProcessTree } from './process-tree.js';

const marker = 'FURROW_JOB_ID=process-tree-test';
const env = { PATH: JOB_PATH, FURROW_JOB_ID: 'process-tree-test' };
const started: ChildProcess[] = [];
const strays: number[] = [];

afterEach(() => {
  for (const c of started.splice(0)) c.kill('SIGKILL');
  for (const pid of strays.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

/** Whether `pid` is a live process (a zombie is dead). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !['Z', 'X'].includes(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]!);
  } catch {
    return false;
  }
}

describe('killProcessTree', () => {
  it('kills the group and the marked escapees that started after the tree, and leaves an older marked process alone', async () => {
    const older = spawn('sleep', ['30'], { env, detached: true, stdio: 'ignore' });
    started.push(older);
    // A later clock tick (10 ms) for what follows.
    await new Promise((r) => setTimeout(r, 50));
    const born = pidMark();
    const leader = spawn('bash', ['-c', 'sleep 30 & setsid sleep 30 & echo $!; wait'], { env, detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
    started.push(leader);
    const tree = processTree(leader.pid!, marker, born);
    const [line] = (await once(leader.stdout!, 'data')) as [Buffer];
    const escapee = Number(line.toString().trim());
    strays.push(escapee);
    expect(alive(escapee)).toBe(true);

    await killProcessTree(tree, 0);
    expect(alive(escapee)).toBe(false);
    expect(leader.exitCode !== null || leader.signalCode !== null || !alive(leader.pid!)).toBe(true);
    expect(alive(older.pid!)).toBe(true);
  });

  it('reads the start time of the tree’s first process, and falls back to every process for one gone already', () => {
    const child = spawn('sleep', ['30'], { env, stdio: 'ignore' });
    started.push(child);
    const tree = processTree(child.pid!, marker, undefined);
    const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
    expect(tree).toEqual({ pgid: child.pid, marker, since: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]), born: undefined });
    expect(tree.since).toBeGreaterThan(0);
    expect(processTree(2 ** 22 + 1, marker, undefined).since).toBe(0);
  });

  /** Starts `command` through setsid from a leader that exits at once; `born` is the mark taken before. */
  async function escape(...command: string[]): Promise<{ tree: ProcessTree; escapee: number; born: PidMark | undefined }> {
    const born = pidMark();
    const leader = spawn('bash', ['-c', 'setsid "$@" & echo $!', 'bash', ...command], { env, detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
    started.push(leader);
    const exited = once(leader, 'exit');
    const tree = processTree(leader.pid!, marker, born);
    const escapee = Number(((await once(leader.stdout!, 'data')) as [Buffer])[0].toString().trim());
    strays.push(escapee);
    await exited;
    return { tree, escapee, born };
  }

  it('kills an escapee that cleared nothing but left the group, found among the processes newer than the mark only', async () => {
    const { tree, escapee, born } = await escape('sleep', '30');
    expect(pidFloor(born)).toBe(born!.lastPid);
    expect(escapee).toBeGreaterThan(pidFloor(born));
    await killProcessTree(tree, 0);
    expect(alive(escapee)).toBe(false);
  });

  describe('an escapee that execs itself without end', () => {
    let dir: string;
    let script: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'furrow-reexec-'));
      script = join(dir, 'reexec');
      writeFileSync(script, '#!/bin/bash\nexec /bin/bash "$0"\n', { mode: 0o755 });
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('is found by every scan, or counted as not told yet while its environment cannot be read mid-exec', async () => {
      const { tree, escapee } = await escape(script);
      let unsure = 0;
      for (let scan = 0; scan < 3000; scan++) {
        const found = await treeProcesses(tree);
        const caughtMidExec = found.unsure.includes(escapee);
        expect(found.found.includes(escapee) || caughtMidExec, `scan ${scan}`).toBe(true);
        if (caughtMidExec) unsure++;
      }
      // Caught mid-exec at least once, or the test proves nothing.
      expect(unsure).toBeGreaterThan(0);
    });

    it('is killed however often it is caught mid-exec', async () => {
      for (let round = 0; round < 100; round++) {
        const { tree, escapee } = await escape(script);
        await killProcessTree(tree, 0);
        expect(alive(escapee), `round ${round}`).toBe(false);
      }
    });
  });
});

describe('pidFloor', () => {
  const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'));

  it('is below every process created after the mark and at or above every older one', async () => {
    const older = spawn('sleep', ['30'], { stdio: 'ignore' });
    started.push(older);
    const born = pidMark()!;
    const newer = Array.from({ length: 5 }, () => spawn('sleep', ['30'], { stdio: 'ignore' }));
    started.push(...newer);
    await Promise.all(newer.map((c) => once(c, 'spawn')));
    const floor = pidFloor(born);
    // Pid allocation wraps at pid_max (32768 on many hosts): then the floor is 0 and proves nothing.
    if (floor > 0) {
      expect(older.pid!).toBeLessThanOrEqual(floor);
      for (const c of newer) expect(c.pid!).toBeGreaterThan(floor);
    }
    expect(born.forks).toBeGreaterThan(0);
    expect(pidMark()!.forks - born.forks).toBeGreaterThanOrEqual(newer.length);
  });

  it('is 0 without a mark, and when allocation may have wrapped around pid_max since the mark', () => {
    expect(pidFloor(undefined)).toBe(0);
    const now = pidMark()!;
    expect(pidFloor({ ...now, lastPid: pidMax - 10 })).toBe(0);
    expect(pidFloor({ ...now, forks: now.forks - pidMax })).toBe(0);
    // Skipped pids count too: with as many tasks as there are pids, any move may have wrapped.
    expect(pidFloor({ ...now, lastPid: 1, tasks: pidMax })).toBe(0);
    expect(pidFloor({ ...now, lastPid: 1, tasks: 1 })).toBe(1);
  });
});

describe('userProcesses', () => {
  it('with a mark lists only the processes of the user created after it', async () => {
    const uid = process.getuid!();
    const older = spawn('sleep', ['30'], { stdio: 'ignore' });
    started.push(older);
    await once(older, 'spawn');
    const born = pidMark();
    const newer = spawn('sleep', ['30'], { stdio: 'ignore' });
    started.push(newer);
    await once(newer, 'spawn');
    const all = await userProcesses(uid);
    expect(all).toEqual(expect.arrayContaining([older.pid, newer.pid]));
    const since = await userProcesses(uid, born);
    expect(since).toContain(newer.pid);
    if (pidFloor(born) > 0) expect(since).not.toContain(older.pid);
  });
});
