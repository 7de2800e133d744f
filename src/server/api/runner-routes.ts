import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { notFound } from '../app-error.js';
import { principalOf } from '../auth/access-plugin.js';
import type { Resources } from '../resources.js';
import { createRunnerToken, getRunner, listRunners, listRunnerTokens, removeRunner, revokeRunnerToken, setRunnerPaused } from '../store/runner-store.js';
import { IdParams } from './schemas.js';

const TokenBody = Type.Object(
  {
    description: Type.Optional(Type.String({ maxLength: 200, description: 'What the token is for' })),
    maxUses: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, description: 'How many runners may register with it (default 1)' })),
    // The pattern keeps out year 0000, a valid date-time that PostgreSQL cannot store.
    expiresAt: Type.Optional(Type.String({ format: 'date-time', pattern: '^[1-9]', description: 'When it stops working (default: never)' })),
    expiresInSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 366 * 86_400, description: 'Or: how long from now it works' })),
  },
  { additionalProperties: false },
);
type TokenBody = Static<typeof TokenBody>;
const newToken = (organizationId: string | null, body: TokenBody, actorUserId: string) => ({ ...body, organizationId, description: body.description ?? '', actorUserId });
const byRunner = { kind: 'runner', param: 'id' } as const;
const byOrganization = { kind: 'organization', param: 'id' } as const;

/**
 * Runners and their registration tokens. Instance admins manage instance-wide runners (which take
 * any project's jobs); organization owners manage their organization's runners. Members of an
 * organization see the runners that can take its jobs.
 */
export const runnerRoutes: FastifyPluginAsyncTypebox<{ res: Resources }> = async (app, { res }) => {
  const { db } = res.database;
  const tags = ['runners'];

  app.post(
    '/runner-tokens',
    { config: { access: { capability: 'admin' } }, schema: { tags, summary: 'Create an instance-wide registration token (shown once)', body: TokenBody } },
    async (req, reply) => reply.status(201).send(await createRunnerToken(db, newToken(null, req.body, principalOf(req).userId))),
  );
  app.get('/runner-tokens', { config: { access: { capability: 'admin' } }, schema: { tags, summary: 'Instance-wide registration tokens (never their values)' } }, async () => ({
    items: await listRunnerTokens(db, null),
  }));
  app.post(
    '/organizations/:id/runner-tokens',
    { config: { access: { capability: 'runner.manage', scope: byOrganization } }, schema: { tags, summary: 'Create a registration token for the organization’s runners (shown once)', params: IdParams, body: TokenBody } },
    async (req, reply) =>
      reply.status(201).send(await createRunnerToken(db, newToken(req.params.id, req.body, principalOf(req).userId))),
  );
  app.get(
    '/organizations/:id/runner-tokens',
    { config: { access: { capability: 'runner.manage', scope: byOrganization } }, schema: { tags, summary: 'The organization’s registration tokens (never their values)', params: IdParams } },
    async (req) => ({ items: await listRunnerTokens(db, req.params.id) }),
  );
  app.delete(
    '/runner-tokens/:id',
    { config: { access: { capability: 'runner.manage', scope: { kind: 'runner_token', param: 'id' } } }, schema: { tags, summary: 'Revoke a registration token: it registers no more runners; those it registered keep working', params: IdParams } },
    async (req, reply) => {
      await revokeRunnerToken(db, req.params.id, principalOf(req).userId);
      return reply.status(204).send();
    },
  );

  app.get('/runners', { config: { access: { capability: 'admin' } }, schema: { tags, summary: 'Every runner' } }, async () => ({ items: await listRunners(db, null) }));
  app.get(
    '/organizations/:id/runners',
    { config: { access: { capability: 'runner.read', scope: byOrganization } }, schema: { tags, summary: 'Runners that can take the organization’s jobs (its own and instance-wide ones)', params: IdParams } },
    async (req) => ({ items: await listRunners(db, req.params.id) }),
  );
  app.get('/runners/:id', { config: { access: { capability: 'runner.read', scope: byRunner } }, schema: { tags, params: IdParams } }, async (req) => {
    const runner = await getRunner(db, req.params.id);
    if (!runner) throw notFound('Runner');
    return runner;
  });
  for (const [action, paused] of [
    ['pause', true],
    ['resume', false],
  ] as const) {
    app.post(
      `/runners/:id/${action}`,
      {
        config: { access: { capability: 'runner.manage', scope: byRunner } },
        schema: { tags, summary: paused ? 'Pause a runner: it takes no new jobs; running ones go on' : 'Resume a paused runner', params: IdParams },
      },
      async (req) => {
        await setRunnerPaused(db, req.params.id, paused, principalOf(req).userId);
        return getRunner(db, req.params.id);
      },
    );
  }
  app.delete(
    '/runners/:id',
    {
      config: { access: { capability: 'runner.manage', scope: byRunner } },
      schema: { tags, summary: 'Remove a runner: its credential stops working and it is disconnected; its running jobs end runner_lost', params: IdParams },
    },
    async (req, reply) => {
      await removeRunner(db, req.params.id, principalOf(req).userId);
      return reply.status(204).send();
    },
  );
};
