import { Type, type Static } from 'typebox';
import { LABEL } from '../domain/names.js';

/**
 * Runner <-> server protocol. A runner sends requests and gets one reply each; the server may
 * push `cancel` at any time. The in-process local runner uses these exact messages, so a remote
 * runner later takes the same path. Log data travels as raw bytes (a binary frame on the wire).
 */
export const PROTOCOL_VERSION = 3;

/** Why a runner speaking `version` cannot talk to this side, or undefined when it can. */
export function versionMismatch(version: number): string | undefined {
  if (version === PROTOCOL_VERSION) return undefined;
  const advice = version < PROTOCOL_VERSION ? 'upgrade the runner' : 'upgrade the server';
  return `The server speaks runner protocol ${PROTOCOL_VERSION} and this runner speaks ${version}: ${advice}.`;
}

/** Ids of jobs and steps: UUIDs, so that a garbled one is refused as a malformed frame, never asked of the database. */
export const Uuid = Type.String({ pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' });

export const JobStatus = Type.Union([Type.Literal('succeeded'), Type.Literal('failed'), Type.Literal('canceled'), Type.Literal('timed_out')]);
export type FinalStatus = Static<typeof JobStatus>;

export const StepSpec = Type.Object({
  id: Type.String(),
  name: Type.String(),
  script: Type.String(),
  /** Variables of this step alone, over the job's. */
  env: Type.Record(Type.String(), Type.String()),
  /** The step alone; the job's own timeout still applies. */
  timeoutSeconds: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()]),
  /** A failure of this step does not fail the job. */
  continueOnError: Type.Boolean(),
  /**
   * Whether the step runs while the job has succeeded so far, and after an earlier step failed.
   * The server evaluates the step's `if` for both cases; a canceled or timed-out job runs no more steps.
   */
  when: Type.Object({ success: Type.Boolean(), failure: Type.Boolean() }),
});

/** A secret handed to this job alone: `env` ones become variables, `ssh` ones go into the job's ssh-agent. */
export const SecretSpec = Type.Object({
  name: Type.String(),
  kind: Type.Union([Type.Literal('env'), Type.Literal('ssh')]),
  value: Type.String(),
});
export type SecretSpec = Static<typeof SecretSpec>;

/** The commit a job checks out into its workspace before its steps. */
export const CheckoutSpec = Type.Object({
  /** The step the checkout is reported as (the job's first). */
  stepId: Type.String(),
  repositoryId: Type.String(),
  url: Type.String(),
  commit: Type.String(),
  /** The branch or tag the run was started at, when it was (e.g. `refs/heads/main`). */
  ref: Type.Union([Type.String(), Type.Null()]),
  /** Commits of history to fetch; 0 fetches all. */
  depth: Type.Integer({ minimum: 0 }),
  /** The deploy key (OpenSSH private key); filled in when a runner claims the job, never stored in the spec. */
  privateKey: Type.Union([Type.String(), Type.Null()]),
  /** known_hosts lines the server pinned for the repository's host; null for non-SSH URLs. */
  knownHosts: Type.Union([Type.String(), Type.Null()]),
});
export type CheckoutSpec = Static<typeof CheckoutSpec>;

/** Artifacts the job uploads when its steps end and downloads before they start. */
export const ArtifactSpec = Type.Object({
  /** Bearer token for the artifact routes, valid while the job runs; filled in at claim. */
  token: Type.String(),
  upload: Type.Array(Type.Object({ name: Type.String(), paths: Type.Array(Type.String()) })),
  download: Type.Array(Type.Object({ name: Type.String(), path: Type.String() })),
});
export type ArtifactSpec = Static<typeof ArtifactSpec>;

/** Everything a runner needs to execute a job; compiled by the server, never parsed by a runner. */
export const JobSpec = Type.Object({
  jobId: Type.String(),
  runId: Type.String(),
  projectId: Type.String(),
  workflowId: Type.String(),
  runNumber: Type.Integer(),
  name: Type.String(),
  /** 1 for the first attempt; a retry (e.g. after `runner_lost`) runs the same spec as attempt 2, … */
  attempt: Type.Integer({ minimum: 1 }),
  timeoutSeconds: Type.Integer({ minimum: 1 }),
  leaseSeconds: Type.Integer({ minimum: 1 }),
  /** Container image for container executors (podman); others ignore it. */
  image: Type.Union([Type.String(), Type.Null()]),
  /** `none`: the job gets no network (executors that cannot enforce it refuse the job). */
  network: Type.Union([Type.Literal('default'), Type.Literal('none')]),
  env: Type.Record(Type.String(), Type.String()),
  /** Resolved when a runner claims the job; the stored spec holds none. Masked in the job's log. */
  secrets: Type.Array(SecretSpec),
  checkout: Type.Union([CheckoutSpec, Type.Null()]),
  artifacts: ArtifactSpec,
  steps: Type.Array(StepSpec),
});
export type JobSpec = Static<typeof JobSpec>;

