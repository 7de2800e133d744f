import { LOST_RETRY_GRACE_LEASES } from '../../domain/job-retry.js';
import { Logger as WorkerLogger, run, runMigrations, type Runner, type TaskList } from 'graphile-worker';
import type { Logger } from 'pino';
import type { Resources } from '../resources.js';
import { checkRepositoryAccessTask } from './check-repository-access.js';
import { generateDeployKeyTask } from './generate-deploy-key.js';
import { sendCommitStatusesTask } from './send-commit-statuses.js';
import { payloadId, type TaskName } from './tasks.js';
import { startChainedRuns } from '../triggers/start-chained-runs.js';
import { syncFileWorkflowTask } from '../triggers/sync-file-triggers.js';
import { watchLeases } from './watch-leases.js';

export type WorkerDeps = Pick<Resources, 'database' | 'logger' | 'secretBox' | 'config'>;

export interface Workers {
  /** Stops the lease watch (and waits for a round in progress): a stopping server ends no one's job. */
  stopLeaseWatch(): Promise<void>;
  /** Stops the lease watch and the background tasks (running ones finish first). */
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
    'start-chained-runs': async (payload) => startChainedRuns(deps, payloadId(payload, 'runId')),
    'sync-file-triggers': async (payload) => syncFileWorkflowTask(deps, payloadId(payload, 'workflowId')),
    'send-commit-statuses': sendCommitStatusesTask(deps),
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

async function watch(deps: WorkerDeps, intervalMs: number): Promise<void> {
  const { jobLeaseSeconds, queueTimeoutSeconds } = deps.config;
  const expiry = { queueTimeoutSeconds, retryGraceSeconds: jobLeaseSeconds * LOST_RETRY_GRACE_LEASES, sinceSeconds: intervalMs / 1000 };
  const { bridgedSeconds, reaped } = await watchLeases(deps.database.db, intervalMs, expiry);
  if (bridgedSeconds > 0) deps.logger.warn({ seconds: Math.round(bridgedSeconds) }, 'no lease watch ran for a while (servers or database down); leases were moved on by that time');
  if (reaped > 0) deps.logger.warn({ jobs: reaped }, 'released or ended jobs whose runner lease or queue time ran out');
}

/**
 * The instance's background work: graphile-worker running the background tasks (two at a time;
 * a task queued by any instance wakes it through LISTEN/NOTIFY), and the lease watch: every third
 * of a lease (1–10 s) expired leases are handled, so a vanished runner's job ends `runner_lost`
 * (and is retried) within about 1⅓ leases; time in which no round could run is not counted
 * (see watchLeases). Every instance may watch; the transitions are guarded.
 * `stop()` lets running tasks finish. The task queue's schema must be installed first
 * (`migrateTaskQueue`).
 */
export async function startWorkers(deps: WorkerDeps): Promise<Workers> {
  const leaseWatchMs = Math.min(10_000, Math.max(1000, (deps.config.jobLeaseSeconds * 1000) / 3));
  // Leases that expired while no instance ran are handled at once (after the downtime is bridged).
  await watch(deps, leaseWatchMs);
  const runner: Runner = await run({
    pgPool: deps.database.pool,
    concurrency: 2,
    noHandleSignals: true,
    logger: workerLogger(deps.logger),
    taskList: taskList(deps),
  });
  let watching: Promise<void> | undefined;
  const timer = setInterval(() => {
    // A round still waiting for the database is not doubled up.
    watching ??= watch(deps, leaseWatchMs)
      .catch((err: Error) => deps.logger.warn({ err }, 'lease watch failed; the next round bridges the time missed'))
      .finally(() => (watching = undefined));
  }, leaseWatchMs);
  const stopLeaseWatch = async () => {
    clearInterval(timer);
    await watching;
  };
  let stopped: Promise<void> | undefined;
  return {
    stopLeaseWatch,
    stop: () => (stopped ??= stopLeaseWatch().then(() => runner.stop())),
  };
}
