import { sql } from 'kysely';
import type { Db } from '../../db/database.js';
import { AppError } from '../app-error.js';
import { recordActivity, type ProjectContext as Ctx } from './activity-store.js';

const columns = [
  'id',
  'project_id as projectId',
  'name',
  'script',
  'default_environment_id as defaultEnvironmentId',
  'timeout_seconds as timeoutSeconds',
  'labels',
  'image',
  'network',
  sql<{ count: number; on: string[] }>`json_build_object('count', retry_count, 'on', retry_on)`.as('retry'),
  'created_at as createdAt',
  'updated_at as updatedAt',
] as const;

export interface WorkflowInput {
  name: string;
  script: string;
  defaultEnvironmentId?: string | null;
  timeoutSeconds?: number | null;
  labels?: string[];
  image?: string | null;
  network?: 'default' | 'none';
  retry?: { count: number; on: string[] };
}

/** The columns an input sets, for insert and update alike. */
function optionalColumns(input: Partial<WorkflowInput>) {
  return {
    ...(input.image !== undefined ? { image: input.image } : {}),
    ...(input.network !== undefined ? { network: input.network } : {}),
    ...(input.retry !== undefined ? { retry_count: input.retry.count, retry_on: input.retry.on } : {}),
  };
}


async function checkEnvironment(db: Db, projectId: string, environmentId: string | null | undefined) {
  if (!environmentId) return;
  const env = await db.selectFrom('environments').select('id').where('id', '=', environmentId).where('project_id', '=', projectId).executeTakeFirst();
  if (!env) throw new AppError('validation_failed', 'defaultEnvironmentId does not name an environment of this project.', [{ field: 'defaultEnvironmentId', message: 'no such environment in this project' }]);
}

export function createWorkflow(db: Db, ctx: Ctx, input: WorkflowInput) {
  return db.transaction().execute(async (tx) => {
    await checkEnvironment(tx, ctx.projectId, input.defaultEnvironmentId);
    const wf = await tx
      .insertInto('workflows')
      .values({
        project_id: ctx.projectId,
        name: input.name,
        script: input.script,
        default_environment_id: input.defaultEnvironmentId ?? null,
        timeout_seconds: input.timeoutSeconds ?? null,
        labels: input.labels ?? [],
        ...optionalColumns(input),
      })
      .returning(columns)
      .executeTakeFirstOrThrow();
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
  return db.transaction().execute(async (tx) => {
    await checkEnvironment(tx, ctx.projectId, input.defaultEnvironmentId);
    const wf = await tx
      .updateTable('workflows')
      .set({
        ...(input.name !== undefined ? { name: input.name } : {}),
        ...(input.script !== undefined ? { script: input.script } : {}),
        ...(input.defaultEnvironmentId !== undefined ? { default_environment_id: input.defaultEnvironmentId } : {}),
        ...(input.timeoutSeconds !== undefined ? { timeout_seconds: input.timeoutSeconds } : {}),
        ...(input.labels !== undefined ? { labels: input.labels } : {}),
        ...optionalColumns(input),
        updated_at: sql`now()`,
      })
      .where('id', '=', id)
      .returning(columns)
      .executeTakeFirstOrThrow();
    await recordActivity(tx, { type: 'workflow.updated', organizationId: ctx.organizationId, projectId: ctx.projectId, actorUserId: ctx.actorUserId, subjectType: 'workflow', subjectId: id, payload: { name: wf.name } });
    return wf;
  });
}

export function deleteWorkflow(db: Db, ctx: Ctx, id: string) {
  return db.transaction().execute(async (tx) => {
    const wf = await tx.deleteFrom('workflows').where('id', '=', id).returning('name').executeTakeFirstOrThrow();
    await recordActivity(tx, { type: 'workflow.deleted', organizationId: ctx.organizationId, projectId: ctx.projectId, actorUserId: ctx.actorUserId, subjectType: 'workflow', subjectId: id, payload: { name: wf.name } });
  });
}
