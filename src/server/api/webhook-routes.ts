import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { randomUUID } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { parseDeliveryBody, recognizeForge, type ForgeRequest } from '../../domain/forge-delivery.js';
import { deliveryKey, proofHolds } from '../auth/webhook-proof.js';
import { forgeEvent, PING_SUMMARY } from '../../domain/forge-event.js';
import { AppError, notFound } from '../app-error.js';
import { projectContext } from '../auth/access-plugin.js';
import type { Resources } from '../resources.js';
import { getDelivery, getDeliveryWithBody, listDeliveries, receiveDelivery, redeliver, type NewDelivery } from '../store/delivery-store.js';
import { openWebhookSecret, recordRefusal, regenerateWebhook, repositoryWebhook, triggerWebhook, webhookTarget, type WebhookTarget } from '../store/webhook-store.js';
import { IdParams } from './schemas.js';
import { listCursor } from './list-cursor.js';
import { hookInstructions } from './hook-instructions.js';

const SlugParams = Type.Object({ slug: Type.String({ maxLength: 200 }) });
const ListQuery = Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }), cursor: Type.Optional(Type.String({ maxLength: 512 })) });
/** Headers kept out of a stored delivery: they carry credentials, not what was delivered. */
const WITHHELD_HEADERS = new Set(['authorization', 'cookie', 'x-gitlab-token', 'proxy-authorization']);

