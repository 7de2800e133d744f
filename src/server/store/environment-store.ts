import { sql } from 'kysely';
import type { Db } from '../../db/database.js';
import type { EnvironmentConcurrency } from '../../db/schema.js';
import { inTransaction } from '../../db/transaction.js';
import { recordActivity, type ProjectContext as Ctx } from './activity-store.js';

const columns = ['id', 'project_id as projectId', 'name', 'variables', 'requires_approval as requiresApproval', 'concurrency', 'created_at as createdAt', 'updated_at as updatedAt'] as const;

export interface EnvironmentInput {
  name: string;
  variables: Record<string, string>;
  /** Jobs running in it wait until a manager approves them. */
  requiresApproval?: boolean | undefined;
  /** The concurrency group its jobs join when they name none (see job-rows.ts, jobConcurrency). */
  concurrency?: EnvironmentConcurrency | null | undefined;
}

function log(tx: Parameters<typeof recordActivity>[0], ctx: Ctx, type: string, id: string, name: string) {
  return recordActivity(tx, { type, organizationId: ctx.organizationId, projectId: ctx.projectId, actorUserId: ctx.actorUserId, subjectType: 'environment', subjectId: id, payload: { name } });
}

export function createEnvironment(db: Db, ctx: Ctx, input: EnvironmentInput) {
  return inTransaction(db, async (tx) => {
    const env = await tx
      .insertInto('environments')
      .values({ project_id: ctx.projectId, name: input.name, variables: JSON.stringify(input.variables), requires_approval: input.requiresApproval ?? false, concurrency: input.concurrency ?? null })
      .returning(columns)
      .executeTakeFirstOrThrow();
    await log(tx, ctx, 'environment.created', env.id, env.name);
    return env;
  });
}

export function listEnvironments(db: Db, projectId: string) {
  return db.selectFrom('environments').select(columns).where('project_id', '=', projectId).orderBy('name').execute();
}

export function getEnvironment(db: Db, id: string) {
  return db.selectFrom('environments').select(columns).where('id', '=', id).executeTakeFirst();
}

export function updateEnvironment(db: Db, ctx: Ctx, id: string, input: Partial<EnvironmentInput>) {
  return inTransaction(db, async (tx) => {
    const env = await tx
      .updateTable('environments')
      .set({
        ...(input.name !== undefined ? { name: input.name } : {}),
        ...(input.variables !== undefined ? { variables: JSON.stringify(input.variables) } : {}),
        ...(input.requiresApproval !== undefined ? { requires_approval: input.requiresApproval } : {}),
        ...(input.concurrency !== undefined ? { concurrency: input.concurrency } : {}),
        updated_at: sql`now()`,
      })
      .where('id', '=', id)
      .returning(columns)
      .executeTakeFirstOrThrow();
    await log(tx, ctx, 'environment.updated', id, env.name);
    return env;
  });
}

export function deleteEnvironment(db: Db, ctx: Ctx, id: string) {
  return inTransaction(db, async (tx) => {
    const env = await tx.deleteFrom('environments').where('id', '=', id).returning('name').executeTakeFirstOrThrow();
    await log(tx, ctx, 'environment.deleted', id, env.name);
  });
}
