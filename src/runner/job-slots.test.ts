import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeJobUsers } from '../../test/helpers/job-users.js';
import { JobSlots } from './job-slots.js';
import { ensureSlotUsersWhenRoot, lookupUser, runsAsRoot, slotUserName, type JobUser } from './job-user.js';
import { userProcesses } from './process-tree.js';

const base = `furrow-s${randomBytes(3).toString('hex')}`;
let users: JobUser[] = [];
let workDir: string;

beforeAll(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), 'furrow-slots-'));
  if (!runsAsRoot()) return;
  await ensureSlotUsersWhenRoot(base, 2, () => undefined);
  users = await Promise.all([0, 1].map(async (i) => (await lookupUser(slotUserName(base, i)))!));
});
afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
  if (runsAsRoot()) await removeJobUsers(base);
});

describe.skipIf(!runsAsRoot())('job slots', () => {
  it('gives each slot its own user and frees one by killing all its processes (those created since its job began) and removing its temporary files', async () => {
    const slots = await JobSlots.open(base, 2, workDir);
    try {
      await slots.start();
      slots.occupy(0);
      slots.occupy(1);
      expect([slots.user(0)?.name, slots.user(1)?.name]).toEqual([`${base}-0`, `${base}-1`]);
      expect(slots.user(0)!.uid).not.toBe(slots.user(1)!.uid);
      const [mine, other] = users as [JobUser, JobUser];
      const tmpFile = path.join('/tmp', `furrow-slot-${randomBytes(4).toString('hex')}`);
      // A daemonized escapee with a cleared environment, and a file in /tmp; and one of the other slot.
      const asUser = (u: JobUser, script: string) => spawn('setsid', ['env', '-i', 'sh', '-c', script], { uid: u.uid, gid: u.gid, stdio: 'ignore', detached: true, cwd: '/' });
      asUser(mine, `echo x > ${tmpFile}; exec sleep 300`);
      asUser(other, 'exec sleep 300');
      try {
        for (let i = 0; i < 100 && ((await userProcesses(mine.uid)).length === 0 || !existsSync(tmpFile)); i++) await new Promise((r) => setTimeout(r, 20));
        expect(existsSync(tmpFile)).toBe(true);

        expect(await slots.release(0)).toBeGreaterThan(0);
        expect(await userProcesses(mine.uid)).toEqual([]);
        expect(existsSync(tmpFile)).toBe(false);
        // The other slot's job runs on.
        expect(await userProcesses(other.uid)).toHaveLength(1);
      } finally {
        await slots.release(1);
      }
    } finally {
      slots.stop();
    }
  });

  it('removes the job dirs a crashed run left in its work dir, and nothing else there', async () => {
    const jobDir = path.join(workDir, '0b7c1f5e-1a2b-4c3d-8e9f-0123456789ab');
    await mkdir(jobDir);
    await mkdir(path.join(workDir, '.0b7c1f5e-1a2b-4c3d-8e9f-0123456789ab'));
    await writeFile(path.join(workDir, 'credential.json'), '{}');
    const slots = await JobSlots.open(base, 2, workDir);
    try {
      expect(await slots.start()).toEqual({ processes: 0, dirs: 2 });
      expect(existsSync(jobDir)).toBe(false);
      expect(existsSync(path.join(workDir, 'credential.json'))).toBe(true);
    } finally {
      slots.stop();
    }
  });

  it('refuses a second runner using the same job users while the first holds them', async () => {
    const first = await JobSlots.open(base, 1, workDir);
    await expect(JobSlots.open(base, 1, workDir)).rejects.toThrow(`another runner on this host (in this process) runs jobs as ${base}-N; give each runner its own FURROW_JOB_USER`);
    first.stop();
    const again = await JobSlots.open(base, 1, workDir);
    again.stop();
  });
});
