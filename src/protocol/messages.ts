import { Type, type Static } from 'typebox';

/**
 * Runner <-> server protocol. A runner sends requests and gets one reply each; the server may
 * push `cancel` at any time. The in-process local runner uses these exact messages, so a remote
 * runner later takes the same path. Log data travels as raw bytes (a binary frame on the wire).
 */
export const PROTOCOL_VERSION = 2;

/** Why a runner speaking `version` cannot talk to this side, or undefined when it can. */
export function versionMismatch(version: number): string | undefined {
  if (version === PROTOCOL_VERSION) return undefined;
  const advice = version < PROTOCOL_VERSION ? 'upgrade the runner' : 'upgrade the server';
  return `The server speaks runner protocol ${PROTOCOL_VERSION} and this runner speaks ${version}: ${advice}.`;
}

export const JobStatus = Type.Union([Type.Literal('succeeded'), Type.Literal('failed'), Type.Literal('canceled'), Type.Literal('timed_out')]);
export type FinalStatus = Static<typeof JobStatus>;

export const StepSpec = Type.Object({
  id: Type.String(),
  name: Type.String(),
  script: Type.String(),
});

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
  steps: Type.Array(StepSpec),
});
export type JobSpec = Static<typeof JobSpec>;

export const RegisterMessage = Type.Object({
  type: Type.Literal('register'),
  /** PROTOCOL_VERSION of the runner; the server refuses any other with `protocol_version_mismatch`. */
  version: Type.Integer(),
  name: Type.String({ minLength: 1, maxLength: 128 }),
  labels: Type.Array(Type.String({ pattern: '^[A-Za-z0-9._:-]{1,64}$' }), { maxItems: 64 }),
  capacity: Type.Integer({ minimum: 1, maximum: 256 }),
  executor: Type.String({ maxLength: 32 }),
  /** The runner's software version, shown in runner lists. */
  agentVersion: Type.String({ maxLength: 64 }),
  /** Jobs the runner is running now (after a reconnect): the reply says where each one's log stands. */
  jobs: Type.Array(Type.String(), { maxItems: 256 }),
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
  status: 'running' | FinalStatus;
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

export type ServerPush = { type: 'cancel'; jobId: string };

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
