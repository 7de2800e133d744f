import { Type } from 'typebox';
import { Compile } from 'typebox/compile';
import { JobStatus, RegisterMessage, Uuid, type RunnerRequest, type ServerPush, type ServerReply } from './messages.js';

/**
 * The runner protocol on the wire (WebSocket frames, and HTTP bodies of the long-poll fallback).
 * Runner → server: a JSON text `{id, msg}`, except `log`, which is binary so that output bytes
 * travel as they are: a 4-byte big-endian header length, the JSON header `{id, jobId, offset}`,
 * then the data. Server → runner: JSON text `{id, reply}` answering request `id`, or `{push}`.
 */

const JobId = Uuid;
const TextRequest = Type.Union([
  RegisterMessage,
  Type.Object({ type: Type.Literal('next'), waitMs: Type.Integer({ minimum: 0, maximum: 60_000 }) }),
  Type.Object({ type: Type.Literal('accept'), jobId: JobId }),
  Type.Object({
    type: Type.Literal('step'),
    jobId: JobId,
    stepId: JobId,
    status: Type.Union([Type.Literal('running'), JobStatus]),
    exitCode: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
  }),
  Type.Object({ type: Type.Literal('extend'), jobId: JobId }),
  Type.Object({
    type: Type.Literal('done'),
    jobId: JobId,
    status: JobStatus,
    exitCode: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
    error: Type.Optional(Type.String({ maxLength: 4096 })),
  }),
  Type.Object({ type: Type.Literal('drain') }),
]);
const checkText = Compile(Type.Object({ id: Type.Integer({ minimum: 0 }), msg: TextRequest }));
const checkLogHeader = Compile(Type.Object({ id: Type.Integer({ minimum: 0 }), jobId: JobId, offset: Type.Integer({ minimum: 0 }) }));

export class FrameError extends Error {}

export function encodeRequest(id: number, msg: RunnerRequest): string | Buffer {
  if (msg.type !== 'log') return JSON.stringify({ id, msg });
  const header = Buffer.from(JSON.stringify({ id, jobId: msg.jobId, offset: msg.offset }));
  const length = Buffer.alloc(4);
  length.writeUInt32BE(header.byteLength);
  return Buffer.concat([length, header, msg.data]);
}

/** Parses and checks a runner's frame; throws FrameError saying what is wrong. */
export function decodeRequest(frame: Buffer, binary: boolean): { id: number; msg: RunnerRequest } {
  if (binary) {
    if (frame.byteLength < 4) throw new FrameError('binary frame shorter than its header length');
    const headerLength = frame.readUInt32BE(0);
    if (headerLength > 1024 || 4 + headerLength > frame.byteLength) throw new FrameError('binary frame header length out of range');
    const header = parseJson(frame.subarray(4, 4 + headerLength));
    if (!checkLogHeader.Check(header)) throw new FrameError('log frame header must be {id, jobId, offset}');
    return { id: header.id, msg: { type: 'log', jobId: header.jobId, offset: header.offset, data: frame.subarray(4 + headerLength) } };
  }
  const parsed = parseJson(frame);
  if (!checkText.Check(parsed)) throw new FrameError('not a runner protocol request; see docs/runner-protocol.md');
  return parsed as { id: number; msg: RunnerRequest };
}

function parseJson(data: Buffer): unknown {
  try {
    return JSON.parse(data.toString('utf8'));
  } catch {
    throw new FrameError('frame is not valid JSON');
  }
}

export type ServerFrame = { id: number; reply: ServerReply } | { push: ServerPush };

export const encodeServerFrame = (frame: ServerFrame): string => JSON.stringify(frame);
