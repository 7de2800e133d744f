import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import { AppError } from './app-error.js';

interface NamedKind {
  what: string;
  table: string;
  /** SQL of the columns that scope the name, in the unique index's order. */
  scope: string[];
  where: string;
  /** Names that differ only in letter case collide (migration 0005). */
  anyCase: boolean;
}

/** The unique indexes on names, by constraint name, and what a person calls their objects. */
const NAME_INDEXES: Record<string, NamedKind> = {
  organizations_name_key: { what: 'An organization', table: 'organizations', scope: [], where: 'on this instance', anyCase: true },
  projects_organization_id_name_key: { what: 'A project', table: 'projects', scope: ['organization_id'], where: 'in this organization', anyCase: true },
  environments_project_id_name_key: { what: 'An environment', table: 'environments', scope: ['project_id'], where: 'in this project', anyCase: true },
  workflows_project_id_name_key: { what: 'A workflow', table: 'workflows', scope: ['project_id'], where: 'in this project', anyCase: true },
  repositories_project_id_name_key: { what: 'A repository', table: 'repositories', scope: ['project_id'], where: 'in this project', anyCase: true },
  secrets_name: { what: 'A secret', table: 'secrets', scope: ['project_id', "coalesce(environment_id, '00000000-0000-0000-0000-000000000000'::uuid)"], where: 'in this scope', anyCase: false },
  api_tokens_user_id_name_key: { what: 'A token', table: 'api_tokens', scope: ['user_id'], where: 'of yours', anyCase: false },
};

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The key values of a unique violation's detail (`Key (project_id, lower(name))=(…, Staging)
 * already exists.`): the scope's uuids first, then the name, which may itself hold commas.
 */
export function conflictKey(detail: string, scopeColumns: number): { scope: string[]; name: string } | undefined {
  const m = /=\((.*)\) already exists\.$/s.exec(detail);
  if (!m) return undefined;
  const parts = m[1]!.split(', ');
  const scope = parts.slice(0, scopeColumns);
  if (scope.length !== scopeColumns || !scope.every((s) => UUID.test(s))) return undefined;
  return { scope, name: parts.slice(scopeColumns).join(', ') };
}

/**
 * A unique violation on a name, told as which object already has it (id and name); undefined
 * for other constraints, which the caller answers with a plain conflict.
 */
export async function nameConflict(db: Db, err: { constraint?: string; detail?: string }): Promise<AppError | undefined> {
  const kind = err.constraint ? NAME_INDEXES[err.constraint] : undefined;
  const key = kind && err.detail ? conflictKey(err.detail, kind.scope.length) : undefined;
  if (!kind || !key) return undefined;
  const same = kind.anyCase ? sql`lower(name) = lower(${key.name})` : sql`name = ${key.name}`;
  const scoped = kind.scope.map((column, i) => sql`${sql.raw(column)} = ${key.scope[i]}::uuid`);
  const { rows } = await sql<{ id: string; name: string }>`SELECT id, name FROM ${sql.table(kind.table)} WHERE ${sql.join([...scoped, same], sql` AND `)} LIMIT 1`.execute(db);
  const existing = rows[0];
  if (!existing) return undefined;
  const caseNote = kind.anyCase && existing.name !== key.name ? ' (names that differ only in letter case count as the same)' : '';
  return new AppError('conflict', `${kind.what} named "${existing.name}" already exists ${kind.where}: ${existing.id}${caseNote}. Pick another name.`, [
    { field: 'name', message: `is taken by ${existing.id}`, existing: { id: existing.id, name: existing.name } },
  ]);
}
