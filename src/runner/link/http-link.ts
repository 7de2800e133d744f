import { encodeRequest } from '../../protocol/frames.js';
import { ConnectionLost, type RunnerRequest, type ServerPush, type ServerReply } from '../../protocol/messages.js';
import { CredentialRefused, type Link } from './link.js';

/** How long one `GET /runner/pushes` waits on the server. */
const PUSH_WAIT_MS = 25_000;

/**
 * The runner protocol over plain HTTP, for networks whose proxies refuse WebSockets: each request
 * is a `POST /api/v1/runner/requests` (the first one, `register`, opens the connection), and pushes
 * arrive through a long-polling `GET /api/v1/runner/pushes`. Requests travel on separate HTTP
 * requests, so their order is not kept (`ordered` is false).
 */
export class HttpLink implements Link {
  readonly ordered = false;
  private connection: string | undefined;
  private lost = false;
  private readonly controller = new AbortController();
  private readonly pushListeners: ((p: ServerPush) => void)[] = [];
  private readonly lostListeners: ((fatal?: Error) => void)[] = [];
  private readonly base: string;

  constructor(
    baseUrl: string,
    private readonly credential: string,
  ) {
    this.base = `${baseUrl.replace(/\/$/, '')}/api/v1/runner`;
  }

  async request(msg: RunnerRequest): Promise<ServerReply> {
    if (this.lost) throw new ConnectionLost();
    const frame = encodeRequest(0, msg);
    let res: Response;
    try {
      res = await fetch(`${this.base}/requests`, {
        method: 'POST',
        headers: {
          ...this.headers(),
          'content-type': 'application/octet-stream',
          ...(typeof frame === 'string' ? {} : { 'x-furrow-frame': 'binary' }),
        },
        body: typeof frame === 'string' ? frame : new Uint8Array(frame),
        signal: this.controller.signal,
      });
    } catch {
      throw this.fail();
    }
    if (!res.ok) throw this.fail(res.status, await res.text().catch(() => ''));
    const { reply } = (await res.json()) as { reply: ServerReply };
    if (reply.type === 'registered' && reply.connection) {
      this.connection = reply.connection;
      void this.pollPushes();
    }
    return reply;
  }

  onPush(listener: (p: ServerPush) => void): void {
    this.pushListeners.push(listener);
  }

  onLost(listener: (fatal?: Error) => void): void {
    this.lostListeners.push(listener);
  }

  close(): void {
    this.controller.abort();
    this.fail();
  }

  private headers(): Record<string, string> {
    return { authorization: `Bearer ${this.credential}`, ...(this.connection ? { 'x-furrow-connection': this.connection } : {}) };
  }

  private async pollPushes(): Promise<void> {
    while (!this.lost) {
      try {
        const res = await fetch(`${this.base}/pushes?waitMs=${PUSH_WAIT_MS}`, { headers: this.headers(), signal: this.controller.signal });
        if (!res.ok) return void this.fail(res.status, await res.text().catch(() => ''));
        const { pushes } = (await res.json()) as { pushes: ServerPush[] };
        for (const p of pushes) for (const l of this.pushListeners) l(p);
      } catch {
        return void this.fail();
      }
    }
  }

  /**
   * Marks the link lost (once) and returns the error for the request that noticed it: a 401
   * (the runner was removed, or its credential is unknown) is fatal, on this link's first
   * request (`register`) as on any later one.
   */
  private fail(status?: number, body = ''): Error {
    const fatal = status === 401 ? new CredentialRefused(refusal(body)) : undefined;
    // Anything but a lost connection (410) or an unreachable server is the server saying no.
    const error = fatal ?? (status !== undefined && status !== 410 && status < 500 ? new Error(`runner request refused: HTTP ${status} ${body.slice(0, 200)}`) : new ConnectionLost());
    if (!this.lost) {
      this.lost = true;
      this.controller.abort();
      for (const l of this.lostListeners) l(fatal);
    }
    return error;
  }
}

/** What a 401 says, as the WebSocket's close reason would: the server's message, or the status. */
function refusal(body: string): string {
  try {
    const { code, message } = JSON.parse(body) as { code?: unknown; message?: unknown };
    if (code === 'runner_removed') return 'this runner was removed';
    if (typeof message === 'string') return `HTTP 401: ${message.slice(0, 200)}`;
  } catch {
    // not JSON
  }
  return `HTTP 401 ${body.slice(0, 200)}`;
}
