import type { RunnerRequest, ServerPush, ServerReply } from '../../protocol/messages.js';

/**
 * One connection to the server (WebSocket, or HTTP long-polling). It does not reconnect: once
 * lost, pending and later requests reject with `ConnectionLost` and `onLost` listeners run; the
 * remote channel then opens a new link.
 */
export interface Link {
  request(msg: RunnerRequest): Promise<ServerReply>;
  onPush(listener: (push: ServerPush) => void): void;
  /** `fatal` is set when the server said not to come back (e.g. the runner was removed). */
  onLost(listener: (fatal?: Error) => void): void;
  /** Whether requests reach the server in the order they were sent (several may be in flight). */
  readonly ordered: boolean;
  close(): void;
}

/** The server refused the runner's credential: reconnecting will not help. */
export class CredentialRefused extends Error {
  constructor(detail: string) {
    super(`the server refused this runner's credential (${detail}); it may have been removed: register again with a new token`);
    this.name = 'CredentialRefused';
  }
}
