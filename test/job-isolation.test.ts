import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lookupUser, runsAsRoot, slotUserNames } from '../src/runner/job-user.js';
import { ensureBusyboxImage } from './helpers/busybox-image.js';
import { executorAvailable } from './helpers/executor-available.js';
import { furrow, furrowStart } from './helpers/furrow-process.js';
import { removeJobUsers, testJobUser } from './helpers/job-users.js';
import { processesWithEnv } from './helpers/processes.js';
import { startRunner, type RunnerProcess } from './helpers/runner-process.js';
import { createTestDatabase } from './helpers/test-database.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

const run = promisify(execFile);
const root = runsAsRoot();
if (!root) console.warn('skipping job isolation tests: they need root (one job user per slot)');
const fresh = () => randomBytes(12).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** PIDs of live processes whose command line is exactly `argv` (or ends with it, with `suffix`). */
async function processesRunning(argv: string[], suffix = false): Promise<number[]> {
  const wanted = `${argv.join('\0')}\0`;
  const found: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const cmdline = await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '');
    const stat = await readFile(`/proc/${e}/stat`, 'utf8').catch(() => 'x) Z');
    const matches = suffix ? cmdline.endsWith(`\0${wanted}`) : cmdline === wanted;
    if (matches && !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2))) found.push(Number(e));
  }
  return found;
}

/** Waits up to `ms` for `argv` to have no live process; returns those still left. */
async function goneWithin(argv: string[], ms: number, suffix = false): Promise<number[]> {
  const deadline = Date.now() + ms;
  let left = await processesRunning(argv, suffix);
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(50);
    left = await processesRunning(argv, suffix);
  }
  for (const pid of left) process.kill(pid, 'SIGKILL'); // not to leave them behind this test
  return left;
}

async function waitForLog(t: TestInstance, runId: string, text: string, ms = 30_000): Promise<string> {
  const deadline = Date.now() + ms;
  for (;;) {
    const log = (await t.api('GET', `/api/v1/runs/${runId}/log`)).text;
    if (log.includes(text)) return log;
    if (Date.now() > deadline) throw new Error(`run ${runId} did not log ${JSON.stringify(text)}: ${log}`);
    await sleep(50);
  }
}

async function startRun(t: TestInstance, workflowId: string): Promise<{ runId: string; jobId: string }> {
  const started = await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, {});
  expect(started.status).toBe(202);
  const runId = started.body.id as string;
  const jobs = (await t.api('GET', `/api/v1/runs/${runId}/jobs`)).body.items as { id: string }[];
  return { runId, jobId: jobs[0]!.id };
}

/**
 * What the attacker job tries against the victim's processes, workspace and ssh-agent; each line
 * says whether it worked. Values are the test's own (hex, paths it made), never job input.
 */
function attackScript(pids: number[], workspace: string, socket: string | undefined): string {
  return `pids="${pids.join(' ')}"; ws="${workspace}"
for p in $pids; do if cat /proc/$p/environ >/dev/null 2>&1; then echo "environ: read"; else echo "environ: denied"; fi; done
if ls "$ws" >/dev/null 2>&1; then echo "list: read"; else echo "list: denied"; fi
if cat "$ws/secret.txt" 2>/dev/null; then echo "read: read"; else echo "read: denied"; fi
if echo planted 2>/dev/null > "$ws/planted"; then echo "write: written"; else echo "write: denied"; fi
${socket ? `if SSH_AUTH_SOCK="${socket}" ssh-add -l >/dev/null 2>&1; then echo "agent: listed"; else echo "agent: denied"; fi` : ''}
for p in $pids; do if kill -9 $p 2>/dev/null; then echo "kill: killed"; else echo "kill: denied"; fi; done
echo attack over`;
}

/** The victim: holds its secret in its environment and workspace, and checks both are intact once told to stop. */
const VICTIM_SCRIPT = `printf '%s' "$VICTIM_SECRET" > secret.txt
sleep 600 &
echo "victim ready"
while [ ! -e stop ]; do sleep 0.1; done
[ "$(cat secret.txt)" = "$VICTIM_SECRET" ] && [ ! -e planted ] && kill -0 $! && echo "victim intact"
if [ -n "\${SSH_AUTH_SOCK:-}" ]; then ssh-add -l >/dev/null && echo "victim agent intact"; fi`;

const kinds = [
  { kind: 'shell', ssh: true },
  { kind: 'bwrap', ssh: true },
  { kind: 'podman', ssh: false },
] as const;

