import { sendUntilAvailable } from '../../protocol/unavailable.js';
import type { RegisteredReply, RunnerChannel, RunnerRequest, ServerReply } from '../../protocol/messages.js';
import type { RunnerGateway } from './runner-gateway.js';

/** Log messages in flight for the in-process runner: calls keep their order, so several overlap. */
const LOG_WINDOW = 6;

/**
 * The local runner's channel: the runner protocol as function calls into the gateway. It never
 * loses its connection, so it never re-registers.
 */
export function localChannel(gateway: RunnerGateway): RunnerChannel {
  const connection = gateway.connect(undefined);
  let closed = false;
  return {
    async open(hello) {
      const reply = await connection.handle(hello());
      if (reply.type !== 'registered') throw new Error(`runner registration refused: ${reply.type === 'error' ? reply.message : reply.type}`);
      return reply as RegisteredReply;
    },
    // A database outage longer than the gateway's own retries delays requests; it fails no job.
    request: <R extends ServerReply>(msg: RunnerRequest) => sendUntilAvailable((m) => connection.handle(m) as Promise<R>, msg, () => closed),
    onPush: (listener) => connection.onPush(listener),
    onRegistered: () => undefined,
    onFatal: () => undefined,
    logWindow: LOG_WINDOW,
    close: () => {
      closed = true;
      void connection.close();
    },
  };
}
