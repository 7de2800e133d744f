import { sql } from 'kysely';
import type { Db } from '../../db/database.js';
import type { Role } from '../../db/schema.js';

/** The kinds of object a route can be scoped to; each belongs to one organization. */
export type ScopeKind = 'organization' | 'project' | 'environment' | 'workflow' | 'run' | 'job' | 'runner' | 'runner_token' | 'repository' | 'secret' | 'trigger' | 'delivery';

/** Where an object lives; `organizationId` is null for instance-wide ones (runners), which only admins reach. */
export interface Scope {
  organizationId: string | null;
  projectId: string | null;
}

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Finds which organization (and project) an object lives in; undefined when it does not exist. */
export async function scopeOf(db: Db, kind: ScopeKind, id: string): Promise<Scope | undefined> {
  if (!UUID.test(id)) return undefined;
  if (kind === 'organization') {
    const row = await db.selectFrom('organizations').select('id').where('id', '=', id).executeTakeFirst();
    return row && { organizationId: row.id, projectId: null };
  }
  if (kind === 'runner' || kind === 'runner_token') {
    const row = await db
      .selectFrom(kind === 'runner' ? 'runners' : 'runner_tokens')
      .select('organization_id')
      .where('id', '=', id)
      .executeTakeFirst();
    return row && { organizationId: row.organization_id, projectId: null };
  }
  const projectIdQuery = {
    project: sql<string>`SELECT id FROM projects WHERE id = ${id}`,
    environment: sql<string>`SELECT project_id FROM environments WHERE id = ${id}`,
    workflow: sql<string>`SELECT project_id FROM workflows WHERE id = ${id}`,
    run: sql<string>`SELECT project_id FROM runs WHERE id = ${id}`,
    job: sql<string>`SELECT r.project_id FROM jobs j JOIN runs r ON r.id = j.run_id WHERE j.id = ${id}`,
    repository: sql<string>`SELECT project_id FROM repositories WHERE id = ${id}`,
    secret: sql<string>`SELECT project_id FROM secrets WHERE id = ${id}`,
    trigger: sql<string>`SELECT w.project_id FROM triggers t JOIN workflows w ON w.id = t.workflow_id WHERE t.id = ${id}`,
    delivery: sql<string>`SELECT project_id FROM deliveries WHERE id = ${id}`,
  }[kind];
  const { rows } = await sql<Scope>`
    SELECT p.organization_id AS "organizationId", p.id AS "projectId"
    FROM projects p WHERE p.id = (${projectIdQuery})`.execute(db);
  return rows[0];
}

/** The caller's role in a scope: the stronger of the organization and the project membership. */
export interface Roles {
  organization: Role | null;
  project: Role | null;
  /** Member of some project of the organization (lets a project member see the organization). */
  anyProjectInOrganization: boolean;
}

export async function rolesIn(db: Db, userId: string, scope: { organizationId: string; projectId: string | null }): Promise<Roles> {
  const { rows } = await sql<Roles>`
    SELECT
      (SELECT role FROM organization_members WHERE organization_id = ${scope.organizationId} AND user_id = ${userId}) AS organization,
      (SELECT role FROM project_members WHERE project_id = ${scope.projectId} AND user_id = ${userId}) AS project,
      EXISTS (SELECT 1 FROM project_members pm JOIN projects p ON p.id = pm.project_id
              WHERE p.organization_id = ${scope.organizationId} AND pm.user_id = ${userId}) AS "anyProjectInOrganization"`.execute(db);
  return rows[0] ?? { organization: null, project: null, anyProjectInOrganization: false };
}
