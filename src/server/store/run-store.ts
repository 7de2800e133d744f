import { sql } from 'kysely';
import type { Db, Tx } from '../../db/database.js';
import type { RunStatus } from '../../db/schema.js';
import { canTransition, isTerminal, runStatusOf } from '../../domain/run-state.js';
import { recordActivity } from './activity-store.js';
import { advanceRun } from './advance-run.js';

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
  'runs.created_at as createdAt',
  'runs.started_at as startedAt',
  'runs.finished_at as finishedAt',
] as const;

export function getRun(db: Db, id: string) {
  return db.selectFrom('runs').select(runColumns).where('id', '=', id).executeTakeFirst();
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
  const nextCursor = rows.length > f.limit && last ? Buffer.from(JSON.stringify({ createdAt: last.cursorAt, id: last.id })).toString('base64url') : null;
  return { items, nextCursor };
}

export function decodeRunCursor(cursor: string): { createdAt: string; id: string } | undefined {
  try {
    const c = JSON.parse(Buffer.from(cursor, 'base64url').toString()) as { createdAt?: unknown; id?: unknown };
    return typeof c.createdAt === 'string' && typeof c.id === 'string' && !Number.isNaN(Date.parse(c.createdAt)) && /^[0-9a-f-]{36}$/.test(c.id)
      ? { createdAt: c.createdAt, id: c.id }
      : undefined;
  } catch {
    return undefined;
  }
}

export function listJobsWithSteps(db: Db, runId: string) {
  return db
    .selectFrom('jobs')
    .select((eb) => [
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
      'jobs.log_size as logSize',
      'jobs.timeout_seconds as timeoutSeconds',
      'jobs.created_at as createdAt',
      'jobs.started_at as startedAt',
      'jobs.finished_at as finishedAt',
      sql<unknown[]>`coalesce((SELECT json_agg(json_build_object('id', s.id, 'position', s.position, 'name', s.name, 'status', s.status,
        'exitCode', s.exit_code, 'startedAt', s.started_at, 'finishedAt', s.finished_at) ORDER BY s.position)
        FROM steps s WHERE s.job_id = ${eb.ref('jobs.id')}), '[]'::json)`.as('steps'),
    ])
    .where('run_id', '=', runId)
    .orderBy('created_at')
    .execute();
}

/**
 * Releases or skips the run's waiting jobs, then recomputes the run's status from its jobs and applies it through the state machine, writing
 * `run.<status>` and notifying live viewers. Call inside the transaction that changed a job.
 */
export async function syncRunStatus(tx: Tx, runId: string, actorUserId: string | null = null): Promise<void> {
  const run = await tx
    .selectFrom('runs')
    .innerJoin('projects', 'projects.id', 'runs.project_id')
    .select(['runs.status', 'runs.project_id', 'projects.organization_id', 'runs.workflow_id', 'runs.number'])
    .where('runs.id', '=', runId)
    .forUpdate('runs')
    .executeTakeFirstOrThrow();
  await advanceRun(tx, runId);
  // Attempts that were retried do not count: their retry speaks for them.
  const jobs = await tx.selectFrom('jobs').select(['status', 'continue_on_error']).where('run_id', '=', runId).where('retried', '=', false).execute();
  const next = runStatusOf(jobs.map((j) => (j.status === 'failed' && j.continue_on_error ? 'succeeded' : j.status)));
  if (next === run.status || !canTransition(run.status, next)) return;
  await tx
    .updateTable('runs')
    .set((eb) => ({
      status: next,
      started_at: next === 'running' ? sql`coalesce(started_at, now())` : eb.ref('started_at'),
      finished_at: isTerminal(next) ? sql`now()` : null,
    }))
    .where('id', '=', runId)
    .returning(sql<string>`pg_notify('furrow_run', ${runId})`.as('notified'))
    .execute();
  await recordActivity(tx, {
    type: `run.${next}`,
    organizationId: run.organization_id,
    projectId: run.project_id,
    actorUserId,
    subjectType: 'run',
    subjectId: runId,
    payload: { workflowId: run.workflow_id, number: run.number },
  });
}
