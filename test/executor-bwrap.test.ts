import { randomUUID } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runOutput } from './helpers/log-output.js';
import { loadConfig } from '../src/config/load-config.js';
import type { JobSpec } from '../src/protocol/messages.js';
import { detectCgroups } from '../src/runner/cgroups.js';
import { BwrapExecutor } from '../src/runner/executors/bwrap-executor.js';
import type { JobContext } from '../src/runner/executors/executor.js';
import { ensureJobUser, lookupUser, runsAsRoot, slotUserName, type JobUser } from '../src/runner/job-user.js';
import { executorAvailable } from './helpers/executor-available.js';
import { collectOutput, makeJob, runJob, runStep, withPreparedJob } from './helpers/executor-job.js';
import { processesWithEnv } from './helpers/processes.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';
import { testJobUser } from './helpers/job-users.js';

const root = runsAsRoot();
// As root, jobs run as the job user, which the runner or `furrow doctor --fix` creates on a real host.
const userEnv = { FURROW_JOB_USER: testJobUser('b') };
const user: JobUser | undefined = root ? (await ensureJobUser(slotUserName(userEnv.FURROW_JOB_USER, 0))).user : undefined;
const jobUid = user?.uid ?? process.getuid!();
const jobGid = user?.gid ?? process.getgid!();
const available = await executorAvailable('bwrap', userEnv);
const settings = loadConfig({ FURROW_RUNNER_EXECUTOR: 'bwrap', ...userEnv }).executor;
const cgroups = await detectCgroups();

let workDir: string;
let dataDir: string;
let elsewhere: string;
const executor = new BwrapExecutor(settings);
/** Jobs left prepared beside the one a test runs, cleaned up at the end (they may hold cgroups). */
const others: JobContext[] = [];

interface JobOptions {
  /** The work dir the job's workspace and scratch dir are made in. */
  dir?: string;
  network?: JobSpec['network'];
  signal?: AbortSignal;
}

/** A job whose spec has FURROW_JOB_ID (how its processes are found) and a variable of its own. */
function newJob({ dir = workDir, network = 'default', signal }: JobOptions = {}): Promise<JobContext> {
  const jobId = randomUUID();
  return makeJob(dir, { jobId, network, env: { FURROW_JOB_ID: jobId, GREETING: 'hi' } }, signal, user);
}

/** A prepared job another job's sandbox must not reach. */
async function otherJob(dir?: string): Promise<JobContext> {
  const job = await newJob({ dir });
  others.push(job);
  await executor.prepareJob(job);
  return job;
}

/** One job of one step, from prepareJob to cleanupJob. */
async function runScript(script: string, options: JobOptions = {}) {
  const job = await newJob(options);
  const [step] = await runJob(executor, job, [script]);
  return { job, ...step };
}

beforeAll(async () => {
  // The runner's layout: a data dir holding the database and the work dir (its default place).
  dataDir = await mkdtemp(path.join(tmpdir(), 'furrow-bwrap-'));
  await chmod(dataDir, 0o711);
  workDir = path.join(dataDir, 'work');
  await mkdir(workDir, { mode: 0o711 });
  await chmod(workDir, 0o711);
  // World-readable on purpose: the sandbox, not the file modes, must keep them out of reach.
  await writeFile(path.join(workDir, 'credential.json'), '{"token":"runner-credential-secret"}', { mode: 0o644 });
  await mkdir(path.join(dataDir, 'pg'), { mode: 0o755 });
  await writeFile(path.join(dataDir, 'pg', 'secret'), 'database-secret', { mode: 0o644 });
  // A data dir outside /tmp (which the sandbox replaces anyway): /var is not shown either.
  elsewhere = await mkdtemp('/var/tmp/furrow-bwrap-data-');
  await chmod(elsewhere, 0o755);
  await writeFile(path.join(elsewhere, 'secret'), 'elsewhere-secret', { mode: 0o644 });
});

afterAll(async () => {
  await Promise.all(others.map((job) => executor.cleanupJob(job)));
  await Promise.all([rm(dataDir, { recursive: true, force: true }), rm(elsewhere, { recursive: true, force: true })]);
});

