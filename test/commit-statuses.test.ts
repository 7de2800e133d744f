import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { githubDelivery, githubPush, send } from './helpers/forge-deliveries.js';
import { createBareRepo, pushCommit } from './helpers/git-repos.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';
import { until } from './helpers/until.js';

interface Received {
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: any;
}

/**
 * A forge's status API as a local HTTP server: GitHub's (`/repos/O/N/statuses/SHA`), Gitea's
 * (`/api/v1/repos/…`) and GitLab's (`/api/v4/projects/ID/statuses/SHA`). It records every request
 * and answers each with the next of `answers` (then 201).
 */
async function fakeForge(answers: number[] = []) {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      received.push({ path: req.url ?? '', headers: req.headers, body: data ? JSON.parse(data) : undefined });
      const status = answers.shift() ?? 201;
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(status < 300 ? { id: received.length } : { message: 'nope' }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received, close: () => new Promise<void>((r) => server.close(() => r())) };
}

let t: TestInstance;
let root: string;
beforeAll(async () => {
  t = await startTestInstance({ FURROW_LOCAL_RUNNER_CAPACITY: '2' });
  root = await mkdtemp(path.join(tmpdir(), 'furrow-statuses-'));
  await chmod(root, 0o755);
});
afterAll(() => t?.stop());

async function setup(forge: 'github' | 'gitlab' | 'gitea', apiUrl: string, script = 'true') {
  const org = await t.api('POST', '/api/v1/organizations', { name: `st-${randomUUID()}` });
  const projectId = (await t.api('POST', `/api/v1/organizations/${org.body.id}/projects`, { name: 'p' })).body.id as string;
  const repo = await createBareRepo(path.join(root, randomUUID()), { 'README.md': 'x' });
  const repositoryId = (await t.api('POST', `/api/v1/projects/${projectId}/repositories`, { name: 'site', url: repo.url, polling: false })).body.id as string;
  const set = await t.api('PUT', `/api/v1/repositories/${repositoryId}/commit-statuses`, { forge, apiUrl, repository: 'acme/site', token: 'forge-token-1' });
  expect(set.status, set.text).toBe(200);
  expect(set.body.commitStatuses).toEqual({ forge, apiUrl, repository: 'acme/site' });
  expect(set.text).not.toContain('forge-token-1');
  const definition = ['on: push', 'jobs:', '  a:', `    steps: [{run: ${JSON.stringify(script)}}]`].join('\n');
  const wf = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: 'ci', repositoryId, definition });
  expect(wf.status, wf.text).toBe(201);
  const hook = (await t.api('GET', `/api/v1/repositories/${repositoryId}/webhook`)).body;
  return { repositoryId, repo, hook, workflowId: wf.body.id as string };
}

/** Delivers a push of a new commit and returns the run it started. */
async function pushRun(s: Awaited<ReturnType<typeof setup>>, id = randomUUID()) {
  const next = await pushCommit(s.repo, { 'a.txt': randomUUID() });
  const d = githubDelivery('push', githubPush('refs/heads/main', s.repo.commit, next, ['a.txt']), s.hook.secret, id);
  const answer = await send(s.hook.url, d);
  const done = await until('the delivery is processed', async () => {
    const x = await t.api('GET', `/api/v1/deliveries/${answer.body.id}`);
    return x.body.status !== 'queued' && x.body;
  });
  return { runId: done.outcome.runs[0].runId as string, sha: next, delivery: d };
}

const statusesOf = async (runId: string) => (await t.api('GET', `/api/v1/runs/${runId}/commit-statuses`)).body.items as any[];

