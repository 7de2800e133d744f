import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';
import { Type } from 'typebox';
import { AppError, notFound } from '../app-error.js';
import { callerOf, principalOf } from '../auth/access-plugin.js';
import { requestRunCancel } from '../store/job-store.js';
import { waitingReasons } from '../store/runner-store.js';
import { approveJob } from '../store/approve-job.js';
import { queueRun } from '../store/queue-run.js';
import { decodeRunCursor, getRun, listJobsWithSteps, listRuns } from '../store/run-store.js';
import { manualParameters } from '../triggers/manual-parameters.js';
import { planWorkflowRun } from '../triggers/workflow-plan.js';
import { planOptions, rerun } from '../triggers/rerun.js';
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
      const { plan, origin } = await planWorkflowRun(planOptions(res), req.params.id, { ref: req.body.ref, commit: req.body.commit, event: 'manual' });
      const run = await queueRun(db, {
        workflowId: req.params.id,
        plan,
        origin,
        environmentId: req.body.environmentId,
        parameters: manualParameters(plan, req.body.parameters ?? {}),
        reason: { type: 'manual', userId: actor },
        actorUserId: actor,
        defaultTimeoutSeconds: res.config.defaultTimeoutSeconds,
        leaseSeconds: res.config.jobLeaseSeconds,
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
      const run = await rerun(db, res, req.params.id, req.body.failedOnly, actor);
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
      const cursor = req.query.cursor ? decodeRunCursor(req.query.cursor) : undefined;
      if (req.query.cursor && !cursor) throw new AppError('validation_failed', 'cursor is not one this API handed out.', [{ field: 'cursor', message: 'is not valid' }]);
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
    '/runs/:id/jobs',
    {
      config: { access: { capability: 'run.read', scope: byRun } },
      schema: { tags, summary: 'Jobs of the run (every attempt) with their steps; a queued job says why it waits', params: IdParams },
    },
    async (req) => {
      const jobs = await listJobsWithSteps(db, req.params.id);
      const reasons = await waitingReasons(db, jobs.filter((j) => j.status === 'queued').map((j) => j.id));
      return { items: jobs.map((j) => ({ ...j, waitingReason: reasons.get(j.id) ?? null })) };
    },
  );

  app.post('/runs/:id/cancel', { config: { access: { capability: 'run.cancel', scope: byRun } }, schema: { tags, summary: 'Cancel a queued or running run (202)', params: IdParams } }, async (req, reply) => {
    await requestRunCancel(db, req.params.id, principalOf(req).userId);
    return reply.status(202).send(await getRun(db, req.params.id));
  });

  app.get(
    '/runs/:id/log',
    { config: { access: { capability: 'run.read', scope: byRun } }, schema: { tags, summary: 'The run’s log as text, from a byte offset', params: IdParams, querystring: LogQuery } },
    async (req, reply) => {
      // The latest attempt of each job: a retried attempt's log stays readable at /jobs/:id/log.
      const jobs = (await listJobsWithSteps(db, req.params.id)).filter((j) => !j.retried);
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

/** Streams logs page by page, so a 200 MB log never sits in memory. */
function sendLog(reply: FastifyReply, body: Readable, size: number) {
  return reply
    .type('text/plain; charset=utf-8')
    .header('x-log-size', String(size))
    .header('cache-control', 'no-store')
    .send(body);
}
