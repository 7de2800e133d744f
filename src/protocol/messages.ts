import { Type, type Static } from 'typebox';

/**
 * Runner <-> server protocol. A runner sends requests and gets one reply each; the server may
 * push `cancel` at any time. The in-process local runner uses these exact messages, so a remote
 * runner later takes the same path. Log data travels as raw bytes (a binary frame on the wire).
 */
export const PROTOCOL_VERSION = 1;

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
  version: Type.Integer(),
  name: Type.String({ minLength: 1 }),
  labels: Type.Array(Type.String()),
  capacity: Type.Integer({ minimum: 1 }),
  executor: Type.String(),
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

export type RunnerRequest = RegisterMessage | NextMessage | AcceptMessage | LogMessage | StepMessage | ExtendMessage | DoneMessage;

export type ServerReply =
  | { type: 'registered'; runnerId: string; leaseSeconds: number }
  | { type: 'job'; spec: JobSpec }
  | { type: 'none' }
  /** `cancel` tells the runner the job was canceled meanwhile; `end` is the log size the server holds. */
  | { type: 'ack'; cancel: boolean; end?: number }
  | { type: 'error'; code: string; message: string };

export type ServerPush = { type: 'cancel'; jobId: string };

/**
 * One runner's connection to the server. `request` calls are answered in order; `onPush`
 * delivers server-initiated messages. Closing releases the runner's waiting `next`.
 */
export interface RunnerChannel {
  request<R extends ServerReply = ServerReply>(msg: RunnerRequest): Promise<R>;
  onPush(listener: (msg: ServerPush) => void): void;
  /** Ends a waiting `next` with `none` (used when a runner drains). */
  interrupt(): void;
  close(): void;
}
