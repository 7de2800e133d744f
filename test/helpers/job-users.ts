import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { lookupUser, slotUserName } from '../../src/runner/job-user.js';
import { killUserProcesses } from '../../src/runner/process-tree.js';

const run = promisify(execFile);

/**
 * Kills what runs as the slot users of `base` and deletes them (slot 0 up to the first missing
 * one). Tests give each runner users of its own: a runner kills every process of its slot users
 * when a job ends, which must not reach the jobs of a runner beside it.
 */
export async function removeJobUsers(base: string): Promise<void> {
  for (let i = 0; ; i++) {
    const user = await lookupUser(slotUserName(base, i));
    if (!user) return;
    await killUserProcesses(user.uid);
    await run('userdel', [user.name]).catch(() => undefined);
  }
}
