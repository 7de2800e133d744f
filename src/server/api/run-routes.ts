import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';
import { Type } from 'typebox';
import { notFound } from '../app-error.js';
import { callerOf, principalOf } from '../auth/access-plugin.js';
import { approveJob } from '../runs/approve-job.js';
import { cancelRun } from '../runs/cancel-run.js';
import { rerun } from '../runs/rerun.js';
import { startRun } from '../runs/start-run.js';
import { waitingReasons } from '../store/runner-store.js';
import { getRun, listJobsWithSteps, listRuns, runLogJobs } from '../store/run-store.js';
import { listCursor } from './list-cursor.js';
import { runCommitStatuses } from '../store/commit-status-store.js';
import type { Resources } from '../resources.js';
import { IdParams, VariableMap } from './schemas.js';

const StatusSchema = Type.Union(['queued', 'running', 'succeeded', 'failed', 'canceled', 'timed_out', 'skipped'].map((s) => Type.Literal(s)));
const StartBody = Type.Object(
  {
    environmentId: Type.Optional(Type.String({ format: 'uuid', description: 'Environment to run in (default: the workflow’s)' })),
    parameters: Type.Optional(VariableMap),
    ref: Type.Optional(Type.String({ minLength: 1, maxLength: 255, pattern: '^(?!-)[^\\s~^:?*\\[\\\\]+$', description: 'Branch or tag to run at (default: the repository’s default branch)' })),
    commit: Type.Optional(Type.String({ pattern: '^[0-9a-f]{40}$', description: 'Commit to run at (its full sha); `ref` then only names it' })),
  },
  { additionalProperties: false },
);
const RerunBody = Type.Object(
  { failedOnly: Type.Boolean({ default: false, description: 'Run only the jobs that did not succeed (and those after them); keep the rest' }) },
  { additionalProperties: false },
);
const CancelBody = Type.Object(
  { force: Type.Boolean({ default: false, description: 'Stop `always()` and `cancelled()` jobs too (a second cancel does the same)' }) },
  { additionalProperties: false },
);
const JobsQuery = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: 500, default: 100 }),
    cursor: Type.Optional(Type.String({ maxLength: 512 })),
  },
  { additionalProperties: false },
);
const ListQuery = Type.Object(
  {
    workflowId: Type.Optional(Type.String({ format: 'uuid' })),
    status: Type.Optional(StatusSchema),
    limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
    cursor: Type.Optional(Type.String({ maxLength: 512 })),
  },
  { additionalProperties: false },
);
const LogQuery = Type.Object({ offset: Type.Integer({ minimum: 0, default: 0, description: 'Byte offset to start from' }) }, { additionalProperties: false });
const byRun = { kind: 'run', param: 'id' } as const;

