import { lookupUser, slotUserName } from '../../src/runner/job-user.js';
import { killUserProcesses } from '../../src/runner/process-tree.js';

/**
 * Kills what runs as the slot users of `base` (slot 0 up to the first missing one). Tests give
 * each runner users of its own: a runner kills every process of its slot users when a job ends,
 * which must not reach the jobs of a runner beside it. The users are kept: a deleted user's uid
 * goes to the next user made, which a sentinel or a late kill of the old one would then hit.
 * Their names are reused from run to run (see testJobUser), so they do not pile up.
 */
export async function removeJobUsers(base: string): Promise<void> {
  for (let i = 0; ; i++) {
    const user = await lookupUser(slotUserName(base, i));
    if (!user) return;
    await killUserProcesses(user.uid);
  }
}

const made = new Map<string, number>();
/**
 * A job user base for a test's runner: `kind` (one letter), the vitest worker and a count per
 * process, so concurrent workers never share one and the next run reuses the same names.
 */
export function testJobUser(kind: string): string {
  const n = (made.get(kind) ?? 0) + 1;
  made.set(kind, n);
  return `furrow-${kind}${process.env.VITEST_POOL_ID ?? process.pid}-${n}`;
}
