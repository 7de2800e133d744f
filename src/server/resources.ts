import type { Logger } from 'pino';
import type { Config } from '../config/load-config.js';
import type { DatabaseHandle } from '../db/database.js';
import type { RunnerGateway } from './dispatch/runner-gateway.js';
import type { PgListener } from './live/pg-listener.js';
import type { SecretBox } from './secrets/secret-box.js';
import type { LogStore } from './store/log-store.js';

/** Everything the server's parts need, built once by the command that starts them. */
export interface Resources {
  config: Config;
  database: DatabaseHandle;
  /** The URL the database was reached at (embedded or external). */
  databaseUrl: string;
  logs: LogStore;
  listener: PgListener;
  gateway: RunnerGateway;
  /** Seals and opens secrets and deploy keys. */
  secretBox: SecretBox;
  logger: Logger;
}