function storedHeaders(req: FastifyRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    out[name] = WITHHELD_HEADERS.has(name) ? '[withheld]' : Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

/** The delivery id a generic caller may send; without one, every request is a delivery of its own. */
const callerDeliveryId = (req: FastifyRequest) => {
  const v = req.headers['x-furrow-delivery'] ?? req.headers['idempotency-key'] ?? req.headers['x-github-delivery'];
  return typeof v === 'string' && v !== '' ? v.slice(0, 200) : null;
};

/** The webhook URL of a slug, on the origin people reach Furrow at. */
const hookUrl = (req: FastifyRequest, publicOrigin: string | undefined, slug: string) => `${publicOrigin ?? `${req.protocol}://${req.host}`}/api/v1/hooks/${slug}`;

/** A repository's webhook as the API shows it: its URL and secret, with where to enter them on each forge. */
function repositoryHook(req: FastifyRequest, publicOrigin: string | undefined, hook: { slug: string; secret: string }) {
  const url = hookUrl(req, publicOrigin, hook.slug);
  return { url, secret: hook.secret, forges: hookInstructions(url) };
}

/** A webhook trigger's webhook as the API shows it (`secret` null when it takes unsigned requests). */
export function triggerHook(req: FastifyRequest, publicOrigin: string | undefined, hook: { slug: string; secret: string | null }) {
  return { url: hookUrl(req, publicOrigin, hook.slug), secret: hook.secret, signatureHeader: hook.secret ? 'X-Furrow-Signature-256' : null };
}

/**
 * Webhook intake, and what people set webhooks up and look at deliveries with. The intake route
 * takes the body as it came (signatures are over those bytes), recognises the forge by its
 * headers, checks the signature in constant time, stores the delivery and queues its processing
 * in one statement, and only then answers: 202 for a new delivery, 200 with the first one's
 * outcome for a delivery id seen before, 401 (nothing stored) for a bad signature.
 */
export const webhookRoutes: FastifyPluginAsyncTypebox<{ res: Resources }> = async (app, { res }) => {
  const { db } = res.database;
  const tags = ['webhooks'];
  const box = res.secretBox;
  /** What each intake request's slug leads to, found before its body is read. */
  const targets = new WeakMap<FastifyRequest, WebhookTarget>();

  await app.register(async (intake) => {
    // An unknown slug is refused before its body is read.
    intake.addHook('onRequest', async (req) => {
      const { slug } = req.params as { slug: string };
      const target = /^[A-Za-z0-9_-]{20,100}$/.test(slug) ? await webhookTarget(db, slug) : undefined;
      if (!target) throw new AppError('webhook_not_found');
      targets.set(req, target);
    });
    intake.removeAllContentTypeParsers();
    intake.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: res.config.webhookMaxBodyBytes }, (_req, body, done) => done(null, body));
    intake.post(
      '/hooks/:slug',
      {
        bodyLimit: res.config.webhookMaxBodyBytes,
        config: { access: { capability: 'public' } },
        schema: { tags, summary: 'Receive a webhook delivery: from GitHub, GitLab, Gitea or Forgejo at a repository’s URL, or from anything at a webhook trigger’s', params: SlugParams },
      },
      async (req, reply) => {
        const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
        const target = targets.get(req)!;
        const delivery = target.kind === 'repository' ? await forgeDelivery(req, target, body) : await triggerDelivery(req, target, body);
        const { delivery: stored, duplicate } = await receiveDelivery(db, delivery);
        if (!duplicate && stored.status === 'queued') res.listener.emit('furrow_deliveries', ''); // this instance's pump takes it
        return reply.status(duplicate || stored.status !== 'queued' ? 200 : 202).send({ ...stored, duplicate });
      },
    );
  });

  /** Refuses a delivery whose proof does not hold, keeping why where its owner looks. */
  async function refuse(target: WebhookTarget, reason: string): Promise<never> {
    await recordRefusal(db, target, reason);
    throw new AppError('webhook_signature_invalid', `The delivery was refused: ${reason}.`);
  }

  async function forgeDelivery(req: FastifyRequest, target: WebhookTarget, body: Buffer): Promise<NewDelivery> {
    const forge = recognizeForge(req.headers);
    if (!forge) throw new AppError('webhook_unrecognized');
    const secret = openWebhookSecret(box, target);
    if (!secret) return refuse(target, 'the repository has no webhook secret this server can open: GET its webhook settings and set the secret shown there on the forge');
    if (!proofHolds(forge.proof, secret, body)) return refuse(target, proofProblem(forge));
    const payload = parseDeliveryBody(body, req.headers['content-type']);
    if (payload === undefined) throw new AppError('invalid_json', 'The delivery’s body is not JSON (nor a form with a JSON payload field); set the webhook’s content type to application/json.');
    const event = forgeEvent(forge.forge, forge.event, payload);
    if (!event) throw new AppError('webhook_payload_invalid', `The ${forge.event} delivery lacks what such an event holds (a ref and commits, or a pull request’s number and head commit).`);
    const done = event.kind === 'ping' || event.kind === 'ignored' ? { summary: event.kind === 'ping' ? PING_SUMMARY : event.why, runs: [], skipped: [] } : undefined;
    return {
      projectId: target.projectId,
      repositoryId: target.id,
      triggerId: null,
      forge: forge.forge,
      event: forge.event,
      key: deliveryKey(forge.deliveryId, body),
      headers: storedHeaders(req),
      body,
      sourceAddress: req.ip,
      ...(done ? { done } : {}),
    };
  }

  async function triggerDelivery(req: FastifyRequest, target: WebhookTarget & { kind: 'trigger' }, body: Buffer): Promise<NewDelivery> {
    if (!target.enabled) throw new AppError('trigger_disabled');
    if (target.sealedSecret) {
      const secret = openWebhookSecret(box, target);
      const header = req.headers['x-furrow-signature-256'] ?? req.headers['x-hub-signature-256'];
      const hex = typeof header === 'string' && header.startsWith('sha256=') ? header.slice(7) : null;
      if (!secret) return refuse(target, 'the trigger’s secret does not open under this server’s key: regenerate its webhook');
      if (!proofHolds(hex === null ? null : { kind: 'hmac', hex }, secret, body)) {
        return refuse(target, hex === null ? 'no X-Furrow-Signature-256 header (sha256= and the HMAC-SHA256 of the body in hex)' : 'X-Furrow-Signature-256 does not match the body signed with the trigger’s secret');
      }
    }
    const id = callerDeliveryId(req);
    const event = req.headers['x-furrow-event'];
    return {
      projectId: target.projectId,
      repositoryId: null,
      triggerId: target.id,
      forge: 'generic',
      event: typeof event === 'string' && event !== '' ? event.slice(0, 100) : 'webhook',
      key: id ?? `request:${randomUUID()}`,
      headers: storedHeaders(req),
      body,
      sourceAddress: req.ip,
    };
  }

  const byRepository = { kind: 'repository', param: 'id' } as const;
  const byTrigger = { kind: 'trigger', param: 'id' } as const;

  app.get(
    '/repositories/:id/webhook',
    { config: { access: { capability: 'repository.write', scope: byRepository } }, schema: { tags, summary: 'The repository’s webhook URL and secret, with how to set them up on each forge', params: IdParams } },
    async (req) => {
      const hook = await repositoryWebhook(db, box, req.params.id);
      if (!hook) throw notFound('Repository');
      return repositoryHook(req, res.config.publicOrigin, hook);
    },
  );

  app.post(
    '/repositories/:id/webhook/regenerate',
    { config: { access: { capability: 'repository.write', scope: byRepository } }, schema: { tags, summary: 'A new webhook URL and secret for the repository; the old ones stop working', params: IdParams } },
    async (req) => {
      const hook = await regenerateWebhook(db, box, projectContext(req), { kind: 'repository', id: req.params.id });
      if (!hook) throw notFound('Repository');
      return repositoryHook(req, res.config.publicOrigin, hook);
    },
  );

  app.get(
    '/triggers/:id/webhook',
    { config: { access: { capability: 'trigger.write', scope: byTrigger } }, schema: { tags, summary: 'A webhook trigger’s URL and secret', params: IdParams } },
    async (req) => {
      const hook = await triggerWebhook(db, box, req.params.id);
      if (!hook) throw notFound('Webhook trigger');
      return triggerHook(req, res.config.publicOrigin, hook);
    },
  );

  app.post(
    '/triggers/:id/webhook/regenerate',
    { config: { access: { capability: 'trigger.write', scope: byTrigger } }, schema: { tags, summary: 'A new URL and secret for a webhook trigger (it is signed from then on)', params: IdParams } },
    async (req) => {
      const hook = await regenerateWebhook(db, box, projectContext(req), { kind: 'trigger', id: req.params.id });
      if (!hook) throw notFound('Webhook trigger');
      return triggerHook(req, res.config.publicOrigin, hook);
    },
  );

  app.get(
    '/repositories/:id/deliveries',
    { config: { access: { capability: 'delivery.read', scope: byRepository } }, schema: { tags, summary: 'The repository’s webhook deliveries, newest first', params: IdParams, querystring: ListQuery } },
    async (req) => listDeliveries(db, { repositoryId: req.params.id }, { limit: req.query.limit, cursor: listCursor(req.query.cursor) }),
  );

  app.get(
    '/triggers/:id/deliveries',
    { config: { access: { capability: 'delivery.read', scope: byTrigger } }, schema: { tags, summary: 'A webhook trigger’s deliveries, newest first', params: IdParams, querystring: ListQuery } },
    async (req) => listDeliveries(db, { triggerId: req.params.id }, { limit: req.query.limit, cursor: listCursor(req.query.cursor) }),
  );

  app.get(
    '/deliveries/:id',
    { config: { access: { capability: 'delivery.read', scope: { kind: 'delivery', param: 'id' } } }, schema: { tags, summary: 'A delivery as it came (headers, body) with its outcome', params: IdParams } },
    async (req) => {
      const d = await getDeliveryWithBody(db, req.params.id);
      if (!d) throw notFound('Delivery');
      const { body, projectId: _, ...rest } = d;
      const text = body.toString('utf8');
      // A body that is not UTF-8 text comes as base64.
      return Buffer.from(text, 'utf8').equals(body) ? { ...rest, body: text, bodyEncoding: 'utf8' } : { ...rest, body: body.toString('base64'), bodyEncoding: 'base64' };
    },
  );

  app.post(
    '/deliveries/:id/redeliver',
    {
      config: { access: { capability: 'delivery.redeliver', scope: { kind: 'delivery', param: 'id' } } },
      schema: { tags, summary: 'Turn a stored delivery into runs again (202): runs it started already stand, the others start', params: IdParams },
    },
    async (req, reply) => {
      const d = await getDelivery(db, req.params.id);
      if (!d) throw notFound('Delivery');
      if (!(await redeliver(db, d.id))) throw new AppError('delivery_in_progress');
      return reply.status(202).send({ ...d, status: 'queued' });
    },
  );
};

/** Why a forge's proof did not hold, in words that point at the setting to fix. */
function proofProblem(forge: ForgeRequest): string {
  const header = { github: 'X-Hub-Signature-256', gitea: 'X-Gitea-Signature', gitlab: 'X-Gitlab-Token' }[forge.forge];
  return forge.proof ? `${header} does not match: the secret set on the forge is not this repository’s webhook secret` : `no ${header} header: set the webhook’s secret on the forge to this repository’s webhook secret`;
}
