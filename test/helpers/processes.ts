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
