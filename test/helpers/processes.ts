import { readdir, readFile } from 'node:fs/promises';

/** PIDs of processes whose environment contains `NAME=value` (how tests find a job's survivors). */
export async function processesWithEnv(entry: string): Promise<number[]> {
  const found: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const env = (await readFile(`/proc/${e}/environ`)).toString().split('\0');
      if (env.includes(entry)) found.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** PIDs of live processes whose command line is `command` (words separated by spaces). */
export async function processesRunning(command: string): Promise<number[]> {
  const found: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const [cmdline, stat] = await Promise.all([readFile(`/proc/${e}/cmdline`, 'utf8'), readFile(`/proc/${e}/stat`, 'utf8')]);
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (cmdline.split('\0').filter(Boolean).join(' ') === command && state !== 'Z') found.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}
