import { sql } from 'kysely';
import type { Db, Tx } from '../../db/database.js';
import type { TriggerKind } from '../../db/schema.js';
import { inTransaction } from '../../db/transaction.js';
import type { MissedPolicy } from '../../domain/schedule-times.js';
import { recordActivity, type ProjectContext } from './activity-store.js';
import { msUntil } from './ms-until.js';

/** A trigger as the API shows it: the fields of every kind (those of other kinds are null or empty). */
export const triggerColumns = [
  'triggers.id',
  'triggers.workflow_id as workflowId',
  'triggers.kind',
  'triggers.source',
  'triggers.description',
  'triggers.enabled',
  'triggers.disabled_reason as disabledReason',
  'triggers.ref',
  'triggers.parameters',
  'triggers.cron',
  'triggers.timezone',
  'triggers.run_at as at',
  'triggers.missed',
  'triggers.next_fire_at as nextFireAt',
  'triggers.last_fired_at as lastFiredAt',
  'triggers.last_run_id as lastRunId',
  'triggers.last_error as lastError',
  'triggers.upstream_workflow_id as upstreamWorkflowId',
  'triggers.upstream_name as upstreamName',
  'triggers.statuses',
  'triggers.branches',
  'triggers.refs',
  'triggers.changes',
  'triggers.fields',
  sql<boolean>`triggers.webhook_secret IS NOT NULL`.as('signed'),
  'triggers.created_at as createdAt',
  'triggers.updated_at as updatedAt',
] as const;

/** When a schedule fires (a cron expression or one instant), and what its runs get. */
interface ScheduleTimes {
  cron: string | null;
  timezone: string;
  at: Date | null;
  missed: MissedPolicy;
  ref: string | null;
  parameters: Record<string, string>;
}

/** What a schedule is made of. */
export interface ScheduleFields extends ScheduleTimes {
  description: string;
  enabled: boolean;
  /** Why it stopped by itself (a one-off that fired); null while enabled or disabled by hand. */
  disabledReason: string | null;
  /** When it fires next (null while disabled or done). */
  nextFireAt: Date | null;
}

/** Tells every instance's schedule clock and git poller to look again (on commit). */
export const wakeTriggerLoops = (tx: Tx) => sql`SELECT pg_notify('furrow_triggers', '')`.execute(tx);

function row(f: ScheduleFields) {
  return {
    description: f.description,
    cron: f.cron,
    timezone: f.timezone,
    run_at: f.at,
    missed: f.missed,
    ref: f.ref,
    parameters: JSON.stringify(f.parameters),
    enabled: f.enabled,
    disabled_reason: f.disabledReason,
    next_fire_at: f.enabled ? f.nextFireAt : null,
  };
}

export const logTrigger = (tx: Tx, ctx: ProjectContext, type: string, id: string, payload: Record<string, unknown>) =>
  recordActivity(tx, { type, organizationId: ctx.organizationId, projectId: ctx.projectId, actorUserId: ctx.actorUserId, subjectType: 'trigger', subjectId: id, payload });

export function createSchedule(db: Db, ctx: ProjectContext, workflowId: string, fields: ScheduleFields) {
  return inTransaction(db, async (tx) => {
    const trigger = await tx
      .insertInto('triggers')
      .values({ workflow_id: workflowId, kind: 'schedule', created_by: ctx.actorUserId, ...row(fields) })
      .returning(triggerColumns)
      .executeTakeFirstOrThrow();
    await logTrigger(tx, ctx, 'trigger.created', trigger.id, { workflowId, kind: 'schedule', cron: fields.cron, at: fields.at });
    await wakeTriggerLoops(tx);
    return trigger;
  });
}

export function listTriggers(db: Db, workflowId: string) {
  return db.selectFrom('triggers').select(triggerColumns).where('workflow_id', '=', workflowId).orderBy('created_at').orderBy('id').execute();
}

export function getTrigger(db: Db, id: string) {
  return db.selectFrom('triggers').select(triggerColumns).where('id', '=', id).executeTakeFirst();
}

/** A stored schedule, for a change to start from. */
export interface StoredSchedule extends ScheduleFields {
  kind: TriggerKind;
  source: 'api' | 'file';
  workflowId: string;
}

