import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load-config.js';
import type { JobSpec } from '../src/protocol/messages.js';
import type { JobContext } from '../src/runner/executors/executor.js';
import { PodmanExecutor } from '../src/runner/executors/podman-executor.js';
import { ensureJobUser, runsAsRoot, slotUserName, type JobUser } from '../src/runner/job-user.js';
import { BUSYBOX_MARKER, ensureBusyboxImage } from './helpers/busybox-image.js';
import { executorAvailable } from './helpers/executor-available.js';
import { collectOutput, makeJob, runJob, runStep, withPreparedJob } from './helpers/executor-job.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';
import { testJobUser } from './helpers/job-users.js';

const run = promisify(execFile);
const available = await executorAvailable('podman');
const root = runsAsRoot();

const userName = testJobUser('p');
let user: JobUser | undefined;
let image: string;
let workDir: string;

/** Names of the containers podman has for a job, running or not. */
async function containersOf(jobId: string): Promise<string[]> {
  const { stdout } = await run('podman', ['ps', '--all', '--format', '{{.Names}}', '--filter', `name=furrow-${jobId}`]);
  return stdout.split('\n').filter((n) => n !== '');
}

function executor(env: Record<string, string> = {}): PodmanExecutor {
  return new PodmanExecutor(loadConfig({ FURROW_RUNNER_EXECUTOR: 'podman', FURROW_JOB_USER: userName, ...env }).executor);
}

/** A job in the work dir that runs in the test image unless `spec` says otherwise. */
function newJob(spec: Partial<JobSpec> = {}, signal?: AbortSignal): Promise<JobContext> {
  return makeJob(workDir, { image, ...spec }, signal, user);
}

