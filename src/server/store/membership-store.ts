import { sql } from 'kysely';
import type { Db } from '../../db/database.js';
import { inTransaction } from '../../db/transaction.js';
import type { Role } from '../../db/schema.js';
import type { Tx } from '../../db/database.js';
import { AppError, notFound } from '../app-error.js';
import { notifyAccessChanged } from './access-notify.js';
import { recordActivity } from './activity-store.js';

/** Members of an organization or of a project; the two tables have the same shape. */
export type MemberScope = { kind: 'organization'; organizationId: string } | { kind: 'project'; organizationId: string; projectId: string };

const table = (s: MemberScope) => (s.kind === 'organization' ? 'organization_members' : 'project_members');
const key = (s: MemberScope) => (s.kind === 'organization' ? s.organizationId : s.projectId);
const keyColumn = (s: MemberScope) => (s.kind === 'organization' ? 'organization_id' : 'project_id');

export async function listMembers(db: Db, scope: MemberScope) {
  const { rows } = await sql<{ userId: string; email: string; role: Role; createdAt: Date }>`
    SELECT u.id AS "userId", u.email, m.role, m.created_at AS "createdAt"
    FROM ${sql.table(table(scope))} m JOIN users u ON u.id = m.user_id
    WHERE m.${sql.ref(keyColumn(scope))} = ${key(scope)}
    ORDER BY u.email`.execute(db);
  return rows;
}

/**
 * Changes to one organization's or project's members take turns: the row is locked first, so the
 * owner checks below see every change committed before them and none that commits meanwhile.
 */
async function lockScope(tx: Tx, scope: MemberScope): Promise<void> {
  const { rows } =
    scope.kind === 'organization'
      ? await sql`SELECT 1 FROM organizations WHERE id = ${scope.organizationId} FOR NO KEY UPDATE`.execute(tx)
      : await sql`SELECT 1 FROM projects WHERE id = ${scope.projectId} FOR NO KEY UPDATE`.execute(tx);
  if (rows.length === 0) throw notFound(scope.kind === 'organization' ? 'Organization' : 'Project');
}

/** An organization always keeps an owner; a change that would remove the last one is refused. */
async function keepAnOwner(tx: Tx, scope: MemberScope): Promise<void> {
  if (scope.kind !== 'organization') return;
  const owner = await tx
    .selectFrom('organization_members')
    .select('user_id')
    .where('organization_id', '=', scope.organizationId)
    .where('role', '=', 'owner')
    .executeTakeFirst();
  if (!owner) throw new AppError('last_owner', 'An organization needs at least one owner: make someone else an owner first.');
}

/** Who changes the members: their user id, their role when the request was let in, and their role now. */
export interface MemberActor {
  userId: string;
  role: Role | null;
  roleNow(tx: Tx): Promise<Role | null>;
}

/**
 * Only owners hand out ownership or change an owner's role; checked against the locked rows. A
 * caller whose own role changed while the request waited (another owner demoted them) acts no
 * more on the role they had.
 */
async function assertMayChange(tx: Tx, scope: MemberScope, actor: MemberActor, userId: string, newRole: Role | null): Promise<void> {
  const now = await actor.roleNow(tx);
  if (now !== actor.role) {
    throw new AppError('role_changed', `Your role in the ${scope.kind} changed while this request waited (it is now ${now ?? 'none'}); look at the members again before you retry.`);
  }
  if (actor.role === 'owner') return;
  if (newRole === 'owner') throw new AppError('forbidden', 'Only owners can make owners.');
  if ((await memberRole(tx, scope, userId)) === 'owner') throw new AppError('forbidden', newRole ? 'Only owners can change an owner’s role.' : 'Only owners can remove an owner.');
}

/** The member's role in the scope, or undefined when not a member. */
async function memberRole(db: Db, scope: MemberScope, userId: string): Promise<Role | undefined> {
  const { rows } = await sql<{ role: Role }>`
    SELECT role FROM ${sql.table(table(scope))} WHERE ${sql.ref(keyColumn(scope))} = ${key(scope)} AND user_id = ${userId}`.execute(db);
  return rows[0]?.role;
}

async function recordMemberActivity(tx: Tx, scope: MemberScope, what: string, userId: string, actorUserId: string, payload: Record<string, unknown>) {
  await notifyAccessChanged(tx, userId); // a lowered or removed role ends live subscriptions it no longer allows
  return recordActivity(tx, {
    type: `${scope.kind}.${what}`,
    organizationId: scope.organizationId,
    projectId: scope.kind === 'project' ? scope.projectId : null,
    actorUserId,
    subjectType: 'user',
    subjectId: userId,
    payload,
  });
}

/** Adds a member or changes the role of an existing one. */
export function putMember(db: Db, scope: MemberScope, userId: string, role: Role, actor: MemberActor) {
  return inTransaction(db, async (tx) => {
    await lockScope(tx, scope);
    await assertMayChange(tx, scope, actor, userId, role);
    await tx
      .insertInto(table(scope))
      .values({ [keyColumn(scope)]: key(scope), user_id: userId, role } as never)
      .onConflict((oc) => oc.columns([keyColumn(scope), 'user_id'] as never).doUpdateSet({ role }))
      .execute();
    await keepAnOwner(tx, scope);
    await recordMemberActivity(tx, scope, 'member_set', userId, actor.userId, { role });
  });
}

/** Removes a member; false when the user is not one. */
export function removeMember(db: Db, scope: MemberScope, userId: string, actor: MemberActor) {
  return inTransaction(db, async (tx) => {
    await lockScope(tx, scope);
    await assertMayChange(tx, scope, actor, userId, null);
    const res = await tx
      .deleteFrom(table(scope))
      .where(keyColumn(scope) as 'user_id', '=', key(scope))
      .where('user_id', '=', userId)
      .executeTakeFirst();
    if (res.numDeletedRows === 0n) return false;
    await keepAnOwner(tx, scope);
    await recordMemberActivity(tx, scope, 'member_removed', userId, actor.userId, {});
    return true;
  });
}
