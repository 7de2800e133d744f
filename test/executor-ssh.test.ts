import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load-config.js';
import type { JobContext } from '../src/runner/executors/executor.js';
import { SshExecutor } from '../src/runner/executors/ssh-executor.js';
import { collectOutput, makeJob, runJob, runStep, withPreparedJob } from './helpers/executor-job.js';
import { processesWithEnv } from './helpers/processes.js';
import { generateKey, sshServerAvailable, startSshServer, writeKnownHosts, type SshServer } from './helpers/ssh-server.js';
import { startTestInstance } from './helpers/test-instance.js';

const run = promisify(execFile);
const available = await sshServerAvailable();

let server: SshServer;
let localWork: string;
let wrongKnownHosts: string;

beforeAll(async () => {
  if (!available) return;
  server = await startSshServer();
  localWork = await mkdtemp(path.join(tmpdir(), 'furrow-ssh-runner-'));
  // The same host, another key: what a man in the middle would present.
  const otherKey = await generateKey(path.join(server.dir, 'other_host_ed25519'), 'not-the-host');
  wrongKnownHosts = path.join(server.dir, 'wrong_known_hosts');
  await writeKnownHosts(wrongKnownHosts, server.host, server.port, otherKey);
});

afterAll(async () => {
  await server?.stop();
  if (localWork) await rm(localWork, { recursive: true, force: true });
});

function executor(env: Record<string, string> = {}): SshExecutor {
  return new SshExecutor(loadConfig({ FURROW_RUNNER_EXECUTOR: 'ssh', ...server.env, ...env }).executor);
}

/** A job laid out as the runner agent lays it out on its own host, with `env` as the spec's whole environment. */
function newJob(env: Record<string, string> = {}, signal?: AbortSignal): Promise<JobContext> {
  // No FURROW_JOB_ID: the runner would find the "remote" processes on this loopback host by it
  // and kill them itself; without it, only the executor's remote stopping can.
  return makeJob(localWork, { env }, signal);
}

const remoteWorkspace = (job: JobContext) => path.join(server.workDir, job.spec.jobId);

