import { sql } from 'kysely';
import type { Db } from '../../db/database.js';
import type { RunStatus } from '../../db/schema.js';

export const runColumns = [
  'runs.id',
  'runs.project_id as projectId',
  'runs.workflow_id as workflowId',
  'runs.number',
  'runs.status',
  'runs.reason',
  'runs.environment_id as environmentId',
  'runs.parameters',
  'runs.created_by as createdBy',
  'runs.repository_id as repositoryId',
  'runs.ref',
  'runs.commit_sha as commit',
  'runs.rerun_of as rerunOf',
  'runs.cancel_requested_at as cancelRequestedAt',
  'runs.cancel_forced as cancelForced',
  'runs.created_at as createdAt',
  'runs.started_at as startedAt',
  'runs.finished_at as finishedAt',
] as const;

export function getRun(db: Db, id: string) {
  return db.selectFrom('runs').select(runColumns).where('id', '=', id).executeTakeFirst();
}

/** The workflow's run a trigger started for `triggerKey` (see QueueRunInput.triggerKey), if any. */
export function runOfTrigger(db: Db, workflowId: string, triggerKey: string) {
  return db.selectFrom('runs').select(runColumns).where('workflow_id', '=', workflowId).where('trigger_key', '=', triggerKey).executeTakeFirst();
}

export interface RunFilter {
  projectId: string;
  workflowId?: string;
  status?: RunStatus;
  cursor?: { createdAt: string; id: string };
  limit: number;
}

/** Newest first; the cursor is the (createdAt, id) of the last row of the previous page. */
export async function listRuns(db: Db, f: RunFilter) {
  // The cursor keeps created_at as PostgreSQL's text, at full microsecond precision: a JS Date
  // would round to milliseconds and skip runs created within the same millisecond.
  let q = db
    .selectFrom('runs')
    .select([...runColumns, sql<string>`runs.created_at::text`.as('cursorAt')])
    .where('project_id', '=', f.projectId);
  if (f.workflowId) q = q.where('workflow_id', '=', f.workflowId);
  if (f.status) q = q.where('status', '=', f.status);
  if (f.cursor) q = q.where(sql<boolean>`(runs.created_at, runs.id) < (${f.cursor.createdAt}::timestamptz, ${f.cursor.id}::uuid)`);
  const rows = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(f.limit + 1).execute();
  const items = rows.slice(0, f.limit).map(({ cursorAt: _, ...run }) => run);
  const last = rows[f.limit - 1];
  return { items, nextCursor: rows.length > f.limit && last ? encodeCursor(last.cursorAt, last.id) : null };
}

export function encodeCursor(createdAt: string, id: string): string {
  return Buffer.from(JSON.stringify({ createdAt, id })).toString('base64url');
}

/** A list cursor handed out by runs and jobs lists, or undefined when it is not one. */
export function decodeCursor(cursor: string): { createdAt: string; id: string } | undefined {
  try {
    const c = JSON.parse(Buffer.from(cursor, 'base64url').toString()) as { createdAt?: unknown; id?: unknown };
    return typeof c.createdAt === 'string' && typeof c.id === 'string' && !Number.isNaN(Date.parse(c.createdAt)) && /^[0-9a-f-]{36}$/.test(c.id)
      ? { createdAt: c.createdAt, id: c.id }
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A page of a run's jobs (every attempt) with their steps, in the order they were made; the cursor
 * is the (createdAt, id) of the last job of the previous page.
 */
export async function listJobsWithSteps(db: Db, runId: string, page: { limit: number; cursor?: { createdAt: string; id: string } | undefined }) {
  let q = db
    .selectFrom('jobs')
    .select((eb) => [
      sql<string>`jobs.created_at::text`.as('cursorAt'),
      'jobs.id',
      'jobs.name',
      'jobs.status',
      'jobs.labels',
      'jobs.runner_id as runnerId',
      sql<string | null>`(SELECT name FROM runners WHERE runners.id::text = jobs.runner_id)`.as('runnerName'),
      'jobs.attempt',
      'jobs.retry_of as retryOf',
      'jobs.retried',
      'jobs.job_key as jobKey',
      'jobs.instance_key as key',
      'jobs.needs',
      'jobs.matrix',
      'jobs.continue_on_error as continueOnError',
      'jobs.environment_id as environmentId',
      'jobs.approval',
      sql<string | null>`(SELECT email FROM users WHERE users.id = jobs.approved_by)`.as('approvedBy'),
      'jobs.exit_code as exitCode',
      'jobs.error',
      'jobs.cancel_requested as cancelRequested',
      'jobs.not_before as notBefore',
      'jobs.log_size as logSize',
      'jobs.timeout_seconds as timeoutSeconds',
      'jobs.created_at as createdAt',
      'jobs.started_at as startedAt',
      'jobs.finished_at as finishedAt',
      sql<unknown[]>`coalesce((SELECT json_agg(json_build_object('id', s.id, 'position', s.position, 'name', s.name, 'status', s.status,
        'exitCode', s.exit_code, 'startedAt', s.started_at, 'finishedAt', s.finished_at) ORDER BY s.position)
        FROM steps s WHERE s.job_id = ${eb.ref('jobs.id')}), '[]'::json)`.as('steps'),
    ])
    .where('run_id', '=', runId);
  if (page.cursor) q = q.where(sql<boolean>`(jobs.created_at, jobs.id) > (${page.cursor.createdAt}::timestamptz, ${page.cursor.id}::uuid)`);
  const rows = await q.orderBy('created_at').orderBy('id').limit(page.limit + 1).execute();
  const items = rows.slice(0, page.limit).map(({ cursorAt: _, ...job }) => job);
  const last = rows[page.limit - 1];
  return { items, nextCursor: rows.length > page.limit && last ? encodeCursor(last.cursorAt, last.id) : null };
}

/** The latest attempt of each job, in order, with its log's size: what a run's log is made of. */
export function runLogJobs(db: Db, runId: string) {
  return db
    .selectFrom('jobs')
    .select(['id', 'name', 'attempt', 'log_size as logSize'])
    .where('run_id', '=', runId)
    .where('retried', '=', false)
    .orderBy('created_at')
    .execute();
}
