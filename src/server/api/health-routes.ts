import type { FastifyPluginAsync } from 'fastify';
import { pendingMigrations } from '../../db/migrate.js';
import type { Resources } from '../resources.js';

/** Liveness (the process answers) and readiness (database reachable, schema up to date). */
export const healthRoutes: FastifyPluginAsync<{ res: Resources }> = async (app, { res }) => {
  const access = { capability: 'public' } as const;
  app.get('/healthz', { config: { access }, schema: { hide: true } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { config: { access }, schema: { hide: true } }, async (_req, reply) => {
    try {
      const pending = await pendingMigrations(res.database.pool);
      if (pending.length > 0) return reply.status(503).send({ status: 'unready', reason: `migrations not applied: ${pending.join(', ')}` });
      return { status: 'ready' };
    } catch (err) {
      return reply.status(503).send({ status: 'unready', reason: `database unreachable: ${(err as Error).message}` });
    }
  });
};
