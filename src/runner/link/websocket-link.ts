import WebSocket from 'ws';
import { encodeRequest, type ServerFrame } from '../../protocol/frames.js';
import { keepAlive } from '../../protocol/keep-alive.js';
import { ConnectionLost, type RunnerRequest, type ServerPush, type ServerReply } from '../../protocol/messages.js';
import { CredentialRefused, type Link } from './link.js';

/** Close code the server uses when the runner was removed. */
const CLOSE_REMOVED = 4001;

/**
 * Opens the runner protocol WebSocket at `${baseUrl}/api/v1/runner`. Rejects with
 * CredentialRefused on 401, or with the connection error (the caller may fall back to HTTP).
 */
export function openWebSocketLink(baseUrl: string, credential: string): Promise<Link> {
  const url = `${baseUrl.replace(/^http/, 'ws').replace(/\/$/, '')}/api/v1/runner`;
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${credential}` }, maxPayload: 16 * 1024 * 1024 });
  return new Promise((resolve, reject) => {
    ws.once('unexpected-response', (_req, res) => {
      reject(res.statusCode === 401 ? new CredentialRefused(`HTTP ${res.statusCode}`) : new Error(`WebSocket upgrade answered HTTP ${res.statusCode}`));
      ws.terminate();
    });
    ws.once('error', reject);
    ws.once('open', () => {
      ws.off('error', reject);
      resolve(new WebSocketLink(ws));
    });
  });
}

class WebSocketLink implements Link {
  readonly ordered = true;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: ServerReply) => void; reject: (e: Error) => void }>();
  private readonly pushListeners: ((p: ServerPush) => void)[] = [];
  private readonly lostListeners: ((fatal?: Error) => void)[] = [];
  private lost = false;

  constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => this.onFrame(data));
    ws.on('error', () => undefined); // 'close' follows
    ws.on('close', (code: number, reason: Buffer) => this.onClose(code === CLOSE_REMOVED ? new CredentialRefused(reason.toString() || 'runner removed') : undefined));
    keepAlive(ws);
  }

  request(msg: RunnerRequest): Promise<ServerReply> {
    if (this.lost) return Promise.reject(new ConnectionLost());
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(encodeRequest(id, msg), (err) => {
        if (err) this.ws.terminate();
      });
    });
  }

  onPush(listener: (p: ServerPush) => void): void {
    this.pushListeners.push(listener);
  }

  onLost(listener: (fatal?: Error) => void): void {
    this.lostListeners.push(listener);
  }

  close(): void {
    this.ws.close(1000);
    this.onClose();
  }

  private onFrame(data: Buffer): void {
    let frame: ServerFrame;
    try {
      frame = JSON.parse(data.toString('utf8')) as ServerFrame;
    } catch {
      return void this.ws.terminate();
    }
    if ('push' in frame) for (const l of this.pushListeners) l(frame.push);
    else {
      const p = this.pending.get(frame.id);
      this.pending.delete(frame.id);
      p?.resolve(frame.reply);
    }
  }

  private onClose(fatal?: Error): void {
    if (this.lost) return;
    this.lost = true;
    for (const p of this.pending.values()) p.reject(new ConnectionLost());
    this.pending.clear();
    for (const l of this.lostListeners) l(fatal);
  }
}
