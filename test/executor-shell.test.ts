import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load-config.js';
import { detectCgroups } from '../src/runner/cgroups.js';
import { ShellExecutor } from '../src/runner/executors/shell-executor.js';
import { ensureJobUser, runsAsRoot, slotUserName, type JobUser } from '../src/runner/job-user.js';
import { collectOutput, makeJob, runStep, withPreparedJob } from './helpers/executor-job.js';
import { testJobUser } from './helpers/job-users.js';

const root = runsAsRoot();
const cgroups = await detectCgroups();
if (process.env.CI && root && !cgroups.available) throw new Error(`no cgroups on this CI host: ${cgroups.reason}`);
if (!cgroups.available) console.warn(`skipping cgroup tests: ${cgroups.reason}`);
const hasController = (c: 'memory' | 'pids' | 'cpu') => cgroups.available && cgroups.controllers.includes(c);

const userName = testJobUser('h');
let user: JobUser | undefined;
let workDir: string;

beforeAll(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), 'furrow-shell-'));
  await chmod(workDir, 0o711); // as the agent leaves its work dir: the job user passes, lists nothing
  if (root) user = (await ensureJobUser(slotUserName(userName, 0))).user;
});

afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

function executor(env: Record<string, string> = {}): ShellExecutor {
  return new ShellExecutor(loadConfig({ FURROW_JOB_USER: userName, ...env }).executor);
}

/** Where the job's cgroup lives in each hierarchy this host offers. */
function cgroupDirs(jobId: string): string[] {
  if (!cgroups.available) return [];
  if (cgroups.version === 2) return [`/sys/fs/cgroup/furrow/${jobId}`];
  return cgroups.controllers.map((c) => `/sys/fs/cgroup/${c}/furrow/${jobId}`);
}

/** Whether `pid` is gone or a zombie (dead, only not yet reaped by whoever adopted it). */
async function dead(pid: number): Promise<boolean> {
  const s = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return s === undefined || /^[ZX]$/.test(s.slice(s.lastIndexOf(')') + 2)[0]!);
}

