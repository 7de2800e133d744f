import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config/load-config.js';
import { openDatabase } from '../db/database.js';
import { migrate } from '../db/migrate.js';
import { FURROW_VERSION } from '../protocol/version.js';
import { createExecutor } from '../runner/executors/create-executor.js';
import { ensureSlotUsersWhenRoot } from '../runner/job-user.js';
import { RunnerAgent } from '../runner/runner-agent.js';
import { buildApp } from './build-app.js';
import { localChannel } from './dispatch/local-channel.js';
import { RunnerGateway } from './dispatch/runner-gateway.js';
import { PgListener } from './live/pg-listener.js';
import type { Resources } from './resources.js';
import { SecretBox } from './secrets/secret-box.js';
import { LogStore } from './store/log-store.js';
import { startScheduleClock } from './triggers/schedule-clock.js';
import { startDeliveryPump } from './triggers/delivery-pump.js';
import { startGitPoller } from './triggers/git-poller.js';
import { migrateTaskQueue, startWorkers } from './workers/start-workers.js';

export interface Instance {
  /** Base URL of the HTTP server. */
  url: string;
  resources: Resources;
  app: FastifyInstance;
  runner: RunnerAgent | undefined;
  /**
   * Stops the lease watch, stops accepting requests, lets running jobs finish for up to the
   * configured grace period, cancels the rest, then closes every connection. Does not stop an
   * embedded database. Called again with `skipGrace` (a second signal), the stop in progress
   * cancels the running jobs at once instead of waiting out the grace period.
   */
  stop(skipGrace?: boolean): Promise<void>;
}

/**
 * Starts one Furrow instance on a reachable database: migrations, HTTP API with live updates,
 * background workers and (unless disabled) a local runner that speaks the runner protocol
 * in-process.
 */
export async function startInstance(config: Config, databaseUrl: string, logger: Logger): Promise<Instance> {
  // What is opened so far, closed in reverse order by stop(), or at once if a later step fails
  // (e.g. the port is taken).
  const opened: (() => Promise<unknown>)[] = [];
  const closeOpened = async () => {
    for (const close of opened.reverse()) await close().catch(() => undefined);
  };
  try {
    const database = openDatabase(databaseUrl);
    opened.push(() => database.close());
    // graphile-worker's schema installs alongside Furrow's own migrations; a fresh database (every
    // test's) takes about as long for each.
    const taskQueueMigrated = migrateTaskQueue({ database, logger });
    taskQueueMigrated.catch(() => undefined); // awaited below, unless an earlier step throws
    const applied = await migrate(database.pool);
    if (applied.length > 0) logger.info({ migrations: applied }, 'applied database migrations');
    const listener = new PgListener(databaseUrl, (msg) => logger.warn(msg));
    opened.push(() => listener.close());
    await listener.start();
    const logs = new LogStore(databaseUrl, database.pool);
    opened.push(() => logs.close());
    const secretBox = await SecretBox.load(config);
    const gateway = new RunnerGateway({ db: database.db, logs, listener, secretBox, leaseSeconds: config.jobLeaseSeconds });
    opened.push(() => gateway.stop());
    const resources: Resources = { config, database, databaseUrl, logs, listener, gateway, secretBox, logger };
    await taskQueueMigrated;
    const workers = await startWorkers(resources);
    opened.push(() => workers.stop());
    const clock = startScheduleClock(resources);
    opened.push(() => clock.stop());
    const pump = startDeliveryPump(resources);
    opened.push(() => pump.stop());
    const poller = startGitPoller(resources);
    opened.push(() => poller.stop());
    const app = await buildApp(resources);
    let appClosed: Promise<void> | undefined;
    const closeApp = () => (appClosed ??= app.close());
    opened.push(closeApp);
    await app.listen({ host: config.host, port: config.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;

    let runner: RunnerAgent | undefined;
    if (config.localRunner) {
      await ensureSlotUsersWhenRoot(config.executor.jobUser, config.localRunnerCapacity, (level, msg) => logger[level](msg));
      runner = new RunnerAgent(localChannel(gateway), {
        name: `local@${config.runner.name}`,
        version: FURROW_VERSION,
        labels: config.runner.labels,
        capacity: config.localRunnerCapacity,
        workDir: config.workDir,
        executor: createExecutor(config.executor),
        serverUrl: url,
        jobUser: config.executor.jobUser,
        log: (msg, extra) => logger.warn(extra ?? {}, msg),
      });
      await runner.start();
    }

    let stopping: Promise<void> | undefined;
    const hurry = new AbortController();
    const stop = (skipGrace = false) => {
      if (skipGrace) hurry.abort();
      return (stopping ??= (async () => {
        // Remote runners cannot renew their leases while this server stops (and until one is back):
        // nothing here may end their jobs, and the next watch bridges the time missed.
        await workers.stopLeaseWatch();
        await Promise.all([clock.stop(), pump.stop(), poller.stop()]); // no run starts by itself while this instance stops
        // Stop accepting; the in-process runner still reaches the gateway while it drains.
        closeApp().catch(() => undefined); // awaited, and its failure ignored, by closeOpened below
        if (runner) {
          if (runner.activeJobs > 0 && !hurry.signal.aborted) logger.info({ jobs: runner.activeJobs, graceSeconds: config.shutdownGraceSeconds }, 'waiting for running jobs');
          await runner.drain(config.shutdownGraceSeconds * 1000, hurry.signal);
        }
        await closeOpened();
      })());
    };
    return { url, resources, app, runner, stop };
  } catch (err) {
    await closeOpened();
    throw err;
  }
}
