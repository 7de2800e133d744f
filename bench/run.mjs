#!/usr/bin/env node
/**
 * Furrow benchmark: trigger-to-start latency and a 200 MiB log, each printed beside its floor
 * (the same work done straight from Node, without Furrow). See bench/README.md.
 *
 *   node bench/run.mjs [--runs N] [--warmup N] [--log-runs N] [--strict]
 *
 * Starts `node bin/furrow.js start` on a fresh temporary data dir (embedded PostgreSQL, or a fresh
 * database on DATABASE_URL when that is set), and removes everything it created afterwards.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, watch, writeFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FURROW_BIN = path.join(ROOT, 'bin', 'furrow.js');

// ---- what is measured, and the targets -------------------------------------------------------

/** 200 MiB of log: LOG_LINES lines of exactly 64 bytes ("line 0000000001: … dog...\n"). */
const LOG_BYTES = 200 * 1024 * 1024;
const LOG_LINE_BYTES = 64;
const LOG_LINES = LOG_BYTES / LOG_LINE_BYTES;
const LOG_COMMAND = `seq -f 'line %010.0f: the quick brown fox jumps over the lazy dog...' 1 ${LOG_LINES}`;
const LOG_LAST_LINE = `line ${String(LOG_LINES).padStart(10, '0')}: the quick brown fox jumps over the lazy dog...`;

const TARGET = {
  latencyP50Ms: 25,
  latencyP99Ms: 100,
  logRatio: 1.3,
  rssGrowthBytes: 64 * 1024 * 1024,
};
const FLOOR_LOG_REPEATS = 3;
const RSS_SAMPLE_MS = 50;
const TERMINAL = new Set(['succeeded', 'failed', 'canceled', 'timed_out']);

// ---- small helpers ----------------------------------------------------------------------------

/** Wall clock in ms with sub-ms precision (comparable with bash's $EPOCHREALTIME). */
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const shq = (s) => `'${String(s).replaceAll("'", `'\\''`)}'`;
const fmtMs = (ms) => `${ms.toFixed(1)} ms`;
const fmtS = (ms) => `${(ms / 1000).toFixed(2)} s`;
const fmtMiB = (bytes) => `${(bytes / 1048576).toFixed(1)} MiB`;

class BenchError extends Error {}

/** "1712345678.123456" (seconds) -> ms since the epoch. */
function epochRealtimeMs(text) {
  const m = /^(\d+)[.,](\d{6})$/.exec(text.trim());
  if (!m) throw new BenchError(`unexpected $EPOCHREALTIME value ${JSON.stringify(text)}`);
  return Number(m[1]) * 1000 + Number(m[2]) / 1000;
}

/** Nearest-rank percentile of an ascending array. */
function percentile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

function median(values) {
  return percentile([...values].sort((a, b) => a - b), 0.5);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new BenchError(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** Peak RSS since the last reset (VmHWM); resetting needs write access to /proc/PID/clear_refs. */
function resetPeakRss(pid) {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

function peakRssBytes(pid) {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : undefined;
}

const CLOCK_TICKS = 100; // USER_HZ: the unit of /proc/PID/stat CPU times on Linux

/** CPU ticks from /proc/PID/stat: its own (utime+stime) and its reaped children's (cutime+cstime). */
function procTimes(pid) {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
  return { comm: s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')), ppid: Number(f[1]), self: Number(f[11]) + Number(f[12]), reaped: Number(f[13]) + Number(f[14]) };
}

/** The server and every live descendant (embedded PostgreSQL and its backends, running jobs). */
function processTree(root) {
  const all = new Map();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      all.set(Number(e), procTimes(Number(e)));
    } catch {
      // gone meanwhile
    }
  }
  const tree = new Map();
  const visit = (pid) => {
    const p = all.get(pid);
    if (!p || tree.has(pid)) return;
    tree.set(pid, p);
    for (const [child, c] of all) if (c.ppid === pid) visit(child);
  };
  visit(root);
  return tree;
}

/** Busy and total jiffies of the whole machine (first line of /proc/stat). */
function machineTicks() {
  const v = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = v[3] + (v[4] ?? 0);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/**
 * Where CPU time went between two snapshots: the server's Node process, PostgreSQL processes
 * under it (embedded only), and jobs (children the server reaped: bash and what it ran).
 */
function cpuBetween(root, before, after, machineBefore, machineAfter) {
  const d = (pid, key) => (after.get(pid)?.[key] ?? 0) - (before.get(pid)?.[key] ?? 0);
  let postgres = 0;
  for (const [pid, p] of after) if (pid !== root && p.comm.startsWith('postgres')) postgres += d(pid, 'self') + d(pid, 'reaped');
  return {
    serverS: d(root, 'self') / CLOCK_TICKS,
    jobS: d(root, 'reaped') / CLOCK_TICKS,
    postgresS: postgres / CLOCK_TICKS,
    machineBusy: (machineAfter.busy - machineBefore.busy) / Math.max(1, machineAfter.total - machineBefore.total),
  };
}

/** Runs a process to completion; resolves with its exit code, stdout and stderr. */
function runProcess(cmd, args, { env, input, cwd = ROOT } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

/** True when `promise` settles within `ms`, false otherwise; leaves no timer behind. */
async function within(promise, ms) {
  let timer;
  const expired = new Promise((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([promise.then(() => true), expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves when `child` has exited (at once if it already has). */
function exited(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

// ---- arguments --------------------------------------------------------------------------------

const USAGE = `Usage: node bench/run.mjs [--runs N] [--warmup N] [--log-runs N] [--strict]

  --runs N      measured trigger-to-start samples, Furrow and floor each (default 200)
  --warmup N    unmeasured warm-up runs before them (default 20)
  --log-runs N  200 MiB log jobs through Furrow; medians are reported, the largest RSS growth (default 3)
  --strict      exit with status 1 when a target is missed (default: 0 unless an error occurs)

