import { chmod, chown, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { RUNNER_FENCE_LEASES } from '../domain/job-retry.js';
import { PROTOCOL_VERSION, type JobSpec, type RegisteredReply, type RunnerChannel, type ServerReply } from '../protocol/messages.js';
import type { Executor, JobContext } from './executors/executor.js';
import { runJobWork, type JobOutcome } from './job-work.js';
import { JobSlots } from './job-slots.js';
import { LogSink } from './log-sink.js';
import { MaskedOutput } from './masked-output.js';
import { agentSocket, startSshAgent, type JobSshAgent } from './ssh-agent.js';



export interface RunnerOptions {
  name: string;
  labels: string[];
  capacity: number;
  workDir: string;
  executor: Executor;
  /** The runner's software version, reported at registration. */
  version: string;
  /** The server's base URL, for artifact transfers. */
  serverUrl: string;
  /**
   * The base name of the users jobs run as when the runner runs as root: slot i's jobs run as
   * `<jobUser>-i` (checkouts, transfers and the ssh-agent too).
   */
  jobUser?: string | undefined;
  log: (msg: string, extra?: Record<string, unknown>) => void;
}

/** How long one `next` waits for a job before asking again. */
const NEXT_WAIT_MS = 30_000;

/**
 * The agent loop: registers, then keeps `capacity` slots each asking for the next job and running
 * it through the executor. It never touches the database; everything goes through the channel.
 */
export class RunnerAgent {
  private draining = false;
  private readonly running = new Map<string, { controller: AbortController; sink: LogSink; cancelReason?: string }>();
  private readonly jobRuns = new Set<Promise<void>>();
  private leaseSeconds = 30;
  /** Each slot's user, and the cleanup that frees a slot for its next job. */
  private slots: JobSlots | undefined;
  /** The id the server knows this runner by, once registered. */
  runnerId: string | undefined;

  constructor(
    private readonly channel: RunnerChannel,
    private readonly opts: RunnerOptions,
  ) {
    channel.onPush((msg) => {
      if (msg.type === 'cancel') this.cancel(msg.jobId, msg.reason);
    });
    channel.onRegistered((reply) => this.resumed(reply));
    // The server will not take this runner back: its jobs cannot report any more.
    channel.onFatal((err) => {
      this.draining = true;
      for (const { controller, sink } of this.running.values()) {
        sink.abandon(err);
        controller.abort('canceled');
      }
    });
  }

  /** Stops a running job as canceled; `reason` (who or what canceled it) goes into its log and outcome. */
  private cancel(jobId: string, reason?: string): void {
    const entry = this.running.get(jobId);
    if (!entry || entry.controller.signal.aborted) return;
    if (reason) entry.cancelReason = reason;
    entry.controller.abort('canceled');
  }

  /** Registers (throws when the server refuses) and starts taking jobs. */
  async start(): Promise<void> {
    this.slots = await JobSlots.open(this.opts.jobUser, this.opts.capacity, this.opts.workDir);
    // Traversable but not listable: a job user reaches its own workspace, not the others' names.
    await mkdir(this.opts.workDir, { recursive: true });
    await chmod(this.opts.workDir, 0o711);
    // What a crashed runner's jobs left (processes, workspaces) goes before this one connects.
    const left = await this.slots.start();
    if (left.processes + left.dirs > 0) this.opts.log('removed what jobs of an earlier run of this runner left', left);
    const reply = await this.channel.open(() => ({
      type: 'register',
      version: PROTOCOL_VERSION,
      name: this.opts.name,
      labels: this.opts.labels,
      capacity: this.opts.capacity,
      executor: this.opts.executor.name,
      agentVersion: this.opts.version,
      jobs: [...this.running.keys()],
    }));
    this.runnerId = reply.runnerId;
    this.leaseSeconds = reply.leaseSeconds;
    for (let i = 0; i < this.opts.capacity; i++) void this.slot(i);
  }

  get activeJobs(): number {
    return this.running.size;
  }

  /** After a reconnect: each running job's log resumes where the server's copy ends. */
  private resumed(reply: RegisteredReply): void {
    this.leaseSeconds = reply.leaseSeconds;
    for (const job of reply.jobs) {
      const entry = this.running.get(job.jobId);
      if (!entry) continue;
      entry.sink.resume(job.logEnd);
      if (job.cancel) entry.controller.abort('canceled');
    }
  }

  private async slot(index: number): Promise<void> {
    while (!this.draining) {
      let reply: ServerReply;
      try {
        reply = await this.channel.request({ type: 'next', waitMs: NEXT_WAIT_MS });
      } catch (err) {
        this.opts.log('asking for a job failed', { error: (err as Error).message });
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      // A job claimed while draining is not started: closing the connection gives it back.
      if (reply.type === 'job' && !this.draining) {
        const job = this.runJob(reply.spec, index);
        this.jobRuns.add(job);
        await job;
        this.jobRuns.delete(job);
      }
    }
  }

  private async runJob(spec: JobSpec, slot: number): Promise<void> {
    this.slots!.occupy(slot);
    const controller = new AbortController();
    const workspace = path.join(this.opts.workDir, spec.jobId);
    const scratch = path.join(this.opts.workDir, `.${spec.jobId}`);
    const sink = new LogSink(this.channel, spec.jobId, () => controller.abort('canceled'));
    this.running.set(spec.jobId, { controller, sink });
    const timeout = setTimeout(() => controller.abort('timed_out'), spec.timeoutSeconds * 1000);
    let extending = false;
    let renewedAt = Date.now();
    const lease = setInterval(() => {
      // Cut off from the server for longer than it waits before running a lost job again
      // elsewhere: the job is killed here first, so it never runs twice.
      if (Date.now() - renewedAt > this.leaseSeconds * RUNNER_FENCE_LEASES * 1000 && !controller.signal.aborted) {
        this.opts.log('could not renew the lease of a job for too long: killing it, the server may run it elsewhere', { jobId: spec.jobId });
        this.cancel(spec.jobId, `canceled by the runner: it could not renew the job's lease for ${this.leaseSeconds * RUNNER_FENCE_LEASES} s`);
      }
      if (extending) return; // still waiting for a reconnect: one extend is enough
      extending = true;
      this.channel
        .request({ type: 'extend', jobId: spec.jobId })
        .then(
          (r) => {
            if (r.type !== 'ack') return;
            renewedAt = Date.now();
            if (r.cancel) controller.abort('canceled');
          },
          () => undefined,
        )
        .finally(() => (extending = false));
    }, (this.leaseSeconds * 1000) / 3);
    let outcome: JobOutcome = { status: 'succeeded', exitCode: 0 };
    /** Set once the server confirmed the job: from then on it gets an outcome. */
    let job: JobContext | undefined;
    /** Set once the executor prepared it: from then on it is cleaned up. */
    let prepared: JobContext | undefined;
    let sshAgent: JobSshAgent | undefined;
    const output = new MaskedOutput(sink, spec.secrets.map((s) => s.value));
    try {
      // The job is prepared while the server confirms it: both are on the trigger-to-start path.
      // Nothing of it runs before the confirmation.
      const accepting = this.channel.request({ type: 'accept', jobId: spec.jobId });
      accepting.catch(() => undefined); // awaited below, after the preparation
      const user = this.slots!.user(slot);
      const sshKeys = spec.secrets.filter((s) => s.kind === 'ssh').map((s) => s.value);
      const agentDir = path.join(scratch, 'ssh-agent');
      const env = {
        ...spec.env,
        ...Object.fromEntries(spec.secrets.filter((s) => s.kind === 'env').map((s) => [s.name, s.value])),
        ...(sshKeys.length > 0 ? { SSH_AUTH_SOCK: agentSocket(agentDir) } : {}),
      };
      const context: JobContext = { spec: { ...spec, env }, workspace, scratch, user, signal: controller.signal, cancelReason: () => this.running.get(spec.jobId)?.cancelReason };
      let preparing: Error | undefined;
      try {
        await Promise.all([mkdir(workspace, { recursive: true, mode: 0o700 }), mkdir(scratch, { recursive: true, mode: 0o700 })]);
        prepared = context;
        await this.opts.executor.prepareJob(context);
        // The checkout's key and the ssh-agent's socket go there, used as the job user.
        if (user) await chown(scratch, user.uid, user.gid);
        if (sshKeys.length > 0) sshAgent = await startSshAgent(agentDir, sshKeys, user);
      } catch (err) {
        preparing = err as Error;
      }
      const accepted = await accepting;
      if (accepted.type !== 'ack' || accepted.cancel) return; // canceled (the server closed it) before it began
      job = context;
      if (preparing) throw preparing;
      outcome = await runJobWork({
        executor: this.opts.executor,
        job,
        output,
        user,
        serverUrl: this.opts.serverUrl,
        report: (stepId, status, exitCode) => this.channel.request({ type: 'step', jobId: spec.jobId, stepId, status, ...(exitCode !== undefined ? { exitCode } : {}) }),
        flush: () => sink.flush(),
      });
    } catch (err) {
      outcome = { status: 'failed', exitCode: null, error: `runner error: ${(err as Error).message}` };
      this.opts.log('job failed in the runner', { jobId: spec.jobId, error: outcome.error });
    } finally {
      clearTimeout(timeout);
      clearInterval(lease);
      sshAgent?.stop();
      if (prepared) await this.opts.executor.cleanupJob(prepared);
      output.endOfStep();
      await sink.flush().catch(() => undefined);
      // Nothing of the job may run on into the slot's next job, nor write while its files go.
      await this.slots!.release(slot);
      await Promise.all([rm(workspace, { recursive: true, force: true }), rm(scratch, { recursive: true, force: true })]);
      if (job) {
        const { status, exitCode, error } = outcome;
        await this.channel
          .request({ type: 'done', jobId: spec.jobId, status, exitCode, ...(error ? { error } : {}) })
          .catch((err: Error) => this.opts.log('reporting a job outcome failed', { jobId: spec.jobId, error: err.message }));
      }
      this.running.delete(spec.jobId);
    }
  }

  /**
   * Stops taking jobs and lets running ones finish for up to `graceMs` (or until `hurry` aborts),
   * then cancels the rest and waits for them to report.
   */
  async drain(graceMs: number, hurry?: AbortSignal): Promise<void> {
    this.draining = true;
    // Not awaited: a server that is away must not hold up the drain.
    void this.channel.request({ type: 'drain' }).catch(() => undefined);
    const all = Promise.all(this.jobRuns);
    let timer: NodeJS.Timeout | undefined;
    let skip: (() => void) | undefined;
    const expired = await Promise.race([
      all.then(() => false),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), hurry?.aborted ? 0 : graceMs);
        skip = () => r(true);
        hurry?.addEventListener('abort', skip, { once: true });
      }),
    ]);
    clearTimeout(timer);
    hurry?.removeEventListener('abort', skip!);
    if (expired) {
      for (const jobId of this.running.keys()) this.cancel(jobId, 'canceled: the runner shut down and its grace period ran out');
      await all;
    }
    this.slots?.stop();
  }
}
