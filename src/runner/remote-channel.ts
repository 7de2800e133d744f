import { sendUntilAvailable } from '../protocol/unavailable.js';
import { ConnectionLost, type RegisteredReply, type RegisterMessage, type RunnerChannel, type RunnerRequest, type ServerPush, type ServerReply } from '../protocol/messages.js';
import { HttpLink } from './link/http-link.js';
import { CredentialRefused, type Link } from './link/link.js';
import { openWebSocketLink } from './link/websocket-link.js';

/** Log messages in flight over an ordered link (WebSocket); unordered links send one at a time. */
const LOG_WINDOW = 6;
const BACKOFF_FIRST_MS = 250;
/** Longest wait between reconnect attempts, whatever the lease. */
const BACKOFF_MAX_MS = 10_000;
/** The lease assumed until the server names its own (the default `FURROW_JOB_LEASE_SECONDS`). */
const DEFAULT_LEASE_SECONDS = 30;

export type Transport = 'auto' | 'websocket' | 'http';

export interface RemoteChannelOptions {
  url: string;
  credential: string;
  /** `auto`: WebSocket, falling back to HTTP long-polling when the upgrade fails. */
  transport: Transport;
  log: (msg: string, extra?: Record<string, unknown>) => void;
}

/** A registration the server refused for good (wrong protocol version). */
class RegistrationRefused extends Error {}

/**
 * The runner's channel to a server over the network. It reconnects by itself with jittered
 * exponential backoff, registers again on every new connection (telling `onRegistered`
 * listeners where each running job's log stands), and holds requests while disconnected.
 */
export class RemoteChannel implements RunnerChannel {
  private link: Link | undefined;
  private ready: Promise<Link>;
  private markReady!: (link: Link) => void;
  private failReady!: (err: Error) => void;
  private hello: (() => RegisterMessage) | undefined;
  /** The server's lease: reconnect attempts come often enough to be back well within it. */
  private leaseSeconds = DEFAULT_LEASE_SECONDS;
  /** Set when the channel stopped for good (closed, or refused by the server). */
  private ended: Error | undefined;
  private readonly pushListeners: ((p: ServerPush) => void)[] = [];
  private readonly registeredListeners: ((r: RegisteredReply) => void)[] = [];
  private readonly fatalListeners: ((e: Error) => void)[] = [];

  constructor(private readonly opts: RemoteChannelOptions) {
    this.ready = this.newReady();
  }

  get logWindow(): number {
    return this.link?.ordered === false ? 1 : LOG_WINDOW;
  }

  async open(hello: () => RegisterMessage): Promise<RegisteredReply> {
    this.hello = hello;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.connect();
      } catch (err) {
        if (err instanceof CredentialRefused || err instanceof RegistrationRefused || this.ended) throw err;
        const delay = backoff(attempt, this.leaseSeconds);
        this.opts.log('cannot reach the server; retrying', { error: (err as Error).message, retryInMs: delay });
        await sleep(delay);
      }
    }
  }

  async request<R extends ServerReply = ServerReply>(msg: RunnerRequest): Promise<R> {
    for (;;) {
      if (this.ended) throw this.ended;
      // Log data is never queued: its sender resumes from the server's offset after a reconnect.
      if (msg.type === 'log' && !this.link) throw new ConnectionLost();
      const link = await this.ready;
      try {
        return await sendUntilAvailable((m) => link.request(m) as Promise<R>, msg, () => this.ended !== undefined);
      } catch (err) {
        if (!(err instanceof ConnectionLost) || msg.type === 'log') throw err;
      }
    }
  }

  onPush(listener: (p: ServerPush) => void): void {
    this.pushListeners.push(listener);
  }

  onRegistered(listener: (r: RegisteredReply) => void): void {
    this.registeredListeners.push(listener);
  }

  onFatal(listener: (e: Error) => void): void {
    this.fatalListeners.push(listener);
  }

  close(): void {
    this.end(new Error('the runner channel is closed'));
    this.link?.close();
  }

  /** Stops for good: waiting and later requests fail with `err`. */
  private end(err: Error): void {
    this.ended ??= err;
    this.failReady(this.ended);
  }

  private newReady(): Promise<Link> {
    const ready = new Promise<Link>((resolve, reject) => {
      this.markReady = resolve;
      this.failReady = reject;
    });
    ready.catch(() => undefined); // rejected only when the channel ends; requests see it
    return ready;
  }

  private fatal(err: Error): void {
    this.end(err);
    for (const l of this.fatalListeners) l(err);
  }

  /** Opens a link, registers on it and makes it the current one. */
  private async connect(): Promise<RegisteredReply> {
    const link = await this.openLink();
    const reply = await link.request(this.hello!()).catch((err: Error) => {
      link.close();
      throw err;
    });
    if (reply.type !== 'registered') {
      link.close();
      const message = reply.type === 'error' ? reply.message : `unexpected reply ${reply.type}`;
      throw reply.type === 'error' && reply.code === 'protocol_version_mismatch' ? new RegistrationRefused(message) : new Error(message);
    }
    link.onPush((p) => this.pushListeners.forEach((l) => l(p)));
    link.onLost((fatal) => this.lost(link, fatal));
    this.link = link;
    this.leaseSeconds = reply.leaseSeconds;
    for (const l of this.registeredListeners) l(reply);
    this.markReady(link);
    return reply;
  }

  private async openLink(): Promise<Link> {
    const { url, credential, transport } = this.opts;
    if (transport === 'http') return new HttpLink(url, credential);
    try {
      return await openWebSocketLink(url, credential);
    } catch (err) {
      if (transport === 'websocket' || err instanceof CredentialRefused) throw err;
      // A proxy that refuses the upgrade still lets plain HTTP through.
      this.opts.log('WebSocket connection failed; using HTTP long-polling', { error: (err as Error).message });
      return new HttpLink(url, credential);
    }
  }

  private lost(link: Link, fatal?: Error): void {
    if (this.link !== link) return;
    this.link = undefined;
    this.ready = this.newReady();
    if (this.ended) return;
    if (fatal) return this.fatal(fatal);
    this.opts.log('lost the connection to the server; reconnecting');
    void this.reconnect();
  }

  private async reconnect(): Promise<void> {
    for (let attempt = 0; !this.ended; attempt++) {
      await sleep(backoff(attempt, this.leaseSeconds));
      try {
        await this.connect();
        this.opts.log('reconnected to the server');
        return;
      } catch (err) {
        if (err instanceof CredentialRefused || err instanceof RegistrationRefused) return this.fatal(err);
        this.opts.log('reconnecting failed', { error: (err as Error).message });
      }
    }
  }
}

/**
 * The wait before reconnect attempt `attempt` (from 0): exponential from 250 ms, capped at a
 * third of the lease (at most 10 s) so that a runner is back within a third of a lease of its
 * server's return, and jittered to between half and all of it so that runners that lost the same
 * server do not return in lockstep.
 */
export function backoff(attempt: number, leaseSeconds: number, random = Math.random()): number {
  const cap = Math.max(BACKOFF_FIRST_MS, Math.min(BACKOFF_MAX_MS, Math.floor((leaseSeconds * 1000) / 3)));
  const base = Math.min(cap, BACKOFF_FIRST_MS * 2 ** Math.min(attempt, 30));
  return Math.round(base / 2 + (random * base) / 2);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
