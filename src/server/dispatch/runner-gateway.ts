import type { Db } from '../../db/database.js';
import { isTransientDatabaseError, retryTransient } from '../../db/transient-error.js';
import { UNAVAILABLE } from '../../protocol/unavailable.js';
import { versionMismatch, type JobSpec, type RegisterMessage, type ResumedJob, type RunnerRequest, type ServerPush, type ServerReply } from '../../protocol/messages.js';
import type { PgListener } from '../live/pg-listener.js';
import { LogMasker } from '../../domain/log-masking.js';
import { acceptJob } from '../runs/accept-job.js';
import { claimJob, releaseClaims, type ClaimedJob } from '../runs/claim-job.js';
import { finishJob } from '../runs/finish-job.js';
import { extendLease, setStepStatus } from '../store/job-store.js';
import { newJobToken } from '../store/job-token.js';
import { completeSpec, jobSecretValues } from './complete-spec.js';
import type { SecretBox } from '../secrets/secret-box.js';
import type { LogStore } from '../store/log-store.js';
import { markRunners, recordHello, upsertLocalRunner, type RunnerIdentity } from '../store/runner-store.js';

/** How often this instance tells the database its runners are still connected. */
const HEARTBEAT_MS = 15_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Why a job ends when its runner registers again without naming it (its process was replaced). */
export const RUNNER_RESTARTED_ERROR = 'its runner started again without it (the runner process crashed or was restarted)';

export interface GatewayDeps {
  db: Db;
  logs: LogStore;
  listener: PgListener;
  secretBox: SecretBox;
  leaseSeconds: number;
}

/**
 * One connection of a runner, as a transport (in-process, WebSocket, HTTP long-poll) sees it:
 * requests in, replies and pushes out. `close` when the transport is gone.
 */
export interface GatewayConnection {
  /** `gone` aborts when the request's transport gave up on it (an HTTP request closed early). */
  handle(msg: RunnerRequest, gone?: AbortSignal): Promise<ServerReply>;
  onPush(listener: (msg: ServerPush) => void): void;
  /** The server drops this connection (its runner was removed); the transport should disconnect. */
  onKicked(listener: (reason: string) => void): void;
  close(): Promise<void>;
}

interface Connection {
  /** Known once registered; fixed by the credential for remote runners. */
  runner: RunnerIdentity | undefined;
  local: boolean;
  /** No more jobs over this connection: a waiting `next` answers `none`. */
  draining: boolean;
  closed: boolean;
  /** Jobs claimed over this connection and not accepted yet: released when it closes. */
  claimed: Set<string>;
  /** Jobs run over this connection: their cancels are pushed here, their logs accepted from here. */
  jobs: Set<string>;
  push: ((msg: ServerPush) => void)[];
  kicked: ((reason: string) => void)[];
  /**
   * Wakes of this connection's waiting `next` requests (one per free slot), oldest first: a queued
   * job wakes one of them, a drain or close all.
   */
  waiting: Set<() => void>;
}

/**
 * The server's side of the runner protocol: registers runners, hands out jobs (`next` waits on
 * `furrow_jobs` notifications instead of polling), records logs and outcomes, forwards cancels,
 * and keeps the runners' online state (a heartbeat per instance).
 */
export class RunnerGateway {
  private readonly connections = new Set<Connection>();
  private readonly heartbeat: NodeJS.Timeout;
  /** Maskers of the secrets of the jobs running through this instance: their logs are masked again. */
  private readonly maskers = new Map<string, LogMasker>();