describe.skipIf(!available)('bwrap executor', () => {
  it('reports the bubblewrap version and the job user from its probe', async () => {
    const probe = await executor.probe();
    expect(probe).toMatchObject({ ok: true });
    expect(probe.detail).toMatch(/^bubblewrap \d+\.\d+/);
    if (user) expect(probe.detail).toContain(`one user per job slot, ${userEnv.FURROW_JOB_USER}-N (${user.name} is uid ${user.uid})`);
  });

  it('streams a step\'s output and returns its exit code, with an environment from the spec alone', async () => {
    const r = await runScript('echo "to stdout"\necho "to stderr" >&2\necho "$GREETING $PWD $HOME $FURROW_WORKSPACE"\nenv -0 | cut -z -d= -f1 | sort -z | tr "\\0" " "\necho\nexit 3');
    expect(r.exitCode).toBe(3);
    expect(r.signal).toBeNull();
    expect(r.output).toContain('to stdout\n');
    expect(r.output).toContain('to stderr\n');
    expect(r.output).toContain(`hi ${r.job.workspace} ${r.job.workspace} ${r.job.workspace}\n`);
    // Only the spec's variables and the fixed ones; bash adds PWD, SHLVL and _.
    expect(r.output).toContain('FURROW_JOB_ID FURROW_STEP_ID FURROW_WORKSPACE GREETING HOME LANG PATH PWD SHLVL _ \n');
  });

  it('runs as an unprivileged user without capabilities, whose files in the workspace it owns on the host', async () => {
    const r = await runScript('id -u\nid -G\ngrep CapEff /proc/self/status\necho data > made-here');
    expect(r.exitCode).toBe(0);
    expect(jobUid).not.toBe(0);
    // No supplementary groups are left from the runner's user.
    expect(r.output).toBe(`${jobUid}\n${jobGid}\nCapEff:\t0000000000000000\n`);
    expect((await stat(path.join(r.job.workspace, 'made-here'))).uid).toBe(jobUid);
  });

  it('writes nowhere on the host but the workspace', async () => {
    const other = await otherJob();
    await writeFile(path.join(other.workspace, 'theirs'), 'other job');
    const marker = `furrow-bwrap-${randomUUID()}`;
    const attempts = ['/x', '/etc/x', '/usr/x', '/usr/local/x', `${other.workspace}/x`, `${workDir}/x`, `/tmp/${marker}`];
    const script = [
      ...attempts.map((f) => `if touch ${f} 2>/dev/null; then echo "wrote ${f}"; else echo "denied ${f}"; fi`),
      `cat ${other.workspace}/theirs 2>/dev/null || echo "no theirs"`,
      'touch mine && echo "wrote mine"',
    ].join('\n');
    const r = await runScript(script);
    expect(r.exitCode).toBe(0);
    // /tmp is the sandbox's own: writing there works but reaches nothing on the host.
    for (const f of attempts.slice(0, -1)) expect(r.output).toContain(`denied ${f}\n`);
    expect(r.output).toContain('no theirs\n');
    expect(r.output).toContain('wrote mine\n');
    await expect(stat(`/tmp/${marker}`)).rejects.toThrow(/ENOENT/);
    await expect(stat(path.join(other.workspace, 'x'))).rejects.toThrow(/ENOENT/);
    await expect(stat(path.join(r.job.workspace, 'mine'))).resolves.toBeTruthy();
  });

  it('hides the runner\'s credential, the other workspaces and the server\'s data dir', async () => {
    const other = await otherJob();
    const script = [
      `ls -A ${workDir} | sort | tr "\\n" " "; echo`,
      `cat ${workDir}/credential.json 2>/dev/null || echo "no credential"`,
      `ls ${dataDir} | tr "\\n" " "; echo`,
      `cat ${dataDir}/pg/secret 2>/dev/null || echo "no data dir"`,
      `cat ${elsewhere}/secret 2>/dev/null || echo "no data dir elsewhere"`,
      'ls / | tr "\\n" " "; echo',
    ].join('\n');
    const r = await runScript(script);
    expect(r.exitCode).toBe(0);
    const id = r.job.spec.jobId;
    // Only the job's own workspace and script directory exist in the work dir.
    expect(r.output).toContain(`${[id, `.${id}`].sort().join(' ')} \n`);
    expect(r.output).not.toContain(other.spec.jobId);
    expect(r.output).toContain('no credential\n');
    expect(r.output).toContain('\nwork \n');
    expect(r.output).toContain('no data dir\n');
    expect(r.output).toContain('no data dir elsewhere\n');
    expect(r.output).not.toMatch(/secret/);
    const top = r.output.trim().split('\n').at(-1)!.trim().split(' ');
    for (const hidden of ['home', 'root', 'var', 'srv', 'opt', 'run', 'mnt']) expect(top).not.toContain(hidden);
  });

  // Writing under /usr takes root.
  it.skipIf(!root)('hides a work dir that lies inside a directory the sandbox shows', async () => {
    const inside = await mkdtemp('/usr/local/furrow-bwrap-work-');
    try {
      await chmod(inside, 0o711);
      await writeFile(path.join(inside, 'credential.json'), '{"token":"runner-credential-secret"}', { mode: 0o644 });
      const other = await otherJob(inside);
      const r = await runScript(`ls -A ${inside} | sort | tr "\\n" " "; echo\ncat ${inside}/credential.json 2>/dev/null || echo "no credential"\ntouch ${inside}/x 2>/dev/null || echo "denied"`, { dir: inside });
      expect(r.exitCode).toBe(0);
      const id = r.job.spec.jobId;
      expect(r.output).toBe(`${[id, `.${id}`].sort().join(' ')} \nno credential\ndenied\n`);
      expect(r.output).not.toContain(other.spec.jobId);
    } finally {
      await rm(inside, { recursive: true, force: true });
    }
  });

  it('shows the job only its own processes', async () => {
    const r = await runScript(`sleep 30 &\nls /proc | grep -cE '^[0-9]+$'\ntest -e /proc/${process.pid} && echo "sees the runner" || echo "runner hidden"\nkill $!`);
    expect(r.exitCode).toBe(0);
    const [count, runner] = r.output.trim().split('\n');
    // bwrap's init, bash, sleep and the pipeline's ls and grep
    expect(Number(count)).toBeLessThanOrEqual(6);
    expect(runner).toBe('runner hidden');
  });

  describe('network', () => {
    let server: Server;
    let port: number;
    beforeAll(async () => {
      server = createServer((socket) => socket.end('hello from the host\n'));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as { port: number }).port;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    const connect = () => `exec 3<>/dev/tcp/127.0.0.1/${port} && head -n 1 <&3`;

    it('reaches the host\'s network by default', async () => {
      const r = await runScript(connect(), { network: 'default' });
      expect(r.exitCode).toBe(0);
      expect(r.output).toBe('hello from the host\n');
    });

    it('has no network with network: none', async () => {
      const r = await runScript(`${connect()} || echo "no connection"`, { network: 'none' });
      expect(r.exitCode).toBe(0);
      expect(r.output).not.toContain('hello from the host');
      expect(r.output).toContain('no connection\n');
    });
  });

  it.skipIf(!cgroups.available || !cgroups.controllers.includes('memory'))('holds the sandbox to FURROW_JOB_MEMORY_MB through the job\'s cgroup', async () => {
    const ex = new BwrapExecutor(loadConfig({ FURROW_RUNNER_EXECUTOR: 'bwrap', FURROW_JOB_MEMORY_MB: '64', ...userEnv }).executor);
    const job = await newJob();
    await withPreparedJob(ex, job, async () => {
      expect((await runStep(ex, job, 'cat /proc/self/cgroup')).output).toContain(`/furrow/${job.spec.jobId}\n`);
      const r = await runStep(ex, job, 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo "survived with ${#x} bytes"');
      expect(r.output).not.toContain('survived');
      expect(r.exitCode === null ? r.signal : r.exitCode).not.toBe(0);
    });
  });

  it('ends a canceled step within 2 seconds, leaving no process behind', async () => {
    const controller = new AbortController();
    const job = await newJob({ signal: controller.signal });
    await withPreparedJob(executor, job, async () => {
      const output = collectOutput();
      const step = runStep(executor, job, 'trap "" TERM\nsetsid sleep 101 &\nsleep 102 &\necho started\nsleep 100', output);
      await output.until('started');
      const marker = `FURROW_JOB_ID=${job.spec.jobId}`;
      expect(await processesWithEnv(marker)).not.toEqual([]);
      const began = Date.now();
      controller.abort('canceled');
      const r = await step;
      expect(Date.now() - began).toBeLessThan(2000);
      expect(r.exitCode).toBeNull();
      expect(await processesWithEnv(marker)).toEqual([]);
    });
  });
});

describe.skipIf(!available)('bwrap executor in a Furrow instance', () => {
  let t: TestInstance;
  beforeAll(async () => {
    t = await startTestInstance({ FURROW_RUNNER_EXECUTOR: 'bwrap', ...userEnv });
  });
  afterAll(() => t?.stop());

  it('runs a workflow in the sandbox as an unprivileged user', async () => {
    const { workflowId } = await t.workflow('echo "hello from the sandbox"\ntest "$(id -u)" -ne 0\necho "uid $(id -u)"\ntouch /usr/x 2>/dev/null && exit 9 || true');
    const res = await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, {});
    expect(res.status).toBe(202);
    const run = await t.waitForRun(res.body.id);
    const log = await t.api('GET', `/api/v1/runs/${res.body.id}/log`);
    expect(run.status, log.text).toBe('succeeded');
    // As root it runs as the user of whichever job slot took it; else as this user.
    const uids = root ? (await Promise.all([0, 1].map((i) => lookupUser(slotUserName(userEnv.FURROW_JOB_USER, i))))).flatMap((u) => (u ? [u.uid] : [])) : [jobUid];
    const [hello, uid] = runOutput(log.text).split('\n');
    expect(hello).toBe('hello from the sandbox');
    expect(uids.map((u) => `uid ${u}`)).toContain(uid);
  });
});
