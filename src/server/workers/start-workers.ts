import { Logger as WorkerLogger, parseCronItems, run, type Runner, type TaskList } from 'graphile-worker';
import type { Logger } from 'pino';
import type pg from 'pg';
import type { Db } from '../../db/database.js';
import { reapExpiredLeases } from '../store/job-store.js';

export interface WorkerDeps {
  db: Db;
  pool: pg.Pool;
  logger: Logger;
}

async function reap(deps: WorkerDeps): Promise<void> {
  const n = await reapExpiredLeases(deps.db);
  if (n > 0) deps.logger.warn({ jobs: n }, 'released or failed jobs whose runner lease expired');
}

/** The background tasks by name. */
function tasks(deps: WorkerDeps): TaskList {
  return { 'reap-expired-leases': () => reap(deps) };
}

/**
 * Starts graphile-worker on Furrow's own database: lease expiry every minute (so no job stays
 * `running` after its runner vanished), and the place later tasks (mail, notifications) join.
 */
export async function startWorkers(deps: WorkerDeps): Promise<Runner> {
  const logger = new WorkerLogger((scope) => (level, message, meta) => {
    const lvl = level === 'warning' ? 'warn' : level === 'error' ? 'error' : 'debug';
    deps.logger[lvl]({ ...meta, scope }, message);
  });
  // Leases that expired while no worker ran (e.g. the server was down) are handled at once.
  await reap(deps);
  return run({
    pgPool: deps.pool,
    concurrency: 2,
    noHandleSignals: true,
    pollInterval: 5000,
    logger,
    taskList: tasks(deps),
    parsedCronItems: parseCronItems([{ task: 'reap-expired-leases', match: '* * * * *', options: { backfillPeriod: 0 } }]),
  });
}