/** The schedule `id` under its row lock, so that changes of it take turns. */
async function lockedSchedule(tx: Tx, id: string): Promise<StoredSchedule | undefined> {
  const t = await tx.selectFrom('triggers').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
  if (!t) return undefined;
  const [at, nextFireAt] = [t.run_at as Date | null, t.next_fire_at as Date | null];
  return { kind: t.kind, source: t.source, workflowId: t.workflow_id, description: t.description, cron: t.cron, timezone: t.timezone, at, missed: t.missed, ref: t.ref, parameters: t.parameters, enabled: t.enabled, disabledReason: t.disabled_reason, nextFireAt };
}

/**
 * Changes a schedule to what `change` makes of it as stored (under its lock): undefined when
 * there is no such schedule. A new next fire time lets go of a fire in progress or waiting for
 * another try (its count starts afresh); the same one leaves them be.
 */
export function updateSchedule(db: Db, ctx: ProjectContext, id: string, change: (current: StoredSchedule) => ScheduleFields | Promise<ScheduleFields>) {
  return inTransaction(db, async (tx) => {
    const current = await lockedSchedule(tx, id);
    if (!current) return undefined;
    const fields = await change(current);
    const rearmed = fields.nextFireAt?.getTime() !== current.nextFireAt?.getTime();
    const { next_fire_at, ...rest } = row(fields);
    const trigger = await tx
      .updateTable('triggers')
      .set({ ...rest, ...(rearmed ? { next_fire_at, claimed_until: null, failures: 0 } : {}), updated_at: sql`now()` })
      .where('id', '=', id)
      .returning(triggerColumns)
      .executeTakeFirstOrThrow();
    await logTrigger(tx, ctx, 'trigger.updated', id, { enabled: fields.enabled, cron: fields.cron, at: fields.at });
    if (rearmed) await wakeTriggerLoops(tx);
    return trigger;
  });
}

/** Removes a trigger once `allowed` says so of it (under its lock); false when there is none. */
export function deleteTrigger(db: Db, ctx: ProjectContext, id: string, allowed: (current: StoredSchedule) => void) {
  return inTransaction(db, async (tx) => {
    const current = await lockedSchedule(tx, id);
    if (!current) return false;
    allowed(current);
    await tx.deleteFrom('triggers').where('id', '=', id).execute();
    await logTrigger(tx, ctx, 'trigger.deleted', id, { workflowId: current.workflowId, kind: current.kind });
    await wakeTriggerLoops(tx);
    return true;
  });
}

/** A trigger a workflow file's `on` gives: a schedule, or a chain after a workflow named in it. */
export type FileTrigger =
  | { kind: 'schedule'; cron: string; timezone: string; nextFireAt: Date | null }
  | { kind: 'workflow'; upstreamName: string; statuses: string[]; branches: string[] };

/** What tells two file triggers apart: one that stays the same keeps its state. */
function fileKey(t: { kind: string; cron: string | null; timezone: string; upstreamName: string | null; statuses: string[]; branches: string[] }): string {
  return JSON.stringify(t.kind === 'schedule' ? [t.kind, t.cron, t.timezone] : [t.kind, t.upstreamName?.toLowerCase(), t.statuses, t.branches]);
}

/**
 * Replaces the triggers a workflow file gives (its `on.schedule` and `on.workflow_run`) with
 * `triggers`, in the transaction that stores the file: those that stay keep their state, the
 * others go.
 */
export async function syncFileTriggers(tx: Tx, workflowId: string, triggers: FileTrigger[]): Promise<void> {
  const kept = await tx
    .selectFrom('triggers')
    .select(['id', 'kind', 'cron', 'timezone', 'upstream_name as upstreamName', 'statuses', 'branches'])
    .where('workflow_id', '=', workflowId)
    .where('source', '=', 'file')
    .execute();
  const wanted = new Map(triggers.map((t) => [fileKey(t.kind === 'schedule' ? { ...t, upstreamName: null, statuses: [], branches: [] } : { ...t, cron: null, timezone: 'UTC' }), t]));
  const gone = kept.filter((k) => !wanted.has(fileKey(k))).map((k) => k.id);
  if (gone.length > 0) await tx.deleteFrom('triggers').where('id', 'in', gone).execute();
  for (const k of kept) wanted.delete(fileKey(k));
  if (wanted.size > 0) {
    await tx
      .insertInto('triggers')
      .values(
        [...wanted.values()].map((t) => ({
          workflow_id: workflowId,
          kind: t.kind,
          source: 'file' as const,
          parameters: '{}',
          ...(t.kind === 'schedule' ? { cron: t.cron, timezone: t.timezone, next_fire_at: t.nextFireAt } : { upstream_name: t.upstreamName, statuses: t.statuses, branches: t.branches }),
        })),
      )
      .execute();
  }
  if (gone.length > 0 || wanted.size > 0) await wakeTriggerLoops(tx);
}

