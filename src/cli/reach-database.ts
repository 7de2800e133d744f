import pg from 'pg';
import type { Config } from '../config/load-config.js';
import { startEmbeddedPostgres } from '../db/embedded-postgres.js';

export interface ReachedDatabase {
  url: string;
  embedded: boolean;
  /** Stops the embedded cluster if this process started it; otherwise does nothing. */
  stop(): Promise<void>;
}

const EMBEDDED_DB = 'furrow';

/**
 * The database every command works on: DATABASE_URL when set; otherwise the embedded cluster
 * under the data dir, started here unless another Furrow process already runs it.
 */
export async function reachDatabase(config: Config, log: (msg: string) => void): Promise<ReachedDatabase> {
  if (config.databaseUrl) return { url: config.databaseUrl, embedded: false, stop: async () => undefined };
  const cluster = await startEmbeddedPostgres(config.dataDir, { port: config.embeddedPgPort, log });
  const admin = new pg.Client({ connectionString: cluster.url });
  await admin.connect();
  try {
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [EMBEDDED_DB]);
    if (!rowCount) await admin.query(`CREATE DATABASE ${EMBEDDED_DB}`);
  } finally {
    await admin.end();
  }
  const url = new URL(cluster.url);
  url.pathname = `/${EMBEDDED_DB}`;
  return { url: url.toString(), embedded: true, stop: () => cluster.stop() };
}
