import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { MISSED_POLICIES, upcomingFires } from '../../domain/schedule-times.js';
import type { TriggerKind } from '../../db/schema.js';
import { REF_CHANGE_TYPES } from '../../domain/forge-event.js';
import { checkParameters } from '../../domain/run-parameters.js';
import { CHAIN_STATUSES } from '../../pipeline/workflow-model.js';
import { AppError, notFound } from '../app-error.js';
import { projectContext } from '../auth/access-plugin.js';
import type { Db } from '../../db/database.js';
import type { Resources } from '../resources.js';
import { createChain, createSchedule, deleteTrigger, getTrigger, listTriggers, triggerKind, updateChain, updateSchedule, type ScheduleFields } from '../store/trigger-store.js';
import { createGitTrigger, createWebhookTrigger, updateEventTrigger } from '../store/event-trigger-store.js';
import { triggerWebhook } from '../store/webhook-store.js';
import { applyScheduleInput, NEW_SCHEDULE, specOf } from '../triggers/schedule-input.js';
import { triggerHook } from './webhook-routes.js';
import { IdParams, VariableMap } from './schemas.js';

const Cron = Type.String({ minLength: 1, maxLength: 200, description: 'A cron expression: 5 fields (minute hour day month weekday), 6 with seconds first, or a macro (@hourly, @daily, @weekly, @monthly, @yearly)' });
const At = Type.String({ minLength: 1, maxLength: 100, description: 'A one-off time: an ISO date and time, "now + 15 minutes", "14:30", "tomorrow 02:00"' });
const TimeZone = Type.String({ minLength: 1, maxLength: 64, description: 'The time zone of the cron expression or one-off time (IANA name; default UTC)' });
const ScheduleFieldsBody = {
  cron: Type.Optional(Cron),
  at: Type.Optional(At),
  timezone: Type.Optional(TimeZone),
  description: Type.Optional(Type.String({ maxLength: 500 })),
  missed: Type.Optional(Type.Union(MISSED_POLICIES.map((p) => Type.Literal(p)), { description: 'After downtime: run once for the latest missed time (run-once), or skip (skip)' })),
  ref: Type.Optional(Type.Union([Type.Null(), Type.String({ minLength: 1, maxLength: 255, pattern: '^(?!-)[^\\s~^:?*\\[\\\\]+$', description: 'Branch or tag the runs use (default: the repository’s default branch)' })])),
  parameters: Type.Optional(VariableMap),
  enabled: Type.Optional(Type.Boolean()),
};
const ChainFieldsBody = {
  statuses: Type.Optional(Type.Array(Type.Union(CHAIN_STATUSES.map((st) => Type.Literal(st))), { maxItems: 5, uniqueItems: true, description: 'The ends of the upstream run that start this workflow (default: any)' })),
  branches: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 255 }), { maxItems: 50, description: 'Branch patterns the upstream run must have run at (default: any)' })),
};
const EventFieldsBody = {
  refs: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 255 }), { maxItems: 50, description: 'For kind git: ref patterns (a branch or tag name pattern, or a full ref like refs/heads/release/*; default: any)' })),
  changes: Type.Optional(Type.Array(Type.Union(REF_CHANGE_TYPES.map((c) => Type.Literal(c))), { maxItems: 3, uniqueItems: true, description: 'For kind git: the changes that fire it (default: any)' })),
  fields: Type.Optional(
    Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$', maxLength: 128 }), Type.String({ minLength: 1, maxLength: 500 }), {
      description: 'For kind webhook: run parameters taken from the JSON body, each by its path (a.b.0.c)',
      maxProperties: 50,
    }),
  ),
};
const CreateBody = Type.Object(
  {
    kind: Type.Union([Type.Literal('schedule'), Type.Literal('workflow'), Type.Literal('git'), Type.Literal('webhook')], {
      description: 'schedule: at times; workflow: when a run of another workflow ends (a chain); git: when a ref of the workflow’s repository changes; webhook: when its URL is called',
    }),
    workflowId: Type.Optional(Type.String({ format: 'uuid', description: 'For kind workflow: the workflow of the project whose runs set this one off' })),
    signed: Type.Optional(Type.Boolean({ description: 'For kind webhook: whether deliveries must be signed with its secret (default true)' })),
    ...ScheduleFieldsBody,
    ...ChainFieldsBody,
    ...EventFieldsBody,
  },
  { additionalProperties: false },
);
const UpdateBody = Type.Object({ ...ScheduleFieldsBody, ...ChainFieldsBody, ...EventFieldsBody }, { additionalProperties: false });
/** The fields each kind takes, besides description and enabled. */
const FIELDS_OF: Record<TriggerKind, readonly string[]> = {
  schedule: ['cron', 'at', 'timezone', 'missed', 'ref', 'parameters'],
  workflow: ['workflowId', 'statuses', 'branches'],
  git: ['refs', 'changes', 'parameters'],
  webhook: ['ref', 'parameters', 'fields', 'signed'],
};
const KIND_FIELDS = [...new Set(Object.values(FIELDS_OF).flat())];

