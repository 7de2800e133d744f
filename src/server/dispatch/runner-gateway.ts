import { randomUUID } from 'node:crypto';
import type { Db } from '../../db/database.js';
import { PROTOCOL_VERSION, type RunnerChannel, type RunnerRequest, type ServerPush, type ServerReply } from '../../protocol/messages.js';
import type { PgListener } from '../live/pg-listener.js';
import { acceptJob, claimJob, extendLease, finishJob, setStepStatus } from '../store/job-store.js';
import type { LogStore } from '../store/log-store.js';

/** One runner connected to this gateway. */
interface Connection {
  /** No more jobs for this connection: a waiting `next` answers `none`. */
  closed: boolean;
  runnerId: string | undefined;
  labels: string[];
  jobs: Set<string>;
  push: ((msg: ServerPush) => void)[];
  /** Wake this connection's waiting `next` requests (one per free slot) when it closes. */
  waiting: Set<() => void>;
}

export interface GatewayDeps {
  db: Db;
  logs: LogStore;
  listener: PgListener;
  leaseSeconds: number;
}

/**
 * The server's side of the runner protocol: registers runners, hands out jobs (`next` waits on
 * `furrow_jobs` notifications instead of polling), records logs and outcomes, forwards cancels.
 */
export class RunnerGateway {
  private readonly connections = new Set<Connection>();
  private wakeAll: (() => void)[] = [];

  constructor(private readonly deps: GatewayDeps) {
    const wake = () => {
      const waiters = this.wakeAll;
      this.wakeAll = [];
      for (const w of waiters) w();
    };
    deps.listener.on('furrow_jobs', wake);
    deps.listener.on('reconnect', wake);
    deps.listener.on('furrow_cancel', (jobId: string) => {
      for (const s of this.connections) if (s.jobs.has(jobId)) for (const p of s.push) p({ type: 'cancel', jobId });
    });
  }

  /** An in-process channel: the local runner speaks the protocol without a socket. */
  connect(): RunnerChannel {
    const connection: Connection = { runnerId: undefined, labels: [], jobs: new Set(), push: [], closed: false, waiting: new Set() };
    this.connections.add(connection);
    return {
      request: <R extends ServerReply>(msg: RunnerRequest) => this.handle(connection, msg) as Promise<R>,
      onPush: (listener) => connection.push.push(listener),
      interrupt: () => this.release(connection),
      close: () => {
        this.release(connection);
        this.connections.delete(connection);
      },
    };
  }

  private release(s: Connection): void {
    s.closed = true;
    for (const wake of s.waiting) wake();
  }

  private nextWake(): Promise<void> {
    return new Promise((resolve) => this.wakeAll.push(resolve));
  }

  async handle(s: Connection, msg: RunnerRequest): Promise<ServerReply> {
    if (msg.type === 'register') {
      if (msg.version !== PROTOCOL_VERSION) {
        return { type: 'error', code: 'protocol_version_mismatch', message: `server speaks runner protocol ${PROTOCOL_VERSION}, runner sent ${msg.version}` };
      }
      s.runnerId = `${msg.name}-${randomUUID()}`;
      s.labels = msg.labels;
      return { type: 'registered', runnerId: s.runnerId, leaseSeconds: this.deps.leaseSeconds };
    }
    const runnerId = s.runnerId;
    if (!runnerId) return { type: 'error', code: 'not_registered', message: 'register first' };
    const { db, logs, leaseSeconds } = this.deps;
    switch (msg.type) {
      case 'next':
        return this.next(s, runnerId, msg.waitMs);
      case 'accept': {
        const ok = await acceptJob(db, msg.jobId, runnerId);
        return { type: 'ack', cancel: !ok };
      }
      case 'log': {
        const r = await logs.append(msg.jobId, msg.offset, msg.data);
        return { type: 'ack', cancel: r.cancel, end: r.end };
      }
      case 'step':
        await setStepStatus(db, msg.jobId, msg.stepId, msg.status, msg.exitCode);
        return { type: 'ack', cancel: false };
      case 'extend': {
        const r = await extendLease(db, msg.jobId, runnerId, leaseSeconds);
        return { type: 'ack', cancel: r.cancel };
      }
      case 'done':
        s.jobs.delete(msg.jobId);
        await finishJob(db, msg.jobId, runnerId, msg.status, msg.exitCode ?? null, msg.error ?? null);
        return { type: 'ack', cancel: false };
    }
  }

  private async next(s: Connection, runnerId: string, waitMs: number): Promise<ServerReply> {
    const deadline = Date.now() + waitMs;
    while (!s.closed) {
      // Subscribe before looking, so a job queued between the look and the wait still wakes us.
      const woken = this.nextWake();
      const spec = await claimJob(this.deps.db, runnerId, s.labels, this.deps.leaseSeconds);
      if (spec) {
        s.jobs.add(spec.jobId);
        return { type: 'job', spec };
      }
      const left = deadline - Date.now();
      if (left <= 0) break;
      let timer: NodeJS.Timeout | undefined;
      let release: (() => void) | undefined;
      await Promise.race([
        woken,
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, left);
          release = resolve;
          s.waiting.add(resolve);
        }),
      ]);
      clearTimeout(timer);
      s.waiting.delete(release!);
    }
    return { type: 'none' };
  }
}
