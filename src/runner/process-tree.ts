import { readdir, readFile } from 'node:fs/promises';

function signalGroup(pgid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pgid, sig);
  } catch {
    // the group is already gone
  }
}

/**
 * Processes whose environment carries `marker` (e.g. FURROW_JOB_ID=…): they belong to a job even
 * when they left its process group with setsid. Linux only; elsewhere the group kill must do.
 */
async function markedProcesses(marker: string): Promise<number[]> {
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return [];
  }
  const needle = Buffer.from(`\0${marker}\0`);
  const found: number[] = [];
  await Promise.all(
    entries.map(async (e) => {
      const pid = Number(e);
      if (!Number.isInteger(pid) || pid === process.pid) return;
      try {
        const env = Buffer.concat([Buffer.from([0]), await readFile(`/proc/${pid}/environ`), Buffer.from([0])]);
        if (env.includes(needle)) found.push(pid);
      } catch {
        // gone, or not ours to read
      }
    }),
  );
  return found;
}

/**
 * Ends every process of a job: SIGTERM to its process group, then after `graceMs` SIGKILL to the
 * group and to every process still marked with the job's id. Resolves once none is left.
 */
export async function killProcessTree(pgid: number, marker: string, graceMs: number): Promise<void> {
  if (graceMs > 0) {
    signalGroup(pgid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && (groupAlive(pgid) || (await markedProcesses(marker)).length > 0)) {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  for (let round = 0; round < 20; round++) {
    signalGroup(pgid, 'SIGKILL');
    const left = await markedProcesses(marker);
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (left.length === 0 && !groupAlive(pgid)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}
