import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { furrow, furrowStart } from './helpers/furrow-process.js';
import { createTestDatabase } from './helpers/test-database.js';

const MiB = 1024 * 1024;
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

let url = '';
let pid = 0;
let token = '';
let jobId = '';
let logSize = 0;

async function api(method: string, route: string, body?: unknown) {
  const res = await fetch(`${url}${route}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return res.json() as Promise<any>;
}

/** The server process's resident memory, from the kernel. */
async function rss(): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

function live(): Promise<WebSocket> {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/api/v1/live`, { headers: { authorization: `Bearer ${token}` } });
  return new Promise((resolve, reject) => ws.once('open', () => resolve(ws)).once('error', reject));
}

/** Reads the whole log as a well-behaved viewer does; resolves with the bytes received. */
async function readLog(): Promise<number> {
  const ws = await live();
  let bytes = 0;
  await new Promise<void>((resolve) => {
    ws.on('message', (raw) => {
      const m = JSON.parse(raw.toString());
      if (m.type === 'log') bytes += Buffer.from(m.data, 'base64').byteLength;
      if (m.type === 'log-end') resolve();
    });
    ws.send(JSON.stringify({ type: 'subscribe', channel: 'log', jobId }));
  });
  ws.close();
  return bytes;
}

beforeAll(async () => {
  const database = await createTestDatabase();
  cleanups.push(() => database.drop());
  const dataDir = await mkdtemp(path.join(tmpdir(), 'furrow-live-memory-'));
  await chmod(dataDir, 0o711); // jobs run as the job user
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  // Limits that let one socket hold all 300 subscriptions: only the send buffer bound holds memory down.
  const env = {
    DATABASE_URL: database.url,
    FURROW_DATA_DIR: dataDir,
    FURROW_PORT: '0',
    FURROW_SHUTDOWN_GRACE_SECONDS: '1',
    FURROW_LIVE_MAX_SUBSCRIPTIONS_PER_SOCKET: '300',
    FURROW_LIVE_MAX_SUBSCRIPTIONS_PER_USER: '300',
  };
  const server = await furrowStart(env);
  cleanups.push(async () => {
    server.child.kill('SIGTERM');
    await server.exited;
  });
  url = server.url;
  pid = server.child.pid!;
  expect((await furrow(['user', 'create', '--email', 'guest@example.com', '--password-stdin', '--admin'], env, 'a long password\n')).code).toBe(0);
  token = (await furrow(['token', 'create', '--email', 'guest@example.com', '--name', 'live'], env)).stdout.trim();
  const org = await api('POST', '/api/v1/organizations', { name: 'acme' });
  const project = await api('POST', `/api/v1/organizations/${org.id}/projects`, { name: 'site' });
  // About 4 MB of output that does not compress away.
  const wf = await api('POST', `/api/v1/projects/${project.id}/workflows`, { name: 'big', script: 'head -c 3000000 /dev/urandom | base64 -w 76' });
  const run = await api('POST', `/api/v1/workflows/${wf.id}/runs`, {});
  for (let i = 0; ; i++) {
    if (['succeeded', 'failed'].includes((await api('GET', `/api/v1/runs/${run.id}`)).status)) break;
    if (i > 600) throw new Error('the job did not finish');
    await new Promise((r) => setTimeout(r, 100));
  }
  const job = (await api('GET', `/api/v1/runs/${run.id}/jobs`)).items[0];
  expect(job.status).toBe('succeeded');
  jobId = job.id;
  logSize = 4_050_000;
}, 120_000);

describe('live memory under a viewer that never reads', () => {
  it('300 subscriptions to a 4 MB log by a client that never reads keep the server bounded, and it returns after the close', async () => {
    expect(await readLog()).toBeGreaterThan(logSize * 0.99); // warms the paths the attack takes
    await new Promise((r) => setTimeout(r, 1000));
    const baseline = await rss();

    const ws = await live();
    ws.pause(); // reads nothing, ever
    for (let i = 0; i < 300; i++) ws.send(JSON.stringify({ type: 'subscribe', channel: 'log', jobId }));
    let peak = baseline;
    for (let i = 0; i < 60; i++) {
      await new Promise((r) => setTimeout(r, 100));
      peak = Math.max(peak, await rss());
    }
    ws.terminate();
    await new Promise((r) => setTimeout(r, 3000));
    const after = await rss();
    console.log(`live memory: baseline ${(baseline / MiB).toFixed(0)} MiB, peak +${((peak - baseline) / MiB).toFixed(0)} MiB, after close +${((after - baseline) / MiB).toFixed(0)} MiB`);
    expect(peak - baseline).toBeLessThan(100 * MiB);
    expect(after - baseline).toBeLessThan(40 * MiB);
    // The server still serves a well-behaved viewer the whole log.
    expect(await readLog()).toBeGreaterThan(logSize * 0.99);
  }, 60_000);
});