for (const { kind, ssh } of kinds) {
  const available = root && (await executorAvailable(kind));
  describe.skipIf(!available)(`jobs isolated from each other on the ${kind} executor`, () => {
    let t: TestInstance;
    let sshKey: string;
    let image: Record<string, string> = {};
    const dirs: string[] = [];

    beforeAll(async () => {
      t = await startTestInstance({ FURROW_RUNNER_EXECUTOR: kind, FURROW_LOCAL_RUNNER_CAPACITY: '2' });
      if (kind === 'podman') image = { image: await ensureBusyboxImage() };
      const dir = await mkdtemp(path.join(tmpdir(), 'furrow-isolation-'));
      dirs.push(dir);
      await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'victim@example', '-f', path.join(dir, 'key')]);
      sshKey = await readFile(path.join(dir, 'key'), 'utf8');
    }, 120_000);
    afterAll(async () => {
      await t?.stop();
      await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
    });

    it('keeps a concurrent job of another organization from its environment, workspace, ssh-agent and processes', async () => {
      const secret = fresh();
      const victim = await t.workflow(VICTIM_SCRIPT, image);
      expect((await t.api('POST', `/api/v1/projects/${victim.projectId}/secrets`, { name: 'VICTIM_SECRET', value: secret })).status).toBe(201);
      if (ssh) expect((await t.api('POST', `/api/v1/projects/${victim.projectId}/secrets`, { name: 'DEPLOY_KEY', kind: 'ssh', value: sshKey })).status).toBe(201);
      const { runId, jobId } = await startRun(t, victim.workflowId);
      await waitForLog(t, runId, 'victim ready');

      // Where the victim is, as an attacker on this host could find out (ps, /proc, the work dir's layout).
      const workDir = t.instance.resources.config.workDir;
      const workspace = path.join(workDir, jobId);
      const socket = ssh ? path.join(workDir, `.${jobId}`, 'ssh-agent', 'agent.sock') : undefined;
      const pids = await processesWithEnv(`VICTIM_SECRET=${secret}`);
      expect(pids.length).toBeGreaterThan(0);

      const attacker = await t.workflow(attackScript(pids, workspace, socket), image);
      expect(attacker.organizationId).not.toBe(victim.organizationId);
      const attack = await startRun(t, attacker.workflowId);
      expect((await t.waitForRun(attack.runId, 30_000)).status).toBe('succeeded');
      const said = (await t.api('GET', `/api/v1/runs/${attack.runId}/log`)).text;
      expect(said).toContain('attack over');
      expect(said).not.toContain(secret);
      const attempts = said.split('\n').filter((l) => /^(environ|list|read|write|agent|kill): /.test(l));
      expect(attempts.length).toBe(2 * pids.length + 3 + (ssh ? 1 : 0));
      expect(attempts.filter((l) => !l.endsWith(': denied'))).toEqual([]);

      await writeFile(path.join(workspace, 'stop'), '');
      expect((await t.waitForRun(runId, 30_000)).status).toBe('succeeded');
      const victimLog = (await t.api('GET', `/api/v1/runs/${runId}/log`)).text;
      expect(victimLog).toContain('victim intact');
      if (ssh) expect(victimLog).toContain('victim agent intact');
    }, 90_000);

    it('kills a job\'s process that left its group and cleared its environment when the job ends', async () => {
      // The sleep's length tells this test's escapee apart from every other process on the host.
      const seconds = String(900 + Math.floor(Math.random() * 9000));
      const { workflowId } = await t.workflow(`setsid env -i sleep ${seconds} </dev/null >/dev/null 2>&1 &\nsleep 0.2\necho left`, image);
      const { runId } = await startRun(t, workflowId);
      expect((await t.waitForRun(runId, 30_000)).status).toBe('succeeded');
      expect(await goneWithin(['sleep', seconds], 0)).toEqual([]);
    }, 60_000);
  });
}

