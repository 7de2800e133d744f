import type { FastifyPluginAsync } from 'fastify';
import { Type, type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { allows } from '../../domain/capabilities.js';
import { principalOf, resolveAccess } from '../auth/access-plugin.js';
import type { Resources } from '../resources.js';
import { LiveHub, type LiveClient } from './live-hub.js';

const ClientMessage = Type.Union([
  Type.Object({ type: Type.Literal('subscribe'), channel: Type.Literal('run'), runId: Type.String() }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('subscribe'), channel: Type.Literal('log'), jobId: Type.String(), offset: Type.Optional(Type.Integer({ minimum: 0 })) }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('unsubscribe'), runId: Type.Optional(Type.String()), jobId: Type.Optional(Type.String()) }, { additionalProperties: false }),
]);
const check = Compile(ClientMessage);

/**
 * `GET /api/v1/live` (WebSocket). Clients send `subscribe` messages for a run's status or a job's
 * log from a byte offset; the server answers `run`, `log` (base64 data at an offset), `log-end`
 * and `error` messages. See docs/api.md.
 */
export const liveRoutes: FastifyPluginAsync<{ res: Resources }> = async (app, { res }) => {
  const { db } = res.database;
  const hub = new LiveHub(db, res.logs, res.listener);
  app.get('/live', { websocket: true, config: { access: { capability: 'authenticated' } }, schema: { tags: ['live'], summary: 'WebSocket for live run status and logs' } }, (socket, req) => {
    const principal = principalOf(req);
    const client: LiveClient = {
      send: (msg) => socket.readyState === socket.OPEN && socket.send(JSON.stringify(msg)),
      bufferedAmount: () => socket.bufferedAmount,
      closed: () => socket.readyState !== socket.OPEN,
    };
    socket.on('close', () => hub.removeClient(client));
    socket.on('message', async (raw) => {
      let msg: Static<typeof ClientMessage>;
      try {
        msg = JSON.parse(raw.toString());
      } catch {
        return client.send({ type: 'error', code: 'invalid_json', message: 'Messages must be JSON.' });
      }
      if (!check.Check(msg)) return client.send({ type: 'error', code: 'validation_failed', message: 'Unknown message; see docs/api.md for subscribe and unsubscribe.' });
      if (msg.type === 'unsubscribe') return hub.unsubscribe(client, msg);
      const [kind, id] = msg.channel === 'run' ? (['run', msg.runId] as const) : (['job', msg.jobId] as const);
      const seen = await resolveAccess(db, principal, kind, id).catch(() => undefined);
      if (!seen || !allows(seen.role, 'run.read')) return client.send({ type: 'error', code: 'not_found', message: `${kind === 'run' ? 'Run' : 'Job'} not found.`, [`${kind}Id`]: id });
      if (msg.channel === 'run') await hub.subscribeRun(client, msg.runId);
      else hub.subscribeLog(client, msg.jobId, msg.offset ?? 0);
    });
  });
};