export const RegisterMessage = Type.Object({
  type: Type.Literal('register'),
  /** PROTOCOL_VERSION of the runner; the server refuses any other with `protocol_version_mismatch`. */
  version: Type.Integer(),
  name: Type.String({ minLength: 1, maxLength: 128 }),
  labels: Type.Array(Type.String({ pattern: LABEL.source }), { maxItems: 64 }),
  capacity: Type.Integer({ minimum: 1, maximum: 256 }),
  executor: Type.String({ maxLength: 32 }),
  /** The runner's software version, shown in runner lists. */
  agentVersion: Type.String({ maxLength: 64 }),
  /** Jobs the runner is running now (after a reconnect): the reply says where each one's log stands. */
  jobs: Type.Array(Uuid, { maxItems: 256 }),
});
export type RegisterMessage = Static<typeof RegisterMessage>;

export interface NextMessage {
  type: 'next';
  /** Give up waiting after this long and answer `{ type: 'none' }` (long-poll friendly). */
  waitMs: number;
}
export interface AcceptMessage {
  type: 'accept';
  jobId: string;
}
export interface LogMessage {
  type: 'log';
  jobId: string;
  offset: number;
  data: Uint8Array;
}
export interface StepMessage {
  type: 'step';
  jobId: string;
  stepId: string;
  status: 'running' | 'skipped' | FinalStatus;
  exitCode?: number | null;
}
export interface ExtendMessage {
  type: 'extend';
  jobId: string;
}
export interface DoneMessage {
  type: 'done';
  jobId: string;
  status: FinalStatus;
  exitCode?: number | null;
  error?: string;
}
/** The runner drains: waiting and later `next` requests answer `none`. */
export interface DrainMessage {
  type: 'drain';
}

export type RunnerRequest = RegisterMessage | NextMessage | AcceptMessage | LogMessage | StepMessage | ExtendMessage | DoneMessage | DrainMessage;

/** Where a job the runner still runs stands on the server, as told in `registered`. */
export interface ResumedJob {
  jobId: string;
  /** Bytes of its log the server holds: the runner resends from here. */
  logEnd: number;
  /** Stop the job: canceled meanwhile, or no longer this runner's (e.g. it ended `runner_lost`). */
  cancel: boolean;
}

export interface RegisteredReply {
  type: 'registered';
  runnerId: string;
  name: string;
  leaseSeconds: number;
  jobs: ResumedJob[];
  /** HTTP long-poll transport only: the connection id later requests carry. */
  connection?: string;
}

export type ServerReply =
  | RegisteredReply
  | { type: 'job'; spec: JobSpec }
  | { type: 'none' }
  /**
   * `cancel` tells the runner to stop the job (canceled, or no longer its own). For `log`, `end`
   * is the log size the server holds and `appended` whether this chunk was stored.
   */
  | { type: 'ack'; cancel: boolean; end?: number; appended?: boolean }
  | { type: 'error'; code: string; message: string };

/** `reason`, when known, says who or what canceled it ("canceled by ana@example.com"). */
export type ServerPush = { type: 'cancel'; jobId: string; reason?: string };

/** A request's connection went away before its reply came; raised for `log` requests only. */
export class ConnectionLost extends Error {
  constructor() {
    super('connection to the server lost');
    this.name = 'ConnectionLost';
  }
}

/**
 * A runner's connection to the server, as the agent sees it. `open` registers; a channel that
 * can lose its connection reconnects by itself, registers again with a fresh `hello()` and tells
 * `onRegistered` listeners. Requests wait while it is disconnected and are resent after a
 * reconnect (the server's handling is idempotent), except `log`, which rejects with
 * `ConnectionLost` so that the sender resumes from the offset the next `registered` names.
 */
export interface RunnerChannel {
  open(hello: () => RegisterMessage): Promise<RegisteredReply>;
  request<R extends ServerReply = ServerReply>(msg: RunnerRequest): Promise<R>;
  onPush(listener: (msg: ServerPush) => void): void;
  onRegistered(listener: (reply: RegisteredReply) => void): void;
  /** The channel cannot go on (e.g. its credential was revoked); the runner should stop. */
  onFatal(listener: (err: Error) => void): void;
  /** How many `log` requests may be on their way at once: several only where order is kept. */
  readonly logWindow: number;
  close(): void;
}
