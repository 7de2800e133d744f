import { sql } from 'kysely';
import type { Db } from '../../db/database.js';
import { inTransaction } from '../../db/transaction.js';
import type { DeliveryStatus, Forge } from '../../db/schema.js';
import { encodeCursor } from './run-store.js';
import { msUntil } from './ms-until.js';

/** What came of a delivery: the runs it started, and for each workflow it did not start, why. */
export interface DeliveryOutcome {
  /** What the delivery meant, in a few words (`push to refs/heads/main`, `ping`). */
  summary: string;
  runs: { workflowId: string; workflow: string; runId: string; number: number; existing?: true }[];
  skipped: { workflowId: string; workflow: string; reason: string }[];
  /** Why it failed, when it did. */
  error?: string;
}

export interface NewDelivery {
  projectId: string;
  repositoryId: string | null;
  triggerId: string | null;
  forge: Forge;
  event: string;
  key: string;
  headers: Record<string, string>;
  body: Buffer;
  sourceAddress: string | null;
  /** Set when nothing is left to do with it (a ping): stored as done with this outcome. */
  done?: DeliveryOutcome;
}

/** A delivery as the API lists it (without its body). */
const summaryColumns = [
  'deliveries.id',
  'deliveries.repository_id as repositoryId',
  'deliveries.trigger_id as triggerId',
  'deliveries.forge',
  'deliveries.event',
  'deliveries.delivery_key as deliveryId',
  'deliveries.source_address as sourceAddress',
  'deliveries.status',
  'deliveries.outcome',
  'deliveries.attempts',
  'deliveries.received_at as receivedAt',
  'deliveries.processed_at as processedAt',
] as const;

/** Tells every instance's delivery pump to look (on commit). */
const wakePumps = sql`pg_notify('furrow_deliveries', '')`;

/**
 * Stores a delivery, in one statement (one round trip); a delivery of a key already stored is not
 * stored again, and its first delivery is the answer (`duplicate`). No notification rides on it:
 * NOTIFY makes commits take turns on a lock of the whole database, and the instance that stored
 * it wakes its own pump (another instance's pump finds it when it next looks).
 */
export async function receiveDelivery(db: Db, d: NewDelivery) {
  const { rows } = await sql<DeliverySummary>`
    WITH stored AS (
      INSERT INTO deliveries (project_id, repository_id, trigger_id, forge, event, delivery_key, headers, body, source_address, status, outcome, processed_at)
      VALUES (${d.projectId}, ${d.repositoryId}, ${d.triggerId}, ${d.forge}, ${d.event}, ${d.key}, ${JSON.stringify(d.headers)}::jsonb, ${d.body},
        ${d.sourceAddress}, ${d.done ? 'done' : 'queued'}, ${d.done ? JSON.stringify(d.done) : null}::jsonb, ${d.done ? sql`now()` : null})
      ON CONFLICT DO NOTHING
      RETURNING id, repository_id AS "repositoryId", trigger_id AS "triggerId", forge, event, delivery_key AS "deliveryId", source_address AS "sourceAddress",
        status, outcome, attempts, received_at AS "receivedAt", processed_at AS "processedAt"
    )
    SELECT * FROM stored`.execute(db);
  if (rows[0]) return { delivery: rows[0], duplicate: false };
  const first = await db
    .selectFrom('deliveries')
    .select(summaryColumns)
    .where(d.repositoryId ? 'repository_id' : 'trigger_id', '=', (d.repositoryId ?? d.triggerId)!)
    .where('delivery_key', '=', d.key)
    .executeTakeFirstOrThrow();
  return { delivery: first, duplicate: true };
}

/** A delivery as the API lists it. */
export type DeliverySummary = NonNullable<Awaited<ReturnType<typeof getDelivery>>>;

export function getDelivery(db: Db, id: string) {
  return db.selectFrom('deliveries').select(summaryColumns).where('id', '=', id).executeTakeFirst();
}

