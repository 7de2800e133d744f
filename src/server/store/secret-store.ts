import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import sshpk from 'sshpk';
import type { Db, Tx } from '../../db/database.js';
import { inTransaction } from '../../db/transaction.js';
import { MIN_SECRET_LENGTH } from '../../domain/log-masking.js';
import { AppError, notFound } from '../app-error.js';
import type { SecretBox } from '../secrets/secret-box.js';
import { recordActivity, type ProjectContext as Ctx } from './activity-store.js';

export type SecretKind = 'env' | 'ssh';

export interface SecretInput {
  name: string;
  kind: SecretKind;
  value: string;
  /** null: every run of the project; otherwise only runs in this environment. */
  environmentId: string | null;
}

export interface ResolvedSecret {
  name: string;
  kind: SecretKind;
  value: string;
}

const MAX_VALUE_BYTES = 64 * 1024;

// Never `value`: a secret leaves the store decrypted only through resolveJobSecrets.
const columns = ['id', 'name', 'kind', 'environment_id as environmentId', 'created_at as createdAt', 'updated_at as updatedAt', 'created_by as createdBy'] as const;

/** Binds a sealed value to its row, so a value copied into another row does not open there. */
const purposeOf = (id: string) => `secret:${id}`;

/** Whether a stored secret opens with this box (it does not after FURROW_SECRET_KEY changed). */
export function canOpenSecret(box: SecretBox, secret: { id: string; value: Buffer }): boolean {
  try {
    box.open(secret.value, purposeOf(secret.id));
    return true;
  } catch {
    return false;
  }
}

type FieldError = { field: string; message: string };

function nameErrors(name: string): FieldError[] {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(name)) return [{ field: 'name', message: 'must be 1-128 letters, digits or underscores, not starting with a digit' }];
  // FURROW_* variables are set by the runner for every job; a secret must not shadow them.
  if (name.startsWith('FURROW_')) return [{ field: 'name', message: 'must not start with FURROW_ (reserved for variables Furrow sets)' }];
  return [];
}

function valueErrors(kind: SecretKind, value: string): FieldError[] {
  if (value.length < MIN_SECRET_LENGTH) return [{ field: 'value', message: `values shorter than ${MIN_SECRET_LENGTH} characters are refused as secrets: masking them would hide too much of the log` }];
  if (Buffer.byteLength(value) > MAX_VALUE_BYTES) return [{ field: 'value', message: `must be at most ${MAX_VALUE_BYTES / 1024} KiB` }];
  if (kind === 'ssh') {
    try {
      sshpk.parsePrivateKey(value, 'auto');
    } catch {
      return [{ field: 'value', message: 'not an SSH private key (OpenSSH or PEM format, without a passphrase)' }];
    }
  }
  return [];
}

function check(errors: FieldError[]): void {
  if (errors.length > 0) throw new AppError('validation_failed', errors.map((e) => `${e.field} ${e.message}`).join('; '), errors);
}

async function checkEnvironment(tx: Tx, projectId: string, environmentId: string | null): Promise<void> {
  if (environmentId === null) return;
  const env = await tx.selectFrom('environments').select('id').where('id', '=', environmentId).where('project_id', '=', projectId).executeTakeFirst();
  if (!env) check([{ field: 'environmentId', message: 'no such environment in this project' }]);
}

function log(tx: Tx, ctx: Ctx, type: string, secret: { id: string; name: string; kind: SecretKind; environmentId: string | null }) {
  const { id, name, kind, environmentId } = secret;
  return recordActivity(tx, { type, organizationId: ctx.organizationId, projectId: ctx.projectId, actorUserId: ctx.actorUserId, subjectType: 'secret', subjectId: id, payload: { name, kind, environmentId } });
}

/** Creates a secret; a name already used in the same scope fails with a unique violation (409). */
export function createSecret(db: Db, box: SecretBox, ctx: Ctx, input: SecretInput) {
  check([...nameErrors(input.name), ...valueErrors(input.kind, input.value)]);
  return inTransaction(db, async (tx) => {
    await checkEnvironment(tx, ctx.projectId, input.environmentId);
    const id = randomUUID();
    const secret = await tx
      .insertInto('secrets')
      .values({ id, project_id: ctx.projectId, environment_id: input.environmentId, name: input.name, kind: input.kind, value: box.seal(input.value, purposeOf(id)), created_by: ctx.actorUserId })
      .returning(columns)
      .executeTakeFirstOrThrow();
    await log(tx, ctx, 'secret.created', secret);
    return secret;
  });
}

/** The project's secrets (all scopes, or only one environment's), by name. */
export function listSecrets(db: Db, projectId: string, environmentId?: string) {
  let q = db.selectFrom('secrets').select(columns).where('project_id', '=', projectId);
  if (environmentId !== undefined) q = q.where('environment_id', '=', environmentId);
  return q.orderBy('name').orderBy('environment_id', (ob) => ob.asc().nullsFirst()).execute();
}

export function getSecret(db: Db, id: string) {
  return db.selectFrom('secrets').select(columns).where('id', '=', id).executeTakeFirst();
}

/** Replaces a secret's value (checked against its kind); its name, kind and scope stay. */
export function updateSecret(db: Db, box: SecretBox, ctx: Ctx, id: string, value: string) {
  return inTransaction(db, async (tx) => {
    const current = await tx.selectFrom('secrets').select('kind').where('id', '=', id).forUpdate().executeTakeFirst();
    if (!current) throw notFound('Secret');
    check(valueErrors(current.kind, value));
    const secret = await tx
      .updateTable('secrets')
      .set({ value: box.seal(value, purposeOf(id)), updated_at: sql`now()` })
      .where('id', '=', id)
      .returning(columns)
      .executeTakeFirstOrThrow();
    await log(tx, ctx, 'secret.updated', secret);
    return secret;
  });
}

export function deleteSecret(db: Db, ctx: Ctx, id: string) {
  return inTransaction(db, async (tx) => {
    const secret = await tx.deleteFrom('secrets').where('id', '=', id).returning(['id', 'name', 'kind', 'environment_id as environmentId']).executeTakeFirst();
    if (!secret) throw notFound('Secret');
    await log(tx, ctx, 'secret.deleted', secret);
  });
}

/**
 * The decrypted secrets a job in `environmentId` (or in no environment) receives: the project's,
 * overridden by the environment's where the names clash, sorted by name.
 */
export async function resolveJobSecrets(db: Db, box: SecretBox, projectId: string, environmentId: string | null): Promise<ResolvedSecret[]> {
  const rows = await db
    .selectFrom('secrets')
    .select(['id', 'name', 'kind', 'value'])
    .where('project_id', '=', projectId)
    .where((eb) => (environmentId === null ? eb('environment_id', 'is', null) : eb.or([eb('environment_id', 'is', null), eb('environment_id', '=', environmentId)])))
    // Project-wide rows first, so the environment's replace them in the map below.
    .orderBy('environment_id', (ob) => ob.asc().nullsFirst())
    .execute();
  const byName = new Map<string, ResolvedSecret>();
  for (const row of rows) byName.set(row.name, { name: row.name, kind: row.kind, value: box.openText(row.value, purposeOf(row.id)) });
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
