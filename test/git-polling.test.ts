import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { githubDelivery, githubPush, send } from './helpers/forge-deliveries.js';
import { furrow } from './helpers/furrow-process.js';
import { createBareRepo, git, pushCommit } from './helpers/git-repos.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';
import { until } from './helpers/until.js';

let t: TestInstance;
let root: string;
beforeAll(async () => {
  t = await startTestInstance({ FURROW_POLL_INTERVAL_SECONDS: '1' });
  root = await mkdtemp(path.join(tmpdir(), 'furrow-polling-'));
  await chmod(root, 0o755); // the job user checks the repositories out
});
afterAll(() => t?.stop());

const pool = () => t.instance.resources.database.pool;

async function setup(polling = true) {
  const org = await t.api('POST', '/api/v1/organizations', { name: `poll-${randomUUID()}` });
  const projectId = (await t.api('POST', `/api/v1/organizations/${org.body.id}/projects`, { name: 'p' })).body.id as string;
  const repo = await createBareRepo(path.join(root, randomUUID()), { 'README.md': 'hello\n' });
  const r = await t.api('POST', `/api/v1/projects/${projectId}/repositories`, { name: 'r', url: repo.url, polling });
  expect(r.status, r.text).toBe(201);
  return { projectId, repositoryId: r.body.id as string, repo };
}

async function workflow(projectId: string, body: Record<string, unknown>) {
  const res = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: `wf-${randomUUID().slice(0, 8)}`, ...body });
  expect(res.status, res.text).toBe(201);
  return res.body.id as string;
}

const definition = (on: string) => [`on: ${on}`, 'jobs:', '  a:', '    steps: [{run: "true"}]'].join('\n');

async function runsOf(workflowId: string) {
  const { rows } = await pool().query('SELECT id, ref, commit_sha AS commit, reason FROM runs WHERE workflow_id = $1 ORDER BY number', [workflowId]);
  return rows as { id: string; ref: string; commit: string; reason: any }[];
}

const polledAt = async (repositoryId: string) => (await t.api('GET', `/api/v1/repositories/${repositoryId}`)).body.polling.polledAt as string | null;
/** Resolves once the repository was polled after `since` (a poll that began before may still end first). */
const polledAfter = (repositoryId: string, since: number) => until('a poll after the change', async () => Date.parse((await polledAt(repositoryId)) ?? '0') > since);

async function activities(projectId: string, type: string) {
  return (await t.api('GET', `/api/v1/projects/${projectId}/activities?type=${type}`)).body.items as any[];
}

