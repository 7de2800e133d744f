import { loadConfig, type Config } from '../config/load-config.js';
import { openDatabase } from '../db/database.js';
import { migrate } from '../db/migrate.js';
import { createLogger } from './create-logger.js';
import { reachDatabase } from './reach-database.js';

/**
 * Runs `fn` against the instance's database (migrated), then lets go of it. Refuses when the
 * data dir holds no database yet (see reachDatabase).
 */
export async function withDatabase<T>(fn: (db: ReturnType<typeof openDatabase>, config: Config) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, 'stderr');
  const reached = await reachDatabase(config, (msg) => logger.info(msg), { create: false });
  const database = openDatabase(reached.url, 2);
  try {
    await migrate(database.pool);
    return await fn(database, config);
  } finally {
    await database.close();
    await reached.stop();
  }
}

