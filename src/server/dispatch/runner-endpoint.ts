import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import { Type } from 'typebox';
import { decodeRequest, encodeServerFrame, FrameError } from '../../protocol/frames.js';
import { keepAlive } from '../../protocol/keep-alive.js';
import { RegisterMessage, versionMismatch, type ServerPush, type ServerReply } from '../../protocol/messages.js';
import { AppError } from '../app-error.js';
import type { Resources } from '../resources.js';
import { registerRunner, type RunnerIdentity } from '../store/runner-store.js';
import type { GatewayConnection } from './runner-gateway.js';

/** An HTTP long-poll connection ends when its runner has sent nothing for this long. */
const POLL_IDLE_MS = 60_000;
/** Longest a `GET /runner/pushes` waits for a push. */
const PUSH_WAIT_MAX_MS = 30_000;
/** Largest runner frame: a 1 MiB log batch plus its header, with room to spare. */
const MAX_FRAME_BYTES = 4 * 1024 * 1024;
/** WebSocket close code telling a runner not to come back (its credential was removed). */
const CLOSE_REMOVED = 4001;

interface PollConnection {
  runner: RunnerIdentity;
  gateway: GatewayConnection;
  pushes: ServerPush[];
  waiter: (() => void) | undefined;
  idle: NodeJS.Timeout;
  ended: boolean;
  /** Ended because its runner was removed: its answers say so, as close code 4001 does. */
  removed: boolean;
}

const RegisterBody = Type.Object(
  {
    version: Type.Integer({ description: 'The runner protocol version the runner speaks' }),
    name: RegisterMessage.properties.name,
    labels: RegisterMessage.properties.labels,
    capacity: RegisterMessage.properties.capacity,
    executor: RegisterMessage.properties.executor,
    agentVersion: RegisterMessage.properties.agentVersion,
  },
  { additionalProperties: false },
);

/**
 * Where runners connect: registration with a registration token, then the runner protocol over a
 * WebSocket (`GET /runner`), or over HTTP long-polling for networks whose proxies refuse
 * WebSockets (`POST /runner/requests` for requests, `GET /runner/pushes` for pushes). Both carry
 * the frames of src/protocol/frames.ts and authenticate with the runner's own credential.
 */
