import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AppError, notFound } from '../app-error.js';
import { SESSION_COOKIE, principalOf } from '../auth/access-plugin.js';
import { UUID } from '../store/access-store.js';
import { createApiToken, createSession, deleteApiToken, deleteSession, findUserByEmail, listApiTokens, verifyPassword } from '../store/account-store.js';
import type { Resources } from '../resources.js';
import { IdParams } from './schemas.js';

/** Login/logout with a cookie, the caller's identity, and the caller's API tokens. */
export const sessionRoutes: FastifyPluginAsyncTypebox<{ res: Resources }> = async (app, { res }) => {
  const { db } = res.database;
  app.post(
    '/sessions',
    {
      config: {
        access: { capability: 'public' },
        rateLimit: {
          max: res.config.loginRateLimit,
          timeWindow: 60_000,
          errorResponseBuilder: () => new AppError('rate_limited', 'Too many login attempts; wait a minute and try again.'),
        },
      },
      schema: {
        tags: ['sessions'],
        summary: 'Sign in; sets an httpOnly session cookie',
        body: Type.Object({ email: Type.String({ minLength: 3, maxLength: 320 }), password: Type.String({ minLength: 1, maxLength: 1024 }) }, { additionalProperties: false }),
      },
    },
    async (req, reply) => {
      const user = await findUserByEmail(db, req.body.email);
      // Verify against a dummy hash when the user is unknown, so timing does not reveal accounts.
      const ok = await verifyPassword(user?.password_hash ?? DUMMY_HASH, req.body.password);
      if (!user || !ok) throw new AppError('invalid_credentials');
      const token = await createSession(db, user.id, res.config.sessionTtlHours);
      void reply.setCookie(SESSION_COOKIE, token, {
        httpOnly: true,
        sameSite: 'lax',
        secure: res.config.cookieSecure,
        path: '/',
        maxAge: res.config.sessionTtlHours * 3600,
      });
      return reply.status(201).send({ user: { id: user.id, email: user.email, isAdmin: user.is_admin } });
    },
  );

  app.delete('/sessions/current', { config: { access: { capability: 'authenticated' } }, schema: { tags: ['sessions'], summary: 'Sign out' } }, async (req, reply) => {
    const cookie = req.cookies[SESSION_COOKIE];
    if (cookie) await deleteSession(db, cookie);
    return reply.clearCookie(SESSION_COOKIE, { path: '/' }).status(204).send();
  });

  app.get('/me', { config: { access: { capability: 'authenticated' } }, schema: { tags: ['sessions'], summary: 'The caller' } }, async (req) => {
    const p = principalOf(req);
    return { id: p.userId, email: p.email, isAdmin: p.isAdmin };
  });

  app.post(
    '/tokens',
    {
      config: { access: { capability: 'authenticated' } },
      schema: { tags: ['sessions'], summary: 'Create an API token for the caller (shown once)', body: Type.Object({ name: Type.String({ minLength: 1, maxLength: 100 }) }, { additionalProperties: false }) },
    },
    async (req, reply) => {
      const created = await createApiToken(db, principalOf(req).userId, req.body.name);
      return reply.status(201).send(created);
    },
  );

  app.get('/tokens', { config: { access: { capability: 'authenticated' } }, schema: { tags: ['sessions'], summary: 'The caller’s API tokens (never their values)' } }, async (req) => ({
    items: await listApiTokens(db, principalOf(req).userId),
  }));

  app.delete(
    '/tokens/:id',
    { config: { access: { capability: 'authenticated' } }, schema: { tags: ['sessions'], summary: 'Revoke one of the caller’s API tokens', params: IdParams } },
    async (req, reply) => {
      if (!UUID.test(req.params.id) || !(await deleteApiToken(db, principalOf(req).userId, req.params.id))) throw notFound('Token');
      return reply.status(204).send();
    },
  );
};

/** argon2id hash of a random throwaway password, used to keep failed logins equally slow. */
const DUMMY_HASH = '$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$K3RtUSnBY3cuHmvjAa+Jn4Dqx6nM1vgrsS/Jz4Z3Ugg';
