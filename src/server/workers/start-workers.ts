import type { Logger } from 'pino';
import type { Db } from '../../db/database.js';
import { reapExpiredLeases } from '../store/job-store.js';

export interface WorkerDeps {
  db: Db;
  logger: Logger;
  leaseSeconds: number;
}

export interface Workers {
  stop(): Promise<void>;
}

async function reap(deps: WorkerDeps): Promise<void> {
  const n = await reapExpiredLeases(deps.db);
  if (n > 0) deps.logger.warn({ jobs: n }, 'released or ended jobs whose runner lease expired');
}

/**
 * The instance's background work. Today that is the lease watch: every third of a lease (1–10 s)
 * expired leases are handled, so a vanished runner's job ends `runner_lost` (and is retried)
 * within about 1⅓ leases. Every instance may watch; the transitions are guarded.
 */
export async function startWorkers(deps: WorkerDeps): Promise<Workers> {
  // Leases that expired while no instance ran (e.g. the server was down) are handled at once.
  await reap(deps);
  const everyMs = Math.min(10_000, Math.max(1000, (deps.leaseSeconds * 1000) / 3));
  let reaping: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    reaping = reap(deps).catch((err: Error) => deps.logger.error({ err }, 'lease watch failed'));
  }, everyMs);
  return {
    async stop() {
      clearInterval(timer);
      await reaping;
    },
  };
}
