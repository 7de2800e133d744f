import { createHash, randomBytes } from 'node:crypto';
import { hash, verify } from '@node-rs/argon2';
import { sql } from 'kysely';
import type { Db, Tx } from '../../db/database.js';
import { inTransaction } from '../../db/transaction.js';
import { notifyAccessChanged } from './access-notify.js';
import { recordActivity } from './activity-store.js';

/** argon2id (the library's default algorithm) with its recommended cost settings. */
export const hashPassword = (password: string) => hash(password);
export const verifyPassword = (stored: string, password: string) => verify(stored, password).catch(() => false);

/** A fresh secret with a recognisable prefix, and the SHA-256 under which it is stored. */
export function newSecret(prefix: string): { secret: string; hash: Buffer } {
  const secret = `${prefix}_${randomBytes(32).toString('base64url')}`;
  return { secret, hash: hashSecret(secret) };
}

export const hashSecret = (secret: string) => createHash('sha256').update(secret).digest();

export interface Principal {
  userId: string;
  email: string;
  isAdmin: boolean;
}

/** Instance-level account activities (no organization or project). */
function accountActivity(tx: Tx, type: string, actorUserId: string | null, subjectType: string, subjectId: string, payload: Record<string, unknown>) {
  return recordActivity(tx, { type, organizationId: null, projectId: null, actorUserId, subjectType, subjectId, payload });
}

export async function createUser(db: Db, email: string, password: string, isAdmin: boolean): Promise<{ id: string }> {
  const passwordHash = await hashPassword(password);
  return inTransaction(db, async (tx) => {
    const user = await tx.insertInto('users').values({ email, password_hash: passwordHash, is_admin: isAdmin }).returning('id').executeTakeFirstOrThrow();
    await accountActivity(tx, 'user.created', null, 'user', user.id, { email, isAdmin });
    return user;
  });
}

export function findUserByEmail(db: Db, email: string) {
  return db.selectFrom('users').selectAll().where((eb) => eb(eb.fn('lower', ['email']), '=', email.toLowerCase())).executeTakeFirst();
}

export async function createApiToken(db: Db, userId: string, name: string): Promise<{ id: string; token: string }> {
  const { secret, hash } = newSecret('furrow');
  return inTransaction(db, async (tx) => {
    const row = await tx.insertInto('api_tokens').values({ user_id: userId, name, token_hash: hash }).returning('id').executeTakeFirstOrThrow();
    await accountActivity(tx, 'token.created', userId, 'token', row.id, { name });
    return { id: row.id, token: secret };
  });
}

/**
 * The token's user. `last_used_at` is refreshed at most once a minute, after the answer, so
 * authenticating stays one read on the request path.
 */
export async function principalForToken(db: Db, token: string): Promise<Principal | undefined> {
  const hash = hashSecret(token);
  const row = await db
    .selectFrom('api_tokens')
    .innerJoin('users', 'users.id', 'api_tokens.user_id')
    .select(['users.id as userId', 'users.email', 'users.is_admin as isAdmin', sql<boolean>`api_tokens.last_used_at IS NULL OR api_tokens.last_used_at < now() - interval '1 minute'`.as('stale')])
    .where('api_tokens.token_hash', '=', hash)
    .executeTakeFirst();
  if (!row) return undefined;
  if (row.stale) {
    void db.updateTable('api_tokens').set({ last_used_at: sql`now()` }).where('token_hash', '=', hash).execute().catch(() => undefined);
  }
  return { userId: row.userId, email: row.email, isAdmin: row.isAdmin };
}

export function listApiTokens(db: Db, userId: string) {
  return db
    .selectFrom('api_tokens')
    .select(['id', 'name', 'created_at as createdAt', 'last_used_at as lastUsedAt'])
    .where('user_id', '=', userId)
    .orderBy('created_at')
    .execute();
}

/** Revokes one of the user's own tokens; false when the user has no such token. */
export async function deleteApiToken(db: Db, userId: string, tokenId: string): Promise<boolean> {
  return inTransaction(db, async (tx) => {
    const row = await tx.deleteFrom('api_tokens').where('id', '=', tokenId).where('user_id', '=', userId).returning('name').executeTakeFirst();
    if (!row) return false;
    await accountActivity(tx, 'token.revoked', userId, 'token', tokenId, { name: row.name });
    await notifyAccessChanged(tx, userId);
    return true;
  });
}

export async function createSession(db: Db, userId: string, ttlHours: number): Promise<string> {
  const { secret, hash } = newSecret('fs');
  await db
    .insertInto('sessions')
    .values({ user_id: userId, token_hash: hash, expires_at: sql`now() + make_interval(hours => ${ttlHours})` })
    .execute();
  return secret;
}

export function principalForSession(db: Db, token: string): Promise<Principal | undefined> {
  return db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .select(['users.id as userId', 'users.email', 'users.is_admin as isAdmin'])
    .where('sessions.token_hash', '=', hashSecret(token))
    .where('sessions.expires_at', '>', sql<Date>`now()`)
    .executeTakeFirst();
}

export async function deleteSession(db: Db, token: string): Promise<void> {
  await inTransaction(db, async (tx) => {
    const row = await tx.deleteFrom('sessions').where('token_hash', '=', hashSecret(token)).returning('user_id').executeTakeFirst();
    if (row) await notifyAccessChanged(tx, row.user_id);
  });
}