Uses DATABASE_URL when set (a fresh database is created on it and dropped afterwards);
otherwise Furrow's embedded PostgreSQL in a temporary data dir.`;

function parseOptions(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        runs: { type: 'string', default: '200' },
        warmup: { type: 'string', default: '20' },
        'log-runs': { type: 'string', default: '3' },
        strict: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    throw new BenchError(`${err.message}\n\n${USAGE}`);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const int = (name, min) => {
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < min) throw new BenchError(`--${name} must be an integer >= ${min} (got ${values[name]})\n\n${USAGE}`);
    return n;
  };
  return { runs: int('runs', 1), warmup: int('warmup', 0), logRuns: int('log-runs', 1), strict: values.strict };
}

// ---- environment: temp dir, database, server --------------------------------------------------

/** Everything that cleanup() must undo. */
const state = {
  tmp: undefined,
  dataDir: undefined,
  server: undefined,
  serverLog: undefined,
  adminUrl: undefined,
  dbName: undefined,
};

/** The bench's own environment minus Furrow settings, so a developer's FURROW_* cannot leak in. */
function baseEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('FURROW_') && k !== 'DATABASE_URL') env[k] = v;
  return env;
}

async function createDatabase(adminUrl) {
  const name = `furrow_bench_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  try {
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
  } catch (err) {
    throw new BenchError(`cannot create a database on DATABASE_URL: ${err.message}`);
  } finally {
    await admin.end().catch(() => undefined);
  }
  state.adminUrl = adminUrl;
  state.dbName = name;
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function dropDatabase() {
  if (!state.dbName) return;
  const admin = new pg.Client({ connectionString: state.adminUrl });
  try {
    await admin.connect();
    try {
      await admin.query(`DROP DATABASE IF EXISTS ${state.dbName} WITH (FORCE)`);
    } catch {
      await admin.query(`DROP DATABASE IF EXISTS ${state.dbName}`); // PostgreSQL < 13
    }
    state.dbName = undefined;
  } catch (err) {
    process.stderr.write(`bench: warning: could not drop database ${state.dbName}: ${err.message}\n`);
  } finally {
    await admin.end().catch(() => undefined);
  }
}

function serverLogTail(lines = 15) {
  try {
    return readFileSync(state.serverLog, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no server output)';
  }
}

async function startServer(env) {
  state.serverLog = path.join(state.tmp, 'server.log');
  const fd = openSync(state.serverLog, 'a');
  // node directly (no npm wrapper), so child.pid is the server whose memory is sampled. Its own
  // process group: a terminal's Ctrl-C reaches only the bench, which then stops the server once.
  const child = spawn(process.execPath, [FURROW_BIN, 'start'], { cwd: ROOT, env, stdio: ['ignore', fd, fd], detached: true });
  closeSync(fd);
  state.server = child;
  await new Promise((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const deadline = Date.now() + 180_000;
  for (;;) {
    const text = readFileSync(state.serverLog, 'utf8');
    const m = /Furrow is running at (\S+)/.exec(text);
    if (m) return m[1];
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new BenchError(`the server exited during start (${child.exitCode ?? child.signalCode}); its output:\n${serverLogTail()}`);
    }
    if (Date.now() > deadline) throw new BenchError(`the server did not start within 180 s; its output:\n${serverLogTail()}`);
    await sleep(100);
  }
}

/** The embedded cluster, if one is still running on our data dir (e.g. the server was killed). */
async function stopStrayPostgres() {
  if (!state.dataDir) return;
  let pid;
  try {
    pid = Number((await readFile(path.join(state.dataDir, 'pg', 'postmaster.pid'), 'utf8')).split('\n')[0]);
  } catch {
    return;
  }
  if (!(pid > 0) || !alive(pid)) return;
  process.kill(pid, 'SIGINT'); // PostgreSQL's fast shutdown
  for (let i = 0; i < 300 && alive(pid); i++) await sleep(100);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

async function stopServer() {
  const child = state.server;
  if (!child) return;
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    const done = await within(exited(child), 60_000);
    if (!done) {
      process.stderr.write('bench: warning: the server did not exit within 60 s of SIGTERM; killing it\n');
      child.kill('SIGKILL');
      await exited(child);
    }
  }
  state.server = undefined;
  await stopStrayPostgres();
}

let cleaning;
function cleanup() {
  cleaning ??= (async () => {
    await stopServer().catch((err) => process.stderr.write(`bench: warning: stopping the server: ${err.message}\n`));
    await dropDatabase();
    if (state.tmp) await rm(state.tmp, { recursive: true, force: true }).catch((err) => process.stderr.write(`bench: warning: removing ${state.tmp}: ${err.message}\n`));
  })();
  return cleaning;
}

// ---- API --------------------------------------------------------------------------------------

function apiClient(baseUrl, token) {
  return async function api(method, route, body) {
    let res;
    try {
      res = await fetch(`${baseUrl}${route}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (err) {
      throw new BenchError(`${method} ${route} failed: ${err.cause?.message ?? err.message}`);
    }
    const text = await res.text();
    if (!res.ok) throw new BenchError(`${method} ${route} answered ${res.status}: ${text.slice(0, 500)}`);
    return res.headers.get('content-type')?.includes('application/json') ? JSON.parse(text) : text;
  };
}

