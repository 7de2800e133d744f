import { sql } from 'kysely';
import type { Db, Tx } from '../../db/database.js';
import { inTransaction } from '../../db/transaction.js';
import { registrationTokenState } from '../../domain/registration-token-state.js';
import { waitingReason, type RunnerCounts } from '../../domain/waiting-reason.js';
import { AppError, notFound } from '../app-error.js';
import { hashSecret, newSecret } from './account-store.js';
import { recordActivity } from './activity-store.js';
import { finishJob } from '../runs/finish-job.js';
import { runnerHeldJobs, runnerOnline } from './runner-sql.js';

/** What a runner says about itself when it registers or reconnects. */
export interface RunnerHello {
  name: string;
  labels: string[];
  executor: string;
  capacity: number;
  version: string;
}

/** The identity a connection authenticated as. */
export interface RunnerIdentity {
  id: string;
  name: string;
  organizationId: string | null;
}

const runnerColumns = [
  'runners.id',
  'runners.name',
  'runners.organization_id as organizationId',
  'runners.local',
  'runners.labels',
  'runners.executor',
  'runners.capacity',
  'runners.version',
  'runners.paused',
  runnerOnline.as('online'),
  'runners.last_seen_at as lastSeenAt',
  'runners.created_at as createdAt',
  sql<number>`(SELECT count(*)::int FROM jobs WHERE jobs.runner_id = runners.id::text AND jobs.status = 'running')`.as('runningJobs'),
] as const;

function activity(tx: Tx, type: string, organizationId: string | null, actorUserId: string | null, subjectType: string, subjectId: string, payload: Record<string, unknown>) {
  return recordActivity(tx, { type, organizationId, projectId: null, actorUserId, subjectType, subjectId, payload });
}

export interface NewRunnerToken {
  organizationId: string | null;
  description: string;
  actorUserId: string | null;
  /** How many runners may register with it (1 unless given). */
  maxUses?: number | undefined;
  /** When it stops working: a time, or seconds from now (by the database's clock). */
  expiresAt?: string | undefined;
  expiresInSeconds?: number | undefined;
}

/** Characters of a token kept in clear, to recognise it in lists (`furrow_reg_` and six more). */
const PREFIX_LENGTH = 17;

const tokenColumns = [
  'id',
  'organization_id as organizationId',
  'description',
  'prefix',
  'max_uses as maxUses',
  'uses',
  'expires_at as expiresAt',
  'revoked_at as revokedAt',
  'last_used_at as lastUsedAt',
  'last_used_by as lastUsedById',
  'last_used_by_name as lastUsedByName',
  'created_at as createdAt',
  sql<boolean>`revoked_at IS NOT NULL`.as('revoked'),
  sql<boolean>`coalesce(expires_at <= now(), false)`.as('expired'),
] as const;

type TokenRow = { lastUsedById: string | null; lastUsedByName: string | null; revoked: boolean; expired: boolean; uses: number; maxUses: number };

/** A token as the API shows it: never its value, its state in words, who used it last. */
function publicToken<T extends TokenRow>({ lastUsedById, lastUsedByName, revoked, expired, ...row }: T) {
  return {
    ...row,
    state: registrationTokenState({ revoked, expired, uses: row.uses, maxUses: row.maxUses }),
    lastUsedBy: lastUsedByName === null ? null : { id: lastUsedById, name: lastUsedByName },
  };
}

/**
 * A registration token: instance-wide (`organizationId` null) or for one organization. Single-use
 * unless `maxUses` says more; its value is returned here only.
 */
export function createRunnerToken(db: Db, input: NewRunnerToken) {
  if (input.expiresAt !== undefined && input.expiresInSeconds !== undefined) throw new AppError('bad_request', 'Give expiresAt or expiresInSeconds, not both.');
  const { secret, hash } = newSecret('furrow_reg');
  const expiresAt = input.expiresInSeconds !== undefined ? sql<Date>`now() + make_interval(secs => ${input.expiresInSeconds})` : (input.expiresAt ?? null);
  return inTransaction(db, async (tx) => {
    const row = await tx
      .insertInto('runner_tokens')
      .values({
        organization_id: input.organizationId,
        description: input.description,
        token_hash: hash,
        prefix: secret.slice(0, PREFIX_LENGTH),
        max_uses: input.maxUses ?? 1,
        expires_at: expiresAt,
        created_by: input.actorUserId,
      })
      .returning(tokenColumns)
      .executeTakeFirstOrThrow();
    if (row.expired) throw new AppError('bad_request', `expiresAt ${input.expiresAt} has already passed; give a time in the future.`);
    await activity(tx, 'runner_token.created', input.organizationId, input.actorUserId, 'runner_token', row.id, {
      description: input.description,
      maxUses: row.maxUses,
      expiresAt: row.expiresAt,
    });
    return { ...publicToken(row), token: secret };
  });
}

