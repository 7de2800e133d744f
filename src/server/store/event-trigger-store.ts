import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../../db/database.js';
import { inTransaction } from '../../db/transaction.js';
import type { SecretBox } from '../secrets/secret-box.js';
import type { ProjectContext } from './activity-store.js';
import { logTrigger, triggerColumns, wakeTriggerLoops } from './trigger-store.js';

/** A workflow reading a repository, as an event of the repository may start it. */
export interface EventCandidate {
  id: string;
  name: string;
  /** Whether it has an `on` (a definition or a file); a script has none. */
  hasOn: boolean;
  /** Its definition, when it is one: its `on` is known without reading the repository. */
  definition: string | null;
  /** Its enabled `git` triggers. */
  gitTriggers: { id: string; refs: string[]; changes: string[]; parameters: Record<string, string> }[];
}

/** The workflows that read a repository, by name, with their enabled git triggers. */
export async function eventCandidates(db: Db, repositoryId: string): Promise<EventCandidate[]> {
  const { rows } = await sql<EventCandidate>`
    SELECT w.id, w.name, (w.definition IS NOT NULL OR w.path IS NOT NULL) AS "hasOn", w.definition,
      coalesce((SELECT json_agg(json_build_object('id', t.id, 'refs', t.refs, 'changes', t.changes, 'parameters', t.parameters) ORDER BY t.created_at, t.id)
        FROM triggers t WHERE t.workflow_id = w.id AND t.kind = 'git' AND t.enabled), '[]') AS "gitTriggers"
    FROM workflows w WHERE w.repository_id = ${repositoryId} ORDER BY w.name, w.id`.execute(db);
  return rows;
}

/** Records the run a git trigger started. */
export async function recordGitFire(db: Db, triggerId: string, runId: string): Promise<void> {
  await db.updateTable('triggers').set({ last_fired_at: sql`now()`, last_run_id: runId, last_error: null }).where('id', '=', triggerId).execute();
}

/** What a git trigger is made of. */
export interface GitTriggerFields {
  description: string;
  enabled: boolean;
  refs: string[];
  changes: string[];
  parameters: Record<string, string>;
}

/** What a webhook trigger is made of (its slug and secret are made here). */
export interface WebhookTriggerFields {
  description: string;
  enabled: boolean;
  ref: string | null;
  parameters: Record<string, string>;
  fields: Record<string, string>;
}

/** A new unguessable webhook slug (144 bits) or secret (192 bits). */
export const newSlug = () => randomBytes(18).toString('base64url');
export const newWebhookSecret = () => randomBytes(24).toString('base64url');

/** The purpose a webhook secret is sealed under: the repository or trigger it belongs to. */
export const webhookSecretPurpose = (ownerId: string) => `webhook-secret:${ownerId}`;

export function createGitTrigger(db: Db, ctx: ProjectContext, workflowId: string, f: GitTriggerFields) {
  return inTransaction(db, async (tx) => {
    const trigger = await tx
      .insertInto('triggers')
      .values({ workflow_id: workflowId, kind: 'git', created_by: ctx.actorUserId, description: f.description, enabled: f.enabled, refs: f.refs, changes: f.changes, parameters: JSON.stringify(f.parameters) })
      .returning(triggerColumns)
      .executeTakeFirstOrThrow();
    await logTrigger(tx, ctx, 'trigger.created', trigger.id, { workflowId, kind: 'git', refs: f.refs, changes: f.changes });
    await wakeTriggerLoops(tx); // its repository may be one to poll now
    return trigger;
  });
}

/**
 * Adds a webhook trigger with a new slug and, when `signed`, a new secret sealed for it; the
 * secret is returned this once with it (and later by its webhook route).
 */
export function createWebhookTrigger(db: Db, box: SecretBox, ctx: ProjectContext, workflowId: string, f: WebhookTriggerFields, signed: boolean) {
  return inTransaction(db, async (tx) => {
    const id = (await sql<{ id: string }>`SELECT gen_random_uuid() AS id`.execute(tx)).rows[0]!.id;
    const secret = signed ? newWebhookSecret() : null;
    const trigger = await tx
      .insertInto('triggers')
      .values({
        id,
        workflow_id: workflowId,
        kind: 'webhook',
        created_by: ctx.actorUserId,
        description: f.description,
        enabled: f.enabled,
        ref: f.ref,
        parameters: JSON.stringify(f.parameters),
        fields: JSON.stringify(f.fields),
        webhook_slug: newSlug(),
        webhook_secret: secret === null ? null : box.seal(secret, webhookSecretPurpose(id)),
      })
      .returning(triggerColumns)
      .executeTakeFirstOrThrow();
    await logTrigger(tx, ctx, 'trigger.created', id, { workflowId, kind: 'webhook', signed });
    return trigger;
  });
}

/** Changes a git or webhook trigger (of `kind`) to what `change` makes of it, under its lock; undefined when there is none. */
export function updateEventTrigger<K extends 'git' | 'webhook'>(
  db: Db,
  ctx: ProjectContext,
  id: string,
  kind: K,
  change: (current: GitTriggerFields & WebhookTriggerFields & { source: 'api' | 'file' }) => K extends 'git' ? GitTriggerFields : WebhookTriggerFields,
) {
  return inTransaction(db, async (tx) => {
    const t = await tx
      .selectFrom('triggers')
      .select(['source', 'description', 'enabled', 'refs', 'changes', 'parameters', 'ref', 'fields'])
      .where('id', '=', id)
      .where('kind', '=', kind)
      .forUpdate()
      .executeTakeFirst();
    if (!t) return undefined;
    const f: Partial<GitTriggerFields & WebhookTriggerFields> = change(t);
    const trigger = await tx
      .updateTable('triggers')
      .set({
        description: f.description!,
        enabled: f.enabled!,
        parameters: JSON.stringify(f.parameters),
        ...(kind === 'git' ? { refs: f.refs!, changes: f.changes! } : { ref: f.ref ?? null, fields: JSON.stringify(f.fields) }),
        updated_at: sql`now()`,
      })
      .where('id', '=', id)
      .returning(triggerColumns)
      .executeTakeFirstOrThrow();
    await logTrigger(tx, ctx, 'trigger.updated', id, { enabled: f.enabled });
    if (kind === 'git') await wakeTriggerLoops(tx);
    return trigger;
  });
}
