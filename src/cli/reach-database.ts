import pg from 'pg';
import type { Config } from '../config/load-config.js';
import { findCluster, runningEmbeddedPostgres, startEmbeddedPostgres } from '../db/embedded-postgres.js';
import { UsageError } from './usage-error.js';

export interface ReachedDatabase {
  url: string;
  embedded: boolean;
  /** Stops the embedded cluster if this process started it; otherwise does nothing. */
  stop(): Promise<void>;
}

const EMBEDDED_DB = 'furrow';

/** The URL of database `furrow` in the cluster at `clusterUrl`. */
function furrowDatabase(clusterUrl: string): string {
  const url = new URL(clusterUrl);
  url.pathname = `/${EMBEDDED_DB}`;
  return url.toString();
}

/** What a command that found no database says: where it looked, and how to make one. */
export function noDatabaseHere(dataDir: string): string {
  return `no Furrow database in ${dataDir} (FURROW_DATA_DIR): run "furrow start" (or "furrow migrate") with this data dir first, or set FURROW_DATA_DIR or DATABASE_URL to those of your instance`;
}

/**
 * The database every command works on: DATABASE_URL when set; otherwise the embedded cluster
 * under the data dir, started here unless another Furrow process already runs it. Only with
 * `create` (start, migrate) is a missing data dir or cluster made; other commands refuse, saying
 * which data dir they looked at, rather than work on a new, empty database.
 */
export async function reachDatabase(config: Config, log: (msg: string) => void, opts: { create: boolean }): Promise<ReachedDatabase> {
  if (config.databaseUrl) return { url: config.databaseUrl, embedded: false, stop: async () => undefined };
  if (!opts.create && !(await findCluster(config.dataDir))) throw new UsageError(noDatabaseHere(config.dataDir));
  const cluster = await startEmbeddedPostgres(config.dataDir, { port: config.embeddedPgPort, log });
  const admin = new pg.Client({ connectionString: cluster.url });
  await admin.connect();
  try {
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [EMBEDDED_DB]);
    if (!rowCount) await admin.query(`CREATE DATABASE ${EMBEDDED_DB}`);
  } finally {
    await admin.end();
  }
  return { url: furrowDatabase(cluster.url), embedded: true, stop: () => cluster.stop() };
}

/**
 * The database as it is, for checks that must change nothing: DATABASE_URL, or the embedded
 * cluster only while a Furrow process runs it. Otherwise the reason it is not reachable now.
 */
export async function peekDatabase(config: Config): Promise<{ url: string; embedded: boolean } | { reason: string }> {
  if (config.databaseUrl) return { url: config.databaseUrl, embedded: false };
  if (!(await findCluster(config.dataDir))) return { reason: `${noDatabaseHere(config.dataDir)}` };
  const url = await runningEmbeddedPostgres(config.dataDir);
  return url
    ? { url: furrowDatabase(url), embedded: true }
    : { reason: `the embedded PostgreSQL of ${config.dataDir} is not running, and checks do not start it: run "furrow start" to check it` };
}
