import { sql } from 'kysely';
import type { Db } from '../../db/database.js';
import { inTransaction } from '../../db/transaction.js';
import type { SecretBox } from '../secrets/secret-box.js';
import { recordActivity, type ProjectContext } from './activity-store.js';
import { newSlug, newWebhookSecret, webhookSecretPurpose } from './event-trigger-store.js';

/** What a webhook URL's slug leads to: a repository (forge deliveries) or a webhook trigger. */
export type WebhookTarget =
  | { kind: 'repository'; id: string; projectId: string; sealedSecret: Buffer | null }
  | { kind: 'trigger'; id: string; projectId: string; enabled: boolean; sealedSecret: Buffer | null };

/** The repository or trigger a slug belongs to, in one query; undefined for an unknown slug. */
export async function webhookTarget(db: Db, slug: string): Promise<WebhookTarget | undefined> {
  const { rows } = await sql<WebhookTarget>`
    SELECT 'repository' AS kind, r.id, r.project_id AS "projectId", true AS enabled, r.webhook_secret AS "sealedSecret" FROM repositories r WHERE r.webhook_slug = ${slug}
    UNION ALL
    SELECT 'trigger', t.id, w.project_id, t.enabled, t.webhook_secret FROM triggers t JOIN workflows w ON w.id = t.workflow_id WHERE t.webhook_slug = ${slug}`.execute(db);
  return rows[0];
}

/** Opens a webhook secret; undefined when there is none, or it does not open under this instance's key. */
export function openWebhookSecret(box: SecretBox, target: { id: string; sealedSecret: Buffer | null }): string | undefined {
  if (!target.sealedSecret) return undefined;
  try {
    return box.openText(target.sealedSecret, webhookSecretPurpose(target.id));
  } catch {
    return undefined;
  }
}

/** Keeps why a delivery was refused where the person setting the webhook up looks. */
export async function recordRefusal(db: Db, target: WebhookTarget, reason: string): Promise<void> {
  if (target.kind === 'repository') {
    await db.updateTable('repositories').set({ webhook_refused_at: sql`now()`, webhook_refused_reason: reason }).where('id', '=', target.id).execute();
  } else {
    await db.updateTable('triggers').set({ last_error: `a delivery was refused: ${reason}` }).where('id', '=', target.id).execute();
  }
}

/**
 * A repository's webhook slug and secret. A repository without a secret, or with one this
 * instance's key no longer opens, gets a new one (under its row lock, so two callers agree).
 */
export function repositoryWebhook(db: Db, box: SecretBox, repositoryId: string): Promise<{ slug: string; secret: string } | undefined> {
  return inTransaction(db, async (tx) => {
    const r = await tx.selectFrom('repositories').select(['id', 'webhook_slug', 'webhook_secret']).where('id', '=', repositoryId).forUpdate().executeTakeFirst();
    if (!r) return undefined;
    const open = openWebhookSecret(box, { id: r.id, sealedSecret: r.webhook_secret });
    if (open) return { slug: r.webhook_slug, secret: open };
    const secret = newWebhookSecret();
    await tx.updateTable('repositories').set({ webhook_secret: box.seal(secret, webhookSecretPurpose(r.id)) }).where('id', '=', r.id).execute();
    return { slug: r.webhook_slug, secret };
  });
}

/** Gives a repository or webhook trigger a new slug and secret: the old URL and secret stop working at once. */
export function regenerateWebhook(db: Db, box: SecretBox, ctx: ProjectContext, owner: { kind: 'repository' | 'trigger'; id: string }) {
  return inTransaction(db, async (tx) => {
    const slug = newSlug();
    const secret = newWebhookSecret();
    const sealed = box.seal(secret, webhookSecretPurpose(owner.id));
    const found =
      owner.kind === 'repository'
        ? await tx.updateTable('repositories').set({ webhook_slug: slug, webhook_secret: sealed, webhook_refused_at: null, webhook_refused_reason: null }).where('id', '=', owner.id).returning('id').executeTakeFirst()
        : await tx.updateTable('triggers').set({ webhook_slug: slug, webhook_secret: sealed }).where('id', '=', owner.id).where('kind', '=', 'webhook').returning('id').executeTakeFirst();
    if (!found) return undefined;
    await recordActivity(tx, {
      type: `${owner.kind}.webhook_regenerated`,
      organizationId: ctx.organizationId,
      projectId: ctx.projectId,
      actorUserId: ctx.actorUserId,
      subjectType: owner.kind,
      subjectId: owner.id,
      payload: {},
    });
    return { slug, secret };
  });
}

/** A webhook trigger's slug and secret (null when it takes unsigned deliveries, or its secret no longer opens). */
export async function triggerWebhook(db: Db, box: SecretBox, triggerId: string): Promise<{ slug: string; secret: string | null } | undefined> {
  const t = await db.selectFrom('triggers').select(['id', 'webhook_slug', 'webhook_secret']).where('id', '=', triggerId).where('kind', '=', 'webhook').executeTakeFirst();
  if (!t?.webhook_slug) return undefined;
  return { slug: t.webhook_slug, secret: openWebhookSecret(box, { id: t.id, sealedSecret: t.webhook_secret }) ?? null };
}
