import { Logger as WorkerLogger, run, runMigrations, type Runner, type TaskList } from 'graphile-worker';
import type { Logger } from 'pino';
import type { Resources } from '../resources.js';
import { expireJobs } from '../runs/expire-jobs.js';
import { checkRepositoryAccessTask } from './check-repository-access.js';
import { generateDeployKeyTask } from './generate-deploy-key.js';
import type { TaskName } from './tasks.js';

export type WorkerDeps = Pick<Resources, 'database' | 'logger' | 'secretBox' | 'config'>;

export interface Workers {
  stop(): Promise<void>;
}

/** Arbitrary constant: one instance at a time installs graphile-worker's schema. */
const MIGRATION_LOCK = 7_246_118_002;

/** The background tasks by name (see TaskPayloads for what each takes). */
function taskList(deps: WorkerDeps): Record<TaskName, TaskList[string]> {
  const { db } = deps.database;
  return {
    'generate-deploy-key': generateDeployKeyTask({ db, secretBox: deps.secretBox }),
    'check-repository-access': checkRepositoryAccessTask({ db, secretBox: deps.secretBox, gitTimeoutSeconds: deps.config.gitTimeoutSeconds }),
  };
}

/** graphile-worker's log lines through pino; its routine chatter (start, stop) only at debug. */
function workerLogger(logger: Logger): WorkerLogger {
  return new WorkerLogger((scope) => (level, message, meta) => {
    const method = level === 'error' ? 'error' : level === 'warning' ? 'warn' : 'debug';
    logger[method]({ ...meta, scope }, message);
  });
}

/**
 * Installs or upgrades graphile-worker's schema (`graphile_worker`), one instance at a time: it
 * tolerates most races by itself, but instances starting together on a fresh database would
 * each try the same migrations. Must be done before the API queues a task.
 */
export async function migrateTaskQueue(deps: Pick<WorkerDeps, 'database' | 'logger'>): Promise<void> {
  const client = await deps.database.pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await runMigrations({ pgPool: deps.database.pool, logger: workerLogger(deps.logger) });
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    client.release();
  }
}

function leaseWatchMs(deps: WorkerDeps): number {
  return Math.min(10_000, Math.max(1000, (deps.config.jobLeaseSeconds * 1000) / 3));
}

async function reap(deps: WorkerDeps): Promise<void> {
  const { jobLeaseSeconds, queueTimeoutSeconds } = deps.config;
  const n = await expireJobs(deps.database.db, { queueTimeoutSeconds, retryGraceSeconds: jobLeaseSeconds, sinceSeconds: leaseWatchMs(deps) / 1000 });
  if (n > 0) deps.logger.warn({ jobs: n }, 'released or ended jobs whose runner lease or queue time ran out');
}

/**
 * The instance's background work: graphile-worker running the background tasks (two at a time;
 * a task queued by any instance wakes it through LISTEN/NOTIFY), and the lease watch: every third
 * of a lease (1–10 s) expired leases are handled, so a vanished runner's job ends `runner_lost`
 * (and is retried) within about 1⅓ leases. Every instance may watch; the transitions are guarded.
 * `stop()` lets running tasks finish. The task queue's schema must be installed first
 * (`migrateTaskQueue`).
 */
export async function startWorkers(deps: WorkerDeps): Promise<Workers> {
  // Leases that expired while no instance ran (e.g. the server was down) are handled at once.
  await reap(deps);
  const runner: Runner = await run({
    pgPool: deps.database.pool,
    concurrency: 2,
    noHandleSignals: true,
    logger: workerLogger(deps.logger),
    taskList: taskList(deps),
  });
  let reaping: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    reaping = reap(deps).catch((err: Error) => deps.logger.error({ err }, 'lease watch failed'));
  }, leaseWatchMs(deps));
  return {
    async stop() {
      clearInterval(timer);
      await reaping;
      await runner.stop();
    },
  };
}
