import { sql } from 'kysely';
import type { Db, Tx } from '../../db/database.js';
import { inTransaction } from '../../db/transaction.js';
import { canonicalTimeZone, nextFireAfter } from '../../domain/schedule-times.js';
import type { CompiledWorkflow, WorkflowTriggers } from '../../pipeline/workflow-model.js';
import { enqueueTask } from '../workers/tasks.js';
import { AppError } from '../app-error.js';
import { compileOrThrow } from '../triggers/workflow-plan.js';
import { recordActivity, type ProjectContext as Ctx } from './activity-store.js';
import { syncFileTriggers, wakeTriggerLoops, type FileTrigger } from './trigger-store.js';

const columns = [
  'id',
  'project_id as projectId',
  'name',
  'script',
  'definition',
  'repository_id as repositoryId',
  'path',
  'default_environment_id as defaultEnvironmentId',
  'timeout_seconds as timeoutSeconds',
  'labels',
  'image',
  'network',
  'file_on as fileOn',
  sql<{ count: number; on: string[] } | null>`CASE WHEN retry_count IS NOT NULL THEN json_build_object('count', retry_count, 'on', retry_on) END`.as('retry'),
  'created_at as createdAt',
  'updated_at as updatedAt',
] as const;

export interface WorkflowInput {
  name: string;
  /** One of script, definition and path says what runs. */
  script?: string | undefined;
  definition?: string | undefined;
  path?: string | undefined;
  repositoryId?: string | null | undefined;
  defaultEnvironmentId?: string | null;
  timeoutSeconds?: number | null;
  labels?: string[];
  image?: string | null;
  network?: 'default' | 'none';
  /** null: the default policy (see domain/job-retry.ts). */
  retry?: { count: number; on: string[] } | null;
}

/** The columns an input sets, for insert and update alike; giving one source clears the others. */
function optionalColumns(input: Partial<WorkflowInput>) {
  const source = input.script ?? input.definition ?? input.path;
  return {
    ...(source !== undefined ? { script: input.script ?? null, definition: input.definition ?? null, path: input.path ?? null } : {}),
    ...(input.repositoryId !== undefined ? { repository_id: input.repositoryId } : {}),
    ...(input.image !== undefined ? { image: input.image } : {}),
    ...(input.network !== undefined ? { network: input.network } : {}),
    ...(input.retry !== undefined ? { retry_count: input.retry?.count ?? null, retry_on: input.retry?.on ?? null } : {}),
  };
}

/**
 * Refuses a workflow whose source is not exactly one of script, definition and path, a definition
 * that does not compile (422 with every problem's line and column), a file without a repository,
 * and a repository of another project. `current` is the stored workflow on updates.
 */
async function checkSource(db: Db, projectId: string, input: Partial<WorkflowInput>, current?: { repositoryId: string | null; path: string | null }) {
  const given = (['script', 'definition', 'path'] as const).filter((k) => input[k] !== undefined);
  if (given.length > 1 || (!current && given.length === 0)) {
    const details = given.length === 0 ? [{ field: 'script', message: 'give script, definition or path' }] : given.map((field) => ({ field, message: 'only one of script, definition and path may be given' }));
    throw new AppError('validation_failed', 'Give exactly one of script, definition and path.', details);
  }
  const compiled = input.definition !== undefined ? compileOrThrow(input.definition, `${input.name ?? 'workflow'}.yml`) : undefined;
  const repositoryId = input.repositoryId !== undefined ? input.repositoryId : current?.repositoryId;
  const path = input.path ?? (given.length === 0 ? current?.path : undefined);
  if (path && !repositoryId) throw new AppError('validation_failed', 'A workflow file needs the repository it is read from.', [{ field: 'repositoryId', message: 'required with path' }]);
  if (input.repositoryId) {
    const repo = await db.selectFrom('repositories').select('id').where('id', '=', input.repositoryId).where('project_id', '=', projectId).executeTakeFirst();
    if (!repo) throw new AppError('validation_failed', 'repositoryId does not name a repository of this project.', [{ field: 'repositoryId', message: 'no such repository in this project' }]);
  }
  return compiled;
}

/** The stored triggers an `on` gives: its schedules (with their next fire time after `now`) and chains. */
export function fileTriggersOf(on: WorkflowTriggers | undefined, now: Date): FileTrigger[] {
  const schedules = (on?.schedule ?? []).map(({ cron, timezone }): FileTrigger => {
    const spec = { cron, timezone: canonicalTimeZone(timezone ?? 'UTC') };
    return { kind: 'schedule', ...spec, nextFireAt: nextFireAfter(spec, now) };
  });
  const after = on?.workflowRun;
  const chains = (after?.workflows ?? []).map((upstreamName): FileTrigger => ({ kind: 'workflow', upstreamName, statuses: after!.statuses, branches: after!.branches }));
  return [...schedules, ...chains];
}

