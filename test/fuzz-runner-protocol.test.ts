import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { encodeRequest } from '../src/protocol/frames.js';
import { PROTOCOL_VERSION, type RunnerRequest } from '../src/protocol/messages.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

/**
 * The runner protocol fed random and mutated requests and frames, with a registered runner's
 * credential, over HTTP long-polling and the WebSocket: every HTTP answer is below 500, no reply
 * is an internal error, a malformed WebSocket frame closes the socket with 1008, and the server
 * still answers afterwards.
 */

const SEED = Number(process.env.FUZZ_SEED ?? 20261202);

let t: TestInstance;
let credential: string;
let jobId: string;

const register = (): RunnerRequest => ({ type: 'register', version: PROTOCOL_VERSION, name: 'fuzzed', labels: [], capacity: 2, executor: 'shell', agentVersion: 'test', jobs: [] });

const jobIds = () => fc.oneof(fc.constant(jobId), fc.uuid(), fc.constantFrom('', 'x'.repeat(64), '..', '%00', '\u0000', '🦊'));
const statuses = fc.constantFrom('running', 'succeeded', 'failed', 'canceled', 'timed_out', 'skipped', 'queued', 'bogus');
const anything = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(null, -1, 2 ** 53, 1.5, '', 'x'.repeat(5000), [], {}));

/** Requests of every type, mostly well-formed, some with a field replaced or added. */
const request: fc.Arbitrary<RunnerRequest> = fc
  .tuple(
    fc.oneof(
      fc.constant(register()),
      fc.record({ version: fc.integer({ min: -2, max: 10 }), capacity: fc.integer({ min: -1, max: 300 }), jobs: fc.array(jobIds(), { maxLength: 3 }) }).map((r) => ({ ...register(), ...r })),
      fc.integer({ min: 0, max: 50 }).map((waitMs) => ({ type: 'next', waitMs })),
      jobIds().map((id) => ({ type: 'accept', jobId: id })),
      fc.record({ jobId: jobIds(), stepId: jobIds(), status: statuses, exitCode: fc.oneof(fc.integer(), fc.constant(null)) }).map((r) => ({ type: 'step', ...r })),
      fc.record({ jobId: jobIds(), offset: fc.oneof(fc.nat(100), fc.integer()), data: fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)) }).map((r) => ({ type: 'log', ...r })),
      jobIds().map((id) => ({ type: 'extend', jobId: id })),
      fc.record({ jobId: jobIds(), status: statuses, exitCode: fc.oneof(fc.integer(), fc.constant(null)), error: fc.string({ maxLength: 50 }) }).map((r) => ({ type: 'done', ...r })),
      fc.constant({ type: 'drain' }),
    ),
    fc.option(fc.tuple(fc.constantFrom('type', 'jobId', 'status', 'waitMs', 'extra', 'labels', 'name'), anything), { freq: 4 }),
  )
  .map(([msg, change]) => {
    if (!change) return msg as RunnerRequest;
    // A mutated `next` must not wait long: the property is about answers, not timing.
    if (change[0] === 'waitMs') return { ...msg, waitMs: typeof change[1] === 'number' && change[1] > 100 ? 100 : change[1] } as RunnerRequest;
    return { ...msg, [change[0]]: change[1] } as RunnerRequest;
  });

/** A frame as the wire carries it: an encoded request, or bytes that merely look like one. */
const frame = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(fc.nat(1000), request).map(([id, msg]) => ({ data: encodeRequest(id, msg), binary: msg.type === 'log' })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((a) => ({ data: Buffer.from(a), binary: true })) },
  { weight: 1, arbitrary: fc.constantFrom('{', '[]', '{"id":1}', '{"id":-1,"msg":{"type":"drain"}}', '{"id":1,"msg":null}', 'null', '"x"').map((s) => ({ data: s, binary: false })) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.string({ maxLength: 40 })).map(([n, s]) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(n);
    return { data: Buffer.concat([len, Buffer.from(s)]), binary: true };
  }) },
);