/** 400 for the fields of another kind of trigger. */
function onlyFieldsOf(kind: TriggerKind, body: Record<string, unknown>): void {
  const foreign = KIND_FIELDS.filter((k) => body[k] !== undefined && !FIELDS_OF[kind].includes(k));
  if (foreign.length === 0) return;
  throw new AppError('validation_failed', `A ${kind} trigger takes no ${foreign.join(', ')}.`, foreign.map((field) => ({ field, message: `is not a field of a ${kind} trigger` })));
}

/** Parameters (and the fields that become them) may not take reserved names: refused when the trigger is made, not when it fires. */
function checkParameterNames(body: { parameters?: Record<string, string> | undefined; fields?: Record<string, string> | undefined }): void {
  const open = { inputs: null, protectedNames: new Map<string, string>() };
  const problems = [
    ...checkParameters(body.parameters ?? {}, open),
    ...checkParameters(Object.fromEntries(Object.keys(body.fields ?? {}).map((k) => [k, ''])), open).map((p) => ({ ...p, field: p.field.replace(/^parameters\./, 'fields.') })),
  ];
  if (problems.length > 0) throw new AppError('validation_failed', `Invalid body: ${problems.map((p) => `${p.field} ${p.message}`).join('; ')}.`, problems);
}

/** A chain's upstream: another workflow of the same project. */
async function checkUpstream(db: Db, workflowId: string, upstreamId: string | undefined): Promise<string> {
  if (!upstreamId) throw new AppError('validation_failed', 'A workflow trigger needs workflowId: the workflow whose runs set this one off.', [{ field: 'workflowId', message: 'is required' }]);
  if (upstreamId === workflowId) throw new AppError('validation_failed', 'A workflow cannot follow its own runs.', [{ field: 'workflowId', message: 'is this workflow' }]);
  const both = await db.selectFrom('workflows').select(['id', 'project_id']).where('id', 'in', [workflowId, upstreamId]).execute();
  if (both.length !== 2 || both[0]!.project_id !== both[1]!.project_id) throw new AppError('validation_failed', 'workflowId does not name another workflow of this project.', [{ field: 'workflowId', message: 'no such workflow in this project' }]);
  return upstreamId;
}
const CountQuery = Type.Object({ count: Type.Integer({ minimum: 1, maximum: 100, default: 10 }) }, { additionalProperties: false });
const PreviewBody = Type.Object({ cron: Type.Optional(Cron), at: Type.Optional(At), timezone: Type.Optional(TimeZone), count: Type.Integer({ minimum: 1, maximum: 100, default: 10 }) }, { additionalProperties: false });
const byTrigger = { kind: 'trigger', param: 'id' } as const;

/** How many coming fire times a trigger shows. */
const SHOWN_FIRES = 5;

type Trigger = NonNullable<Awaited<ReturnType<typeof getTrigger>>>;