async function waitForRun(api, runId, { timeoutMs, intervalMs }) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const run = await api('GET', `/api/v1/runs/${runId}`);
    if (TERMINAL.has(run.status)) return run;
    if (Date.now() > deadline) throw new BenchError(`run ${runId} still ${run.status} after ${timeoutMs / 1000} s`);
    await sleep(intervalMs);
  }
}

async function describeRun(api, runId) {
  try {
    const run = await api('GET', `/api/v1/runs/${runId}`);
    const jobs = await api('GET', `/api/v1/runs/${runId}/jobs`);
    const log = await api('GET', `/api/v1/runs/${runId}/log`);
    const job = jobs.items[0] ?? {};
    return `run status ${run.status}, job exit code ${job.exitCode}, error ${job.error}; log:\n${String(log).slice(-2000)}`;
  } catch (err) {
    return `(could not describe the run: ${err.message})`;
  }
}

/**
 * Resolves with the content of `file` once it holds a complete line. Watches the directory
 * (inotify) instead of polling the server, so waiting does not load the process being measured.
 */
function waitForLine(file, timeoutMs) {
  return new Promise((resolve, reject) => {
    let finished = false;
    const finish = (err, text) => {
      if (finished) return;
      finished = true;
      watcher.close();
      clearInterval(poll);
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(text);
    };
    const check = () => {
      let text;
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        return;
      }
      if (text.endsWith('\n')) finish(undefined, text);
    };
    const watcher = watch(path.dirname(file), check);
    const poll = setInterval(check, 25);
    const timer = setTimeout(() => finish(new BenchError(`${path.basename(file)} was not written within ${timeoutMs / 1000} s`)), timeoutMs);
    check();
  });
}

// ---- measurements -----------------------------------------------------------------------------

function latencyStats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 0.5), p90: percentile(s, 0.9), p99: percentile(s, 0.99), max: s[s.length - 1], min: s[0] };
}

