import { sql, type Selectable } from 'kysely';
import type { Db, Tx } from '../../db/database.js';
import { inTransaction } from '../../db/transaction.js';
import type { RepositoriesTable, StatusForge } from '../../db/schema.js';
import { accessCheckKey, enqueueTask } from '../workers/tasks.js';
import { recordActivity, type ProjectContext } from './activity-store.js';
import { wakeTriggerLoops } from './trigger-store.js';

export type RepositoryRow = Selectable<RepositoriesTable>;
export type KeyType = RepositoryRow['key_type'];

/** A repository as the API shows it: never its private key. */
export interface Repository {
  id: string;
  projectId: string;
  name: string;
  url: string;
  defaultBranch: string;
  keyType: KeyType;
  /** null while the key is being generated (or after its material was lost). */
  publicKey: string | null;
  keyFingerprint: string | null;
  knownHosts: string | null;
  access: { status: RepositoryRow['access_status']; error: string | null; checkedAt: Date | null };
  /** The latest delivery its webhook URL refused (a bad signature), for whoever sets the webhook up. */
  webhook: { lastRefused: { at: Date; reason: string } | null };
  /** Whether its refs are polled (see docs/triggers.md), when they were last, when next, and the last poll's error. */
  polling: { enabled: boolean; polledAt: Date | null; nextAt: Date | null; error: string | null };
  /** Where its runs' commit statuses go (never the token); null when they go nowhere. */
  commitStatuses: { forge: StatusForge; apiUrl: string; repository: string } | null;
  createdAt: Date;
  updatedAt: Date;
}

/** Every column but the private key. */
const PUBLIC_COLUMNS = [
  'id',
  'project_id',
  'name',
  'url',
  'default_branch',
  'key_type',
  'public_key',
  'key_fingerprint',
  'known_hosts',
  'access_status',
  'access_error',
  'access_checked_at',
  'webhook_refused_at',
  'webhook_refused_reason',
  'polling',
  'polled_at',
  'poll_next_at',
  'poll_error',
  'status_forge',
  'status_api_url',
  'status_repository',
  'created_at',
  'updated_at',
] as const;