/** The coming fire times of a schedule: none while it is disabled. */
function upcoming(f: Pick<ScheduleFields, 'enabled' | 'nextFireAt' | 'cron' | 'timezone' | 'at'>, count: number): Date[] {
  if (!f.enabled || !f.nextFireAt) return [];
  // A fire that is due (about to be taken) comes first; then the times after it, or after now.
  const after = new Date(Math.max(f.nextFireAt.getTime(), Date.now()));
  return [f.nextFireAt, ...upcomingFires(specOf(f), after, count - 1)].slice(0, count);
}

/** A trigger as the API shows it, with its coming fire times. */
function withUpcoming(t: Trigger, count = SHOWN_FIRES) {
  return { ...t, upcoming: upcoming({ ...t, at: t.at as Date | null, nextFireAt: t.nextFireAt as Date | null }, count) };
}

/** A branch or tag (or a git trigger) only means something to a workflow with a repository. */
async function refNeedsRepository(db: Db, workflowId: string, kind: TriggerKind): Promise<void> {
  const wf = await db.selectFrom('workflows').select('repository_id').where('id', '=', workflowId).executeTakeFirst();
  if (!wf || wf.repository_id) return;
  if (kind === 'git') throw new AppError('validation_failed', 'A git trigger watches the workflow’s repository, and this workflow has none: set its repositoryId first.', [{ field: 'kind', message: 'the workflow has no repository' }]);
  throw new AppError('validation_failed', `The ${kind}: ref names a branch or tag, but this workflow has no repository.`, [{ field: 'ref', message: 'the workflow has no repository' }]);
}

const fromFile = () => new AppError('conflict', 'This trigger comes from the workflow file’s on: change the file to change or remove it; here it can only be enabled or disabled.');

