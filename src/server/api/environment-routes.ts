import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { notFound } from '../app-error.js';
import { projectContext } from '../auth/access-plugin.js';
import { listDeployments } from '../store/deployment-store.js';
import { createEnvironment, deleteEnvironment, getEnvironment, listEnvironments, updateEnvironment } from '../store/environment-store.js';
import type { Resources } from '../resources.js';
import { listCursor } from './list-cursor.js';
import { IdParams, Name, VariableMap } from './schemas.js';

const RequiresApproval = Type.Boolean({ description: 'Jobs running in this environment wait until a manager approves them' });
const Concurrency = Type.Union([Type.Literal('queue'), Type.Literal('supersede'), Type.Literal('cancel-in-progress'), Type.Null()], {
  description: 'The concurrency group of the jobs that run here and name none: queue (one at a time, in order), supersede (a newer run skips those not started), cancel-in-progress, or null (none)',
});
const CreateBody = Type.Object({ name: Name, variables: Type.Optional(VariableMap), requiresApproval: Type.Optional(RequiresApproval), concurrency: Type.Optional(Concurrency) }, { additionalProperties: false });
const UpdateBody = Type.Partial(CreateBody, { additionalProperties: false });
const byEnv = { kind: 'environment', param: 'id' } as const;
const PageQuery = Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }), cursor: Type.Optional(Type.String({ maxLength: 512 })) }, { additionalProperties: false });

export const environmentRoutes: FastifyPluginAsyncTypebox<{ res: Resources }> = async (app, { res }) => {
  const { db } = res.database;
  const tags = ['environments'];

  app.post(
    '/projects/:id/environments',
    { config: { access: { capability: 'environment.write', scope: { kind: 'project', param: 'id' } } }, schema: { tags, params: IdParams, body: CreateBody } },
    async (req, reply) => reply.status(201).send(await createEnvironment(db, projectContext(req), { ...req.body, variables: req.body.variables ?? {} })),
  );

  app.get('/projects/:id/environments', { config: { access: { capability: 'environment.read', scope: { kind: 'project', param: 'id' } } }, schema: { tags, params: IdParams } }, async (req) => ({
    items: await listEnvironments(db, req.params.id),
  }));

  app.get('/environments/:id', { config: { access: { capability: 'environment.read', scope: byEnv } }, schema: { tags, params: IdParams } }, async (req) => {
    const env = await getEnvironment(db, req.params.id);
    if (!env) throw notFound('Environment');
    const { items } = await listDeployments(db, env.id, { limit: 1, succeededOnly: true });
    return { ...env, lastDeployment: items[0] ?? null };
  });

  app.get(
    '/environments/:id/deployments',
    { config: { access: { capability: 'environment.read', scope: byEnv } }, schema: { tags, summary: 'What was deployed to the environment: the runs that had jobs in it, newest first', params: IdParams, querystring: PageQuery } },
    async (req) => {
      return listDeployments(db, req.params.id, { limit: req.query.limit, cursor: listCursor(req.query.cursor) });
    },
  );

  app.patch('/environments/:id', { config: { access: { capability: 'environment.write', scope: byEnv } }, schema: { tags, params: IdParams, body: UpdateBody } }, async (req) =>
    updateEnvironment(db, projectContext(req), req.params.id, req.body),
  );

  app.delete('/environments/:id', { config: { access: { capability: 'environment.delete', scope: byEnv } }, schema: { tags, params: IdParams } }, async (req, reply) => {
    await deleteEnvironment(db, projectContext(req), req.params.id);
    return reply.status(204).send();
  });
};
