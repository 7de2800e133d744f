import cookie from '@fastify/cookie';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import websocket from '@fastify/websocket';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import { FURROW_VERSION } from '../protocol/version.js';
import { activityRoutes } from './api/activity-routes.js';
import { artifactRoutes } from './api/artifact-routes.js';
import { environmentRoutes } from './api/environment-routes.js';
import { triggerRoutes } from './api/trigger-routes.js';
import { healthRoutes } from './api/health-routes.js';
import { memberRoutes } from './api/member-routes.js';
import { organizationRoutes } from './api/organization-routes.js';
import { projectRoutes } from './api/project-routes.js';
import { repositoryRoutes } from './api/repository-routes.js';
import { runRoutes } from './api/run-routes.js';
import { runnerRoutes } from './api/runner-routes.js';
import { secretRoutes } from './api/secret-routes.js';
import { sessionRoutes } from './api/session-routes.js';
import { workflowRoutes } from './api/workflow-routes.js';
import { AppError } from './app-error.js';
import { accessPlugin } from './auth/access-plugin.js';
import { runnerEndpoint } from './dispatch/runner-endpoint.js';
import { installErrorHandler } from './error-handler.js';
import { LiveHub } from './live/live-hub.js';
import { liveRoutes } from './live/live-routes.js';
import { webhookRoutes } from './api/webhook-routes.js';
import { metricsPlugin } from './metrics-plugin.js';
import { bodyProblem } from './body-problem.js';
import type { Resources } from './resources.js';

/**
 * Request bodies are validated strictly (unknown fields and wrong types are errors); query
 * strings and params are coerced, since they arrive as text.
 */
function validators(app: FastifyInstance): void {
  const strict = new Ajv({ removeAdditional: false, coerceTypes: false, useDefaults: true, allErrors: true, strict: false, verbose: true });
  const coercing = new Ajv({ removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: true, strict: false, verbose: true });
  addFormats.default(strict);
  addFormats.default(coercing);
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema));
}

export async function buildApp(res: Resources): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: res.logger as FastifyBaseLogger,
    // A webhook's slug is its credential: request logs show the route without it.
    childLoggerFactory: (logger, bindings, opts) =>
      logger.child(bindings, { ...opts, serializers: { ...opts.serializers, req: (req: FastifyRequest) => ({ method: req.method, url: req.url.replace(/(\/hooks\/)[^/?]+/, '$1…'), remoteAddress: req.ip }) } }),
    bodyLimit: res.config.maxBodyBytes,
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    routerOptions: { ignoreTrailingSlash: true },
  });
  validators(app);
  installErrorHandler(app, res.database.db);
  // Bodies are JSON; an empty body counts as none, a malformed one is a 400 invalid_json.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = (body as string).trim();
    if (text === '') return done(null, undefined);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      return done(new AppError('invalid_json', `The request body is not valid JSON: ${(err as Error).message}`), undefined);
    }
    const problem = bodyProblem(parsed);
    if (problem) return done(new AppError('validation_failed', `Invalid body: ${problem.field} ${problem.message}.`, [problem]), undefined);
    done(null, parsed);
  });
  // A POST without a body means "no options": validate it as {}.
  app.addHook('preValidation', async (req) => {
    if (req.body === undefined && (req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH')) req.body = {};
  });
  app.addHook('onSend', async (req, reply) => {
    void reply.header('x-request-id', req.id);
  });

  await app.register(cookie);
  await app.register(rateLimit, { global: false });
  // Runners send log batches of up to 1 MiB in one frame.
  await app.register(websocket, { options: { maxPayload: 4 * 1024 * 1024 } });
  await app.register(swagger, {
    openapi: {
      info: { title: 'Furrow API', version: FURROW_VERSION, description: 'Organizations, projects, workflows, runs and logs.' },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'An API token from `furrow token create`.' },
          session: { type: 'apiKey', in: 'cookie', name: 'furrow_session' },
        },
      },
      security: [{ bearer: [] }, { session: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/api/docs' });
  await app.register(accessPlugin, { db: res.database.db, publicOrigin: res.config.publicOrigin });
  const live = new LiveHub(res.database.db, res.logs, res.listener, res.config.live);
  await app.register(metricsPlugin, { db: res.database.db, live });
  await app.register(healthRoutes, { res });
  await app.register(
    async (api) => {
      api.get('/openapi.json', { config: { access: { capability: 'public' } }, schema: { hide: true } }, async () => app.swagger());
      await api.register(sessionRoutes, { res });
      await api.register(organizationRoutes, { res });
      await api.register(projectRoutes, { res });
      await api.register(memberRoutes, { res });
      await api.register(environmentRoutes, { res });
      await api.register(triggerRoutes, { res });
      await api.register(webhookRoutes, { res });
      await api.register(repositoryRoutes, { res });
      await api.register(secretRoutes, { res });
      await api.register(workflowRoutes, { res });
      await api.register(artifactRoutes, { res });
      await api.register(runRoutes, { res });
      await api.register(activityRoutes, { res });
      await api.register(liveRoutes, { res, hub: live });
      await api.register(runnerEndpoint, { res });
      await api.register(runnerRoutes, { res });
    },
    { prefix: '/api/v1' },
  );
  return app;
}
