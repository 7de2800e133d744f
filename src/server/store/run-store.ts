import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Db, Tx } from '../../db/database.js';
import type { RunStatus } from '../../db/schema.js';
import { canTransition, isTerminal, runStatusOf } from '../../domain/run-state.js';
import type { JobSpec } from '../../protocol/messages.js';
import { AppError } from '../app-error.js';
import { recordActivity } from './activity-store.js';

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
  'runs.created_at as createdAt',
  'runs.started_at as startedAt',
  'runs.finished_at as finishedAt',
] as const;

export interface StartRunInput {
  workflowId: string;
  environmentId?: string;
  parameters: Record<string, string>;
  reason: Record<string, unknown>;
  actorUserId: string | null;
  defaultTimeoutSeconds: number;
  leaseSeconds: number;
}

/**
 * Queues a run of a script workflow: the run, its job and step, and `run.queued` in one
 * transaction; the NOTIFY that wakes runners is delivered when it commits.
 */
export function queueRun(db: Db, input: StartRunInput) {
  return db.transaction().execute(async (tx) => {
    // Locking the workflow row serialises run numbering per workflow.
    const wf = await tx
      .selectFrom('workflows')
      .innerJoin('projects', 'projects.id', 'workflows.project_id')
      .select(['workflows.id', 'workflows.name', 'workflows.script', 'workflows.project_id', 'workflows.default_environment_id', 'workflows.timeout_seconds', 'workflows.labels', 'workflows.image', 'workflows.network', 'workflows.retry_count', 'workflows.retry_on', 'projects.organization_id'])
      .where('workflows.id', '=', input.workflowId)
      .forUpdate('workflows')
      .executeTakeFirstOrThrow();
    const environmentId = input.environmentId ?? wf.default_environment_id;
    const env = environmentId
      ? await tx.selectFrom('environments').select(['id', 'variables']).where('id', '=', environmentId).where('project_id', '=', wf.project_id).executeTakeFirst()
      : undefined;
    if (environmentId && !env) {
      throw new AppError('validation_failed', 'environmentId does not name an environment of this project.', [{ field: 'environmentId', message: 'no such environment in this project' }]);
    }
    const { next } = await tx
      .selectFrom('runs')
      .select(sql<number>`coalesce(max(number), 0) + 1`.as('next'))
      .where('workflow_id', '=', wf.id)
      .executeTakeFirstOrThrow();
    // Ids are made here so that the job can be inserted with its compiled spec in one statement.
    const runId = randomUUID();
    const jobId = randomUUID();
    const stepId = randomUUID();
    const timeoutSeconds = wf.timeout_seconds ?? input.defaultTimeoutSeconds;
    const spec: JobSpec = {
      jobId,
      runId,
      projectId: wf.project_id,
      workflowId: wf.id,
      runNumber: next,
      name: wf.name,
      attempt: 1,
      timeoutSeconds,
      leaseSeconds: input.leaseSeconds,
      image: wf.image,
      network: wf.network,
      env: {
        ...(env?.variables ?? {}),
        ...input.parameters,
        CI: 'true',
        FURROW: 'true',
        FURROW_RUN_ID: runId,
        FURROW_RUN_NUMBER: String(next),
        FURROW_JOB_ID: jobId,
        FURROW_JOB_ATTEMPT: '1',
        FURROW_PROJECT_ID: wf.project_id,
        FURROW_WORKFLOW_ID: wf.id,
        FURROW_WORKFLOW_NAME: wf.name,
      },
      steps: [{ id: stepId, name: 'script', script: wf.script }],
    };
    const run = await tx
      .insertInto('runs')
      .values({
        id: runId,
        project_id: wf.project_id,
        workflow_id: wf.id,
        number: next,
        reason: JSON.stringify(input.reason),
        environment_id: env?.id ?? null,
        parameters: JSON.stringify(input.parameters),
        created_by: input.actorUserId,
      })
      .returning(runColumns)
      .executeTakeFirstOrThrow();
    await tx
      .insertInto('jobs')
      .values({
        id: jobId,
        run_id: runId,
        organization_id: wf.organization_id,
        name: wf.name,
        labels: wf.labels,
        spec: JSON.stringify(spec),
        timeout_seconds: timeoutSeconds,
        max_attempts: 1 + wf.retry_count,
        retry_on: wf.retry_on,
      })
      // Runners waiting for work hear of it when this transaction commits.
      .returning(sql<string>`pg_notify('furrow_jobs', ${jobId})`.as('notified'))
      .execute();
    await tx.insertInto('steps').values({ id: stepId, job_id: jobId, position: 0, name: 'script' }).execute();
    await recordActivity(tx, {
      type: 'run.queued',
      organizationId: wf.organization_id,
      projectId: wf.project_id,
      actorUserId: input.actorUserId,
      subjectType: 'run',
      subjectId: run.id,
      payload: { workflowId: wf.id, number: next, reason: input.reason },
    });
    return run;
  });
}

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
 * Recomputes a run's status from its jobs and applies it through the state machine, writing
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
  // Attempts that were retried do not count: their retry speaks for them.
  const jobs = await tx.selectFrom('jobs').select('status').where('run_id', '=', runId).where('retried', '=', false).execute();
  const next = runStatusOf(jobs.map((j) => j.status));
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