export const runRoutes: FastifyPluginAsyncTypebox<{ res: Resources }> = async (app, { res }) => {
  const { db } = res.database;
  const tags = ['runs'];

  app.post(
    '/workflows/:id/runs',
    {
      config: { access: { capability: 'run.start', scope: { kind: 'workflow', param: 'id' } } },
      schema: { tags, summary: 'Start a run (queued; 202)', params: IdParams, body: StartBody, response: { 202: Type.Object({ id: Type.String(), number: Type.Integer(), status: Type.String() }) } },
    },
    async (req, reply) => {
      const actor = principalOf(req).userId;
      const run = await startRun(res, {
        workflowId: req.params.id,
        target: { ref: req.body.ref, commit: req.body.commit, event: 'manual' },
        environmentId: req.body.environmentId,
        parameters: req.body.parameters ?? {},
        reason: { type: 'manual', userId: actor },
        actorUserId: actor,
      });
      return reply.status(202).header('location', `/api/v1/runs/${run.id}`).send(run);
    },
  );

  app.post(
    '/runs/:id/rerun',
    {
      config: { access: { capability: 'run.start', scope: byRun } },
      schema: { tags, summary: 'Run a finished run again as a new run, at the same commit with the same plan (202)', params: IdParams, body: RerunBody },
    },
    async (req, reply) => {
      const actor = principalOf(req).userId;
      const run = await rerun(res, req.params.id, req.body.failedOnly, actor);
      return reply.status(202).header('location', `/api/v1/runs/${run.id}`).send(run);
    },
  );

  app.post(
    '/jobs/:id/approve',
    { config: { access: { capability: 'job.approve', scope: { kind: 'job', param: 'id' } } }, schema: { tags, summary: 'Let a job into its protected environment', params: IdParams } },
    async (req) => approveJob(db, req.params.id, principalOf(req).userId),
  );

  app.get(
    '/projects/:id/runs',
    { config: { access: { capability: 'run.read', scope: { kind: 'project', param: 'id' } } }, schema: { tags, summary: 'Runs of a project, newest first', params: IdParams, querystring: ListQuery } },
    async (req) => {
      const cursor = listCursor(req.query.cursor);
      return listRuns(db, {
        projectId: callerOf(req).scope.projectId!,
        limit: req.query.limit,
        ...(req.query.workflowId ? { workflowId: req.query.workflowId } : {}),
        ...(req.query.status ? { status: req.query.status as never } : {}),
        ...(cursor ? { cursor } : {}),
      });
    },
  );

  app.get('/runs/:id', { config: { access: { capability: 'run.read', scope: byRun } }, schema: { tags, params: IdParams } }, async (req) => {
    const run = await getRun(db, req.params.id);
    if (!run) throw notFound('Run');
    return run;
  });

  app.get(
    '/runs/:id/commit-statuses',
    {
      config: { access: { capability: 'run.read', scope: byRun } },
      schema: { tags, summary: 'The commit statuses the run reports to its forge, in order: each queued, sent or failed (with the error); a failure never fails the run', params: IdParams },
    },
    async (req) => ({ items: await runCommitStatuses(db, req.params.id) }),
  );

  app.get(
    '/runs/:id/jobs',
    {
      config: { access: { capability: 'run.read', scope: byRun } },
      schema: { tags, summary: 'Jobs of the run (every attempt, in the order made, a page at a time) with their steps; a queued job says why it waits', params: IdParams, querystring: JobsQuery },
    },
    async (req) => {
      const page = await listJobsWithSteps(db, req.params.id, { limit: req.query.limit, cursor: listCursor(req.query.cursor) });
      const reasons = await waitingReasons(db, page.items.filter((j) => j.status === 'queued').map((j) => j.id));
      return { ...page, items: page.items.map((j) => ({ ...j, waitingReason: waitingReasonOf(j, reasons.get(j.id)) })) };
    },
  );

  app.post(
    '/runs/:id/cancel',
    {
      config: { access: { capability: 'run.cancel', scope: byRun } },
      schema: { tags, summary: 'Cancel a queued or running run (202); `always()` jobs still run unless forced or canceled twice', params: IdParams, body: Type.Optional(CancelBody) },
    },
    async (req, reply) => {
      await cancelRun(db, req.params.id, principalOf(req).userId, req.body?.force ?? false);
      return reply.status(202).send(await getRun(db, req.params.id));
    },
  );

  app.get(
    '/runs/:id/log',
    { config: { access: { capability: 'run.read', scope: byRun } }, schema: { tags, summary: 'The run’s log as text, from a byte offset', params: IdParams, querystring: LogQuery } },
    async (req, reply) => {
      // The latest attempt of each job: a retried attempt's log stays readable at /jobs/:id/log.
      const jobs = await runLogJobs(db, req.params.id);
      const log = res.logs.runLog(
        jobs.map((j) => ({ id: j.id, logSize: j.logSize, title: `${j.name} (attempt ${j.attempt})` })),
        req.query.offset,
      );
      return sendLog(reply, log.body, log.size);
    },
  );

  app.get(
    '/jobs/:id/log',
    { config: { access: { capability: 'run.read', scope: { kind: 'job', param: 'id' } } }, schema: { tags, summary: 'One job’s log as text, from a byte offset', params: IdParams, querystring: LogQuery } },
    async (req, reply) => {
      const job = await db.selectFrom('jobs').select('log_size').where('id', '=', req.params.id).executeTakeFirstOrThrow();
      return sendLog(reply, res.logs.stream(req.params.id, req.query.offset), job.log_size);
    },
  );
};

/** Why a queued job waits: held back after a lost attempt, or what the runners lack. */
function waitingReasonOf(job: { status: string; notBefore: Date | string | null }, runners: string | undefined): string | null {
  if (job.status !== 'queued') return null;
  if (job.notBefore && new Date(job.notBefore) > new Date()) {
    return `held back until ${new Date(job.notBefore).toISOString()}, so that its lost earlier attempt cannot still be running`;
  }
  return runners ?? null;
}

/** Streams logs page by page, so a 200 MB log never sits in memory. */
function sendLog(reply: FastifyReply, body: Readable, size: number) {
  return reply
    .type('text/plain; charset=utf-8')
    .header('x-log-size', String(size))
    .header('cache-control', 'no-store')
    .send(body);
}