/** A due schedule as the clock takes it, with the database's time of the claim. */
export interface DueSchedule extends ScheduleTimes {
  id: string;
  workflowId: string;
  projectId: string;
  organizationId: string;
  due: Date;
  failures: number;
  /** Whether another claim held it before (an instance that died, or a retry's wait): its run may exist. */
  heldBefore: boolean;
  now: Date;
}

/**
 * Takes up to `limit` due schedules for `holdSeconds`: no other instance takes them meanwhile,
 * and if this one dies with them, another takes them once the hold has passed.
 */
export async function claimDueSchedules(db: Db, limit: number, holdSeconds: number): Promise<DueSchedule[]> {
  const { rows } = await sql<DueSchedule>`
    UPDATE triggers t SET claimed_until = now() + make_interval(secs => ${holdSeconds})
    FROM (SELECT id, claimed_until FROM triggers WHERE next_fire_at <= now() AND enabled AND (claimed_until IS NULL OR claimed_until <= now())
          ORDER BY next_fire_at LIMIT ${limit} FOR UPDATE SKIP LOCKED) due, workflows w, projects p
    WHERE t.id = due.id AND w.id = t.workflow_id AND p.id = w.project_id
    RETURNING t.id, t.workflow_id AS "workflowId", p.id AS "projectId", p.organization_id AS "organizationId", t.cron, t.timezone,
      t.run_at AS at, t.missed, t.ref, t.parameters, t.next_fire_at AS due, t.failures, due.claimed_until IS NOT NULL AS "heldBefore", now() AS now`.execute(db);
  return rows;
}

/** How a fire went: the run it started, or why none; `next` is the time to wait for after it. */
export interface FireOutcome {
  next: Date | null;
  firedFor: Date | null;
  runId: string | null;
  /** Why no run started (the run start's error, or the missed fires skipped). */
  error: string | null;
  /** Why the schedule stops firing, when it does. */
  disabledReason: string | null;
  activity: { type: 'trigger.skipped' | 'trigger.failed'; payload: Record<string, unknown> } | null;
}

/**
 * Moves a schedule past the fire time `due` it was claimed for and lets go of it, unless it
 * changed meanwhile (then its new times stand). The run it started is recorded either way; the
 * activity rides along.
 */
export function finishFire(db: Db, s: DueSchedule, o: FireOutcome) {
  return inTransaction(db, async (tx) => {
    const current = await tx.selectFrom('triggers').select('next_fire_at').where('id', '=', s.id).forUpdate().executeTakeFirst();
    if (!current) return; // removed meanwhile
    const same = (current.next_fire_at as Date | null)?.getTime() === s.due.getTime();
    await tx
      .updateTable('triggers')
      .set({
        ...(same
          ? { next_fire_at: o.disabledReason ? null : o.next, enabled: o.disabledReason ? false : sql<boolean>`enabled`, disabled_reason: o.disabledReason, failures: 0, claimed_until: null }
          : {}),
        last_fired_at: o.firedFor ?? sql<Date>`last_fired_at`,
        last_run_id: o.runId ?? sql<string>`last_run_id`,
        last_error: o.error,
      })
      .where('id', '=', s.id)
      .execute();
    if (!same || !o.activity) return;
    await recordActivity(tx, { type: o.activity.type, organizationId: s.organizationId, projectId: s.projectId, actorUserId: null, subjectType: 'trigger', subjectId: s.id, payload: { workflowId: s.workflowId, ...o.activity.payload } });
  });
}

/** Lets another try of a fire that failed for a passing reason come after `delaySeconds`. */
export async function retryFireLater(db: Db, s: DueSchedule, delaySeconds: number, error: string): Promise<void> {
  await db
    .updateTable('triggers')
    .set({ claimed_until: sql`now() + make_interval(secs => ${delaySeconds})`, failures: s.failures + 1, last_error: error })
    .where('id', '=', s.id)
    .where('next_fire_at', '=', s.due)
    .execute();
}

