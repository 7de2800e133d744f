import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { notFound } from '../app-error.js';
import { projectContext } from '../auth/access-plugin.js';
import { createWorkflow, deleteWorkflow, getWorkflow, listWorkflows, updateWorkflow } from '../store/workflow-store.js';
import type { Resources } from '../resources.js';
import { IMAGE, LABEL } from '../../domain/names.js';
import { RETRYABLE } from '../../domain/run-state.js';
import { IdParams, Name } from './schemas.js';

const fields = {
  script: Type.String({ minLength: 1, maxLength: 262144, description: 'Bash script run as the job (give one of script, definition, path)' }),
  definition: Type.String({ minLength: 1, maxLength: 262144, description: 'The workflow as YAML, as in a `.furrow/*.yml` file' }),
  repositoryId: Type.Union([Type.String({ format: 'uuid' }), Type.Null()], { description: 'Repository whose commit the jobs check out (and where `path` is read)' }),
  path: Type.String({ pattern: '^\\.furrow/[^/]+\\.ya?ml$', description: 'Workflow file in the repository, read at each run’s commit' }),
  defaultEnvironmentId: Type.Union([Type.String({ format: 'uuid' }), Type.Null()], { description: 'Environment used when a run names none' }),
  timeoutSeconds: Type.Union([Type.Integer({ minimum: 1, maximum: 604800 }), Type.Null()], { description: 'Job timeout; null uses the server default' }),
  labels: Type.Array(Type.String({ pattern: LABEL.source }), { maxItems: 32, uniqueItems: true, description: 'Labels a runner must have to take the job' }),
  image: Type.Union([Type.String({ pattern: IMAGE.source }), Type.Null()], { description: 'Container image for container executors (podman)' }),
  network: Type.Union([Type.Literal('default'), Type.Literal('none')], { description: '`none`: the job runs without network (executors that cannot enforce it refuse the job)' }),
  retry: Type.Union([
    Type.Object(
    {
      count: Type.Integer({ minimum: 0, maximum: 10, description: 'Further attempts after the first' }),
      on: Type.Array(Type.Union(RETRYABLE.map((r) => Type.Literal(r))), { uniqueItems: true, description: 'Outcomes that cause a retry' }),
    },
    { additionalProperties: false, description: 'When a job is run again as a new attempt' },
    ),
    Type.Null({ description: 'The default: once after runner_lost, never for a job in an environment' }),
  ]),
};
const CreateBody = Type.Object(
  {
    name: Name,
    script: Type.Optional(fields.script),
    definition: Type.Optional(fields.definition),
    repositoryId: Type.Optional(fields.repositoryId),
    path: Type.Optional(fields.path),
    defaultEnvironmentId: Type.Optional(fields.defaultEnvironmentId),
    timeoutSeconds: Type.Optional(fields.timeoutSeconds),
    labels: Type.Optional(fields.labels),
    image: Type.Optional(fields.image),
    network: Type.Optional(fields.network),
    retry: Type.Optional(fields.retry),
  },
  { additionalProperties: false },
);
const UpdateBody = Type.Partial(CreateBody, { additionalProperties: false });
const byWorkflow = { kind: 'workflow', param: 'id' } as const;

export const workflowRoutes: FastifyPluginAsyncTypebox<{ res: Resources }> = async (app, { res }) => {
  const { db } = res.database;
  const tags = ['workflows'];

  app.post(
    '/projects/:id/workflows',
    { config: { access: { capability: 'workflow.write', scope: { kind: 'project', param: 'id' } } }, schema: { tags, params: IdParams, body: CreateBody } },
    async (req, reply) => reply.status(201).send(await createWorkflow(db, projectContext(req), req.body)),
  );

  app.get('/projects/:id/workflows', { config: { access: { capability: 'workflow.read', scope: { kind: 'project', param: 'id' } } }, schema: { tags, params: IdParams } }, async (req) => ({
    items: await listWorkflows(db, req.params.id),
  }));

  app.get('/workflows/:id', { config: { access: { capability: 'workflow.read', scope: byWorkflow } }, schema: { tags, params: IdParams } }, async (req) => {
    const wf = await getWorkflow(db, req.params.id);
    if (!wf) throw notFound('Workflow');
    return wf;
  });

  app.patch('/workflows/:id', { config: { access: { capability: 'workflow.write', scope: byWorkflow } }, schema: { tags, params: IdParams, body: UpdateBody } }, async (req) =>
    updateWorkflow(db, projectContext(req), req.params.id, req.body),
  );

  app.delete('/workflows/:id', { config: { access: { capability: 'workflow.delete', scope: byWorkflow } }, schema: { tags, params: IdParams } }, async (req, reply) => {
    await deleteWorkflow(db, projectContext(req), req.params.id);
    return reply.status(204).send();
  });
};