function toRepository(r: Pick<RepositoryRow, (typeof PUBLIC_COLUMNS)[number]>): Repository {
  return {
    id: r.id,
    projectId: r.project_id,
    name: r.name,
    url: r.url,
    defaultBranch: r.default_branch,
    keyType: r.key_type,
    publicKey: r.public_key,
    keyFingerprint: r.key_fingerprint,
    knownHosts: r.known_hosts,
    access: { status: r.access_status, error: r.access_error, checkedAt: r.access_checked_at },
    webhook: { lastRefused: r.webhook_refused_at ? { at: r.webhook_refused_at, reason: r.webhook_refused_reason ?? '' } : null },
    polling: { enabled: r.polling, polledAt: r.polled_at, nextAt: r.polling ? r.poll_next_at : null, error: r.poll_error },
    commitStatuses: r.status_forge ? { forge: r.status_forge, apiUrl: r.status_api_url ?? '', repository: r.status_repository ?? '' } : null,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** Records an activity about a repository; `actorUserId` is null for the server's own work. */
async function log(tx: Tx, repo: { id: string; project_id: string; name: string }, type: string, actorUserId: string | null, payload: Record<string, unknown> = {}) {
  const { organization_id } = await tx.selectFrom('projects').select('organization_id').where('id', '=', repo.project_id).executeTakeFirstOrThrow();
  await recordActivity(tx, {
    type,
    organizationId: organization_id,
    projectId: repo.project_id,
    actorUserId,
    subjectType: 'repository',
    subjectId: repo.id,
    payload: { name: repo.name, ...payload },
  });
}

export interface RepositoryInput {
  name: string;
  url: string;
  defaultBranch: string;
  keyType: KeyType;
  knownHosts: string | null;
  polling: boolean;
}

/** Adds a repository and queues the making of its deploy key, in one transaction. */
export function createRepository(db: Db, ctx: ProjectContext, input: RepositoryInput): Promise<Repository> {
  return inTransaction(db, async (tx) => {
    const row = await tx
      .insertInto('repositories')
      .values({ project_id: ctx.projectId, name: input.name, url: input.url, default_branch: input.defaultBranch, key_type: input.keyType, known_hosts: input.knownHosts, polling: input.polling })
      .returning(PUBLIC_COLUMNS)
      .executeTakeFirstOrThrow();
    await enqueueTask(tx, 'generate-deploy-key', { repositoryId: row.id });
    await log(tx, row, 'repository.created', ctx.actorUserId, { url: row.url, keyType: row.key_type });
    return toRepository(row);
  });
}

export async function listRepositories(db: Db, projectId: string): Promise<Repository[]> {
  const rows = await db.selectFrom('repositories').select(PUBLIC_COLUMNS).where('project_id', '=', projectId).orderBy('name').execute();
  return rows.map(toRepository);
}

export async function getRepository(db: Db, id: string): Promise<Repository | undefined> {
  const row = await db.selectFrom('repositories').select(PUBLIC_COLUMNS).where('id', '=', id).executeTakeFirst();
  return row && toRepository(row);
}

/** The whole row, sealed private key included: for the server's own git commands. */
export function getRepositoryRow(db: Db, id: string): Promise<RepositoryRow | undefined> {
  return db.selectFrom('repositories').selectAll().where('id', '=', id).executeTakeFirst();
}

/**
 * Changes a repository. A new URL or new host keys make its access unknown again: the status is
 * reset and a check queued (once it has a key). A new URL without known hosts drops the pinned
 * ones, which belonged to the old host; the next check learns the new host's.
 */
export function updateRepository(db: Db, ctx: ProjectContext, id: string, input: Partial<Omit<RepositoryInput, 'keyType'>>): Promise<Repository> {
  return inTransaction(db, async (tx) => {
    const before = await tx.selectFrom('repositories').select(['url', 'known_hosts', 'public_key']).where('id', '=', id).forUpdate().executeTakeFirstOrThrow();
    const urlChanged = input.url !== undefined && input.url !== before.url;
    const knownHosts = input.knownHosts !== undefined ? input.knownHosts : urlChanged ? null : before.known_hosts;
    const recheck = urlChanged || knownHosts !== before.known_hosts;
    const row = await tx
      .updateTable('repositories')
      .set({
        ...(input.name !== undefined ? { name: input.name } : {}),
        ...(input.url !== undefined ? { url: input.url } : {}),
        ...(input.defaultBranch !== undefined ? { default_branch: input.defaultBranch } : {}),
        known_hosts: knownHosts,
        ...(input.polling !== undefined ? { polling: input.polling } : {}),
        ...(recheck ? { access_status: 'pending' as const, access_error: null, access_checked_at: null } : {}),
        // Another URL is another repository: its first poll learns its refs afresh.
        ...(urlChanged ? { polled_at: null, poll_next_at: null, poll_failures: 0, poll_error: null } : {}),
        updated_at: sql`now()`,
      })
      .where('id', '=', id)
      .returning(PUBLIC_COLUMNS)
      .executeTakeFirstOrThrow();
    if (urlChanged) await tx.deleteFrom('repository_refs').where('repository_id', '=', id).execute();
    if (urlChanged || input.polling !== undefined) await wakeTriggerLoops(tx); // the poller looks at it afresh
    if (recheck && before.public_key) await enqueueTask(tx, 'check-repository-access', { repositoryId: id }, { jobKey: accessCheckKey(id) });
    await log(tx, row, 'repository.updated', ctx.actorUserId, { fields: Object.entries(input).flatMap(([field, value]) => (value === undefined ? [] : [field])) });
    return toRepository(row);
  });
}

export function deleteRepository(db: Db, ctx: ProjectContext, id: string): Promise<void> {
  return inTransaction(db, async (tx) => {
    const row = await tx.deleteFrom('repositories').where('id', '=', id).returning(['id', 'project_id', 'name']).executeTakeFirstOrThrow();
    await log(tx, row, 'repository.deleted', ctx.actorUserId);
  });
}

export interface StoredDeployKey {
  publicKey: string;
  /** Sealed with purpose `deploy-key:<repositoryId>`. */
  sealedPrivateKey: Buffer;
  fingerprint: string;
}

/**
 * Stores a new deploy key and queues an access check, in one transaction; the access status is
 * pending until then. A rekey replaces the earlier key; a first key (`repository.key_generated`)
 * never does, so the key maker cannot overwrite a key made meanwhile by a rekey. Undefined when the
 * repository is gone (or, for a first key, has one).
 */
export function storeDeployKey(
  db: Db,
  id: string,
  key: StoredDeployKey,
  activity: { type: 'repository.key_generated' | 'repository.rekeyed'; actorUserId: string | null },
): Promise<Repository | undefined> {
  return inTransaction(db, async (tx) => {
    const row = await tx
      .updateTable('repositories')
      .set({
        public_key: key.publicKey,
        private_key: key.sealedPrivateKey,
        key_fingerprint: key.fingerprint,
        access_status: 'pending',
        access_error: null,
        access_checked_at: null,
        updated_at: sql`now()`,
      })
      .where('id', '=', id)
      .where((eb) => (activity.type === 'repository.key_generated' ? eb('public_key', 'is', null) : eb.lit(true)))
      .returning(PUBLIC_COLUMNS)
      .executeTakeFirst();
    if (!row) return undefined;
    await enqueueTask(tx, 'check-repository-access', { repositoryId: id }, { jobKey: accessCheckKey(id) });
    await log(tx, row, activity.type, activity.actorUserId, { fingerprint: key.fingerprint });
    return toRepository(row);
  });
}

export interface AccessOutcome {
  ok: boolean;
  error: string | null;
  /** Host keys learned on first contact; pinned only when none are pinned yet. */
  knownHosts: string | null;
}

/**
 * Records the outcome of an access check of `checked` (the URL and key it ran with). Undefined
 * when the repository is gone, or its URL or key changed while the check ran: that outcome (and
 * the host keys it saw) says nothing of the repository as it is now.
 */
export function recordAccessCheck(db: Db, checked: { id: string; url: string; fingerprint: string | null }, outcome: AccessOutcome, actorUserId: string | null): Promise<Repository | undefined> {
  return inTransaction(db, async (tx) => {
    const row = await tx
      .updateTable('repositories')
      .set({
        access_status: outcome.ok ? 'ok' : 'failed',
        access_error: outcome.error,
        access_checked_at: sql`now()`,
        // Pinned keys are never replaced by what a check saw: only the first contact pins.
        known_hosts: sql`coalesce(known_hosts, ${outcome.knownHosts})`,
        updated_at: sql`now()`,
      })
      .where('id', '=', checked.id)
      .where('url', '=', checked.url)
      .where(sql<boolean>`key_fingerprint IS NOT DISTINCT FROM ${checked.fingerprint}`)
      .returning(PUBLIC_COLUMNS)
      .executeTakeFirst();
    if (!row) return undefined;
    await log(tx, row, 'repository.checked', actorUserId, { status: row.access_status, ...(outcome.error ? { error: outcome.error } : {}) });
    return toRepository(row);
  });
}

/** Where a repository's commit statuses go, with the token (sealed here); null turns them off. */
export interface StatusReporting {
  forge: StatusForge;
  apiUrl: string;
  repository: string;
  sealedToken: Buffer;
}

export function setStatusReporting(db: Db, ctx: ProjectContext, id: string, to: StatusReporting | null): Promise<Repository> {
  return inTransaction(db, async (tx) => {
    const row = await tx
      .updateTable('repositories')
      .set({ status_forge: to?.forge ?? null, status_api_url: to?.apiUrl ?? null, status_repository: to?.repository ?? null, status_token: to?.sealedToken ?? null, updated_at: sql`now()` })
      .where('id', '=', id)
      .returning(PUBLIC_COLUMNS)
      .executeTakeFirstOrThrow();
    await log(tx, row, 'repository.updated', ctx.actorUserId, { fields: ['commitStatuses'], ...(to ? { forge: to.forge, apiUrl: to.apiUrl, repository: to.repository } : { commitStatuses: null }) });
    return toRepository(row);
  });
}
