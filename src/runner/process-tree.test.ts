import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { JOB_PATH } from './executors/spawn-step.js';
import { killProcessTree, processTree } from './process-tree.js';

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
    const leader = spawn('bash', ['-c', 'sleep 30 & setsid sleep 30 & echo $!; wait'], { env, detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
    started.push(leader);
    const tree = processTree(leader.pid!, marker);
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
    const tree = processTree(child.pid!, marker);
    const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
    expect(tree).toEqual({ pgid: child.pid, marker, since: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]) });
    expect(tree.since).toBeGreaterThan(0);
    expect(processTree(2 ** 22 + 1, marker).since).toBe(0);
  });
});