describe('commit statuses', () => {
  it('report pending, then the outcome, in order, to GitHub — through a forge that answers 500 first', async () => {
    const forge = await fakeForge([500]);
    try {
      const s = await setup('github', forge.url);
      const { runId, sha, delivery } = await pushRun(s);
      expect((await t.waitForRun(runId)).status).toBe('succeeded');
      await until('both statuses sent', async () => (await statusesOf(runId)).every((x) => x.status === 'sent') && (await statusesOf(runId)).length === 2, 30_000);
      // The first try of pending got 500 and was tried again; success waited for it.
      expect(forge.received.map((r) => [r.path, r.body.state])).toEqual([
        [`/repos/acme/site/statuses/${sha}`, 'pending'],
        [`/repos/acme/site/statuses/${sha}`, 'pending'],
        [`/repos/acme/site/statuses/${sha}`, 'success'],
      ]);
      const last = forge.received.at(-1)!;
      expect(last.headers.authorization).toBe('Bearer forge-token-1');
      expect(last.body).toMatchObject({ context: 'furrow/ci', description: expect.stringMatching(/^Run #1 succeeded$/), target_url: expect.stringContaining(`/api/v1/runs/${runId}`) });
      expect((await statusesOf(runId)).map((x) => [x.state, x.status, x.attempts])).toEqual([
        ['pending', 'sent', 2],
        ['success', 'sent', 1],
      ]);
      // The same delivery again starts nothing, and sends no status again.
      expect((await send(s.hook.url, delivery)).body.duplicate).toBe(true);
      expect(await statusesOf(runId)).toHaveLength(2);
      expect(forge.received).toHaveLength(3);
    } finally {
      await forge.close();
    }
  });

  it('speak GitLab’s and Gitea’s routes and states, a failed run as failed', async () => {
    const forge = await fakeForge();
    try {
      const gl = await setup('gitlab', forge.url, 'exit 1');
      const a = await pushRun(gl);
      expect((await t.waitForRun(a.runId)).status).toBe('failed');
      await until('gitlab statuses', async () => forge.received.length === 2);
      expect(forge.received.map((r) => [r.path, r.body.state, r.headers['private-token']])).toEqual([
        [`/api/v4/projects/acme%2Fsite/statuses/${a.sha}`, 'pending', 'forge-token-1'],
        [`/api/v4/projects/acme%2Fsite/statuses/${a.sha}`, 'failed', 'forge-token-1'],
      ]);
      expect(forge.received[1]!.body.name).toBe('furrow/ci');
      const gt = await setup('gitea', forge.url);
      const b = await pushRun(gt);
      await t.waitForRun(b.runId);
      await until('gitea statuses', async () => forge.received.length === 4);
      expect(forge.received.slice(2).map((r) => [r.path, r.body.state, r.headers.authorization])).toEqual([
        [`/api/v1/repos/acme/site/statuses/${b.sha}`, 'pending', 'token forge-token-1'],
        [`/api/v1/repos/acme/site/statuses/${b.sha}`, 'success', 'token forge-token-1'],
      ]);
    } finally {
      await forge.close();
    }
  });

  it('show a forge that refuses on the run, which still succeeds; turned off, nothing is sent', async () => {
    const forge = await fakeForge([401, 401]);
    try {
      const s = await setup('github', forge.url);
      const { runId } = await pushRun(s);
      expect((await t.waitForRun(runId)).status).toBe('succeeded');
      const statuses = await until('both failed', async () => {
        const x = await statusesOf(runId);
        return x.length === 2 && x.every((y) => y.status === 'failed') && x;
      });
      expect(statuses[0]).toMatchObject({ state: 'pending', attempts: 1, error: expect.stringMatching(/answered 401/) });
      expect(forge.received).toHaveLength(2); // a refusal is not tried again
      expect((await t.api('DELETE', `/api/v1/repositories/${s.repositoryId}/commit-statuses`)).body.commitStatuses).toBeNull();
      const next = await pushRun(s);
      await t.waitForRun(next.runId);
      expect(await statusesOf(next.runId)).toEqual([]);
    } finally {
      await forge.close();
    }
  });

  it('take the forge and repository from the repository URL, or ask for them', async () => {
    const org = await t.api('POST', '/api/v1/organizations', { name: `st-${randomUUID()}` });
    const projectId = (await t.api('POST', `/api/v1/organizations/${org.body.id}/projects`, { name: 'p' })).body.id;
    const gh = (await t.api('POST', `/api/v1/projects/${projectId}/repositories`, { name: 'gh', url: 'git@github.com:acme/site.git' })).body.id;
    expect((await t.api('PUT', `/api/v1/repositories/${gh}/commit-statuses`, { forge: 'github', token: 'x' })).body.commitStatuses).toEqual({ forge: 'github', apiUrl: 'https://api.github.com', repository: 'acme/site' });
    const local = (await t.api('POST', `/api/v1/projects/${projectId}/repositories`, { name: 'local', url: `file://${root}/x.git` })).body.id;
    const refused = await t.api('PUT', `/api/v1/repositories/${local}/commit-statuses`, { forge: 'gitlab', token: 'x' });
    expect(refused.status).toBe(400);
    expect(refused.body.details).toEqual([{ field: 'apiUrl', message: 'is required for this repository URL' }]);
    const escape = await t.api('PUT', `/api/v1/repositories/${gh}/commit-statuses`, { forge: 'github', token: 'x', repository: 'acme/../admin' });
    expect(escape.body.details).toEqual([{ field: 'repository', message: 'has an empty, . or .. part' }]);
  });
});