  constructor(private readonly deps: GatewayDeps) {
    // A queued job (its id the payload) wakes one waiting slot of each connection, not all of
    // them: the others would only race for it. One that gets a job wakes the next when its claim
    // saw more jobs waiting.
    // Anything else (claims given back, a reconnect after missed notifications) wakes every slot.
    const wake = (payload?: string) => {
      for (const c of this.connections) {
        if (payload) wakeOne(c);
        else for (const w of [...c.waiting]) w();
      }
    };
    deps.listener.on('furrow_jobs', wake);
    deps.listener.on('reconnect', () => wake());
    deps.listener.on('furrow_cancel', (jobId: string) => void this.pushCancel(jobId));
    deps.listener.on('furrow_runner_removed', (runnerId: string) => {
      for (const c of this.connections) if (c.runner?.id === runnerId) for (const k of c.kicked) k('this runner was removed');
    });
    this.heartbeat = setInterval(() => void markRunners(deps.db, this.connectedRunners(), true).catch(() => undefined), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  /** Tells the runner of a job to stop it, with why (who canceled it) when the job says. */
  private async pushCancel(jobId: string): Promise<void> {
    const holders = [...this.connections].filter((c) => c.jobs.has(jobId));
    if (holders.length === 0) return;
    const row = await this.deps.db.selectFrom('jobs').select('cancel_reason').where('id', '=', jobId).executeTakeFirst().catch(() => undefined);
    const msg = { type: 'cancel' as const, jobId, ...(row?.cancel_reason ? { reason: row.cancel_reason } : {}) };
    for (const c of holders) for (const p of c.push) p(msg);
  }

  private connectedRunners(): string[] {
    return [...new Set([...this.connections].flatMap((c) => (c.runner ? [c.runner.id] : [])))];
  }

  /**
   * A connection for a runner: remote ones come with the identity their credential proved; the
   * local runner (`identity` undefined) gets its record from the name it registers with.
   */
  connect(identity: RunnerIdentity | undefined): GatewayConnection {
    const c: Connection = { runner: identity, local: !identity, draining: false, closed: false, claimed: new Set(), jobs: new Set(), push: [], kicked: [], waiting: new Set() };
    this.connections.add(c);
    return {
      handle: (msg, gone) => this.handle(c, msg, gone),
      onPush: (listener) => c.push.push(listener),
      onKicked: (listener) => c.kicked.push(listener),
      close: () => this.close(c),
    };
  }

  /** Stops the heartbeat and marks this instance's runners disconnected. */
  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
    await Promise.all([...this.connections].map((c) => this.close(c)));
  }

  private async close(c: Connection): Promise<void> {
    if (c.closed) return;
    c.closed = true;
    this.drain(c);
    this.connections.delete(c);
    // A reconnect (here or to another instance) loads them again.
    for (const jobId of c.jobs) this.maskers.delete(jobId);
    if (!c.runner) return;
    await releaseClaims(this.deps.db, [...c.claimed], c.runner.id).catch(() => undefined);
    const runnerId = c.runner.id;
    if (![...this.connections].some((o) => o.runner?.id === runnerId)) await markRunners(this.deps.db, [runnerId], false).catch(() => undefined);
  }

  private drain(c: Connection): void {
    c.draining = true;
    for (const wake of c.waiting) wake();
  }

  /**
   * A request whose database work kept failing with a transient error (each step is retried
   * for a while first) is answered `unavailable`: the runner sends it again later.
   */
  private async handle(c: Connection, msg: RunnerRequest, gone?: AbortSignal): Promise<ServerReply> {
    try {
      return await this.dispatch(c, msg, gone);
    } catch (err) {
      if (!isTransientDatabaseError(err)) throw err;
      return { type: 'error', code: UNAVAILABLE, message: 'the database is unavailable; send this again later' };
    }
  }

  private async dispatch(c: Connection, msg: RunnerRequest, gone?: AbortSignal): Promise<ServerReply> {
    if (msg.type === 'register') return this.register(c, msg);
    const runnerId = c.runner?.id;
    if (!runnerId || c.closed) return { type: 'error', code: 'not_registered', message: 'register first' };
    const { db, logs, leaseSeconds } = this.deps;
    switch (msg.type) {
      case 'next':
        return this.next(c, runnerId, msg.waitMs, gone);
      case 'drain':
        this.drain(c);
        return { type: 'ack', cancel: false };
      case 'accept': {
        c.claimed.delete(msg.jobId);
        const ok = await retryTransient(() => acceptJob(db, msg.jobId, runnerId));
        if (ok) c.jobs.add(msg.jobId);
        return { type: 'ack', cancel: !ok };
      }
      case 'log': {
        // Checked without awaiting anything first: appends must reach the store in arrival order.
        if (!c.jobs.has(msg.jobId)) return { type: 'ack', cancel: true, end: 0, appended: false };
        // The runner masked its secrets already; this catches any it could not (e.g. an older runner).
        const masker = this.maskers.get(msg.jobId);
        const data = masker?.active ? masker.mask(Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength)) : msg.data;
        const r = await logs.append(msg.jobId, msg.offset, data, msg.data.byteLength);
        return { type: 'ack', cancel: r.cancel, end: r.end, appended: r.appended };
      }
      case 'step':
        if (c.jobs.has(msg.jobId)) await retryTransient(() => setStepStatus(db, msg.jobId, msg.stepId, msg.status, msg.exitCode));
        return { type: 'ack', cancel: !c.jobs.has(msg.jobId) };
      case 'extend': {
        const r = await retryTransient(() => extendLease(db, msg.jobId, runnerId, leaseSeconds));
        return { type: 'ack', cancel: r.cancel };
      }
      case 'done':
        await retryTransient(() => finishJob(db, msg.jobId, msg.status, { runnerId, exitCode: msg.exitCode ?? null, error: msg.error ?? null }));
        // Only once recorded: a `done` answered `unavailable` is sent again over this connection.
        c.jobs.delete(msg.jobId);
        this.maskers.delete(msg.jobId);
        return { type: 'ack', cancel: false };
    }
  }

