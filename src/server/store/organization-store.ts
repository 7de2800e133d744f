import type { Db } from '../../db/database.js';
import { inTransaction } from '../../db/transaction.js';
import { confirmDeletion } from './confirm-deletion.js';
import { recordActivity } from './activity-store.js';
import { lockRunsOf } from '../runs/lock-run.js';

const columns = ['organizations.id', 'organizations.name', 'organizations.created_at as createdAt'] as const;

export function createOrganization(db: Db, name: string, ownerId: string) {
  return inTransaction(db, async (tx) => {
    const org = await tx.insertInto('organizations').values({ name }).returning(columns).executeTakeFirstOrThrow();
    await tx.insertInto('organization_members').values({ organization_id: org.id, user_id: ownerId, role: 'owner' }).execute();
    await recordActivity(tx, {
      type: 'organization.created',
      organizationId: org.id,
      projectId: null,
      actorUserId: ownerId,
      subjectType: 'organization',
      subjectId: org.id,
      payload: { name },
    });
    return org;
  });
}

/** Organizations the user belongs to (all of them for an admin). */
export function listOrganizations(db: Db, userId: string, isAdmin: boolean) {
  let q = db.selectFrom('organizations').select(columns).orderBy('organizations.name');
  if (!isAdmin) {
    q = q.where((eb) =>
      eb.or([
        eb.exists(eb.selectFrom('organization_members as m').whereRef('m.organization_id', '=', 'organizations.id').where('m.user_id', '=', userId)),
        eb.exists(
          eb
            .selectFrom('project_members as pm')
            .innerJoin('projects as p', 'p.id', 'pm.project_id')
            .whereRef('p.organization_id', '=', 'organizations.id')
            .where('pm.user_id', '=', userId),
        ),
      ]),
    );
  }
  return q.execute();
}

export function getOrganization(db: Db, id: string) {
  return db.selectFrom('organizations').select(columns).where('id', '=', id).executeTakeFirst();
}

export function renameOrganization(db: Db, id: string, name: string, actorUserId: string) {
  return inTransaction(db, async (tx) => {
    const org = await tx.updateTable('organizations').set({ name }).where('id', '=', id).returning(columns).executeTakeFirstOrThrow();
    await recordActivity(tx, { type: 'organization.updated', organizationId: id, projectId: null, actorUserId, subjectType: 'organization', subjectId: id, payload: { name } });
    return org;
  });
}

/** Deletes the organization when `confirm` is its name (see `confirmDeletion`). */
export function deleteOrganization(db: Db, id: string, confirm: string | undefined, actorUserId: string) {
  return inTransaction(db, async (tx) => {
    await lockRunsOf(tx, { organizationId: id });
    // Locked, so that a rename in between cannot slip past the confirmation.
    const org = await tx.selectFrom('organizations').select('name').where('id', '=', id).forUpdate().executeTakeFirstOrThrow();
    confirmDeletion('organization', org.name, confirm);
    await tx.deleteFrom('organizations').where('id', '=', id).execute();
    // The organization's own activities go with it; this one outlives it for the instance's record.
    await recordActivity(tx, { type: 'organization.deleted', organizationId: null, projectId: null, actorUserId, subjectType: 'organization', subjectId: id, payload: { name: org.name } });
  });
}
