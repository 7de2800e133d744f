import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobOutput } from './helpers/log-output.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

let t: TestInstance;
beforeAll(async () => {
  t = await startTestInstance();
});
afterAll(() => t?.stop());

type Msg = { type: string; [k: string]: any };

/** Collects messages until `until` says stop (or times out). */
function collect(ws: WebSocket, until: (m: Msg) => boolean, timeoutMs = 15_000): Promise<Msg[]> {
  const got: Msg[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out; got ${JSON.stringify(got.map((m) => m.type))}`)), timeoutMs);
    ws.on('message', (raw) => {
      const m = JSON.parse(raw.toString()) as Msg;
      got.push(m);
      if (until(m)) {
        clearTimeout(timer);
        resolve(got);
      }
    });
  });
}

async function runningJob(script: string) {
  const { workflowId, projectId } = await t.workflow(script);
  const run = await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, {});
  const jobs = await t.api('GET', `/api/v1/runs/${run.body.id}/jobs`);
  return { runId: run.body.id as string, jobId: jobs.body.items[0].id as string, projectId };
}

describe('live updates over WebSocket', () => {
  it('gives a late log viewer the backlog then live chunks, each byte exactly once', async () => {
    const { runId, jobId } = await runningJob('for i in $(seq 1 40); do echo "line $i"; sleep 0.03; done');
    // Join late: once part of the log is already stored.
    for (let i = 0; i < 200; i++) {
      if ((await t.api('GET', `/api/v1/runs/${runId}/log`)).text.includes('line 5\n')) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const ws = await t.live();
    const done = collect(ws, (m) => m.type === 'log-end');
    ws.send(JSON.stringify({ type: 'subscribe', channel: 'log', jobId, offset: 0 }));
    const msgs = await done;
    ws.close();
    const logs = msgs.filter((m) => m.type === 'log');
    expect(logs.length).toBeGreaterThan(1); // backlog and at least one live chunk
    let expected = 0;
    for (const m of logs) {
      expect(m.offset).toBe(expected); // no gap, no overlap
      expected += Buffer.from(m.data, 'base64').byteLength;
    }
    const text = Buffer.concat(logs.map((m) => Buffer.from(m.data, 'base64'))).toString();
    const stored = await t.api('GET', `/api/v1/jobs/${jobId}/log`);
    expect(text).toBe(stored.text);
    expect(jobOutput(text)).toBe(Array.from({ length: 40 }, (_, i) => `line ${i + 1}\n`).join(''));
    expect(msgs.at(-1)).toMatchObject({ type: 'log-end', jobId, size: expected, status: 'succeeded' });
  });

  it('resumes a log from an offset', async () => {
    const { runId, jobId } = await runningJob('printf "abcdefghij"');
    await t.waitForRun(runId);
    // Six bytes into the step's output, past the marker before it.
    const stored = (await t.api('GET', `/api/v1/jobs/${jobId}/log`)).text;
    const offset = stored.indexOf('abcdefghij') + 6;
    const ws = await t.live();
    const done = collect(ws, (m) => m.type === 'log-end');
    ws.send(JSON.stringify({ type: 'subscribe', channel: 'log', jobId, offset }));
    const msgs = await done;
    ws.close();
    const text = msgs.filter((m) => m.type === 'log').map((m) => Buffer.from(m.data, 'base64').toString()).join('');
    expect(text).toBe(stored.slice(offset));
    expect(jobOutput(text)).toMatch(/^ghij\n/);
  });

  it('pushes run status changes until the run finishes', async () => {
    const { workflowId } = await t.workflow('sleep 0.3; echo done');
    const run = await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, {});
    const ws = await t.live();
    const done = collect(ws, (m) => m.type === 'run' && m.run.status === 'succeeded');
    ws.send(JSON.stringify({ type: 'subscribe', channel: 'run', runId: run.body.id }));
    const msgs = await done;
    ws.close();
    expect(msgs[0]!.run.id).toBe(run.body.id);
    expect(msgs.at(-1)!.jobs[0].status).toBe('succeeded');
  });

  it('hides runs the caller may not see and refuses unauthenticated sockets', async () => {
    const { runId } = await runningJob('true');
    const stranger = await t.user(`stranger-${Date.now()}@example.com`);
    const ws = await t.live(stranger.token);
    const done = collect(ws, (m) => m.type === 'error');
    ws.send(JSON.stringify({ type: 'subscribe', channel: 'run', runId }));
    expect((await done).at(-1)).toMatchObject({ type: 'error', code: 'not_found' });
    ws.close();

    const anonymous = new WebSocket(`${t.url.replace('http', 'ws')}/api/v1/live`);
    const status = await new Promise<number>((resolve) => anonymous.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)));
    expect(status).toBe(401);
  });

  it('answers malformed messages with an error and keeps the socket open', async () => {
    const ws = await t.live();
    const done = collect(ws, (m) => m.type === 'error');
    ws.send('not json');
    expect((await done)[0]).toMatchObject({ type: 'error', code: 'invalid_json' });
    const again = collect(ws, (m) => m.type === 'error');
    ws.send(JSON.stringify({ type: 'subscribe', channel: 'everything' }));
    expect((await again).at(-1)).toMatchObject({ type: 'error', code: 'validation_failed' });
    ws.close();
  });
});