/** Instance-wide tokens (`organizationId` null) or one organization's, newest first, never their values. */
export async function listRunnerTokens(db: Db, organizationId: string | null) {
  const rows = await db
    .selectFrom('runner_tokens')
    .select(tokenColumns)
    .where('organization_id', organizationId === null ? 'is' : '=', organizationId)
    .orderBy('created_at', 'desc')
    .orderBy('id')
    .execute();
  return rows.map(publicToken);
}

/** Revokes a registration token (once; again is a no-op); runners registered with it keep their own credentials. */
export function revokeRunnerToken(db: Db, id: string, actorUserId: string | null) {
  return inTransaction(db, async (tx) => {
    const row = await tx.selectFrom('runner_tokens').select(['organization_id', 'description', 'revoked_at']).where('id', '=', id).forUpdate().executeTakeFirst();
    if (!row) throw notFound('Runner token');
    if (row.revoked_at) return;
    await tx.updateTable('runner_tokens').set({ revoked_at: sql`now()` }).where('id', '=', id).execute();
    await activity(tx, 'runner_token.revoked', row.organization_id, actorUserId, 'runner_token', id, { description: row.description });
  });
}

const REFUSALS = {
  revoked: 'registration_token_revoked',
  expired: 'registration_token_expired',
  used_up: 'registration_token_used_up',
} as const;

/**
 * Registers a runner with a registration token, spending one of its uses, and returns the
 * runner's own credential (shown once). The token's row is locked first, so that of runners
 * racing for its last use exactly one wins. Throws `registration_token_invalid` for a token never
 * issued, and a code naming why for a revoked, expired or used-up one.
 */
export function registerRunner(db: Db, token: string, hello: RunnerHello) {
  const { secret, hash } = newSecret('furrow_runner');
  return inTransaction(db, async (tx) => {
    const reg = await tx.selectFrom('runner_tokens').select(tokenColumns).where('token_hash', '=', hashSecret(token)).forUpdate().executeTakeFirst();
    if (!reg) throw new AppError('registration_token_invalid');
    const state = registrationTokenState(reg);
    if (state !== 'usable') {
      throw new AppError(REFUSALS[state], state === 'used_up' ? `The registration token has been used ${reg.uses} of ${reg.maxUses} times; create a new one.` : undefined);
    }
    const runner = await tx
      .insertInto('runners')
      .values({
        organization_id: reg.organizationId,
        name: hello.name,
        credential_hash: hash,
        labels: hello.labels,
        executor: hello.executor,
        capacity: hello.capacity,
        version: hello.version,
        registered_with: reg.id,
      })
      .returning(['id', 'name', 'organization_id as organizationId'])
      .executeTakeFirstOrThrow();
    await tx
      .updateTable('runner_tokens')
      .set((eb) => ({ uses: eb('uses', '+', 1), last_used_at: sql`now()`, last_used_by: runner.id, last_used_by_name: runner.name }))
      .where('id', '=', reg.id)
      .execute();
    await activity(tx, 'runner.registered', reg.organizationId, null, 'runner', runner.id, { name: hello.name, labels: hello.labels, registeredWith: reg.id });
    return { ...runner, credential: secret };
  });
}

/** The runner a credential belongs to; undefined when it is unknown or the runner was removed. */
export function runnerForCredential(db: Db, credential: string): Promise<RunnerIdentity | undefined> {
  return db
    .selectFrom('runners')
    .select(['id', 'name', 'organization_id as organizationId'])
    .where('credential_hash', '=', hashSecret(credential))
    .where('local', '=', false)
    .executeTakeFirst();
}

/**
 * The in-process runner of `furrow start`: one record per name, created on first start and
 * updated with its hello (as `recordHello` does for remote runners) on every later one.
 */
export async function upsertLocalRunner(db: Db, hello: RunnerHello): Promise<RunnerIdentity> {
  const { hash } = newSecret('furrow_local');
  const said = { labels: hello.labels, executor: hello.executor, capacity: hello.capacity, version: hello.version, connected: true, last_seen_at: sql<Date>`now()` };
  return db
    .insertInto('runners')
    .values({ name: hello.name, local: true, credential_hash: hash, ...said })
    // The index's predicate as text, not a parameter: a prepared statement's generic plan could
    // not match `local = $1` to the partial index `WHERE local`.
    .onConflict((oc) => oc.column('name').where(sql<boolean>`local`).doUpdateSet(said))
    .returning(['id', 'name', 'organization_id as organizationId'])
    .executeTakeFirstOrThrow();
}