/** Milliseconds until the next schedule can be taken (0: now), or null when none waits. */
export async function msUntilNextFire(db: Db): Promise<number | null> {
  const { rows } = await sql<{ ms: number | null }>`
    SELECT ${msUntil(sql`min(greatest(next_fire_at, coalesce(claimed_until, next_fire_at)))`)} AS ms
    FROM triggers WHERE next_fire_at IS NOT NULL AND enabled`.execute(db);
  return rows[0]?.ms ?? null;
}

/** A chain: what of an upstream workflow's run ends starts the trigger's workflow. */
export interface ChainFields {
  description: string;
  enabled: boolean;
  statuses: string[];
  branches: string[];
}

export function createChain(db: Db, ctx: ProjectContext, workflowId: string, upstreamWorkflowId: string, fields: ChainFields) {
  return inTransaction(db, async (tx) => {
    const trigger = await tx
      .insertInto('triggers')
      .values({ workflow_id: workflowId, kind: 'workflow', upstream_workflow_id: upstreamWorkflowId, parameters: '{}', created_by: ctx.actorUserId, ...fields })
      .returning(triggerColumns)
      .executeTakeFirstOrThrow();
    await logTrigger(tx, ctx, 'trigger.created', trigger.id, { workflowId, kind: 'workflow', upstreamWorkflowId });
    return trigger;
  });
}

/** Changes a chain to what `change` makes of it (under its lock); undefined when there is none. */
export function updateChain(db: Db, ctx: ProjectContext, id: string, change: (current: ChainFields & { source: 'api' | 'file' }) => ChainFields) {
  return inTransaction(db, async (tx) => {
    const t = await tx.selectFrom('triggers').select(['source', 'description', 'enabled', 'statuses', 'branches']).where('id', '=', id).where('kind', '=', 'workflow').forUpdate().executeTakeFirst();
    if (!t) return undefined;
    const fields = change(t);
    const trigger = await tx.updateTable('triggers').set({ ...fields, updated_at: sql`now()` }).where('id', '=', id).returning(triggerColumns).executeTakeFirstOrThrow();
    await logTrigger(tx, ctx, 'trigger.updated', id, { enabled: fields.enabled });
    return trigger;
  });
}

/** The kind of trigger `id` is, or undefined. */
export async function triggerKind(db: Db, id: string) {
  return (await db.selectFrom('triggers').select('kind').where('id', '=', id).executeTakeFirst())?.kind;
}

/** A chain a finished run may set off, with where its workflow lives. */
export interface Chain {
  id: string;
  workflowId: string;
  repositoryId: string | null;
  projectId: string;
  organizationId: string;
  statuses: string[];
  branches: string[];
}

/**
 * The enabled chains of its project that follow the workflow `upstreamId`: by id, or by name for a
 * file's (names compare without case, as workflow names do).
 */
export function chainsFollowing(upstreamId: string) {
  return sql<Chain>`
    SELECT t.id, t.workflow_id AS "workflowId", w.repository_id AS "repositoryId", w.project_id AS "projectId", p.organization_id AS "organizationId", t.statuses, t.branches
    FROM triggers t JOIN workflows w ON w.id = t.workflow_id JOIN projects p ON p.id = w.project_id JOIN workflows u ON u.id = ${upstreamId}
    WHERE t.kind = 'workflow' AND t.enabled AND w.project_id = u.project_id AND (t.upstream_workflow_id = u.id OR lower(t.upstream_name) = lower(u.name))`;
}

export async function chainsAfter(db: Db, upstreamId: string): Promise<Chain[]> {
  const { rows } = await sql<Chain>`${chainsFollowing(upstreamId)} ORDER BY t.created_at, t.id`.execute(db);
  return rows;
}

/** Records what a chain's firing did: the run it started, or why none (with `trigger.failed`). */
export function recordChainFire(db: Db, chain: Chain, upstreamRunId: string, outcome: { runId: string } | { error: string; code: string }) {
  return inTransaction(db, async (tx) => {
    const ok = 'runId' in outcome;
    await tx
      .updateTable('triggers')
      .set({ last_fired_at: sql`now()`, last_run_id: ok ? outcome.runId : sql<string>`last_run_id`, last_error: ok ? null : outcome.error })
      .where('id', '=', chain.id)
      .execute();
    if (!ok) {
      const payload = { workflowId: chain.workflowId, upstreamRunId, code: outcome.code, message: outcome.error };
      await recordActivity(tx, { type: 'trigger.failed', organizationId: chain.organizationId, projectId: chain.projectId, actorUserId: null, subjectType: 'trigger', subjectId: chain.id, payload });
    }
  });
}