/** Processes on this (loopback) host running `sleep 100` as the ssh user. */
async function remoteSleeps(): Promise<number[]> {
  const found: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const [cmdline, status] = await Promise.all([readFile(`/proc/${e}/cmdline`, 'utf8'), readFile(`/proc/${e}/status`, 'utf8')]);
      const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
      if (uid === server.uid && cmdline === 'sleep\x00100\x00' && !/^State:\s+Z/m.test(status)) found.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.runIf(available)('ssh executor', () => {
  it('runs a step on the target as the target user; stdout, stderr and the exit code come back', async () => {
    // `result` is what the executor returned, without what the helper adds.
    const [{ output, stepId, ...result }] = await runJob(executor(), await newJob(), ['echo "out $(id -un) $(id -u)"\necho "err line" >&2\nexit 3']);
    expect(result).toEqual({ exitCode: 3, signal: null });
    expect(output).toContain(`out ${server.user} ${server.uid}\n`);
    expect(output).toContain('err line\n');
    if (process.getuid!() === 0) expect(server.uid).not.toBe(0);
  });

  it('keeps the script\'s own line numbers and tells a script\'s exit 255 from an ssh failure', async () => {
    const [missing, { output, stepId, ...result }] = await runJob(executor(), await newJob(), ['true\nno_such_command_here', 'echo bye\nexit 255']);
    expect(missing.exitCode).toBe(127);
    expect(missing.output).toMatch(/line 2: no_such_command_here: command not found/);
    expect(result).toEqual({ exitCode: 255, signal: null });
    expect(output).toBe('bye\n');
  });

  it('creates the workspace on the target (mode 0700, the ssh user\'s) and removes it on cleanup', async () => {
    const ex = executor();
    const job = await newJob();
    await ex.prepareJob(job);
    const ws = remoteWorkspace(job);
    const info = await stat(ws);
    expect(info.isDirectory()).toBe(true);
    expect(info.mode & 0o777).toBe(0o700);
    expect(info.uid).toBe(server.uid);
    const { output } = await runStep(ex, job, 'pwd\necho "$HOME|$FURROW_WORKSPACE"\nmkdir -p deep/dir && touch deep/dir/file && chmod 000 deep/dir');
    expect(output).toBe(`${ws}\n${ws}|${ws}\n`);
    await ex.cleanupJob(job);
    await expect(stat(ws)).rejects.toThrow(/ENOENT/);
    await expect(stat(path.join(server.workDir, `.${job.spec.jobId}`))).rejects.toThrow(/ENOENT/);
  });

  it('passes the spec\'s environment and nothing else, and no value shows in a process listing', async () => {
    const ex = executor();
    const secret = `furrow-secret-${randomBytes(8).toString('hex')}`;
    const value = `${secret} it's "quoted" $(touch /tmp/pwned) \`id\`\nsecond line`;
    const job = await newJob({ SECRET_VALUE: value, GREETING: 'hi' });
    const r = await withPreparedJob(ex, job, async () => {
      const output = collectOutput();
      const running = runStep(ex, job, 'printf "%s\\n" "$SECRET_VALUE"\necho "GREETING=$GREETING ssh=${SSH_CONNECTION:-unset} user=${USER:-unset} step=$FURROW_STEP_ID"\necho ready\nsleep 2', output);
      await output.until('ready');
      const { stdout: ps } = await run('ps', ['-eww', '-o', 'args']);
      expect(ps).not.toContain(secret);
      const cmdlines = await Promise.all((await readdir('/proc')).filter((e) => /^\d+$/.test(e)).map((e) => readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '')));
      expect(cmdlines.filter((c) => c.includes(secret))).toEqual([]);
      return running;
    });
    expect(r.exitCode).toBe(0);
    expect(r.output).toBe(`${value}\nGREETING=hi ssh=unset user=unset step=${r.stepId}\nready\n`);
  });

  it('streams a large output whole while the sink asks for pauses', async () => {
    const ex = executor();
    const job = await newJob();
    const output = collectOutput({ every: 1, drainMs: 1 });
    const r = await withPreparedJob(ex, job, () => runStep(ex, job, 'seq 1 200000', output));
    expect(r.exitCode).toBe(0);
    expect(r.output).toBe(Array.from({ length: 200_000 }, (_, i) => `${i + 1}\n`).join(''));
    expect(output.pauses).toBeGreaterThan(1);
  });

  it('kills what a step leaves running once it ends', async () => {
    const ex = executor();
    const job = await newJob();
    await withPreparedJob(ex, job, async () => {
      const began = Date.now();
      const r = await runStep(ex, job, 'sleep 100 &\nsetsid sleep 100 >/dev/null 2>&1 &\necho left');
      expect(r.exitCode).toBe(0);
      expect(Date.now() - began).toBeLessThan(5000);
      // The remote kill runs over a connection of its own: its processes go within a second or two.
      await waitFor('no process of the step left on the target', async () => (await processesWithEnv(`FURROW_WORKSPACE=${remoteWorkspace(job)}`)).length === 0, 3000);
      expect(await remoteSleeps()).toEqual([]);
    });
  });

  it('cancels a remote step within 3 s, leaving no process of it on the target', async () => {
    const ex = executor();
    const controller = new AbortController();
    const job = await newJob({}, controller.signal);
    await withPreparedJob(ex, job, async () => {
      const output = collectOutput();
      // TERM ignored, a background child and one that left the process group: all must still go.
      const running = runStep(ex, job, 'trap "" TERM\nsleep 100 &\nsetsid sleep 100 &\necho started\nsleep 100', output);
      await output.until('started');
      await waitFor('its three sleeps', async () => (await remoteSleeps()).length === 3);
      const began = Date.now();
      controller.abort('canceled');
      const r = await running;
      expect(Date.now() - began).toBeLessThan(3000);
      expect(r.exitCode).toBeNull();
      // The remote kill runs over a connection of its own: its processes go within a second or two.
      await waitFor('no process of the step left on the target', async () => (await processesWithEnv(`FURROW_WORKSPACE=${remoteWorkspace(job)}`)).length === 0, 3000);
      expect(await remoteSleeps()).toEqual([]);
    });
  });

  it('refuses a target whose host key is not the known one', async () => {
    const ex = executor({ FURROW_SSH_KNOWN_HOSTS: wrongKnownHosts });
    const job = await newJob();
    await expect(ex.prepareJob(job)).rejects.toThrow(/Host key verification failed.*FURROW_SSH_KNOWN_HOSTS/);
    await expect(runStep(ex, job, 'echo never')).rejects.toThrow(/Host key verification failed/);
    await ex.cleanupJob(job); // must not throw
    expect(await stat(remoteWorkspace(job)).catch(() => undefined)).toBeUndefined();
  });

  it('refuses a work dir on the target that is not the ssh user\'s own', async () => {
    const job = await newJob();
    await expect(executor({ FURROW_SSH_WORK_DIR: '/' }).prepareJob(job)).rejects.toThrow(/must be a directory the ssh user owns/);
    await expect(stat(path.join('/', job.spec.jobId))).rejects.toThrow(/ENOENT/);
    await expect(executor({ FURROW_SSH_WORK_DIR: 'relative/work' }).prepareJob(job)).rejects.toThrow(/FURROW_SSH_WORK_DIR must be an absolute path/);
  });

  it('refuses a job that asks for no network, which it cannot take away on the target', async () => {
    const job = await newJob();
    job.spec.network = 'none';
    await expect(executor().prepareJob(job)).rejects.toThrow(/network: none/);
  });

  it('probes: reachable with a good setup; the error line otherwise', async () => {
    const good = await executor().probe();
    expect(good.ok).toBe(true);
    expect(good.detail).toMatch(/^OpenSSH_/);
    expect(good.detail).toContain(`jobs run there as uid ${server.uid}`);
    const wrongKey = await executor({ FURROW_SSH_KNOWN_HOSTS: wrongKnownHosts }).probe();
    expect(wrongKey).toEqual({ ok: false, detail: expect.stringMatching(/Host key verification failed/) });
    const noKey = await executor({ FURROW_SSH_KEY_FILE: path.join(server.dir, 'missing_key') }).probe();
    expect(noKey).toEqual({ ok: false, detail: expect.stringMatching(/^FURROW_SSH_KEY_FILE: ENOENT/) });
    const closed = await executor({ FURROW_SSH_PORT: '1' }).probe();
    expect(closed).toEqual({ ok: false, detail: expect.stringMatching(/Connection refused/) });
    const unset = await new SshExecutor(loadConfig({ FURROW_RUNNER_EXECUTOR: 'ssh' }).executor).probe();
    expect(unset.ok).toBe(false);
    expect(unset.detail).toContain('set FURROW_SSH_TARGET, FURROW_SSH_KEY_FILE, FURROW_SSH_KNOWN_HOSTS');
  });

  it('runs a workflow end to end on the target', async () => {
    const t = await startTestInstance({ FURROW_RUNNER_EXECUTOR: 'ssh', ...server.env });
    try {
      const { workflowId } = await t.workflow('echo "remote marker $(id -un) in $FURROW_WORKSPACE"\necho "on stderr" >&2');
      const res = await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, {});
      expect(res.status).toBe(202);
      const run = await t.waitForRun(res.body.id);
      expect(run.status).toBe('succeeded');
      const job = (await t.api('GET', `/api/v1/runs/${res.body.id}/jobs`)).body.items[0];
      const log = await t.api('GET', `/api/v1/runs/${res.body.id}/log`);
      expect(log.text).toContain(`remote marker ${server.user} in ${path.join(server.workDir, job.id)}\n`);
      expect(log.text).toContain('on stderr\n');
      const failing = await t.workflow('echo failing\nexit 3');
      const res2 = await t.api('POST', `/api/v1/workflows/${failing.workflowId}/runs`, {});
      expect((await t.waitForRun(res2.body.id)).status).toBe('failed');
      expect((await t.api('GET', `/api/v1/runs/${res2.body.id}/jobs`)).body.items[0].exitCode).toBe(3);
      const sleeping = await t.workflow('echo started\nsleep 100');
      const res3 = await t.api('POST', `/api/v1/workflows/${sleeping.workflowId}/runs`, {});
      await waitFor('the remote step to start', async () => (await t.api('GET', `/api/v1/runs/${res3.body.id}/log`)).text.includes('started'));
      const began = Date.now();
      expect((await t.api('POST', `/api/v1/runs/${res3.body.id}/cancel`)).status).toBe(202);
      expect((await t.waitForRun(res3.body.id, 5000)).status).toBe('canceled');
      expect(Date.now() - began).toBeLessThan(3000);
      await waitFor('the remote sleep to end', async () => (await remoteSleeps()).length === 0, 3000);
      // The runner cleans up as it reports the job's end, which may come after the run's.
      await waitFor('the remote workspaces to go', async () => (await readdir(server.workDir)).length === 0);
    } finally {
      await t.stop();
    }
  });
});
