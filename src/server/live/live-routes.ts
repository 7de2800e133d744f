import type { FastifyPluginAsync } from 'fastify';
import { Type, type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { authenticate, principalOf } from '../auth/access-plugin.js';
import type { Resources } from '../resources.js';
import type { LiveClient, LiveHub } from './live-hub.js';

const ClientMessage = Type.Union([
  Type.Object({ type: Type.Literal('subscribe'), channel: Type.Literal('run'), runId: Type.String() }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('subscribe'), channel: Type.Literal('log'), jobId: Type.String(), offset: Type.Optional(Type.Integer({ minimum: 0 })) }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('unsubscribe'), runId: Type.Optional(Type.String()), jobId: Type.Optional(Type.String()) }, { additionalProperties: false }),
]);
const check = Compile(ClientMessage);

/** How long a closed socket may take to flush its close frame before it is cut, freeing its queue. */
const CLOSE_GRACE_MS = 5000;

/**
 * `GET /api/v1/live` (WebSocket). Clients send `subscribe` messages for a run's status or a job's
 * log from a byte offset; the server answers `run`, `log` (base64 data at an offset), `log-end`
 * and `error` messages. See docs/api.md.
 */
export const liveRoutes: FastifyPluginAsync<{ res: Resources; hub: LiveHub }> = async (app, { res, hub }) => {
  const { db } = res.database;
  app.get('/live', { websocket: true, config: { access: { capability: 'authenticated' } }, schema: { tags: ['live'], summary: 'WebSocket for live run status and logs' } }, (socket, req) => {
    const client: LiveClient = {
      send: (text) => socket.readyState === socket.OPEN && socket.send(text),
      bufferedAmount: () => socket.bufferedAmount,
      closed: () => socket.readyState !== socket.OPEN,
      close: (code, reason) => {
        socket.close(code, reason);
        setTimeout(() => socket.terminate(), CLOSE_GRACE_MS).unref();
      },
    };
    // The socket lives as long as the credential it was opened with.
    hub.connect(client, { principal: principalOf(req), reauthenticate: () => authenticate(db, req, res.config.publicOrigin) });
    socket.on('close', () => hub.disconnect(client));
    const answer = (code: string, message: string) => hub.reply(client, { type: 'error', code, message });
    socket.on('message', (raw) => {
      let msg: Static<typeof ClientMessage>;
      try {
        msg = JSON.parse(raw.toString());
      } catch {
        return answer('invalid_json', 'Messages must be JSON.');
      }
      if (!check.Check(msg)) return answer('validation_failed', 'Unknown message; see docs/api.md for subscribe and unsubscribe.');
      if (msg.type === 'unsubscribe') return hub.unsubscribe(client, msg);
      if (msg.channel === 'run') void hub.subscribe(client, 'run', msg.runId);
      else void hub.subscribe(client, 'job', msg.jobId, msg.offset ?? 0);
    });
  });
};