export const runnerEndpoint: FastifyPluginAsyncTypebox<{ res: Resources }> = async (app, { res }) => {
  const { db } = res.database;
  const gateway = res.gateway;
  const tags = ['runner protocol'];
  const polls = new Map<string, PollConnection>();
  const runnerAccess = { access: { capability: 'runner' as const } };

  app.post(
    '/runners/register',
    {
      config: { access: { capability: 'public' } },
      schema: {
        tags,
        summary: 'Register a runner with a registration token (Authorization: Bearer); answers its own credential, once',
        body: RegisterBody,
        response: { 201: Type.Object({ id: Type.String(), name: Type.String(), organizationId: Type.Union([Type.String(), Type.Null()]), credential: Type.String() }) },
      },
    },
    async (req, reply) => {
      const header = req.headers.authorization;
      if (!header?.startsWith('Bearer ')) throw new AppError('unauthenticated', 'Send the registration token as "Authorization: Bearer TOKEN".');
      const mismatch = versionMismatch(req.body.version);
      if (mismatch) throw new AppError('protocol_version_mismatch', mismatch);
      const { version: _, agentVersion, ...hello } = req.body;
      const runner = await registerRunner(db, header.slice(7).trim(), { ...hello, version: agentVersion });
      return reply.status(201).send(runner);
    },
  );

  app.get('/runner', { websocket: true, config: runnerAccess, schema: { tags, summary: 'The runner protocol over a WebSocket' } }, (socket, req) => {
    const connection = gateway.connect(req.runner!);
    // A runner whose connection died silently must not keep claiming jobs nobody receives.
    keepAlive(socket);
    const send = (frame: Parameters<typeof encodeServerFrame>[0]) => socket.readyState === socket.OPEN && socket.send(encodeServerFrame(frame));
    connection.onPush((push) => send({ push }));
    connection.onKicked((reason) => socket.close(CLOSE_REMOVED, reason));
    socket.on('close', () => void connection.close());
    socket.on('message', (data: Buffer, binary: boolean) => {
      let request;
      try {
        request = decodeRequest(data, binary);
      } catch (err) {
        return socket.close(1008, (err as Error).message.slice(0, 120));
      }
      connection.handle(request.msg).then(
        (reply) => send({ id: request.id, reply }),
        (err: Error) => {
          req.log.error({ err }, 'runner request failed');
          send({ id: request.id, reply: { type: 'error', code: 'internal', message: 'the server could not handle this request' } });
        },
      );
    });
  });

  const pollOf = (req: FastifyRequest): PollConnection => {
    const id = req.headers['x-furrow-connection'];
    const s = typeof id === 'string' ? polls.get(id) : undefined;
    if (!s || s.ended || s.runner.id !== req.runner!.id) throw endedError(s);
    s.idle.refresh();
    return s;
  };
  const endedError = (s: PollConnection | undefined) => new AppError(s?.removed ? 'runner_removed' : 'runner_connection_expired');
  const endPoll = (id: string, s: PollConnection, removed = false) => {
    s.removed ||= removed;
    s.ended = true;
    clearTimeout(s.idle);
    polls.delete(id);
    s.waiter?.();
    void s.gateway.close();
  };

  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: MAX_FRAME_BYTES }, (_req, body, done) => done(null, body));

  app.post(
    '/runner/requests',
    {
      config: runnerAccess,
      bodyLimit: MAX_FRAME_BYTES,
      schema: { tags, summary: 'One runner protocol request (HTTP fallback): an application/octet-stream frame (`x-furrow-frame: binary` for log frames); answers {reply}' },
    },
    async (req, res) => {
      if (!Buffer.isBuffer(req.body)) throw new AppError('unsupported_media_type', 'Send the frame as application/octet-stream.');
      const frame = req.body;
      let request;
      try {
        request = decodeRequest(frame, req.headers['x-furrow-frame'] === 'binary');
      } catch (err) {
        if (err instanceof FrameError) throw new AppError('bad_request', err.message);
        throw err;
      }
      if (request.msg.type === 'register') {
        const id = randomUUID();
        const s: PollConnection = {
          runner: req.runner!,
          gateway: gateway.connect(req.runner!),
          pushes: [],
          waiter: undefined,
          idle: setTimeout(() => endPoll(id, s), POLL_IDLE_MS),
          ended: false,
          removed: false,
        };
        s.gateway.onPush((push) => {
          s.pushes.push(push);
          s.waiter?.();
        });
        s.gateway.onKicked(() => endPoll(id, s, true));
        const reply = await s.gateway.handle(request.msg);
        if (reply.type !== 'registered') {
          endPoll(id, s);
          return { reply };
        }
        polls.set(id, s);
        return { reply: { ...reply, connection: id } satisfies ServerReply };
      }
      // A runner that gave up on a waiting `next` must not be handed a job it will never read.
      const gone = new AbortController();
      // The response closing unsent means the client left (a request's own 'close' only says its body was read).
      res.raw.once('close', () => gone.abort());
      return { reply: await pollOf(req).gateway.handle(request.msg, gone.signal) };
    },
  );

  app.get(
    '/runner/pushes',
    {
      config: runnerAccess,
      schema: { tags, summary: 'Waits for server pushes (HTTP fallback)', querystring: Type.Object({ waitMs: Type.Integer({ minimum: 0, maximum: PUSH_WAIT_MAX_MS, default: 25_000 }) }, { additionalProperties: false }) },
    },
    async (req, res) => {
      const s = pollOf(req);
      if (s.pushes.length === 0) {
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          s.waiter = resolve;
          timer = setTimeout(resolve, req.query.waitMs);
          res.raw.once('close', resolve);
        });
        clearTimeout(timer);
        s.waiter = undefined;
      }
      if (s.ended) throw endedError(s);
      const pushes = s.pushes;
      s.pushes = [];
      return { pushes };
    },
  );

  // Before the server waits for requests to finish: a waiting long-poll would hold a shutdown up.
  app.addHook('preClose', async () => {
    for (const [id, s] of polls) endPoll(id, s);
  });
};
