import { sql } from 'kysely';
import type { Db, Tx } from '../../db/database.js';

/** Every background task by name, with the payload it takes. */
export interface TaskPayloads {
  /** Makes the repository's deploy key (of its key_type), then queues its access check. */
  'generate-deploy-key': { repositoryId: string };
  /** Runs `git ls-remote` with the deploy key and records the outcome (pinning learned host keys). */
  'check-repository-access': { repositoryId: string };
  /** Starts the workflows that follow a run that has ended (see start-chained-runs.ts). */
  'start-chained-runs': { runId: string };
  /** Reads a file workflow's `on` at its repository's default branch and syncs its schedules and chains. */
  'sync-file-triggers': { workflowId: string };
  /** Sends a run's queued commit statuses to its forge, in order (queued with each; see send-commit-statuses.ts). */
  'send-commit-statuses': { runId: string };
}

export type TaskName = keyof TaskPayloads;

export interface TaskOptions {
  /** Replaces a queued task with the same key (graphile-worker `job_key`) instead of adding one. */
  jobKey?: string;
}

/** The id under `key` of a task's payload (`repositoryId`, `runId`…); throws (the task fails) on anything else. */
export function payloadId(payload: unknown, key: 'repositoryId' | 'runId' | 'workflowId'): string {
  const id = (payload as Record<string, unknown> | null)?.[key];
  if (typeof id !== 'string') throw new Error(`payload has no ${key}: ${JSON.stringify(payload)}`);
  return id;
}

/** One queued access check per repository at most: a newer request replaces a waiting one. */
export const accessCheckKey = (repositoryId: string) => `check-repository-access:${repositoryId}`;

/**
 * Queues a task with graphile-worker's `add_job` on `db`. Given a transaction, the task exists
 * if and only if that transaction commits, and no worker sees it before.
 */
export async function enqueueTask<N extends TaskName>(db: Db | Tx, name: N, payload: TaskPayloads[N], opts: TaskOptions = {}): Promise<void> {
  await sql`SELECT graphile_worker.add_job(${name}, ${JSON.stringify(payload)}::json, job_key => ${opts.jobKey ?? null}::text)`.execute(db);
}
