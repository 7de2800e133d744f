import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { MISSED_POLICIES, upcomingFires } from '../../domain/schedule-times.js';
import { CHAIN_STATUSES } from '../../pipeline/workflow-model.js';
import { AppError, notFound } from '../app-error.js';
import { projectContext } from '../auth/access-plugin.js';
import type { Db } from '../../db/database.js';
import type { Resources } from '../resources.js';
import { createChain, createSchedule, deleteTrigger, getTrigger, listTriggers, triggerKind, updateChain, updateSchedule, type ScheduleFields } from '../store/trigger-store.js';
import { applyScheduleInput, NEW_SCHEDULE, specOf } from '../triggers/schedule-input.js';
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
const CreateBody = Type.Object(
  {
    kind: Type.Union([Type.Literal('schedule'), Type.Literal('workflow')], { description: 'schedule: at times; workflow: when a run of another workflow ends (a chain)' }),
    workflowId: Type.Optional(Type.String({ format: 'uuid', description: 'For kind workflow: the workflow of the project whose runs set this one off' })),
    ...ScheduleFieldsBody,
    ...ChainFieldsBody,
  },
  { additionalProperties: false },
);
const UpdateBody = Type.Object({ ...ScheduleFieldsBody, ...ChainFieldsBody }, { additionalProperties: false });
const SCHEDULE_ONLY = ['cron', 'at', 'timezone', 'missed', 'ref', 'parameters'] as const;
const CHAIN_ONLY = ['workflowId', 'statuses', 'branches'] as const;

/** 400 for the fields of the other kind of trigger. */
function onlyFieldsOf(kind: 'schedule' | 'workflow', body: Record<string, unknown>): void {
  const foreign = (kind === 'schedule' ? CHAIN_ONLY : SCHEDULE_ONLY).filter((k) => body[k] !== undefined);
  if (foreign.length === 0) return;
  throw new AppError('validation_failed', `A ${kind} trigger takes no ${foreign.join(', ')}.`, foreign.map((field) => ({ field, message: `is not a field of a ${kind} trigger` })));
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

/** A branch or tag only means something to a workflow with a repository. */
async function refNeedsRepository(db: Db, workflowId: string): Promise<void> {
  const wf = await db.selectFrom('workflows').select('repository_id').where('id', '=', workflowId).executeTakeFirst();
  if (wf && !wf.repository_id) throw new AppError('validation_failed', 'The schedule: ref names a branch or tag, but this workflow has no repository.', [{ field: 'ref', message: 'the workflow has no repository' }]);
}

const fromFile = () => new AppError('conflict', 'This trigger comes from the workflow file’s on: change the file to change or remove it; here it can only be enabled or disabled.');

export const triggerRoutes: FastifyPluginAsyncTypebox<{ res: Resources }> = async (app, { res }) => {
  const { db } = res.database;
  const tags = ['triggers'];

  app.post(
    '/workflows/:id/triggers',
    { config: { access: { capability: 'trigger.write', scope: { kind: 'workflow', param: 'id' } } }, schema: { tags, summary: 'Add a schedule or a chain to a workflow (201)', params: IdParams, body: CreateBody } },
    async (req, reply) => {
      const { kind, workflowId, statuses, branches, ...input } = req.body;
      onlyFieldsOf(kind, req.body);
      if (kind === 'workflow') {
        const upstream = await checkUpstream(db, req.params.id, workflowId);
        const chain = await createChain(db, projectContext(req), req.params.id, upstream, { description: input.description ?? '', enabled: input.enabled ?? true, statuses: statuses ?? [], branches: branches ?? [] });
        return reply.status(201).send(withUpcoming(chain));
      }
      const fields = applyScheduleInput(NEW_SCHEDULE, input, new Date());
      if (fields.ref !== null) await refNeedsRepository(db, req.params.id);
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
      const fileOnlyToggles = (source: 'api' | 'file') => {
        if (source === 'file' && Object.keys(req.body).some((k) => k !== 'enabled')) throw fromFile();
      };
      const now = new Date();
      const { statuses, branches, ...input } = req.body;
      const updated =
        kind === 'workflow'
          ? await updateChain(db, projectContext(req), req.params.id, (current) => {
              fileOnlyToggles(current.source);
              return { description: input.description ?? current.description, enabled: input.enabled ?? current.enabled, statuses: statuses ?? current.statuses, branches: branches ?? current.branches };
            })
          : await updateSchedule(db, projectContext(req), req.params.id, async (current) => {
              fileOnlyToggles(current.source);
              if (input.ref) await refNeedsRepository(db, current.workflowId);
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
