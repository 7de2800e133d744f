import type { Db } from '../../db/database.js';
import { allows } from '../../domain/capabilities.js';
import { LIVE_CLOSE, logFlow, subscriptionRefusal, type LiveLimits } from '../../domain/live-limits.js';
import { isTerminal } from '../../domain/run-state.js';
import { resolveAccess } from '../auth/access-plugin.js';
import type { Principal } from '../store/account-store.js';
import type { LogStore } from '../store/log-store.js';
import { getRun, listJobsWithSteps } from '../store/run-store.js';
import type { PgListener } from './pg-listener.js';

/** Jobs a live `run` message carries; the rest are read from `GET /runs/:id/jobs`. */
const LIVE_JOBS = 200;

/** A connected viewer's socket: takes JSON text, says how much it has not sent yet, can be closed. */
export interface LiveClient {
  send(text: string): void;
  bufferedAmount(): number;
  closed(): boolean;
  /** Closes with a code from LIVE_CLOSE; what was queued is dropped soon after. */
  close(code: number, reason: string): void;
}

/** What a socket was opened with: its user, and how to read its credential again. */
export interface LiveIdentity {
  principal: Principal;
  /** The credential's user now, or undefined once the token is revoked or the session ended. */
  reauthenticate(): Promise<Principal | undefined>;
}

type Kind = 'run' | 'job';

interface Subscription {
  viewer: Viewer;
  kind: Kind;
  id: string;
  /** Logs: the next byte this viewer has not been sent; nothing before it is sent again, nothing after skipped. */
  cursor: number;
  /** Logs: there may be more to send or to check. */
  dirty: boolean;
}

interface Viewer extends LiveIdentity {
  client: LiveClient;
  subs: Set<Subscription>;
  /** One log read at a time per socket, so its queue grows by one chunk at most. */
  pumping: boolean;
  /** Counts access rechecks, so that a subscribe whose check overlapped one checks again. */
  rechecks: number;
}

export interface LiveStats {
  sockets: number;
  subscriptions: number;
  closed: { send_buffer: number; revoked: number };
}

/** How often a paused log looks whether its socket has drained. */
const DRAIN_POLL_MS = 25;

/**
 * Fans run status and job logs out to WebSocket viewers. Notifications (from any server
 * instance, through PostgreSQL) only say "something changed"; each viewer then reads from the
 * database past its own cursor, which is what makes a late viewer see backlog then live chunks
 * with no gap and no duplicate. Nothing is buffered per subscription: a log is read in small
 * chunks only while its socket's queue is short, so a viewer that stops reading costs at most
 * the send buffer bound, and a socket that still overflows it is closed.
 */
export class LiveHub {
  private readonly viewers = new Map<LiveClient, Viewer>();
  private readonly byUser = new Map<string, Set<Viewer>>();
  private readonly topics = new Map<string, Set<Subscription>>();
  private readonly flow: { chunkBytes: number; resumeBelow: number };
  private readonly closedCount = { send_buffer: 0, revoked: 0 };

  constructor(
    private readonly db: Db,
    private readonly logs: LogStore,
    listener: PgListener,
    private readonly limits: LiveLimits,
  ) {
    this.flow = logFlow(limits.sendBufferBytes);
    listener.on('furrow_log', (jobId: string) => this.pumpJob(jobId));
    listener.on('furrow_job', (jobId: string) => {
      this.pumpJob(jobId);
      void this.jobChanged(jobId);
    });
    listener.on('furrow_run', (runId: string) => void this.publishRun(runId));
    listener.on('furrow_access', (userId: string) => {
      for (const viewer of this.byUser.get(userId) ?? []) void this.recheck(viewer);
    });
    listener.on('reconnect', () => {
      for (const viewer of this.viewers.values()) void this.recheck(viewer);
      for (const key of this.topics.keys()) {
        const [kind, id] = key.split(':') as [Kind, string];
        if (kind === 'job') this.pumpJob(id);
        else void this.publishRun(id);
      }
    });
  }

  connect(client: LiveClient, identity: LiveIdentity): void {
    const viewer: Viewer = { ...identity, client, subs: new Set(), pumping: false, rechecks: 0 };
    this.viewers.set(client, viewer);
    this.userViewers(viewer.principal.userId).add(viewer);
  }

