import type { Db } from '../../db/database.js';
import { inTransaction } from '../../db/transaction.js';
import { confirmDeletion } from './confirm-deletion.js';
import { recordActivity } from './activity-store.js';
import { lockRunsOf } from '../runs/lock-run.js';

const columns = ['projects.id', 'projects.organization_id as organizationId', 'projects.name', 'projects.pull_request_secrets as pullRequestSecrets', 'projects.created_at as createdAt'] as const;

export function createProject(db: Db, organizationId: string, name: string, actorUserId: string) {
  return inTransaction(db, async (tx) => {
    const project = await tx.insertInto('projects').values({ organization_id: organizationId, name }).returning(columns).executeTakeFirstOrThrow();
    await recordActivity(tx, { type: 'project.created', organizationId, projectId: project.id, actorUserId, subjectType: 'project', subjectId: project.id, payload: { name } });
    return project;
  });
}

/** Projects of an organization the user can see: all of them for organization members and admins. */
export function listProjects(db: Db, organizationId: string, userId: string, seesAll: boolean) {
  let q = db.selectFrom('projects').select(columns).where('organization_id', '=', organizationId).orderBy('name');
  if (!seesAll) {
    q = q.where((eb) => eb.exists(eb.selectFrom('project_members as pm').whereRef('pm.project_id', '=', 'projects.id').where('pm.user_id', '=', userId)));
  }
  return q.execute();
}

export function getProject(db: Db, id: string) {
  return db.selectFrom('projects').select(columns).where('id', '=', id).executeTakeFirst();
}

/** Renames a project, or changes whether runs of pull requests get its secrets. */
export function updateProject(db: Db, id: string, change: { name?: string | undefined; pullRequestSecrets?: boolean | undefined }, actorUserId: string) {
  return inTransaction(db, async (tx) => {
    if (change.name === undefined && change.pullRequestSecrets === undefined) return tx.selectFrom('projects').select(columns).where('id', '=', id).executeTakeFirstOrThrow();
    const project = await tx
      .updateTable('projects')
      .set({ ...(change.name !== undefined ? { name: change.name } : {}), ...(change.pullRequestSecrets !== undefined ? { pull_request_secrets: change.pullRequestSecrets } : {}) })
      .where('id', '=', id)
      .returning(columns)
      .executeTakeFirstOrThrow();
    await recordActivity(tx, { type: 'project.updated', organizationId: project.organizationId, projectId: id, actorUserId, subjectType: 'project', subjectId: id, payload: change });
    return project;
  });
}

/** Deletes the project when `confirm` is its name (see `confirmDeletion`). */
export function deleteProject(db: Db, id: string, confirm: string | undefined, actorUserId: string) {
  return inTransaction(db, async (tx) => {
    await lockRunsOf(tx, { projectId: id });
    // Locked, so that a rename in between cannot slip past the confirmation.
    const p = await tx.selectFrom('projects').select(['organization_id', 'name']).where('id', '=', id).forUpdate().executeTakeFirstOrThrow();
    confirmDeletion('project', p.name, confirm);
    await tx.deleteFrom('projects').where('id', '=', id).execute();
    await recordActivity(tx, { type: 'project.deleted', organizationId: p.organization_id, projectId: null, actorUserId, subjectType: 'project', subjectId: id, payload: { name: p.name } });
  });
}