export const triggerRoutes: FastifyPluginAsyncTypebox<{ res: Resources }> = async (app, { res }) => {
  const { db } = res.database;
  const tags = ['triggers'];

  app.post(
    '/workflows/:id/triggers',
    { config: { access: { capability: 'trigger.write', scope: { kind: 'workflow', param: 'id' } } }, schema: { tags, summary: 'Add a schedule or a chain to a workflow (201)', params: IdParams, body: CreateBody } },
    async (req, reply) => {
      const { kind, workflowId, statuses, branches, refs, changes, fields: bodyFields, signed, ...input } = req.body;
      onlyFieldsOf(kind, req.body);
      checkParameterNames(req.body);
      const common = { description: input.description ?? '', enabled: input.enabled ?? true, parameters: input.parameters ?? {} };
      if (kind === 'git') {
        await refNeedsRepository(db, req.params.id, 'git');
        return reply.status(201).send(withUpcoming(await createGitTrigger(db, projectContext(req), req.params.id, { ...common, refs: refs ?? [], changes: changes ?? [] })));
      }
      if (kind === 'webhook') {
        if (input.ref) await refNeedsRepository(db, req.params.id, 'webhook');
        const trigger = await createWebhookTrigger(db, res.secretBox, projectContext(req), req.params.id, { ...common, ref: input.ref ?? null, fields: bodyFields ?? {} }, signed ?? true);
        const hook = (await triggerWebhook(db, res.secretBox, trigger.id))!;
        return reply.status(201).send({ ...withUpcoming(trigger), webhook: triggerHook(req, res.config.publicOrigin, hook) });
      }
      if (kind === 'workflow') {
        const upstream = await checkUpstream(db, req.params.id, workflowId);
        const chain = await createChain(db, projectContext(req), req.params.id, upstream, { description: input.description ?? '', enabled: input.enabled ?? true, statuses: statuses ?? [], branches: branches ?? [] });
        return reply.status(201).send(withUpcoming(chain));
      }
      const fields = applyScheduleInput(NEW_SCHEDULE, input, new Date());
      if (fields.ref !== null) await refNeedsRepository(db, req.params.id, 'schedule');
      return reply.status(201).send(withUpcoming(await createSchedule(db, projectContext(req), req.params.id, fields)));
    },
  );

  app.get(
    '/workflows/:id/triggers',
    { config: { access: { capability: 'trigger.read', scope: { kind: 'workflow', param: 'id' } } }, schema: { tags, summary: 'The triggers of a workflow: its API ones and those of its file', params: IdParams } },
    async (req) => ({ items: (await listTriggers(db, req.params.id)).map((t) => withUpcoming(t)) }),
  );

  app.get('/triggers/:id', { config: { access: { capability: 'trigger.read', scope: byTrigger } }, schema: { tags, summary: 'A trigger, with its next fire times', params: IdParams } }, async (req) => {
    const t = await getTrigger(db, req.params.id);
    if (!t) throw notFound('Trigger');
    return withUpcoming(t);
  });

  app.get(
    '/triggers/:id/upcoming',
    { config: { access: { capability: 'trigger.read', scope: byTrigger } }, schema: { tags, summary: 'The next fire times of a schedule', params: IdParams, querystring: CountQuery } },
    async (req) => {
      const t = await getTrigger(db, req.params.id);
      if (!t) throw notFound('Trigger');
      return { items: withUpcoming(t, req.query.count).upcoming };
    },
  );

  app.patch(
    '/triggers/:id',
    { config: { access: { capability: 'trigger.write', scope: byTrigger } }, schema: { tags, summary: 'Change, enable or disable a trigger', params: IdParams, body: UpdateBody } },
    async (req) => {
      const kind = await triggerKind(db, req.params.id);
      if (!kind) throw notFound('Trigger');
      onlyFieldsOf(kind, req.body);
      checkParameterNames(req.body);
      const fileOnlyToggles = (source: 'api' | 'file') => {
        if (source === 'file' && Object.keys(req.body).some((k) => k !== 'enabled')) throw fromFile();
      };
      const now = new Date();
      const { statuses, branches, refs, changes, fields: bodyFields, ...input } = req.body;
      const ctx = projectContext(req);
      if (kind === 'webhook' && input.ref) await refNeedsRepository(db, (await getTrigger(db, req.params.id))!.workflowId, 'webhook');
      const common = (current: { description: string; enabled: boolean }) => ({ description: input.description ?? current.description, enabled: input.enabled ?? current.enabled });
      const updated =
        kind === 'workflow'
          ? await updateChain(db, ctx, req.params.id, (current) => {
              fileOnlyToggles(current.source);
              return { ...common(current), statuses: statuses ?? current.statuses, branches: branches ?? current.branches };
            })
          : kind === 'git'
            ? await updateEventTrigger(db, ctx, req.params.id, 'git', (current) => ({ ...common(current), refs: refs ?? current.refs, changes: changes ?? current.changes, parameters: input.parameters ?? current.parameters }))
            : kind === 'webhook'
              ? await updateEventTrigger(db, ctx, req.params.id, 'webhook', (current) => ({
                  ...common(current),
                  ref: input.ref !== undefined ? input.ref : current.ref,
                  parameters: input.parameters ?? current.parameters,
                  fields: bodyFields ?? current.fields,
                }))
              : await updateSchedule(db, ctx, req.params.id, async (current) => {
                  fileOnlyToggles(current.source);
                  if (input.ref) await refNeedsRepository(db, current.workflowId, 'schedule');
                  return applyScheduleInput(current, input, now);
                });
      if (!updated) throw notFound('Trigger');
      return withUpcoming(updated);
    },
  );

  app.delete('/triggers/:id', { config: { access: { capability: 'trigger.write', scope: byTrigger } }, schema: { tags, summary: 'Remove a trigger', params: IdParams } }, async (req, reply) => {
    const deleted = await deleteTrigger(db, projectContext(req), req.params.id, (current) => {
      if (current.source === 'file') throw fromFile();
    });
    if (!deleted) throw notFound('Trigger');
    return reply.status(204).send();
  });

  app.post(
    '/schedules/preview',
    { config: { access: { capability: 'authenticated' } }, schema: { tags, summary: 'The fire times a cron expression or one-off time would give, without storing anything', body: PreviewBody } },
    async (req) => {
      const { count, ...input } = req.body;
      return { items: upcoming(applyScheduleInput(NEW_SCHEDULE, input, new Date()), count) };
    },
  );
};
