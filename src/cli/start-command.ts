import path from 'node:path';
import { loadConfig } from '../config/load-config.js';
import { makeRootStateDir, rootStateDir } from '../config/state-dir.js';
import { startInstance } from '../server/instance.js';
import { createLogger } from './create-logger.js';
import { reachDatabase } from './reach-database.js';

export const startHelp = `Usage: furrow start

Runs everything on one machine: PostgreSQL (embedded under FURROW_DATA_DIR unless DATABASE_URL
is set), migrations, the HTTP API and live updates, background workers and a local runner.
SIGINT/SIGTERM stop it gracefully: no new requests, running jobs get FURROW_SHUTDOWN_GRACE_SECONDS
to finish, the rest are canceled, then the embedded database stops.
Settings: docs/configuration.md.`;

export async function startCommand(): Promise<number> {
  const config = loadConfig();
  const logger = createLogger(config.logLevel);
  // The default work dir as root: its parents must let the job user through, whatever the umask.
  if (config.workDir.startsWith(`${rootStateDir(config.dataDir)}${path.sep}`)) await makeRootStateDir(config.dataDir);
  const database = await reachDatabase(config, (msg) => logger.info(msg), { create: true });
  let instance;
  try {
    instance = await startInstance(config, database.url, logger);
  } catch (err) {
    await database.stop();
    throw err;
  }
  logger.info({ url: instance.url, embeddedDatabase: database.embedded, dataDir: config.dataDir }, 'furrow is running');
  process.stdout.write(`Furrow is running at ${instance.url} (API docs: ${instance.url}/api/docs)\n`);
  const running = instance;
  await new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      logger.info({ signal }, 'shutting down');
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  await running.stop();
  await database.stop();
  logger.info('stopped');
  return 0;
}