/**
 * The triggers of the workflow's `on` (`schedule`, `workflow_run`), when its source changes: a
 * definition's, or none (a script has no `on`; a file's are read from its repository's default
 * branch by the `sync-file-triggers` task, queued here).
 */
async function syncTriggers(tx: Tx, workflowId: string, input: Partial<WorkflowInput>, compiled: CompiledWorkflow | undefined, currentPath?: string | null) {
  if (input.script === undefined && input.definition === undefined && input.path === undefined) return;
  // The same file again keeps its triggers (and their state) until the task reads it.
  if (input.path !== undefined && input.path === currentPath) return enqueueTask(tx, 'sync-file-triggers', { workflowId });
  await syncFileTriggers(tx, workflowId, fileTriggersOf(compiled?.on, new Date()));
  if (input.path !== undefined) await enqueueTask(tx, 'sync-file-triggers', { workflowId });
  // A workflow that reads a repository may make it one to poll.
  if (input.definition !== undefined || input.path !== undefined) await wakeTriggerLoops(tx);
}

async function checkEnvironment(db: Db, projectId: string, environmentId: string | null | undefined) {
  if (!environmentId) return;
  const env = await db.selectFrom('environments').select('id').where('id', '=', environmentId).where('project_id', '=', projectId).executeTakeFirst();
  if (!env) throw new AppError('validation_failed', 'defaultEnvironmentId does not name an environment of this project.', [{ field: 'defaultEnvironmentId', message: 'no such environment in this project' }]);
}

export function createWorkflow(db: Db, ctx: Ctx, input: WorkflowInput) {
  return inTransaction(db, async (tx) => {
    await checkEnvironment(tx, ctx.projectId, input.defaultEnvironmentId);
    const compiled = await checkSource(tx, ctx.projectId, input);
    const wf = await tx
      .insertInto('workflows')
      .values({
        project_id: ctx.projectId,
        name: input.name,
        default_environment_id: input.defaultEnvironmentId ?? null,
        timeout_seconds: input.timeoutSeconds ?? null,
        labels: input.labels ?? [],
        ...optionalColumns(input),
      })
      .returning(columns)
      .executeTakeFirstOrThrow();
    await syncTriggers(tx, wf.id, input, compiled);
    await recordActivity(tx, { type: 'workflow.created', organizationId: ctx.organizationId, projectId: ctx.projectId, actorUserId: ctx.actorUserId, subjectType: 'workflow', subjectId: wf.id, payload: { name: wf.name } });
    return wf;
  });
}

export function listWorkflows(db: Db, projectId: string) {
  return db.selectFrom('workflows').select(columns).where('project_id', '=', projectId).orderBy('name').execute();
}

export function getWorkflow(db: Db, id: string) {
  return db.selectFrom('workflows').select(columns).where('id', '=', id).executeTakeFirst();
}

export function updateWorkflow(db: Db, ctx: Ctx, id: string, input: Partial<WorkflowInput>) {
  return inTransaction(db, async (tx) => {
    await checkEnvironment(tx, ctx.projectId, input.defaultEnvironmentId);
    const current = await tx.selectFrom('workflows').select(['repository_id as repositoryId', 'path']).where('id', '=', id).executeTakeFirstOrThrow();
    const compiled = await checkSource(tx, ctx.projectId, input, current);
    const wf = await tx
      .updateTable('workflows')
      .set({
        ...(input.name !== undefined ? { name: input.name } : {}),
        ...(input.defaultEnvironmentId !== undefined ? { default_environment_id: input.defaultEnvironmentId } : {}),
        ...(input.timeoutSeconds !== undefined ? { timeout_seconds: input.timeoutSeconds } : {}),
        ...(input.labels !== undefined ? { labels: input.labels } : {}),
        ...optionalColumns(input),
        updated_at: sql`now()`,
      })
      .where('id', '=', id)
      .returning(columns)
      .executeTakeFirstOrThrow();
    await syncTriggers(tx, id, input, compiled, current.path);
    await recordActivity(tx, { type: 'workflow.updated', organizationId: ctx.organizationId, projectId: ctx.projectId, actorUserId: ctx.actorUserId, subjectType: 'workflow', subjectId: id, payload: { name: wf.name } });
    return wf;
  });
}

export function deleteWorkflow(db: Db, ctx: Ctx, id: string) {
  return inTransaction(db, async (tx) => {
    const wf = await tx.deleteFrom('workflows').where('id', '=', id).returning('name').executeTakeFirstOrThrow();
    await recordActivity(tx, { type: 'workflow.deleted', organizationId: ctx.organizationId, projectId: ctx.projectId, actorUserId: ctx.actorUserId, subjectType: 'workflow', subjectId: id, payload: { name: wf.name } });
  });
}