  private async register(c: Connection, msg: RegisterMessage): Promise<ServerReply> {
    const mismatch = versionMismatch(msg.version);
    if (mismatch) return { type: 'error', code: 'protocol_version_mismatch', message: mismatch };
    const { db, leaseSeconds } = this.deps;
    const hello = { name: msg.name, labels: msg.labels, executor: msg.executor, capacity: msg.capacity, version: msg.agentVersion };
    if (c.local) c.runner = await retryTransient(() => upsertLocalRunner(db, hello));
    else await retryTransient(() => recordHello(db, c.runner!.id, hello));
    const runner = c.runner!;
    await this.settleForgotten(runner.id, msg.jobs);
    const jobs = await this.resume(c, runner.id, msg.jobs);
    return { type: 'registered', runnerId: runner.id, name: runner.name, leaseSeconds, jobs };
  }

  /**
   * A runner registering says which jobs it still runs; the others the database gives it belong
   * to a predecessor that is gone (a crashed `furrow start`, a runner restarted mid-job). They are
   * settled now rather than when their leases run out, which would also keep them counting
   * against the runner's capacity: claims go back to the queue, running jobs end `runner_lost`
   * (and may be retried). A runner is one process with one connection at a time: an older
   * connection still open (its socket died silently) holds nothing the new one does not name.
   */
  private async settleForgotten(runnerId: string, named: string[]): Promise<void> {
    const { db } = this.deps;
    const keep = new Set(named);
    const rows = await retryTransient(() => db.selectFrom('jobs').select(['id', 'status']).where('runner_id', '=', runnerId).where('status', 'in', ['queued', 'running']).execute());
    const forgotten = rows.filter((r) => !keep.has(r.id));
    await retryTransient(() => releaseClaims(db, forgotten.filter((r) => r.status === 'queued').map((r) => r.id), runnerId));
    // The runner says it no longer runs them (and cleared its job users' leftovers as it started):
    // their retries need not wait out the old lease.
    for (const { id } of forgotten.filter((r) => r.status === 'running')) {
      await retryTransient(() => finishJob(db, id, 'runner_lost', { runnerId, error: RUNNER_RESTARTED_ERROR, runnerConfirmedGone: true }));
    }
  }