  disconnect(client: LiveClient): void {
    const viewer = this.viewers.get(client);
    if (!viewer) return;
    for (const sub of viewer.subs) this.drop(sub);
    this.viewers.delete(client);
    const mine = this.byUser.get(viewer.principal.userId);
    mine?.delete(viewer);
    if (mine?.size === 0) this.byUser.delete(viewer.principal.userId);
  }

  /** Subscribes after checking access and the limits; answers an `error` message when refused. */
  async subscribe(client: LiveClient, kind: Kind, id: string, offset = 0): Promise<void> {
    const viewer = this.viewers.get(client);
    if (!viewer) return;
    const ref = { [`${kind}Id`]: id };
    let allowed: boolean;
    let seen: number;
    do {
      seen = viewer.rechecks;
      allowed = await this.mayRead(viewer.principal, kind, id);
    } while (allowed && seen !== viewer.rechecks);
    if (!allowed) {
      return this.send(viewer, { type: 'error', code: 'not_found', message: `${kind === 'run' ? 'Run' : 'Job'} not found.`, ...ref });
    }
    if (!this.viewers.has(client)) return; // closed meanwhile
    const refusal = subscriptionRefusal({ socket: viewer.subs.size, user: this.heldBy(viewer.principal.userId) }, this.limits);
    if (refusal) return this.send(viewer, { type: 'error', code: 'too_many_subscriptions', message: refusal, ...ref });
    const sub: Subscription = { viewer, kind, id, cursor: offset, dirty: true };
    viewer.subs.add(sub);
    let set = this.topics.get(`${kind}:${id}`);
    if (!set) this.topics.set(`${kind}:${id}`, (set = new Set()));
    set.add(sub);
    if (kind === 'job') return this.pump(viewer);
    const msg = await this.runMessage(id);
    if (msg && viewer.subs.has(sub)) this.send(viewer, msg);
  }

  unsubscribe(client: LiveClient, topic: { runId?: string; jobId?: string }): void {
    for (const sub of [...(this.viewers.get(client)?.subs ?? [])]) {
      if ((sub.kind === 'run' && sub.id === topic.runId) || (sub.kind === 'job' && sub.id === topic.jobId)) this.drop(sub);
    }
  }

  /** Answers a client's message, within the socket's send buffer bound like everything else. */
  reply(client: LiveClient, msg: unknown): void {
    const viewer = this.viewers.get(client);
    if (viewer) this.send(viewer, msg);
  }

  stats(): LiveStats {
    let subscriptions = 0;
    for (const v of this.viewers.values()) subscriptions += v.subs.size;
    return { sockets: this.viewers.size, subscriptions, closed: { ...this.closedCount } };
  }

  private userViewers(userId: string): Set<Viewer> {
    let set = this.byUser.get(userId);
    if (!set) this.byUser.set(userId, (set = new Set()));
    return set;
  }

  private heldBy(userId: string): number {
    let n = 0;
    for (const v of this.byUser.get(userId) ?? []) n += v.subs.size;
    return n;
  }

  private async mayRead(principal: Principal, kind: Kind, id: string): Promise<boolean> {
    const seen = await resolveAccess(this.db, principal, kind, id).catch(() => undefined);
    return !!seen && allows(seen.role, 'run.read');
  }

  private drop(sub: Subscription): void {
    sub.viewer.subs.delete(sub);
    const key = `${sub.kind}:${sub.id}`;
    const set = this.topics.get(key);
    set?.delete(sub);
    if (set?.size === 0) this.topics.delete(key);
  }

  private close(viewer: Viewer, code: number, reason: string, counter: keyof LiveStats['closed']): void {
    if (!this.viewers.has(viewer.client)) return;
    this.closedCount[counter] += 1;
    this.disconnect(viewer.client);
    viewer.client.close(code, reason);
  }

  /** Sends one message; a socket whose queue is past the bound is closed rather than let grow. */
  private send(viewer: Viewer, msg: unknown): void {
    if (!this.viewers.has(viewer.client) || viewer.client.closed()) return;
    viewer.client.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
    if (viewer.client.bufferedAmount() > this.limits.sendBufferBytes) {
      this.close(viewer, LIVE_CLOSE.sendBufferFull, 'send buffer full: read your messages', 'send_buffer');
    }
  }