/** Records what a (re)connecting runner says about itself, and that it is connected. */
export async function recordHello(db: Db, id: string, hello: RunnerHello): Promise<void> {
  await db
    .updateTable('runners')
    .set({ labels: hello.labels, executor: hello.executor, capacity: hello.capacity, version: hello.version, connected: true, last_seen_at: sql`now()` })
    .where('id', '=', id)
    .execute();
}

/** Heartbeat for the runners connected to this instance, or their disconnection. */
export async function markRunners(db: Db, ids: string[], connected: boolean): Promise<void> {
  if (ids.length === 0) return;
  await db.updateTable('runners').set({ connected, last_seen_at: sql`now()` }).where('id', 'in', ids).execute();
}

/** Runners that may take jobs of `organizationId` (its own and instance-wide ones), or all of them. */
export function listRunners(db: Db, organizationId: string | null) {
  let q = db.selectFrom('runners').select(runnerColumns);
  if (organizationId !== null) q = q.where((eb) => eb.or([eb('organization_id', '=', organizationId), eb('organization_id', 'is', null)]));
  return q.orderBy('name').orderBy('created_at').execute();
}

export function getRunner(db: Db, id: string) {
  return db.selectFrom('runners').select(runnerColumns).where('id', '=', id).executeTakeFirst();
}

/** Pauses (no new jobs; running ones go on) or resumes a runner. */
export function setRunnerPaused(db: Db, id: string, paused: boolean, actorUserId: string) {
  return inTransaction(db, async (tx) => {
    const row = await tx.updateTable('runners').set({ paused }).where('id', '=', id).returning(['organization_id', 'name']).executeTakeFirstOrThrow();
    await activity(tx, paused ? 'runner.paused' : 'runner.resumed', row.organization_id, actorUserId, 'runner', id, { name: row.name });
    // A resumed runner's waiting `next` requests look again.
    if (!paused) await sql`SELECT pg_notify('furrow_jobs', '')`.execute(tx);
  });
}

/**
 * Removes a runner: its credential stops working at once, its connections are closed (through
 * `furrow_runner_removed`), and the jobs it was running end `runner_lost` (retried per policy).
 */
export async function removeRunner(db: Db, id: string, actorUserId: string): Promise<void> {
  const held = await inTransaction(db, async (tx) => {
    const local = await tx.selectFrom('runners').select('local').where('id', '=', id).executeTakeFirstOrThrow();
    if (local.local) throw new AppError('conflict', 'The local runner is part of `furrow start`: pause it, or start the server with FURROW_LOCAL_RUNNER=false.');
    const row = await tx.deleteFrom('runners').where('id', '=', id).returning(['organization_id', 'name']).executeTakeFirstOrThrow();
    await activity(tx, 'runner.removed', row.organization_id, actorUserId, 'runner', id, { name: row.name });
    await sql`SELECT pg_notify('furrow_runner_removed', ${id})`.execute(tx);
    return tx.selectFrom('jobs').select(['id', 'status']).where('runner_id', '=', id).where('status', 'in', ['queued', 'running']).execute();
  });
  for (const job of held) {
    if (job.status === 'running') await finishJob(db, job.id, 'runner_lost', { runnerId: id, error: 'its runner was removed' });
  }
  await db.updateTable('jobs').set({ runner_id: null, lease_expires_at: null }).where('runner_id', '=', id).where('status', '=', 'queued').execute();
  await sql`SELECT pg_notify('furrow_jobs', '')`.execute(db);
}

/** Why each of these queued, unclaimed jobs waits (see domain/waiting-reason.ts); others are absent. */
export async function waitingReasons(db: Db, jobIds: string[]): Promise<Map<string, string>> {
  const reasons = new Map<string, string>();
  if (jobIds.length === 0) return reasons;
  const { rows } = await sql<RunnerCounts & { id: string }>`
    SELECT j.id, j.labels,
      count(r.id)::int AS matching,
      count(r.id) FILTER (WHERE r.online)::int AS online,
      count(r.id) FILTER (WHERE r.online AND NOT r.paused)::int AS active,
      count(r.id) FILTER (WHERE r.online AND NOT r.paused AND r.held < r.capacity)::int AS free
    FROM jobs j
    LEFT JOIN LATERAL (
      SELECT runners.id, runners.paused, runners.capacity, ${runnerOnline} AS online, ${runnerHeldJobs} AS held
      FROM runners
      WHERE runners.labels @> j.labels AND (runners.organization_id IS NULL OR runners.organization_id = j.organization_id)) r ON true
    WHERE j.id = ANY(${jobIds}::uuid[]) AND j.status = 'queued' AND j.runner_id IS NULL
    GROUP BY j.id`.execute(db);
  for (const row of rows) {
    const reason = waitingReason(row);
    if (reason) reasons.set(row.id, reason);
  }
  return reasons;
}
