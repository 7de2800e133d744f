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
to finish, the rest are canceled, then the embedded database stops. A second signal cancels the
running jobs at once and still stops everything cleanly; a third exits at once.
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
  // Handlers stay installed to the end: without them a second signal would kill the process
  // outright and leave the embedded PostgreSQL (its own process group) and the jobs behind.
  let signals = 0;
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      signals += 1;
      if (signals === 1) {
        logger.info({ signal }, 'shutting down');
        resolve();
      } else if (signals === 2) {
        logger.warn({ signal }, 'second signal: canceling running jobs without waiting for the grace period');
        void running.stop(true);
      } else {
        // Asks the embedded PostgreSQL for a fast shutdown (the signal is sent before the exit).
        logger.warn({ signal }, 'third signal: exiting at once');
        void database.stop();
        process.exit(130);
      }
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  await stopped;
  await running.stop();
  await database.stop();
  logger.info('stopped');
  return 0;
}