/** Floor: the same script file spawned from Node; time from just before spawn() to its first line. */
async function floorLatency(scriptFile, stampFile, count) {
  const samples = [];
  for (let i = 0; i < count; i++) {
    await unlink(stampFile).catch(() => undefined);
    const t0 = now();
    const child = spawn('bash', [scriptFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.resume();
    child.stderr.resume();
    const code = await new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('close', resolve);
    });
    if (code !== 0) throw new BenchError(`the floor latency script exited with ${code}`);
    samples.push(epochRealtimeMs(await readFile(stampFile, 'utf8')) - t0);
  }
  return samples;
}

/** Furrow: from just before POST /workflows/:id/runs to the script's first line; runs one at a time. */
async function furrowLatency(api, workflowId, stampFile, count) {
  const samples = [];
  for (let i = 0; i < count; i++) {
    await unlink(stampFile).catch(() => undefined);
    const t0 = now();
    const run = await api('POST', `/api/v1/workflows/${workflowId}/runs`, {});
    let text;
    try {
      text = await waitForLine(stampFile, 30_000);
    } catch (err) {
      throw new BenchError(`${err.message}; ${await describeRun(api, run.id)}`);
    }
    samples.push(epochRealtimeMs(text) - t0);
    const done = await waitForRun(api, run.id, { timeoutMs: 30_000, intervalMs: 5 });
    if (done.status !== 'succeeded') throw new BenchError(`latency run ${run.id} ended ${done.status}; ${await describeRun(api, run.id)}`);
  }
  return samples;
}

/**
 * The log command run by bash from Node with stdout on /dev/null; the script times itself.
 * With `throughCat`, stdout goes through a pipe to `cat > /dev/null` instead: a reference for
 * what capturing output through any pipe costs (not the floor).
 */
async function floorLog(scriptFile, timesFile, throughCat = false) {
  await unlink(timesFile).catch(() => undefined);
  const devnull = openSync('/dev/null', 'w');
  const t0 = now();
  const child = throughCat
    ? spawn('bash', ['-c', `bash ${shq(scriptFile)} | cat`], { stdio: ['ignore', devnull, 'pipe'] })
    : spawn('bash', [scriptFile], { stdio: ['ignore', devnull, 'pipe'] });
  closeSync(devnull);
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  const wallMs = now() - t0;
  if (code !== 0) throw new BenchError(`the floor log script exited with ${code}: ${stderr.slice(-500)}`);
  const [start, end] = (await readFile(timesFile, 'utf8')).trim().split(/\s+/).map(epochRealtimeMs);
  return { scriptMs: end - start, wallMs };
}

async function furrowLog(api, workflowId, timesFile, serverPid) {
  await unlink(timesFile).catch(() => undefined);
  const peakResettable = resetPeakRss(serverPid);
  const before = rssBytes(serverPid);
  let maxRss = before;
  let samples = 0;
  const sampler = setInterval(() => {
    try {
      maxRss = Math.max(maxRss, rssBytes(serverPid));
      samples += 1;
    } catch {
      // the server is gone; the run wait below reports it
    }
  }, RSS_SAMPLE_MS);
  const treeBefore = processTree(serverPid);
  const machineBefore = machineTicks();
  const t0 = now();
  let run;
  let done;
  try {
    run = await api('POST', `/api/v1/workflows/${workflowId}/runs`, {});
    done = await waitForRun(api, run.id, { timeoutMs: 600_000, intervalMs: 250 });
  } finally {
    clearInterval(sampler);
  }
  const e2eMs = now() - t0;
  const cpu = cpuBetween(serverPid, treeBefore, processTree(serverPid), machineBefore, machineTicks());
  maxRss = Math.max(maxRss, rssBytes(serverPid));
  const peak = peakResettable ? peakRssBytes(serverPid) : undefined;
  if (done.status !== 'succeeded') throw new BenchError(`the large-log run ended ${done.status}; ${await describeRun(api, run.id)}`);
  const job = (await api('GET', `/api/v1/runs/${run.id}/jobs`)).items[0];
  const [start, end] = (await readFile(timesFile, 'utf8')).trim().split(/\s+/).map(epochRealtimeMs);
  return {
    runId: run.id,
    scriptMs: end - start,
    jobMs: Date.parse(job.finishedAt) - Date.parse(job.startedAt),
    e2eMs,
    logSize: Number(job.logSize),
    rssBefore: before,
    rssGrowth: maxRss - before,
    peakGrowth: peak !== undefined ? peak - before : undefined,
    rssSamples: samples,
    cpu,
  };
}

