import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { notFound } from '../app-error.js';
import { callerOf, principalOf } from '../auth/access-plugin.js';
import { rolesIn } from '../store/access-store.js';
import { createProject, deleteProject, getProject, listProjects, updateProject } from '../store/project-store.js';
import type { Resources } from '../resources.js';
import { ConfirmQuery, IdParams, Name } from './schemas.js';

const Body = Type.Object({ name: Name }, { additionalProperties: false });
const UpdateBody = Type.Object(
  {
    name: Type.Optional(Name),
    pullRequestSecrets: Type.Optional(Type.Boolean({ description: 'Whether runs of pull requests get the project’s secrets (default false: a pull request’s code runs without them)' })),
  },
  { additionalProperties: false },
);
const byProject = { kind: 'project', param: 'id' } as const;

export const projectRoutes: FastifyPluginAsyncTypebox<{ res: Resources }> = async (app, { res }) => {
  const { db } = res.database;
  const tags = ['projects'];

  app.post(
    '/organizations/:id/projects',
    { config: { access: { capability: 'project.create', scope: { kind: 'organization', param: 'id' } } }, schema: { tags, params: IdParams, body: Body } },
    async (req, reply) => reply.status(201).send(await createProject(db, req.params.id, req.body.name, principalOf(req).userId)),
  );

  app.get(
    '/organizations/:id/projects',
    { config: { access: { capability: 'project.read', scope: { kind: 'organization', param: 'id' } } }, schema: { tags, params: IdParams, summary: 'Projects of the organization the caller can see' } },
    async (req) => {
      const { principal } = callerOf(req);
      // Organization members (and admins) see every project; others only those they belong to.
      const roles = principal.isAdmin ? null : await rolesIn(db, principal.userId, { organizationId: req.params.id, projectId: null });
      return { items: await listProjects(db, req.params.id, principal.userId, principal.isAdmin || !!roles?.organization) };
    },
  );

  app.get('/projects/:id', { config: { access: { capability: 'project.read', scope: byProject } }, schema: { tags, params: IdParams } }, async (req) => {
    const project = await getProject(db, req.params.id);
    if (!project) throw notFound('Project');
    return { ...project, role: callerOf(req).role };
  });

  app.patch('/projects/:id', { config: { access: { capability: 'project.update', scope: byProject } }, schema: { tags, params: IdParams, body: UpdateBody } }, async (req) =>
    updateProject(db, req.params.id, req.body, principalOf(req).userId),
  );

  app.delete(
    '/projects/:id',
    { config: { access: { capability: 'project.delete', scope: byProject } }, schema: { tags, summary: 'Delete the project; `?confirm=` must be its name', params: IdParams, querystring: ConfirmQuery } },
    async (req, reply) => {
      await deleteProject(db, req.params.id, req.query.confirm, principalOf(req).userId);
      return reply.status(204).send();
    },
  );
};
