/**
 * The Furrow under test: a fresh temporary dir, a database (embedded PostgreSQL in that dir, or a
 * fresh one on DATABASE_URL), `node bin/furrow.js start`, an admin token; cleanup() undoes it all.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { BenchError } from './bench-error.mjs';
import { closed, exited } from './child-process.mjs';
import { sleep, within } from './clock.mjs';
import { CAPACITY } from './throughput.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const FURROW_BIN = path.join(ROOT, 'bin', 'furrow.js');

/** Everything that cleanup() must undo. */
const state = {
  tmp: undefined,
  dataDir: undefined,
  server: undefined,
  serverLog: undefined,
  adminUrl: undefined,
  dbName: undefined,
};

export function assertBuilt() {
  if (!existsSync(path.join(ROOT, 'dist', 'cli', 'main.js'))) throw new BenchError('dist/ is missing: run `npm run build` first (or use `npm run bench`)');
}

/**
 * Starts the server and makes an admin user and API token with the CLI. `log` reports progress.
 * Resolves with { tmp, baseUrl, pid, token, external, databaseUrl } (external: a DATABASE_URL
 * database is used; databaseUrl: the database the server works on).
 */
export async function startFurrow(log) {
  state.tmp = await mkdtemp(path.join(tmpdir(), 'furrow-bench-'));
  // Traversable by others: as root, Furrow runs the embedded PostgreSQL as the `postgres` user.
  await chmod(state.tmp, 0o711);
  state.dataDir = path.join(state.tmp, 'data');

  const env = {
    ...baseEnv(),
    FURROW_DATA_DIR: state.dataDir,
    FURROW_HOST: '127.0.0.1',
    FURROW_PORT: String(await freePort()),
    FURROW_SHUTDOWN_GRACE_SECONDS: '5',
    FURROW_LOCAL_RUNNER_CAPACITY: String(CAPACITY),
  };
  const external = process.env.DATABASE_URL;
  if (external) env.DATABASE_URL = await createDatabase(external);

  log(`starting Furrow (${external ? `database ${state.dbName} on DATABASE_URL` : 'embedded PostgreSQL'}) in ${state.tmp}`);
  const baseUrl = await startServer(env);
  const pid = state.server.pid;
  log(`server pid ${pid} at ${baseUrl}`);

  const email = 'bench@example.com';
  const user = await furrowCli(['user', 'create', '--email', email, '--password-stdin', '--admin'], env, `${randomBytes(18).toString('base64url')}\n`);
  if (user.code !== 0) throw new BenchError(`furrow user create failed (${user.code}): ${user.stderr.trim()}`);
  const tok = await furrowCli(['token', 'create', '--email', email, '--name', 'bench'], env);
  const token = tok.stdout.trim();
  if (tok.code !== 0 || !token) throw new BenchError(`furrow token create failed (${tok.code}): ${tok.stderr.trim()}`);
  const databaseUrl = external ? env.DATABASE_URL : await embeddedDatabaseUrl();
  return { tmp: state.tmp, baseUrl, pid, token, external: Boolean(external), databaseUrl };
}

/**
 * The URL Furrow itself uses for its embedded cluster, database `furrow`: found the way Furrow's
 * own commands find it (the cluster may live outside the data dir, as it does for root).
 */
async function embeddedDatabaseUrl() {
  const { runningEmbeddedPostgres } = await import('../../dist/db/embedded-postgres.js');
  const url = await runningEmbeddedPostgres(state.dataDir);
  if (!url) throw new BenchError(`no running embedded PostgreSQL found for ${state.dataDir}`);
  const u = new URL(url);
  u.pathname = '/furrow';
  return u.toString();
}

/** After an error: says whether the server died, and shows its output when that may explain the error. */
export async function reportServerState(err) {
  const server = state.server;
  // An ECONNRESET can arrive before the child's 'exit' event: give that a moment.
  const died = server ? await within(exited(server), 200) : false;
  if (died) process.stderr.write(`bench: the server process exited unexpectedly (${server.exitCode !== null ? `code ${server.exitCode}` : server.signalCode})\n`);
  if (died || (server && !(err instanceof BenchError))) process.stderr.write(`server output (last lines):\n${serverLogTail()}\n`);
}

let cleaning;
/** Stops the server, then drops the database and removes the temporary dir; runs once however often called. */
export function cleanup() {
  cleaning ??= (async () => {
    await stopServer().catch((err) => process.stderr.write(`bench: warning: stopping the server: ${err.message}\n`));
    await dropDatabase();
    if (state.dataDir && process.getuid?.() === 0) {
      // As root the cluster and work dirs live outside the data dir, keyed by its path.
      const { rootStateDir } = await import('../../dist/config/state-dir.js');
      await rm(rootStateDir(state.dataDir), { recursive: true, force: true }).catch(() => undefined);
    }
    if (state.tmp) await rm(state.tmp, { recursive: true, force: true }).catch((err) => process.stderr.write(`bench: warning: removing ${state.tmp}: ${err.message}\n`));
  })();
  return cleaning;
}

/** The bench's own environment minus Furrow settings, so a developer's FURROW_* cannot leak in. */
function baseEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('FURROW_') && k !== 'DATABASE_URL') env[k] = v;
  return env;
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

/** Runs the Furrow CLI to completion; resolves with its exit code, stdout and stderr. */
async function furrowCli(args, env, input = '') {
  const child = spawn(process.execPath, [FURROW_BIN, ...args], { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = closed(child);
  child.stdin.end(input);
  return { code: await code, stdout, stderr };
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
  const { findCluster } = await import('../../dist/db/embedded-postgres.js');
  const clusterDir = await findCluster(state.dataDir);
  let pid;
  try {
    pid = Number((await readFile(path.join(clusterDir ?? '', 'postmaster.pid'), 'utf8')).split('\n')[0]);
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