/** Streams the stored log back and checks its length and last line (a check, not a target). */
async function downloadLog(baseUrl, token, runId) {
  const t0 = now();
  const res = await fetch(`${baseUrl}/api/v1/runs/${runId}/log`, { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok) throw new BenchError(`GET /api/v1/runs/${runId}/log answered ${res.status}`);
  let bytes = 0;
  let tail = Buffer.alloc(0);
  for await (const chunk of res.body) {
    bytes += chunk.byteLength;
    tail = Buffer.concat([tail, chunk]).subarray(-2 * LOG_LINE_BYTES);
  }
  const lastLine = tail.toString('utf8').trimEnd().split('\n').pop();
  return { bytes, ms: now() - t0, lastLineOk: lastLine === LOG_LAST_LINE };
}

// ---- report -----------------------------------------------------------------------------------

function table(rows) {
  const head = ['Figure', 'Furrow', 'Floor', 'Target', 'Result'];
  const all = [head, ...rows];
  const widths = head.map((_, i) => Math.max(...all.map((r) => String(r[i]).length)));
  const line = (r) => r.map((c, i) => String(c).padEnd(widths[i])).join('  ').trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

const verdict = (ok) => (ok ? 'PASS' : 'MISS');

// ---- main -------------------------------------------------------------------------------------

async function main() {
  const opts = parseOptions(process.argv.slice(2));
  if (!existsSync(path.join(ROOT, 'dist', 'cli', 'main.js'))) throw new BenchError('dist/ is missing: run `npm run build` first (or use `npm run bench`)');
  if (process.platform !== 'linux') throw new BenchError('this benchmark reads /proc and needs Linux');

  state.tmp = await mkdtemp(path.join(tmpdir(), 'furrow-bench-'));
  // Traversable by others: as root, Furrow runs the embedded PostgreSQL as the `postgres` user.
  await chmod(state.tmp, 0o711);
  state.dataDir = path.join(state.tmp, 'data');
  const probeDir = path.join(state.tmp, 'probe');
  await mkdir(probeDir);

  const env = {
    ...baseEnv(),
    FURROW_DATA_DIR: state.dataDir,
    FURROW_HOST: '127.0.0.1',
    FURROW_PORT: String(await freePort()),
    FURROW_SHUTDOWN_GRACE_SECONDS: '5',
  };
  const external = process.env.DATABASE_URL;
  if (external) env.DATABASE_URL = await createDatabase(external);

  const log = (msg) => process.stderr.write(`bench: ${msg}\n`);
  log(`starting Furrow (${external ? `database ${state.dbName} on DATABASE_URL` : 'embedded PostgreSQL'}) in ${state.tmp}`);
  const baseUrl = await startServer(env);
  const serverPid = state.server.pid;
  log(`server pid ${serverPid} at ${baseUrl}`);

  const email = 'bench@example.com';
  const user = await runProcess(process.execPath, [FURROW_BIN, 'user', 'create', '--email', email, '--password-stdin', '--admin'], {
    env,
    input: `${randomBytes(18).toString('base64url')}\n`,
  });
  if (user.code !== 0) throw new BenchError(`furrow user create failed (${user.code}): ${user.stderr.trim()}`);
  const tok = await runProcess(process.execPath, [FURROW_BIN, 'token', 'create', '--email', email, '--name', 'bench'], { env });
  const token = tok.stdout.trim();
  if (tok.code !== 0 || !token) throw new BenchError(`furrow token create failed (${tok.code}): ${tok.stderr.trim()}`);
  const api = apiClient(baseUrl, token);

  const org = await api('POST', '/api/v1/organizations', { name: 'bench' });
  const project = await api('POST', '/api/v1/organizations/' + org.id + '/projects', { name: 'bench' });

  // Latency probe: the first line stamps the wall clock (bash builtin, no fork) into a file.
  const stampFile = path.join(probeDir, 'started');
  const latencyScript = `printf '%s\\n' "$EPOCHREALTIME" > ${shq(stampFile)}\necho "trigger-to-start probe"\n`;
  const latencyScriptFile = path.join(state.tmp, 'latency.sh');
  await writeFile(latencyScriptFile, latencyScript);
  const latencyWf = await api('POST', `/api/v1/projects/${project.id}/workflows`, { name: 'latency', script: latencyScript, timeoutSeconds: 60 });

  // Large log: the script times itself, so its elapsed time excludes Furrow's own overhead.
  const timesFile = path.join(probeDir, 'log-times');
  const logScript = `start=$EPOCHREALTIME\n${LOG_COMMAND}\nend=$EPOCHREALTIME\nprintf '%s %s\\n' "$start" "$end" > ${shq(timesFile)}\n`;
  const logScriptFile = path.join(state.tmp, 'large-log.sh');
  await writeFile(logScriptFile, logScript);
  const logWf = await api('POST', `/api/v1/projects/${project.id}/workflows`, { name: 'large-log', script: logScript, timeoutSeconds: 900 });

  log(`trigger-to-start floor: ${opts.warmup} warm-up + ${opts.runs} spawns of bash`);
  await floorLatency(latencyScriptFile, stampFile, opts.warmup);
  const floorLat = latencyStats(await floorLatency(latencyScriptFile, stampFile, opts.runs));
  log(`trigger-to-start through Furrow: ${opts.warmup} warm-up + ${opts.runs} runs, one at a time`);
  await furrowLatency(api, latencyWf.id, stampFile, opts.warmup);
  const furrowLat = latencyStats(await furrowLatency(api, latencyWf.id, stampFile, opts.runs));

  log(`large log floor: ${FLOOR_LOG_REPEATS} × bash ${path.basename(logScriptFile)} > /dev/null, then ${FLOOR_LOG_REPEATS} × through | cat`);
  const floors = [];
  for (let i = 0; i < FLOOR_LOG_REPEATS; i++) floors.push(await floorLog(logScriptFile, timesFile));
  const floorScriptMs = median(floors.map((f) => f.scriptMs));
  const floorWallMs = median(floors.map((f) => f.wallMs));
  const piped = [];
  for (let i = 0; i < FLOOR_LOG_REPEATS; i++) piped.push(await floorLog(logScriptFile, timesFile, true));
  const pipedScriptMs = median(piped.map((f) => f.scriptMs));

  const logRuns = [];
  for (let i = 0; i < opts.logRuns; i++) {
    log(`large log through Furrow: run ${i + 1} of ${opts.logRuns} (${LOG_BYTES} bytes)`);
    logRuns.push(await furrowLog(api, logWf.id, timesFile, serverPid));
  }
  const big = {
    scriptMs: median(logRuns.map((r) => r.scriptMs)),
    jobMs: median(logRuns.map((r) => r.jobMs)),
    e2eMs: median(logRuns.map((r) => r.e2eMs)),
    rssGrowth: Math.max(...logRuns.map((r) => r.rssGrowth)),
    peakGrowth: logRuns.every((r) => r.peakGrowth !== undefined) ? Math.max(...logRuns.map((r) => r.peakGrowth)) : undefined,
    sizesOk: logRuns.every((r) => r.logSize === LOG_BYTES),
    logSize: logRuns[logRuns.length - 1].logSize,
  };
  log('reading the stored log back');
  const download = await downloadLog(baseUrl, token, logRuns[logRuns.length - 1].runId);

  // ---- print ----
  const checks = [];
  const check = (ok) => {
    checks.push(ok);
    return verdict(ok);
  };
  const rows = [
    ['Trigger-to-start p50', fmtMs(furrowLat.p50), fmtMs(floorLat.p50), `<= ${TARGET.latencyP50Ms} ms`, check(furrowLat.p50 <= TARGET.latencyP50Ms)],
    ['Trigger-to-start p90', fmtMs(furrowLat.p90), fmtMs(floorLat.p90), '-', ''],
    ['Trigger-to-start p99', fmtMs(furrowLat.p99), fmtMs(floorLat.p99), `<= ${TARGET.latencyP99Ms} ms`, check(furrowLat.p99 <= TARGET.latencyP99Ms)],
    ['Trigger-to-start max', fmtMs(furrowLat.max), fmtMs(floorLat.max), '-', ''],
    [
      '200 MiB log: script elapsed',
      `${fmtS(big.scriptMs)} (${(big.scriptMs / floorScriptMs).toFixed(2)}x)`,
      fmtS(floorScriptMs),
      `<= ${TARGET.logRatio}x floor`,
      check(big.scriptMs <= TARGET.logRatio * floorScriptMs),
    ],
    [
      '200 MiB log: job duration (API)',
      `${fmtS(big.jobMs)} (${(big.jobMs / floorWallMs).toFixed(2)}x)`,
      `${fmtS(floorWallMs)} (spawn to exit)`,
      `<= ${TARGET.logRatio}x floor`,
      check(big.jobMs <= TARGET.logRatio * floorWallMs),
    ],
    ['200 MiB log: server RSS growth', fmtMiB(big.rssGrowth), '-', `<= ${fmtMiB(TARGET.rssGrowthBytes)}`, check(big.rssGrowth <= TARGET.rssGrowthBytes)],
    ['200 MiB log: stored logSize', `${big.logSize} B`, `${LOG_BYTES} B written`, 'equal', check(big.sizesOk)],
  ];

  const cpuLine = logRuns.find((r) => r.scriptMs === big.scriptMs).cpu;
  const out = [
    '',
    `Furrow benchmark — node ${process.version}, ${availableParallelism()} CPUs, ${external ? 'external PostgreSQL (DATABASE_URL)' : 'embedded PostgreSQL'}`,
    `Trigger-to-start: ${furrowLat.n} sequential runs after ${opts.warmup} warm-up (floor: ${floorLat.n} × spawn('bash', [file]))`,
    `Large log: ${LOG_BYTES} bytes (200 MiB) = ${LOG_LINES} lines × ${LOG_LINE_BYTES} B from \`seq -f …\`; ${opts.logRuns} Furrow run(s), floor = median of ${FLOOR_LOG_REPEATS} to /dev/null`,
    '',
    table(rows),
    '',
    `Notes: trigger-to-start min ${fmtMs(furrowLat.min)} (floor ${fmtMs(floorLat.min)}); large log POST-to-finished ${fmtS(big.e2eMs)};`,
    `  RSS before the first log run ${fmtMiB(logRuns[0].rssBefore)}, ${logRuns[0].rssSamples} samples every ${RSS_SAMPLE_MS} ms` +
      (big.peakGrowth !== undefined ? `, exact peak (VmHWM) growth ${fmtMiB(big.peakGrowth)}` : ''),
    `  large log script elapsed over ${logRuns.length} run(s): ${logRuns.map((r) => fmtS(r.scriptMs)).join(', ')};` +
      ` reference \`bash script | cat > /dev/null\` (any pipe capture): ${fmtS(pipedScriptMs)} (${(pipedScriptMs / floorScriptMs).toFixed(2)}x the floor)`,
    `  CPU during the median Furrow log run: server (node) ${cpuLine.serverS.toFixed(2)} s, PostgreSQL ${external ? 'n/a (external)' : `${cpuLine.postgresS.toFixed(2)} s`},` +
      ` job (bash + seq) ${cpuLine.jobS.toFixed(2)} s; whole machine ${(cpuLine.machineBusy * 100).toFixed(0)}% busy`,
    `  log read back: ${download.bytes} B in ${fmtS(download.ms)}, last line ${download.lastLineOk ? 'as written' : 'DIFFERENT'}`,
    '',
  ];
  process.stdout.write(out.join('\n'));
  const missed = checks.filter((ok) => !ok).length;
  if (missed > 0) process.stdout.write(`${missed} target(s) missed${opts.strict ? '' : ' (exit code 0; pass --strict to fail)'}\n`);
  else process.stdout.write('all targets met\n');
  return missed > 0 && opts.strict ? 1 : 0;
}

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    interrupted = true;
    process.stderr.write(`\nbench: ${sig}: cleaning up\n`);
    cleanup().finally(() => process.exit(130));
  });
}

let code;
try {
  code = await main();
} catch (err) {
  if (!interrupted) {
    process.stderr.write(`bench: error: ${err instanceof BenchError ? err.message : (err.stack ?? err)}\n`);
    const server = state.server;
    // An ECONNRESET can arrive before the child's 'exit' event: give that a moment.
    const died = server ? await within(exited(server), 200) : false;
    if (died) process.stderr.write(`bench: the server process exited unexpectedly (${server.exitCode !== null ? `code ${server.exitCode}` : server.signalCode})\n`);
    if (died || (server && !(err instanceof BenchError))) process.stderr.write(`server output (last lines):\n${serverLogTail()}\n`);
  }
  code = 2;
} finally {
  if (!interrupted) await cleanup();
}
if (!interrupted) process.exitCode = code;
