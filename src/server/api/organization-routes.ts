import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { callerOf, principalOf } from '../auth/access-plugin.js';
import { createOrganization, deleteOrganization, getOrganization, listOrganizations, renameOrganization } from '../store/organization-store.js';
import { notFound } from '../app-error.js';
import type { Resources } from '../resources.js';
import { ConfirmQuery, IdParams, Name } from './schemas.js';

const byId = { kind: 'organization', param: 'id' } as const;
const Body = Type.Object({ name: Name }, { additionalProperties: false });

export const organizationRoutes: FastifyPluginAsyncTypebox<{ res: Resources }> = async (app, { res }) => {
  const { db } = res.database;
  const tags = ['organizations'];

  app.post('/organizations', { config: { access: { capability: 'authenticated' } }, schema: { tags, summary: 'Create an organization; the caller becomes its owner', body: Body } }, async (req, reply) => {
    const org = await createOrganization(db, req.body.name, principalOf(req).userId);
    return reply.status(201).send(org);
  });

  app.get('/organizations', { config: { access: { capability: 'authenticated' } }, schema: { tags, summary: 'Organizations the caller belongs to' } }, async (req) => {
    const p = principalOf(req);
    return { items: await listOrganizations(db, p.userId, p.isAdmin) };
  });

  app.get('/organizations/:id', { config: { access: { capability: 'organization.read', scope: byId } }, schema: { tags, params: IdParams } }, async (req) => {
    const org = await getOrganization(db, req.params.id);
    if (!org) throw notFound('Organization');
    return { ...org, role: callerOf(req).role };
  });

  app.patch('/organizations/:id', { config: { access: { capability: 'organization.update', scope: byId } }, schema: { tags, params: IdParams, body: Body } }, async (req) =>
    renameOrganization(db, req.params.id, req.body.name, principalOf(req).userId),
  );

  app.delete(
    '/organizations/:id',
    { config: { access: { capability: 'organization.delete', scope: byId } }, schema: { tags, summary: 'Delete the organization; `?confirm=` must be its name', params: IdParams, querystring: ConfirmQuery } },
    async (req, reply) => {
      await deleteOrganization(db, req.params.id, req.query.confirm, principalOf(req).userId);
      return reply.status(204).send();
    },
  );
};
