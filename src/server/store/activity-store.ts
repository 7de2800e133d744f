import type { Db, Tx } from '../../db/database.js';

/** Who acts on which project: what project-scoped writes need to record their activity. */
export interface ProjectContext {
  organizationId: string;
  projectId: string;
  actorUserId: string;
}

export interface ActivityInput {
  type: string;
  organizationId: string | null;
  projectId: string | null;
  actorUserId: string | null;
  subjectType: string;
  subjectId: string;
  payload?: Record<string, unknown>;
}

/** An activity's row, for an insert of its own or one that rides on the statement making the change. */
export function activityRow(a: ActivityInput) {
  return {
    type: a.type,
    organization_id: a.organizationId,
    project_id: a.projectId,
    actor_user_id: a.actorUserId,
    subject_type: a.subjectType,
    subject_id: a.subjectId,
    payload: JSON.stringify(a.payload ?? {}),
  };
}

/** Writes an activity; call it inside the transaction that makes the change it records. */
export async function recordActivity(tx: Tx, a: ActivityInput): Promise<void> {
  await tx.insertInto('activities').values(activityRow(a)).execute();
}

export async function listProjectActivities(db: Db, projectId: string, opts: { before?: number; limit: number; type?: string }) {
  let q = db
    .selectFrom('activities')
    .select(['id', 'type', 'actor_user_id as actorUserId', 'subject_type as subjectType', 'subject_id as subjectId', 'payload', 'created_at as createdAt'])
    .where('project_id', '=', projectId)
    .orderBy('id', 'desc')
    .limit(opts.limit + 1);
  if (opts.before !== undefined) q = q.where('id', '<', opts.before);
  if (opts.type) q = q.where('type', 'like', opts.type.replace(/[\\%_]/g, '\\$&').replace(/\*/g, '%'));
  const rows = await q.execute();
  const more = rows.length > opts.limit;
  const items = rows.slice(0, opts.limit);
  return { items, nextCursor: more ? String(items[items.length - 1]!.id) : null };
}
