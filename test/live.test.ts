import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobOutput } from './helpers/log-output.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

let t: TestInstance;
// Small limits, so that tests reach them: 4 subscriptions a socket, 6 a user, 64 KiB queued.
beforeAll(async () => {
  t = await startTestInstance({ FURROW_LIVE_MAX_SUBSCRIPTIONS_PER_SOCKET: '4', FURROW_LIVE_MAX_SUBSCRIPTIONS_PER_USER: '6', FURROW_LIVE_SEND_BUFFER_KB: '64' });
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

/** Sends a message and resolves with the next message the server answers. */
function ask(ws: WebSocket, msg: unknown): Promise<Msg> {
  const answer = new Promise<Msg>((resolve) => ws.once('message', (raw) => resolve(JSON.parse(raw.toString()))));
  ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  return answer;
}

const closeCode = (ws: WebSocket) => new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));

/** The value of one sample on /metrics (0 when absent). */
async function metric(sample: string): Promise<number> {
  const text = await (await fetch(`${t.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line ? Number(line.slice(sample.length + 1)) : 0;
}

/** A finished run in a project of its own, and a guest of that project. */
async function finishedRunAndGuest() {
  const { runId, jobId, projectId } = await runningJob('echo hello');
  await t.waitForRun(runId);
  return { runId, jobId, projectId, guest: await t.member({ projectId }, 'guest') };
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

describe('live limits', () => {
  it('refuses subscriptions past the per-socket and per-user limits with a code, and counts freed ones again', async () => {
    const { runId, guest } = await finishedRunAndGuest();
    const subscribe = { type: 'subscribe', channel: 'run', runId };
    const a = await t.live(guest.token);
    for (let i = 0; i < 4; i++) expect((await ask(a, subscribe)).type).toBe('run');
    const overSocket = await ask(a, subscribe);
    expect(overSocket).toMatchObject({ type: 'error', code: 'too_many_subscriptions', runId });
    expect(overSocket.message).toContain('FURROW_LIVE_MAX_SUBSCRIPTIONS_PER_SOCKET');
    const b = await t.live(guest.token);
    for (let i = 0; i < 2; i++) expect((await ask(b, subscribe)).type).toBe('run');
    const overUser = await ask(b, subscribe);
    expect(overUser).toMatchObject({ type: 'error', code: 'too_many_subscriptions', runId });
    expect(overUser.message).toContain('FURROW_LIVE_MAX_SUBSCRIPTIONS_PER_USER');
    // Another user is not held to this user's count.
    const other = await t.live();
    expect((await ask(other, subscribe)).type).toBe('run');
    // Unsubscribing frees the socket's four, for this socket and then for the other one.
    a.send(JSON.stringify({ type: 'unsubscribe', runId }));
    expect((await ask(a, subscribe)).type).toBe('run');
    expect((await ask(b, subscribe)).type).toBe('run');
    // A log subscription ends at log-end, and then no longer counts.
    const { jobId } = await finishedRunAndGuest();
    const ended = collect(other, (m) => m.type === 'log-end');
    other.send(JSON.stringify({ type: 'subscribe', channel: 'log', jobId }));
    await ended;
    for (let i = 0; i < 3; i++) expect((await ask(other, subscribe)).type).toBe('run');
    for (const ws of [a, b, other]) ws.close();
  });

  it('closes with code 4429 a socket that lets its answers pile up unread', async () => {
    const ws = await t.live();
    const closed = closeCode(ws);
    const before = await metric('furrow_live_sockets_closed_total{reason="send_buffer"}');
    ws.pause(); // never reads: every answer stays queued (first in the kernel, then in the server)
    let sent = 0;
    while ((await metric('furrow_live_sockets_closed_total{reason="send_buffer"}')) === before) {
      if (sent > 2_000_000) throw new Error(`the socket is still open after ${sent} unread answers`);
      for (let i = 0; i < 10_000; i++) ws.send('not json');
      sent += 10_000;
      while (ws.bufferedAmount > 0) await new Promise((r) => setTimeout(r, 10));
    }
    ws.resume(); // reads what was queued before the close, then the close frame
    expect(await closed).toBe(4429);
  });

  it('streams a large log in chunks of an eighth of the send buffer bound, in order, whole', async () => {
    const { runId, jobId } = await runningJob('head -c 600000 /dev/zero | tr "\\0" "a"');
    await t.waitForRun(runId);
    const ws = await t.live();
    const done = collect(ws, (m) => m.type === 'log-end');
    ws.send(JSON.stringify({ type: 'subscribe', channel: 'log', jobId }));
    const logs = (await done).filter((m) => m.type === 'log');
    ws.close();
    let expected = 0;
    const chunks: Buffer[] = [];
    for (const m of logs) {
      expect(m.offset).toBe(expected);
      const data = Buffer.from(m.data, 'base64');
      expect(data.byteLength).toBeLessThanOrEqual(8 * 1024); // an eighth of the 64 KiB bound
      expected += data.byteLength;
      chunks.push(data);
    }
    // The whole stored log (the step's output between its markers), in order.
    const streamed = Buffer.concat(chunks).toString();
    expect(streamed).toBe((await t.api('GET', `/api/v1/jobs/${jobId}/log`)).text);
    // (the runner ends the output with a newline before the step's end marker)
    expect(jobOutput(streamed) === `${'a'.repeat(600000)}\n`).toBe(true);
  });
});

describe('live subscriptions end with the access they were opened under', () => {
  it('closes a socket with code 4401 when its API token is revoked, and leaves the user’s other sockets open', async () => {
    const { runId, guest } = await finishedRunAndGuest();
    const second = await t.api('POST', '/api/v1/tokens', { name: 'live' }, guest.token);
    const revoked = await t.live(second.body.token);
    const kept = await t.live(guest.token);
    for (const ws of [revoked, kept]) expect((await ask(ws, { type: 'subscribe', channel: 'run', runId })).type).toBe('run');
    const closed = closeCode(revoked);
    expect((await t.api('DELETE', `/api/v1/tokens/${second.body.id}`, undefined, guest.token)).status).toBe(204);
    expect(await closed).toBe(4401);
    expect(await ask(kept, 'not json')).toMatchObject({ code: 'invalid_json' });
    kept.close();
  });

  it('ends them on every server instance', async () => {
    const other = await startTestInstance({ FURROW_LOCAL_RUNNER: 'false' }, { databaseUrl: t.databaseUrl, dataDir: t.dataDir });
    try {
      const { runId, projectId, guest } = await finishedRunAndGuest();
      const second = await t.api('POST', '/api/v1/tokens', { name: 'elsewhere' }, guest.token);
      const member = await other.live(guest.token);
      const revoked = await other.live(second.body.token);
      for (const ws of [member, revoked]) expect((await ask(ws, { type: 'subscribe', channel: 'run', runId })).type).toBe('run');
      const closed = closeCode(revoked);
      const ended = collect(member, (m) => m.type === 'error');
      // Both changes are made through this instance; the sockets are on the other one.
      expect((await t.api('DELETE', `/api/v1/tokens/${second.body.id}`, undefined, guest.token)).status).toBe(204);
      expect(await closed).toBe(4401);
      expect((await t.api('DELETE', `/api/v1/projects/${projectId}/members/${guest.id}`)).status).toBe(204);
      expect((await ended).at(-1)).toMatchObject({ code: 'access_revoked', runId });
      member.close();
    } finally {
      await other.stop(false);
    }
  });

  it('closes a socket with code 4401 when its session signs out', async () => {
    const { runId, guest } = await finishedRunAndGuest();
    const email = (await t.api('GET', '/api/v1/me', undefined, guest.token)).body.email;
    const login = await t.api('POST', '/api/v1/sessions', { email, password: 'correct horse battery' }, null);
    const session = { cookie: login.headers.get('set-cookie')!.split(';')[0]!, origin: t.url };
    const ws = new WebSocket(`${t.url.replace('http', 'ws')}/api/v1/live`, { headers: session });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    expect((await ask(ws, { type: 'subscribe', channel: 'run', runId })).type).toBe('run');
    const closed = closeCode(ws);
    expect((await t.api('DELETE', '/api/v1/sessions/current', undefined, null, session)).status).toBe(204);
    expect(await closed).toBe(4401);
  });

  it('ends the subscriptions of a member who is removed, and keeps the socket open', async () => {
    const { runId, projectId, guest } = await finishedRunAndGuest();
    const ws = await t.live(guest.token);
    expect((await ask(ws, { type: 'subscribe', channel: 'run', runId })).type).toBe('run');
    const ended = collect(ws, (m) => m.type === 'error');
    expect((await t.api('DELETE', `/api/v1/projects/${projectId}/members/${guest.id}`)).status).toBe(204);
    expect((await ended).at(-1)).toMatchObject({ type: 'error', code: 'access_revoked', runId });
    expect(await ask(ws, { type: 'subscribe', channel: 'run', runId })).toMatchObject({ type: 'error', code: 'not_found' });
    ws.close();
  });
});