describe.skipIf(!available)('podman executor', () => {
  beforeAll(async () => {
    image = await ensureBusyboxImage();
    workDir = await mkdtemp(path.join(tmpdir(), 'furrow-podman-'));
    await chmod(workDir, 0o711);
    if (root) user = (await ensureJobUser(slotUserName(userName, 0))).user;
  });

  afterAll(async () => {
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it('says in its probe which podman and runtime it uses', async () => {
    const probe = await executor().probe();
    expect(probe.ok).toBe(true);
    expect(probe.detail).toMatch(/^podman \d+\.\d+\.\d+, runtime \S+, cgroups v[12]$/);
    const v1 = await stat('/sys/fs/cgroup/cgroup.controllers').then(() => false, () => true);
    if (v1) expect(probe.detail).toContain('runtime runc');
  });

  it('runs a step inside the image and returns its output and exit code', async () => {
    const ex = executor();
    const results = await runJob(ex, await newJob(), ['cat /etc/os-release; echo "to stderr" >&2', 'echo before; exit 7; echo never']);
    expect(results[0]!.exitCode).toBe(0);
    expect(results[0]!.output).toBe(`${BUSYBOX_MARKER}\nto stderr\n`);
    expect(results[1]).toMatchObject({ exitCode: 7, output: 'before\n' });
  });

  it('runs in the workspace with an environment only from the spec; files written inside appear on the host', async () => {
    const ex = executor();
    const secret = "two\nlines with 'quotes' and $dollars";
    const job = await newJob({ env: { SECRET: secret, LANG: 'C' } });
    const [first, second] = await runJob(ex, job, [
      'pwd; echo "$HOME $FURROW_WORKSPACE $LANG"; printf %s "$SECRET" > secret; id -u; env | sed -n "s/^\\([A-Za-z_][A-Za-z0-9_]*\\)=.*/\\1/p" | tr "\\n" " "',
      'cat secret; echo; echo "$FURROW_STEP_ID"',
    ]);
    expect(first!.exitCode).toBe(0);
    const lines = first!.output.split('\n');
    expect(lines.slice(0, 2)).toEqual(['/workspace', '/workspace /workspace C']);
    if (root) expect(lines[2]).toBe(String(user!.uid));
    // The spec's, podman's own (container, HOSTNAME, PATH, TERM) and the shell's; nothing of the runner.
    const names = lines[3]!.trim().split(' ');
    expect(names).toEqual(expect.arrayContaining(['FURROW_STEP_ID', 'FURROW_WORKSPACE', 'HOME', 'LANG', 'PATH', 'SECRET']));
    const allowed = ['FURROW_JOB_ID', 'FURROW_STEP_ID', 'FURROW_WORKSPACE', 'HOME', 'HOSTNAME', 'LANG', 'PATH', 'PWD', 'SECRET', 'SHLVL', 'TERM', 'container'];
    expect(names.filter((n) => !allowed.includes(n))).toEqual([]);
    expect(second!.output).toBe(`${secret}\n${second!.stepId}\n`);
    // The workspace outlives the steps and holds what they wrote, owned by the job user.
    expect(await readFile(path.join(job.workspace, 'secret'), 'utf8')).toBe(secret);
    if (root) expect((await stat(path.join(job.workspace, 'secret'))).uid).toBe(user!.uid);
  });

  it.skipIf(!root)('runs the job user without capabilities, even where the image does not know it', async () => {
    const results = await runJob(executor(), await newJob(), ['id -u; id -g; grep CapEff /proc/self/status; chown 0 . 2>/dev/null || echo "chown refused"']);
    expect(results[0]!.output).toBe(`${user!.uid}\n${user!.gid}\nCapEff:\t0000000000000000\nchown refused\n`);
  });

  it('gives a job with network "none" no interface but lo', async () => {
    const ex = executor();
    const links = 'ip -o link | cut -d: -f2 | tr -d " "';
    const [closed] = await runJob(ex, await newJob({ network: 'none' }), [links]);
    expect(closed).toMatchObject({ exitCode: 0, output: 'lo\n' });
    const [open] = await runJob(ex, await newJob(), [links]);
    expect(open!.output.split('\n').filter((l) => l !== '').length).toBeGreaterThan(1);
  });

  it('applies the memory, pids and cpu limits of the settings', async () => {
    const ex = executor({ FURROW_JOB_PIDS_MAX: '16', FURROW_JOB_MEMORY_MB: '96', FURROW_JOB_CPU_PERCENT: '50' });
    // cgroup v1 paths first, v2 after.
    const show = [
      'cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max',
      'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max',
      'cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d" " -f1 /sys/fs/cgroup/cpu.max',
    ].join('\n');
    const forks = 'i=0; while [ $i -lt 40 ]; do sleep 10 & i=$((i+1)); done; echo "all started"';
    const results = await runJob(ex, await newJob(), [show, forks]);
    expect(results[0]).toMatchObject({ exitCode: 0, output: `16\n${96 * 1024 * 1024}\n50000\n` });
    expect(results[1]!.exitCode).not.toBe(0);
    expect(results[1]!.output).toMatch(/fork/i);
    expect(results[1]!.output).not.toContain('all started');
  });

  it('keeps a large output complete and in order while the sink pauses it', async () => {
    const ex = executor();
    const job = await newJob();
    await withPreparedJob(ex, job, async () => {
      const r = await runStep(ex, job, 'seq 1 200000', collectOutput({ every: 5, drainMs: 20 }));
      expect(r.exitCode).toBe(0);
      expect(r.output).toBe(`${Array.from({ length: 200_000 }, (_, i) => i + 1).join('\n')}\n`);
    });
  });

  const cancelCases = [
    {
      title: 'ends a canceled step within seconds, also one that ignores SIGTERM, and leaves no container',
      script: "trap '' TERM; echo started; sleep 100; echo never",
      cancelOnce: 'started',
      ended: { exitCode: null, signal: 'SIGTERM', output: 'started\n' },
    },
    // Canceled at once, while podman is still creating the container.
    { title: 'ends a step canceled before its container exists', script: 'sleep 100', cancelOnce: undefined, ended: undefined },
  ];
  for (const { title, script, cancelOnce, ended } of cancelCases) {
    it(title, async () => {
      const ex = executor();
      const controller = new AbortController();
      const job = await newJob({}, controller.signal);
      await withPreparedJob(ex, job, async () => {
        const output = collectOutput();
        const step = runStep(ex, job, script, output);
        if (cancelOnce) await output.until(cancelOnce);
        const canceledAt = Date.now();
        controller.abort('canceled');
        const r = await step;
        expect(Date.now() - canceledAt).toBeLessThan(3000);
        if (ended) expect(r).toMatchObject(ended);
        expect(await containersOf(job.spec.jobId)).toEqual([]);
      });
    });
  }

  it('fails a job without an image, or with one it cannot get, saying so', async () => {
    const ex = executor();
    const noImage = await newJob({ image: null });
    await expect(ex.prepareJob(noImage)).rejects.toThrow('the workflow names no image; the podman executor needs one');
    await ex.cleanupJob(noImage);
    const missing = await newJob({ image: 'localhost/furrow-test-no-such-image:1' });
    await expect(ex.prepareJob(missing)).rejects.toThrow(/^the image "localhost\/furrow-test-no-such-image:1" is not on this runner and pulling it failed: /);
    await ex.cleanupJob(missing);
  });

  describe('through a whole instance', () => {
    let t: TestInstance;
    beforeAll(async () => {
      t = await startTestInstance({ FURROW_RUNNER_EXECUTOR: 'podman', FURROW_JOB_USER: userName });
    });
    afterAll(() => t?.stop());

    it('runs a workflow in its image and keeps the log', async () => {
      const { workflowId } = await t.workflow('cat /etc/os-release\necho "run $FURROW_RUN_NUMBER in $PWD"\nexit 3', { image, network: 'none' });
      const res = await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, {});
      expect(res.status).toBe(202);
      const done = await t.waitForRun(res.body.id);
      expect(done.status).toBe('failed');
      const log = await t.api('GET', `/api/v1/runs/${res.body.id}/log`);
      expect(log.text).toContain(`${BUSYBOX_MARKER}\nrun 1 in /workspace\n`);
      const jobs = await t.api('GET', `/api/v1/runs/${res.body.id}/jobs`);
      expect(jobs.body.items[0].exitCode).toBe(3);
    });
  });
});