beforeAll(async () => {
  t = await startTestInstance({ FURROW_LOCAL_RUNNER: 'false' });
  const { organizationId, workflowId } = await t.workflow('echo fuzzed');
  const token = await t.api('POST', `/api/v1/organizations/${organizationId}/runner-tokens`, { description: 'fuzz' });
  const runner = await t.api('POST', '/api/v1/runners/register', { version: PROTOCOL_VERSION, name: 'fuzzed', labels: [], capacity: 2, executor: 'shell', agentVersion: 'test' }, token.body.token);
  expect(runner.status, runner.text).toBe(201);
  credential = runner.body.credential;
  const run = await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, {});
  jobId = (await t.api('GET', `/api/v1/runs/${run.body.id}/jobs`)).body.items[0].id;
});
afterAll(async () => {
  await t?.stop();
});

async function post(data: string | Buffer, binary: boolean, connection: string | undefined): Promise<{ status: number; body: any }> {
  const res = await fetch(`${t.url}/api/v1/runner/requests`, {
    method: 'POST',
    headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/octet-stream', ...(binary ? { 'x-furrow-frame': 'binary' } : {}), ...(connection ? { 'x-furrow-connection': connection } : {}) },
    body: new Uint8Array(typeof data === 'string' ? Buffer.from(data) : data),
  });
  const text = await res.text();
  return { status: res.status, body: text.startsWith('{') ? JSON.parse(text) : text };
}

describe('runner protocol', () => {
  it('answers every HTTP long-poll request below 500, with no internal error', async () => {
    const registered = await post(encodeRequest(1, register()), false, undefined);
    expect(registered.body.reply.type).toBe('registered');
    const connection = registered.body.reply.connection as string;
    await fc.assert(
      fc.asyncProperty(frame, fc.constantFrom<'own' | 'none' | 'other'>('own', 'own', 'own', 'none', 'other'), async (f, which) => {
        const res = await post(f.data, f.binary, which === 'own' ? connection : which === 'other' ? '00000000-0000-4000-8000-000000000000' : undefined);
        expect(res.status, JSON.stringify(res.body)).toBeLessThan(500);
        expect(res.body?.reply?.code, JSON.stringify(res.body)).not.toBe('internal');
      }),
      { seed: SEED, numRuns: 150, endOnFailure: true },
    );
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
  }, 120_000);

  it('replies to every WebSocket request without an internal error, and closes on a malformed frame with 1008', async () => {
    const open = () =>
      new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(`${t.url.replace('http', 'ws')}/api/v1/runner`, { headers: { authorization: `Bearer ${credential}` } });
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
      });
    await fc.assert(
      fc.asyncProperty(fc.array(frame, { minLength: 1, maxLength: 6 }), async (frames) => {
        const ws = await open();
        const replies: any[] = [];
        ws.on('message', (data: Buffer) => replies.push(JSON.parse(data.toString())));
        const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
        // Register first, so that later requests reach the gateway's handlers.
        ws.send(encodeRequest(0, register()));
        for (const f of frames) ws.send(f.data, { binary: f.binary });
        // A final drain marks the end: its reply comes after every earlier one, unless the socket closed.
        ws.send(encodeRequest(99_999, { type: 'drain' }));
        const ended = await Promise.race([closed, new Promise<'replied'>((resolve) => {
          const check = () => (replies.some((r) => r.id === 99_999) ? resolve('replied') : setTimeout(check, 10));
          check();
        })]);
        if (ended !== 'replied') expect(ended).toBe(1008);
        for (const r of replies) expect(r.reply?.code, JSON.stringify(r)).not.toBe('internal');
        ws.close();
        await closed;
      }),
      { seed: SEED, numRuns: 40, endOnFailure: true },
    );
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
  }, 120_000);
});
