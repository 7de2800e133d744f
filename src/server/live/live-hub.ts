import type { Db } from '../../db/database.js';
import { isTerminal } from '../../domain/run-state.js';
import type { LogStore } from '../store/log-store.js';
import { getRun, listJobsWithSteps } from '../store/run-store.js';
import type { PgListener } from './pg-listener.js';

/** Jobs a live `run` message carries; the rest are read from `GET /runs/:id/jobs`. */
const LIVE_JOBS = 200;

/** A connected viewer: something that takes JSON messages and says how much it has not sent yet. */
export interface LiveClient {
  send(msg: unknown): void;
  bufferedAmount(): number;
  closed(): boolean;
}

interface LogSubscription {
  client: LiveClient;
  jobId: string;
  /** Next byte this viewer has not been sent: nothing before it is sent again, nothing after skipped. */
  cursor: number;
  pumping: boolean;
  dirty: boolean;
}

/** Stop reading a log for a viewer whose socket has this much unsent; resume when it drains. */
const SLOW_CLIENT_BYTES = 4 * 1024 * 1024;
const READ_BYTES = 1024 * 1024;

/**
 * Fans run status and job logs out to WebSocket viewers. Notifications (from any server
 * instance, through PostgreSQL) only say "something changed"; each viewer then reads from the
 * database past its own cursor, which is what makes a late viewer see backlog then live chunks
 * with no gap and no duplicate.
 */
export class LiveHub {
  private readonly logSubs = new Map<string, Set<LogSubscription>>();
  private readonly runSubs = new Map<string, Set<LiveClient>>();

  constructor(
    private readonly db: Db,
    private readonly logs: LogStore,
    listener: PgListener,
  ) {
    listener.on('furrow_log', (jobId: string) => this.pumpJob(jobId));
    listener.on('furrow_job', (jobId: string) => {
      this.pumpJob(jobId);
      void this.jobChanged(jobId);
    });
    listener.on('furrow_run', (runId: string) => void this.publishRun(runId));
    listener.on('reconnect', () => {
      for (const jobId of this.logSubs.keys()) this.pumpJob(jobId);
      for (const runId of this.runSubs.keys()) void this.publishRun(runId);
    });
  }

  subscribeLog(client: LiveClient, jobId: string, offset: number): void {
    const sub: LogSubscription = { client, jobId, cursor: offset, pumping: false, dirty: false };
    let set = this.logSubs.get(jobId);
    if (!set) this.logSubs.set(jobId, (set = new Set()));
    set.add(sub);
    void this.pump(sub);
  }

  async subscribeRun(client: LiveClient, runId: string): Promise<void> {
    let set = this.runSubs.get(runId);
    if (!set) this.runSubs.set(runId, (set = new Set()));
    set.add(client);
    const msg = await this.runMessage(runId);
    if (msg) client.send(msg);
  }

  unsubscribe(client: LiveClient, topic: { runId?: string; jobId?: string }): void {
    if (topic.runId) this.dropRun(client, topic.runId);
    if (topic.jobId) for (const s of this.logSubs.get(topic.jobId) ?? []) if (s.client === client) this.dropLog(s);
  }

  removeClient(client: LiveClient): void {
    for (const [runId, set] of this.runSubs) if (set.has(client)) this.dropRun(client, runId);
    for (const set of [...this.logSubs.values()]) for (const s of set) if (s.client === client) this.dropLog(s);
  }

  private dropRun(client: LiveClient, runId: string): void {
    const set = this.runSubs.get(runId);
    set?.delete(client);
    if (set?.size === 0) this.runSubs.delete(runId);
  }

  private dropLog(sub: LogSubscription): void {
    const set = this.logSubs.get(sub.jobId);
    set?.delete(sub);
    if (set?.size === 0) this.logSubs.delete(sub.jobId);
  }

  private pumpJob(jobId: string): void {
    for (const sub of this.logSubs.get(jobId) ?? []) void this.pump(sub);
  }

  /** Sends a viewer everything past its cursor; ends the subscription once the job is over. */
  private async pump(sub: LogSubscription): Promise<void> {
    if (sub.pumping) {
      sub.dirty = true;
      return;
    }
    sub.pumping = true;
    try {
      do {
        sub.dirty = false;
        if (sub.client.closed()) return this.dropLog(sub);
        if (sub.client.bufferedAmount() > SLOW_CLIENT_BYTES) {
          // Back off instead of buffering: the viewer's cursor keeps its place.
          setTimeout(() => void this.pump(sub), 50).unref();
          return;
        }
        const chunks = await this.logs.read(sub.jobId, sub.cursor, READ_BYTES);
        for (const data of chunks) {
          sub.client.send({ type: 'log', jobId: sub.jobId, offset: sub.cursor, data: data.toString('base64') });
          sub.cursor += data.byteLength;
        }
        if (chunks.length > 0) {
          sub.dirty = true;
          continue;
        }
        const job = await this.db.selectFrom('jobs').select(['status', 'log_size']).where('id', '=', sub.jobId).executeTakeFirst();
        if (!job) {
          sub.client.send({ type: 'error', code: 'not_found', message: 'Job not found.', jobId: sub.jobId });
          return this.dropLog(sub);
        }
        if (isTerminal(job.status) && sub.cursor >= job.log_size) {
          sub.client.send({ type: 'log-end', jobId: sub.jobId, size: job.log_size, status: job.status });
          return this.dropLog(sub);
        }
      } while (sub.dirty);
    } catch (err) {
      sub.client.send({ type: 'error', code: 'internal', message: `reading the log failed: ${(err as Error).message}`, jobId: sub.jobId });
      this.dropLog(sub);
    } finally {
      sub.pumping = false;
    }
  }

  private async jobChanged(jobId: string): Promise<void> {
    if (this.runSubs.size === 0) return;
    const job = await this.db.selectFrom('jobs').select('run_id').where('id', '=', jobId).executeTakeFirst();
    if (job && this.runSubs.has(job.run_id)) await this.publishRun(job.run_id);
  }

  private async runMessage(runId: string) {
    const run = await getRun(this.db, runId);
    if (!run) return undefined;
    // The first page of jobs: a run of thousands of jobs is read a page at a time from the API.
    const jobs = await listJobsWithSteps(this.db, runId, { limit: LIVE_JOBS });
    return { type: 'run', run, jobs: jobs.items, jobsNextCursor: jobs.nextCursor };
  }

  private async publishRun(runId: string): Promise<void> {
    const clients = this.runSubs.get(runId);
    if (!clients) return;
    const msg = await this.runMessage(runId).catch(() => undefined);
    if (msg) for (const c of clients) c.send(msg);
  }
}