describe('shell executor', () => {
  it('says in its probe whom jobs run as and what cgroups it found', async () => {
    const probe = await executor({ FURROW_JOB_PIDS_MAX: '20' }).probe();
    expect(probe.ok).toBe(true);
    expect(probe.detail).toMatch(/bash/);
    if (root) expect(probe.detail).toContain(`jobs run as ${userName}-N, one user per job slot (${user!.name} is uid ${user!.uid})`);
    if (cgroups.available) expect(probe.detail).toMatch(new RegExp(`cgroups: v${cgroups.version}, writable: .*pids 20`));
  });

  it.skipIf(!root)('runs steps as the job user, not root, without supplementary groups, with HOME in the workspace', async () => {
    const ex = executor();
    const job = await makeJob(workDir, {}, undefined, user);
    await withPreparedJob(ex, job, async () => {
      const r = await runStep(ex, job, 'id -u; id -g; id -G; echo "$HOME"; echo hi > made-by-step');
      expect(r.exitCode).toBe(0);
      expect(r.output).toBe(`${user!.uid}\n${user!.gid}\n${user!.gid}\n${job.workspace}\n`);
      expect(user!.uid).not.toBe(0);
      const made = await stat(path.join(job.workspace, 'made-by-step'));
      expect([made.uid, made.gid]).toEqual([user!.uid, user!.gid]);
      // No root powers left.
      const denied = await runStep(ex, job, 'cat /etc/shadow');
      expect(denied.exitCode).not.toBe(0);
    });
  });

  it('refuses a job that asks for no network, which it cannot enforce', async () => {
    const job = await makeJob(workDir, { network: 'none' }, undefined, user);
    await expect(executor().prepareJob(job)).rejects.toThrow(/network: none.*use the bwrap or podman executor/);
  });

  it.skipIf(!root)('fails the job with the directory to open when the job user cannot reach the work dir', async () => {
    const closed = await mkdtemp(path.join(tmpdir(), 'furrow-closed-')); // mode 0700
    try {
      const ex = executor();
      const job = await makeJob(closed, {}, undefined, user);
      await expect(ex.prepareJob(job)).rejects.toThrow(`the job user ${user!.name} cannot reach ${job.workspace}: ${closed} is not traversable for it`);
      await ex.cleanupJob(job);
    } finally {
      await rm(closed, { recursive: true, force: true });
    }
  });

  it.skipIf(!hasController('pids'))('keeps a job with FURROW_JOB_PIDS_MAX=20 from forking 50 processes, in a cgroup removed after the job', async () => {
    const ex = executor({ FURROW_JOB_PIDS_MAX: '20' });
    const job = await makeJob(workDir, {}, undefined, user);
    const dirs = cgroupDirs(job.spec.jobId);
    await withPreparedJob(ex, job, async () => {
      // Only where a limit is set: the pids hierarchy on v1 (listed first), the one directory on v2.
      expect(dirs.filter((d) => existsSync(d))).toEqual([dirs[0]]);
      const forkBomb = `cat /proc/self/cgroup
perl -e 'for my $n (0 .. 49) { my $p = fork; if (!defined $p) { print "fork $n failed: $!\\n"; exit 3 } if (!$p) { sleep 60; exit 0 } } print "forked 50\\n"'`;
      const r = await runStep(ex, job, forkBomb);
      expect(r.output).toContain(`/furrow/${job.spec.jobId}`); // the step was inside the job's cgroup
      expect(r.output).toMatch(/fork 1\d failed: Resource temporarily unavailable/);
      expect(r.exitCode).toBe(3);
    });
    for (const d of dirs) expect(existsSync(d)).toBe(false);
  });

  it.skipIf(!hasController('cpu'))('holds a job with FURROW_JOB_CPU_PERCENT=25 to a quarter of a core', async () => {
    const ex = executor({ FURROW_JOB_CPU_PERCENT: '25' });
    const job = await makeJob(workDir, {}, undefined, user);
    await withPreparedJob(ex, job, async () => {
      // Spin for 2 s of wall time, then report the CPU seconds the spinning child used.
      const spin = `perl -MTime::HiRes=time -e 'my $end = time + 2; 1 while time < $end; my @t = times; printf "%.2f\n", $t[0] + $t[1]'`;
      const r = await runStep(ex, job, spin);
      expect(r.exitCode).toBe(0);
      // Unlimited it would take close to 2 s of CPU on an idle core; the quota allows about 0.5.
      expect(Number(r.output.trim())).toBeLessThan(1);
    });
  });

  it.skipIf(!hasController('memory'))('kills a job with FURROW_JOB_MEMORY_MB=64 that takes 200 MB', async () => {
    const ex = executor({ FURROW_JOB_MEMORY_MB: '64' });
    const job = await makeJob(workDir, {}, undefined, user);
    await withPreparedJob(ex, job, async () => {
      const r = await runStep(ex, job, 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo "survived with ${#x} bytes"');
      expect(r.output).not.toContain('survived');
      expect(r.exitCode === null ? r.signal : r.exitCode).not.toBe(0);
      const small = await runStep(ex, job, 'x=$(head -c 10000000 /dev/zero | tr "\\0" a); echo "${#x} bytes"');
      expect(small.output).toBe('10000000 bytes\n');
    });
    for (const d of cgroupDirs(job.spec.jobId)) expect(existsSync(d)).toBe(false);
  });

  it('uses no cgroup when no limit is set (a step starts without waiting for one)', async () => {
    const ex = executor();
    const job = await makeJob(workDir, {}, undefined, user);
    await withPreparedJob(ex, job, async () => {
      const r = await runStep(ex, job, 'cat /proc/self/cgroup');
      expect(r.output).not.toContain('/furrow/');
    });
  });

  const cancelCases = [
    ['a sleeping step', 'echo started; sleep 100'],
    ['a step that left setsid sleep 100 behind', 'setsid sleep 100 & echo $! >> pids; echo started; sleep 100'],
    ['a step whose escapee cleared its environment', 'setsid env -i sleep 100 & echo $! >> pids; echo started; sleep 100'],
  ] as const;
  for (const [what, script] of cancelCases) {
    it(`ends ${what} within two seconds of a cancel, leaving nothing`, async (t) => {
      // Only a cgroup, which limits bring, finds a process that left the group and cleared its environment.
      const escapes = script.includes('env -i');
      if (escapes && !hasController('pids')) t.skip();
      const ex = executor(escapes ? { FURROW_JOB_PIDS_MAX: '1000' } : {});
      const controller = new AbortController();
      const job = await makeJob(workDir, {}, controller.signal, user);
      await withPreparedJob(ex, job, async () => {
        const output = collectOutput();
        const step = runStep(ex, job, script, output);
        await output.until('started');
        expect(output.text).toBe('started\n');
        const left = (await readFile(path.join(job.workspace, 'pids'), 'utf8').catch(() => '')).split('\n').filter(Boolean).map(Number);
        const canceledAt = Date.now();
        controller.abort('canceled');
        const r = await step;
        expect(Date.now() - canceledAt).toBeLessThan(2000);
        expect(r.exitCode).toBeNull();
        for (const pid of left) expect(await dead(pid)).toBe(true);
      });
    });
  }
});