  /**
   * Re-attaches the jobs a reconnecting runner still runs, and says where each log stands. A job
   * it does not hold gets the answer an unknown id gets: nothing about another runner's jobs leaks.
   */
  private async resume(c: Connection, runnerId: string, jobIds: string[]): Promise<ResumedJob[]> {
    const ids = jobIds.filter((id) => UUID.test(id));
    if (ids.length === 0) return jobIds.map((jobId) => ({ jobId, logEnd: 0, cancel: true }));
    const rows = await retryTransient(() =>
      this.deps.db
        .selectFrom('jobs')
        .select(['id', 'log_received', 'cancel_requested'])
        .where('id', 'in', ids)
        .where('runner_id', '=', runnerId)
        .where('status', '=', 'running')
        .execute(),
    );
    const held = new Map(rows.map((r) => [r.id, r]));
    const resumed = jobIds.map((jobId) => {
      const row = held.get(jobId);
      if (!row) return { jobId, logEnd: 0, cancel: true };
      c.jobs.add(jobId);
      return { jobId, logEnd: Number(row.log_received), cancel: row.cancel_requested };
    });
    // Jobs handed out by another server instance (or before a restart): their secrets, for masking.
    for (const { jobId, cancel } of resumed) {
      // A secret that no longer opens cannot be masked here; the runner still masks what it got.
      if (!cancel && !this.maskers.has(jobId)) this.maskers.set(jobId, new LogMasker(await jobSecretValues(this.deps.db, this.deps.secretBox, jobId).catch(() => [])));
    }
    return resumed;
  }

  /** The spec to hand out, or undefined when it cannot be made (the job is failed with the reason). */
  private async complete(c: Connection, claimed: ClaimedJob, token: string): Promise<JobSpec | undefined> {
    try {
      return await retryTransient(() => completeSpec(this.deps.db, this.deps.secretBox, claimed, token));
    } catch (err) {
      // The database is away, not the key wrong: the claim goes back when this connection closes
      // (or at the runner's next register, or with its lease).
      if (isTransientDatabaseError(err)) {
        c.claimed.add(claimed.spec.jobId);
        throw err;
      }
      const reason = `its secrets or deploy key cannot be opened with this server's secret key (${(err as Error).message}); enter the secrets again or run \`furrow keys rekey-missing\``;
      await finishJob(this.deps.db, claimed.spec.jobId, 'failed', { error: reason });
      return undefined;
    }
  }

  private async next(c: Connection, runnerId: string, waitMs: number, gone?: AbortSignal): Promise<ServerReply> {
    const deadline = Date.now() + waitMs;
    while (!c.draining && !gone?.aborted) {
      // Subscribe before looking, so a job queued between the look and the wait still wakes us.
      let wake!: () => void;
      const woken = new Promise<void>((resolve) => (wake = resolve));
      c.waiting.add(wake);
      let timer: NodeJS.Timeout | undefined;
      try {
        const token = newJobToken();
        const claimed = await retryTransient(() => claimJob(this.deps.db, runnerId, this.deps.leaseSeconds, token.hash));
        if (claimed) {
          c.waiting.delete(wake);
          if (claimed.more) wakeOne(c);
          const spec = await this.complete(c, claimed, token.token);
          if (!spec) continue;
          // Nobody would receive it: give it back at once rather than after the lease.
          if (c.closed || gone?.aborted) {
            await releaseClaims(this.deps.db, [spec.jobId], runnerId);
            break;
          }
          this.maskers.set(spec.jobId, new LogMasker(spec.secrets.map((s) => s.value)));
          c.claimed.add(spec.jobId);
          return { type: 'job', spec };
        }
        const left = deadline - Date.now();
        if (left <= 0) break;
        timer = setTimeout(wake, left);
        gone?.addEventListener('abort', wake, { once: true });
        await woken;
      } finally {
        clearTimeout(timer);
        gone?.removeEventListener('abort', wake);
        c.waiting.delete(wake);
      }
    }
    return { type: 'none' };
  }
}

/** Wakes the connection's longest-waiting `next`, if one waits. */
function wakeOne(c: Connection): void {
  const first = c.waiting.values().next();
  if (first.done) return;
  c.waiting.delete(first.value);
  first.value();
}