  /**
   * Ends what the viewer may no longer have: the whole socket when its credential is gone, a
   * subscription whose run the user may no longer read.
   */
  private async recheck(viewer: Viewer): Promise<void> {
    viewer.rechecks += 1;
    const principal = await viewer.reauthenticate().catch(() => viewer.principal);
    if (!principal) return this.close(viewer, LIVE_CLOSE.credentialRevoked, 'credential revoked or session ended', 'revoked');
    viewer.principal = principal;
    for (const sub of [...viewer.subs]) {
      if (await this.mayRead(principal, sub.kind, sub.id)) continue;
      if (!viewer.subs.has(sub)) continue;
      this.drop(sub);
      this.send(viewer, { type: 'error', code: 'access_revoked', message: `You may no longer read this ${sub.kind}; the subscription has ended.`, [`${sub.kind}Id`]: sub.id });
    }
  }

  private pumpJob(jobId: string): void {
    for (const sub of this.topics.get(`job:${jobId}`) ?? []) {
      sub.dirty = true;
      void this.pump(sub.viewer);
    }
  }

  /** Streams every log subscription of a socket past its cursor, a chunk at a time, as the socket drains. */
  private async pump(viewer: Viewer): Promise<void> {
    if (viewer.pumping) return;
    viewer.pumping = true;
    try {
      for (;;) {
        const due = [...viewer.subs].filter((s) => s.kind === 'job' && s.dirty);
        if (due.length === 0) return;
        for (const sub of due) {
          if (!(await this.drained(viewer))) return;
          if (viewer.subs.has(sub)) await this.pumpOnce(sub);
        }
      }
    } finally {
      viewer.pumping = false;
    }
  }

  /** Waits until the socket's queue is short enough for another chunk; false once it is gone. */
  private async drained(viewer: Viewer): Promise<boolean> {
    for (;;) {
      if (!this.viewers.has(viewer.client) || viewer.client.closed()) return false;
      if (viewer.client.bufferedAmount() < this.flow.resumeBelow) return true;
      await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
    }
  }

  /** Sends one chunk past the cursor, or, with nothing left, ends the subscription once the job is over. */
  private async pumpOnce(sub: Subscription): Promise<void> {
    const { viewer } = sub;
    sub.dirty = false;
    try {
      const chunks = await this.logs.read(sub.id, sub.cursor, this.flow.chunkBytes);
      if (!viewer.subs.has(sub)) return;
      if (chunks.length > 0) {
        const data = Buffer.concat(chunks).subarray(0, this.flow.chunkBytes);
        this.send(viewer, { type: 'log', jobId: sub.id, offset: sub.cursor, data: data.toString('base64') });
        sub.cursor += data.byteLength;
        sub.dirty = true;
        return;
      }
      const job = await this.db.selectFrom('jobs').select(['status', 'log_size']).where('id', '=', sub.id).executeTakeFirst();
      if (!viewer.subs.has(sub)) return;
      if (!job) {
        this.drop(sub);
        return this.send(viewer, { type: 'error', code: 'not_found', message: 'Job not found.', jobId: sub.id });
      }
      if (isTerminal(job.status) && sub.cursor >= job.log_size) {
        this.drop(sub);
        this.send(viewer, { type: 'log-end', jobId: sub.id, size: job.log_size, status: job.status });
      }
    } catch (err) {
      this.drop(sub);
      this.send(viewer, { type: 'error', code: 'internal', message: `reading the log failed: ${(err as Error).message}`, jobId: sub.id });
    }
  }

  private async jobChanged(jobId: string): Promise<void> {
    if (this.topics.size === 0) return;
    const job = await this.db.selectFrom('jobs').select('run_id').where('id', '=', jobId).executeTakeFirst();
    if (job && this.topics.has(`run:${job.run_id}`)) await this.publishRun(job.run_id);
  }

  private async runMessage(runId: string) {
    const run = await getRun(this.db, runId);
    if (!run) return undefined;
    // The first page of jobs: a run of thousands of jobs is read a page at a time from the API.
    const jobs = await listJobsWithSteps(this.db, runId, { limit: LIVE_JOBS });
    return { type: 'run', run, jobs: jobs.items, jobsNextCursor: jobs.nextCursor };
  }

  private async publishRun(runId: string): Promise<void> {
    if (!this.topics.has(`run:${runId}`)) return;
    const msg = await this.runMessage(runId).catch(() => undefined);
    const text = msg && JSON.stringify(msg); // once for every viewer
    if (text) for (const sub of [...(this.topics.get(`run:${runId}`) ?? [])]) this.send(sub.viewer, text);
  }
}
