import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { notFound } from '../app-error.js';
import { projectContext } from '../auth/access-plugin.js';
import type { Resources } from '../resources.js';
import { createSecret, deleteSecret, getSecret, listSecrets, updateSecret } from '../store/secret-store.js';
import { IdParams } from './schemas.js';

// Names and values are checked by the store, which says why a value is refused.
const Value = Type.String({ description: 'The secret (at least 4 characters, at most 64 KiB); never returned' });
const CreateBody = Type.Object(
  {
    name: Type.String({ description: 'Variable name: letters, digits and underscores, not starting with a digit or FURROW_' }),
    kind: Type.Optional(Type.Union([Type.Literal('env'), Type.Literal('ssh')], { description: '`env` (default): an environment variable; `ssh`: a private key' })),
    value: Value,
    environmentId: Type.Optional(Type.String({ format: 'uuid', description: 'Only for runs in this environment (default: every run of the project)' })),
  },
  { additionalProperties: false },
);
const UpdateBody = Type.Object({ value: Value }, { additionalProperties: false });
const ListQuery = Type.Object({ environmentId: Type.Optional(Type.String({ format: 'uuid', description: 'Only this environment’s secrets' })) }, { additionalProperties: false });
const byProject = { kind: 'project', param: 'id' } as const;
const bySecret = { kind: 'secret', param: 'id' } as const;

export const secretRoutes: FastifyPluginAsyncTypebox<{ res: Resources }> = async (app, { res }) => {
  const { db } = res.database;
  const tags = ['secrets'];

  app.get('/projects/:id/secrets', { config: { access: { capability: 'secret.read', scope: byProject } }, schema: { tags, summary: 'Secrets of a project, without their values', params: IdParams, querystring: ListQuery } }, async (req) => ({
    items: await listSecrets(db, req.params.id, req.query.environmentId),
  }));

  app.post('/projects/:id/secrets', { config: { access: { capability: 'secret.write', scope: byProject } }, schema: { tags, summary: 'Add a secret to the project or one of its environments', params: IdParams, body: CreateBody } }, async (req, reply) => {
    const { name, kind = 'env', value, environmentId = null } = req.body;
    return reply.status(201).send(await createSecret(db, res.secretBox, projectContext(req), { name, kind, value, environmentId }));
  });

  app.get('/secrets/:id', { config: { access: { capability: 'secret.read', scope: bySecret } }, schema: { tags, summary: 'A secret, without its value', params: IdParams } }, async (req) => {
    const secret = await getSecret(db, req.params.id);
    if (!secret) throw notFound('Secret');
    return secret;
  });

  app.put('/secrets/:id', { config: { access: { capability: 'secret.write', scope: bySecret } }, schema: { tags, summary: 'Replace a secret’s value', params: IdParams, body: UpdateBody } }, async (req) =>
    updateSecret(db, res.secretBox, projectContext(req), req.params.id, req.body.value),
  );

  app.delete('/secrets/:id', { config: { access: { capability: 'secret.delete', scope: bySecret } }, schema: { tags, summary: 'Delete a secret', params: IdParams } }, async (req, reply) => {
    await deleteSecret(db, projectContext(req), req.params.id);
    return reply.status(204).send();
  });
};