/** A delivery with what it came with, as stored. */
export function getDeliveryWithBody(db: Db, id: string) {
  return db.selectFrom('deliveries').select([...summaryColumns, 'headers', 'body', 'project_id as projectId']).where('id', '=', id).executeTakeFirst();
}

/** Newest first, in pages: the deliveries of a repository or of a webhook trigger. */
export async function listDeliveries(db: Db, of: { repositoryId: string } | { triggerId: string }, page: { limit: number; cursor?: { createdAt: string; id: string } | undefined }) {
  let q = db.selectFrom('deliveries').select([...summaryColumns, sql<string>`deliveries.received_at::text`.as('cursorAt')]);
  q = 'repositoryId' in of ? q.where('repository_id', '=', of.repositoryId) : q.where('trigger_id', '=', of.triggerId);
  if (page.cursor) q = q.where(sql<boolean>`(deliveries.received_at, deliveries.id) < (${page.cursor.createdAt}::timestamptz, ${page.cursor.id}::uuid)`);
  const rows = await q.orderBy('received_at', 'desc').orderBy('id', 'desc').limit(page.limit + 1).execute();
  const items = rows.slice(0, page.limit).map(({ cursorAt: _, ...d }) => d);
  const last = rows[page.limit - 1];
  return { items, nextCursor: rows.length > page.limit && last ? encodeCursor(last.cursorAt, last.id) : null };
}

/** A delivery an instance holds: recording its outcome needs the hold's token. */
export interface DeliveryClaim {
  id: string;
  token: string;
}

/** Records what came of turning a delivery into runs (one more attempt), and lets go of it; false when the hold was lost. */
export async function finishDelivery(db: Db, claim: DeliveryClaim, status: Exclude<DeliveryStatus, 'queued'>, outcome: DeliveryOutcome): Promise<boolean> {
  const r = await db
    .updateTable('deliveries')
    .set({ status, outcome: JSON.stringify(outcome), attempts: sql`attempts + 1`, processed_at: sql`now()`, claimed_until: null, claim_token: null, next_attempt_at: null })
    .where('id', '=', claim.id)
    .where('claim_token', '=', claim.token)
    .executeTakeFirst();
  return r.numUpdatedRows > 0n;
}

/** Lets go of a delivery whose runs could not start for now: it (and those after it) wait `delaySeconds`, noting why. */
export async function retryDeliveryLater(db: Db, claim: DeliveryClaim, delaySeconds: number, error: string): Promise<void> {
  await db
    .updateTable('deliveries')
    .set({
      outcome: sql`jsonb_set(coalesce(outcome, '{}'), '{error}', to_jsonb(${`not yet: ${error}`}::text))`,
      attempts: sql`attempts + 1`,
      claimed_until: null,
      claim_token: null,
      next_attempt_at: sql`now() + make_interval(secs => ${delaySeconds})`,
    })
    .where('id', '=', claim.id)
    .where('claim_token', '=', claim.token)
    .execute();
}

/**
 * Queues a stored delivery to be turned into runs again, at the end of its queue (runs it started
 * already stand). False while an instance is turning it into runs.
 */
export async function redeliver(db: Db, id: string): Promise<boolean> {
  const { rows } = await sql<{ id: string }>`
    WITH again AS (
      -- One still queued keeps its place (and its count of tries): only its wait for a retry ends.
      UPDATE deliveries SET next_attempt_at = NULL, claim_token = NULL, claimed_until = NULL,
        queued_at = CASE WHEN status = 'queued' THEN queued_at ELSE clock_timestamp() END,
        attempts = CASE WHEN status = 'queued' THEN attempts ELSE 0 END, status = 'queued'
      WHERE id = ${id} AND (claimed_until IS NULL OR claimed_until <= now()) RETURNING id
    )
    SELECT id, ${wakePumps} FROM again`.execute(db);
  return rows.length > 0;
}