describe('git polling', () => {
  it('starts the push workflow of a commit a polled repository gained, within an interval, with the change as an activity', async () => {
    const s = await setup();
    const wf = await workflow(s.projectId, { repositoryId: s.repositoryId, definition: definition('{push: {branches: [main]}}') });
    await until('the first poll', async () => (await polledAt(s.repositoryId)) !== null);
    expect(await runsOf(wf)).toEqual([]); // the first poll learns the refs
    const pushedAt = Date.now();
    const next = await pushCommit(s.repo, { 'a.txt': 'a' });
    const [run] = await until('the polled change starts a run', async () => {
      const r = await runsOf(wf);
      return r.length > 0 && r;
    }, 5000);
    expect(Date.now() - pushedAt).toBeLessThan(3000); // within an interval (1 s, jittered), and the poll
    expect(run).toMatchObject({ ref: 'refs/heads/main', commit: next, reason: { type: 'push', via: 'poll', change: 'changed', before: s.repo.commit, after: next } });
    const [changed] = await until('the activity', async () => (await activities(s.projectId, 'repository.ref-changed')).length > 0 && activities(s.projectId, 'repository.ref-changed'));
    expect(changed).toMatchObject({ subjectId: s.repositoryId, payload: { ref: 'refs/heads/main', before: s.repo.commit, after: next, runs: [{ runId: run!.id, workflowId: wf }] } });
    // A tag added and a branch removed are changes too.
    await git(['tag', 'v1', next], s.repo.path);
    await pushCommit(s.repo, { 'b.txt': 'b' }, 'topic');
    await until('the tag and branch seen', async () => (await activities(s.projectId, 'repository.ref-added')).length === 2);
    await git(['update-ref', '-d', 'refs/heads/topic'], s.repo.path);
    await until('the removal seen', async () => (await activities(s.projectId, 'repository.ref-removed')).length === 1);
    expect(await runsOf(wf)).toHaveLength(1); // the filter wants main alone
  });

  it('starts one run for a push both delivered by a webhook and polled', async () => {
    const s = await setup();
    const wf = await workflow(s.projectId, { repositoryId: s.repositoryId, definition: definition('push') });
    await until('the first poll', async () => (await polledAt(s.repositoryId)) !== null);
    const hook = (await t.api('GET', `/api/v1/repositories/${s.repositoryId}/webhook`)).body;
    const next = await pushCommit(s.repo, { 'a.txt': 'a' });
    const sent = Date.now();
    expect((await send(hook.url, githubDelivery('push', githubPush('refs/heads/main', s.repo.commit, next, ['a.txt']), hook.secret))).status).toBe(202);
    await polledAfter(s.repositoryId, sent);
    await until('the poll recorded the change', async () => (await activities(s.projectId, 'repository.ref-changed')).length === 1);
    const runs = await runsOf(wf);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ commit: next });
    expect((await activities(s.projectId, 'repository.ref-changed'))[0].payload.runs).toMatchObject([{ runId: runs[0]!.id }]);
  });

  it('fires git triggers by ref pattern and change type, on a script workflow', async () => {
    const s = await setup();
    const wf = await workflow(s.projectId, { repositoryId: s.repositoryId, script: 'echo "$FURROW_REF"' });
    const trigger = await t.api('POST', `/api/v1/workflows/${wf}/triggers`, { kind: 'git', refs: ['v*'], changes: ['added'], parameters: { CHANNEL: 'stable' } });
    expect(trigger.status, trigger.text).toBe(201);
    expect(trigger.body).toMatchObject({ kind: 'git', refs: ['v*'], changes: ['added'] });
    const noRepo = await t.api('POST', `/api/v1/workflows/${await workflow(s.projectId, { script: 'true' })}/triggers`, { kind: 'git' });
    expect(noRepo.body.code).toBe('validation_failed');
    await until('the first poll', async () => (await polledAt(s.repositoryId)) !== null);
    await pushCommit(s.repo, { 'a.txt': 'a' }); // a branch change: no match
    await git(['tag', 'v2', 'main'], s.repo.path);
    const [run] = await until('the tag starts a run', async () => {
      const r = await runsOf(wf);
      return r.length > 0 && r;
    });
    expect(run).toMatchObject({ ref: 'refs/tags/v2', reason: { type: 'git', triggerId: trigger.body.id, change: 'added' } });
    expect((await t.waitForRun(run!.id)).parameters).toEqual({ CHANNEL: 'stable' });
    expect((await t.api('GET', `/api/v1/triggers/${trigger.body.id}`)).body.lastRunId).toBe(run!.id);
    expect(await runsOf(wf)).toHaveLength(1);
  });

  it('leaves a repository with polling off alone until polling is turned on', async () => {
    const off = await setup(false);
    await workflow(off.projectId, { repositoryId: off.repositoryId, definition: definition('push') });
    const on = await setup();
    await workflow(on.projectId, { repositoryId: on.repositoryId, definition: definition('push') });
    const first = await until('two polls of the other', async () => (await polledAt(on.repositoryId)) ?? false);
    await until('a second poll', async () => (await polledAt(on.repositoryId)) !== first);
    expect(await polledAt(off.repositoryId)).toBeNull();
    expect((await t.api('PATCH', `/api/v1/repositories/${off.repositoryId}`, { polling: true })).body.polling.enabled).toBe(true);
    await until('polled once on', async () => (await polledAt(off.repositoryId)) !== null);
  });
});

describe('furrow preflight --once', () => {
  it('polls now, prints the changes with the runs they started, and exits', async () => {
    // An instance whose own poller waits an hour between polls: only preflight sees the change.
    const slow = await startTestInstance({ FURROW_POLL_INTERVAL_SECONDS: '3600' });
    try {
      const org = await slow.api('POST', '/api/v1/organizations', { name: `pre-${randomUUID()}` });
      const projectId = (await slow.api('POST', `/api/v1/organizations/${org.body.id}/projects`, { name: 'p' })).body.id;
      const repo = await createBareRepo(path.join(root, randomUUID()), { 'README.md': 'x' });
      const repositoryId = (await slow.api('POST', `/api/v1/projects/${projectId}/repositories`, { name: 'pre', url: repo.url })).body.id;
      const wf = await slow.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: 'ci', repositoryId, definition: definition('push') });
      await until('the first poll', async () => (await slow.api('GET', `/api/v1/repositories/${repositoryId}`)).body.polling.polledAt !== null);
      const next = await pushCommit(repo, { 'a.txt': 'a' });
      const env = { DATABASE_URL: slow.databaseUrl, FURROW_DATA_DIR: slow.dataDir, FURROW_LOCAL_REPOSITORIES: 'true' };
      const out = await furrow(['preflight', '--once'], env);
      expect(out.stderr).toBe('');
      expect(out.code).toBe(0);
      expect(out.stdout).toContain(`pre: 1 change\n  refs/heads/main changed ${repo.commit.slice(0, 12)} -> ${next.slice(0, 12)}: runs ci #1\n`);
      const runs = (await slow.api('GET', `/api/v1/projects/${projectId}/runs?workflowId=${wf.body.id}`)).body.items;
      expect(runs).toMatchObject([{ commit: next, reason: { via: 'poll' } }]);
      const again = await furrow(['preflight', '--once'], env);
      expect(again.stdout).toContain('pre: no changes\n');
      expect((await furrow(['preflight'], env)).code).toBe(2);
    } finally {
      await slow.stop();
    }
  });
});