describe.skipIf(!root)('job processes never outlive their runner', () => {
  let t: TestInstance;
  let runner: RunnerProcess | undefined;
  const base = testJobUser('i');

  beforeAll(async () => {
    t = await startTestInstance({ FURROW_LOCAL_RUNNER: 'false' });
  });
  afterAll(async () => {
    await runner?.stop('SIGKILL');
    await runner?.cleanup();
    await t?.stop();
    await removeJobUsers(base);
  });

  it('kills a job\'s processes, a setsid + nohup escapee too, when its runner is SIGKILLed, and a restarted runner removes what is left', async () => {
    const token = (await t.api('POST', '/api/v1/runner-tokens', {})).body.token;
    const env = { FURROW_JOB_USER: base };
    runner = await startRunner(['--url', t.url, '--name', `kill-${fresh()}`, '--capacity', '2'], { env, token });
    const seconds = String(900 + Math.floor(Math.random() * 9000));
    const escapee = String(Number(seconds) + 1);
    const { workflowId } = await t.workflow(`setsid nohup env -i sleep ${escapee} </dev/null >/dev/null 2>&1 &\necho started\nsleep ${seconds}`, { retry: { count: 0, on: [] } });
    const { runId, jobId } = await startRun(t, workflowId);
    await waitForLog(t, runId, 'started');
    expect(await processesRunning(['sleep', escapee])).toHaveLength(1);

    await runner.stop('SIGKILL');
    const killedAt = Date.now();
    // The bound allows for a loaded host; unloaded it takes about 100 ms.
    expect(await goneWithin(['sleep', seconds], 5000)).toEqual([]);
    expect(await goneWithin(['sleep', escapee], 5000)).toEqual([]);
    expect(Date.now() - killedAt).toBeLessThan(5000);

    // What a crash leaves: the workspace, and a process of a slot user (as if the sentinel had died too).
    const workspace = path.join(runner.workDir, jobId);
    expect(existsSync(workspace)).toBe(true);
    const slotUser = (await lookupUser(`${base}-1`))!;
    // The killed runner's sentinel is done before the straggler starts, or it would kill it first.
    const uids = (await Promise.all(slotUserNames(base, 2).map(lookupUser))).map((u) => u!.uid).join(',');
    await goneWithin(['furrow-sentinel', uids], 5000, true);
    const straggler = spawn('sleep', [escapee], { uid: slotUser.uid, gid: slotUser.gid, stdio: 'ignore', detached: true });
    const exited = new Promise((r) => straggler.once('exit', r));
    await sleep(100);
    expect(await processesRunning(['sleep', escapee])).toHaveLength(1);

    // With a smaller capacity than before: the slots beyond it are cleaned up too.
    runner = await startRunner(['--url', t.url, '--name', 'restarted'], { env, workDir: runner.workDir, waitFor: /removed what jobs of an earlier run/ });
    expect(runner.output()).toMatch(/"processes":1,"dirs":2/);
    expect(existsSync(workspace)).toBe(false);
    await exited; // killed by the starting runner
    expect(await goneWithin(['sleep', escapee], 0)).toEqual([]);
  }, 90_000);

  it('kills a job\'s processes, a setsid + nohup escapee too, when furrow start is SIGKILLed', async () => {
    const database = await createTestDatabase();
    const dataDir = await mkdtemp(path.join(tmpdir(), 'furrow-start-'));
    await run('chmod', ['0711', dataDir]);
    const startBase = testJobUser('i');
    const env = { DATABASE_URL: database.url, FURROW_DATA_DIR: dataDir, FURROW_PORT: '0', FURROW_JOB_USER: startBase };
    const server = await furrowStart(env);
    try {
      expect((await furrow(['user', 'create', '--email', 'ops@example.com', '--password-stdin', '--admin'], env, 'a long password\n')).code).toBe(0);
      const token = (await furrow(['token', 'create', '--email', 'ops@example.com', '--name', 'ops'], env)).stdout.trim();
      const api = async (method: string, route: string, body?: unknown) => {
        const res = await fetch(`${server.url}${route}`, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
        return { status: res.status, text: await res.clone().text(), body: res.headers.get('content-type')?.includes('json') ? await res.json() : undefined };
      };
      const seconds = String(900 + Math.floor(Math.random() * 9000));
      const escapee = String(Number(seconds) + 1);
      const org = await api('POST', '/api/v1/organizations', { name: `org-${fresh()}` });
      const project = await api('POST', `/api/v1/organizations/${org.body.id}/projects`, { name: 'project' });
      const workflow = await api('POST', `/api/v1/projects/${project.body.id}/workflows`, { name: 'w', script: `setsid nohup env -i sleep ${escapee} </dev/null >/dev/null 2>&1 &\necho started\nsleep ${seconds}` });
      const runId = (await api('POST', `/api/v1/workflows/${workflow.body.id}/runs`, {})).body.id as string;
      for (let i = 0; i < 600 && !(await api('GET', `/api/v1/runs/${runId}/log`)).text.includes('started'); i++) await sleep(50);
      expect(await processesRunning(['sleep', escapee])).toHaveLength(1);

      server.child.kill('SIGKILL');
      await server.exited;
      const killedAt = Date.now();
      expect(await goneWithin(['sleep', seconds], 5000)).toEqual([]);
      expect(await goneWithin(['sleep', escapee], 5000)).toEqual([]);
      expect(Date.now() - killedAt).toBeLessThan(5000);
    } finally {
      server.child.kill('SIGKILL');
      await removeJobUsers(startBase);
      await database.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 120_000);
});