/**
 * The first queued delivery of each repository and trigger, unless another of theirs is held
 * (one taken over after its hold passed may still be in progress): only it may be turned into
 * runs, so that theirs start in the order the deliveries were queued.
 */
const owner = sql`coalesce(repository_id, trigger_id)`;
const heads = sql`(WITH RECURSIVE owners AS (
    (SELECT ${owner} AS o FROM deliveries WHERE status = 'queued' ORDER BY 1 LIMIT 1)
    UNION ALL
    SELECT (SELECT ${owner} FROM deliveries WHERE status = 'queued' AND ${owner} > owners.o ORDER BY 1 LIMIT 1) FROM owners WHERE owners.o IS NOT NULL
  )
  SELECT d.id, d.queued_at, d.claimed_until, d.next_attempt_at FROM owners,
    LATERAL (SELECT id, queued_at, claimed_until, next_attempt_at FROM deliveries WHERE status = 'queued' AND ${owner} = owners.o ORDER BY queued_at, id LIMIT 1) d
  WHERE owners.o IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM deliveries h WHERE h.status = 'queued' AND h.claimed_until IS NOT NULL AND h.claimed_until > now()
      AND coalesce(h.repository_id, h.trigger_id) = owners.o AND h.id <> d.id))`;

/** Arbitrary constant: claims of deliveries take turns across instances. */
const CLAIM_LOCK = 7_246_118_014;

/**
 * Takes up to `limit` deliveries to turn into runs, each the head of its repository's (or
 * trigger's) queue that no instance holds and that waits for no retry, for `holdSeconds`. Claims
 * take turns (an advisory lock), so that two instances never take two deliveries of one queue.
 */
export function claimDeliveries(db: Db, limit: number, holdSeconds: number): Promise<DeliveryClaim[]> {
  return inTransaction(db, async (tx) => {
    await sql`SELECT pg_advisory_xact_lock(${CLAIM_LOCK})`.execute(tx);
    const { rows } = await sql<DeliveryClaim>`
      UPDATE deliveries d SET claimed_until = now() + make_interval(secs => ${holdSeconds}), claim_token = gen_random_uuid()
      FROM (SELECT id FROM ${heads} h WHERE (claimed_until IS NULL OR claimed_until <= now()) AND (next_attempt_at IS NULL OR next_attempt_at <= now())
            ORDER BY queued_at, id LIMIT ${limit}) take
      WHERE d.id = take.id RETURNING d.id, d.claim_token AS token`.execute(tx);
    return rows;
  });
}

/** Keeps holding deliveries still being turned into runs (those whose hold was not lost). */
export async function extendDeliveryClaims(db: Db, claims: DeliveryClaim[], holdSeconds: number): Promise<void> {
  if (claims.length === 0) return;
  await db
    .updateTable('deliveries')
    .set({ claimed_until: sql`now() + make_interval(secs => ${holdSeconds})` })
    .where('claim_token', 'in', claims.map((c) => c.token))
    .where('status', '=', 'queued')
    .execute();
}

/** Milliseconds until a queued delivery can be taken (0: now), or null when none waits. */
export async function msUntilNextDelivery(db: Db): Promise<number | null> {
  const { rows } = await sql<{ ms: number | null }>`
    SELECT ${msUntil(sql`min(greatest(coalesce(next_attempt_at, now()), coalesce(claimed_until, now())))`)} AS ms FROM ${heads} h`.execute(db);
  return rows[0]?.ms ?? null;
}

/** Removes deliveries done with for longer than `days` (the runs they started stay); returns how many. */
export async function pruneDeliveries(db: Db, days: number): Promise<number> {
  const r = await db
    .deleteFrom('deliveries')
    .where('status', '<>', 'queued')
    .where('received_at', '<', sql<Date>`now() - make_interval(days => ${days})`)
    .executeTakeFirst();
  return Number(r.numDeletedRows);
}
