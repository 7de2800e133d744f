import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { githubDelivery, githubExample, githubPush, giteaDelivery, gitlabDelivery, send } from './helpers/forge-deliveries.js';
import { createBareRepo, git, pushCommit } from './helpers/git-repos.js';
import { pruneDeliveries } from '../src/server/store/delivery-store.js';
import { runOutput } from './helpers/log-output.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';
import { until } from './helpers/until.js';

let t: TestInstance;
let root: string;
beforeAll(async () => {
  t = await startTestInstance({ FURROW_LOCAL_RUNNER_CAPACITY: '4' });
  root = await mkdtemp(path.join(tmpdir(), 'furrow-webhooks-'));
  await chmod(root, 0o755); // the job user checks the repositories out
});
afterAll(() => t?.stop());

const pool = () => t.instance.resources.database.pool;

/** A project with a repository (a bare repo with `files` on main) and its webhook settings. */
async function setup(files: Record<string, string> = { 'README.md': 'hello\n' }) {
  const org = await t.api('POST', '/api/v1/organizations', { name: `hooks-${randomUUID()}` });
  const projectId = (await t.api('POST', `/api/v1/organizations/${org.body.id}/projects`, { name: 'p' })).body.id as string;
  const repo = await createBareRepo(path.join(root, randomUUID()), files);
  const r = await t.api('POST', `/api/v1/projects/${projectId}/repositories`, { name: 'r', url: repo.url });
  expect(r.status, r.text).toBe(201);
  const hook = await t.api('GET', `/api/v1/repositories/${r.body.id}/webhook`);
  expect(hook.status, hook.text).toBe(200);
  return { projectId, repositoryId: r.body.id as string, repo, url: hook.body.url as string, secret: hook.body.secret as string };
}

/** A workflow of a definition reading the repository. */
async function definitionWorkflow(projectId: string, repositoryId: string, name: string, on: string, run = 'echo "$FURROW_EVENT $FURROW_REF"') {
  const definition = [`on: ${on}`, 'jobs:', '  a:', `    steps: [{run: ${JSON.stringify(run)}}]`].join('\n');
  const res = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name, repositoryId, definition });
  expect(res.status, res.text).toBe(201);
  return res.body.id as string;
}

async function runsOf(workflowId: string): Promise<{ id: string; number: number; ref: string | null; commit: string | null; reason: any; status: string }[]> {
  const { rows } = await pool().query('SELECT id, number, ref, commit_sha AS commit, reason, status FROM runs WHERE workflow_id = $1 ORDER BY number', [workflowId]);
  return rows;
}

/** The last line a run's steps wrote (after its checkout's), once it ended. */
async function lastLine(runId: string): Promise<string | undefined> {
  await t.waitForRun(runId);
  return runOutput((await t.api('GET', `/api/v1/runs/${runId}/log`)).text).trimEnd().split('\n').pop();
}

/** Waits until a delivery was turned into runs (or failed), and returns it as the API shows it. */
async function processed(deliveryId: string) {
  return until('the delivery is processed', async () => {
    const d = await t.api('GET', `/api/v1/deliveries/${deliveryId}`);
    return d.body.status !== 'queued' && d.body;
  });
}

describe('forge webhooks', () => {
  it('refuse a bad signature with 401, store nothing, and show why on the repository', async () => {
    const s = await setup();
    const wf = await definitionWorkflow(s.projectId, s.repositoryId, 'ci', 'push');
    const forged = githubDelivery('push', githubPush('refs/heads/main', null, s.repo.commit), 'not the secret');
    const res = await send(s.url, forged);
    expect(res).toMatchObject({ status: 401, body: { code: 'webhook_signature_invalid' } });
    const unsigned = await send(s.url, { ...forged, headers: { ...forged.headers, 'x-hub-signature-256': '' } });
    expect(unsigned.status).toBe(401);
    expect((await t.api('GET', `/api/v1/repositories/${s.repositoryId}/deliveries`)).body.items).toEqual([]);
    expect((await t.api('GET', `/api/v1/repositories/${s.repositoryId}`)).body.webhook.lastRefused.reason).toMatch(/X-Hub-Signature-256/);
    expect(await runsOf(wf)).toEqual([]);
    // A slug nobody has, and a request no forge sent.
    expect((await send(s.url.replace(/[^/]+$/, 'x'.repeat(24)), forged)).body.code).toBe('webhook_not_found');
    expect((await send(s.url, { body: '{}', headers: { 'content-type': 'application/json' } })).body.code).toBe('webhook_unrecognized');
  });

  it('start a push workflow once per delivery id, answering a redelivery with the first outcome', async () => {
    const s = await setup();
    const wf = await definitionWorkflow(s.projectId, s.repositoryId, 'ci', 'push');
    const d = githubDelivery('push', githubPush('refs/heads/main', null, s.repo.commit, ['README.md']), s.secret);
    const first = await send(s.url, d);
    expect(first.status).toBe(202);
    expect(first.body).toMatchObject({ forge: 'github', event: 'push', status: 'queued', duplicate: false, deliveryId: d.headers['x-github-delivery'] });
    const done = await processed(first.body.id);
    expect(done.outcome.runs).toMatchObject([{ workflowId: wf, workflow: 'ci', number: 1 }]);
    const again = await send(s.url, d);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ id: first.body.id, duplicate: true, status: 'done', outcome: done.outcome });
    const [run] = await runsOf(wf);
    expect(run).toMatchObject({ ref: 'refs/heads/main', commit: s.repo.commit, reason: { type: 'push', via: 'webhook', change: 'added', deliveryId: first.body.id } });
    expect(await lastLine(run!.id)).toBe('push refs/heads/main');
    expect(await runsOf(wf)).toHaveLength(1);
    // The stored delivery is what came: headers (the signature too) and the body byte for byte.
    const stored = (await t.api('GET', `/api/v1/deliveries/${first.body.id}`)).body;
    expect(stored).toMatchObject({ body: d.body, bodyEncoding: 'utf8', headers: { 'x-hub-signature-256': d.headers['x-hub-signature-256'] } });
    // Redelivered through the API: the run it started stands.
    expect((await t.api('POST', `/api/v1/deliveries/${first.body.id}/redeliver`)).status).toBe(202);
    const redone = await processed(first.body.id);
    expect(redone.outcome.runs).toMatchObject([{ runId: run!.id, existing: true }]);
    expect(await runsOf(wf)).toHaveLength(1);
  });

  it('answer a ping at once, and start only the workflows whose branch, tag and path filters match', async () => {
    const s = await setup();
    const ping = await send(s.url, githubDelivery('ping', githubExample('ping'), s.secret));
    expect(ping).toMatchObject({ status: 200, body: { status: 'done', outcome: { summary: expect.stringMatching(/ping/) } } });
    const any = await definitionWorkflow(s.projectId, s.repositoryId, 'any', 'push');
    const main = await definitionWorkflow(s.projectId, s.repositoryId, 'main-only', '{push: {branches: [main]}}');
    const docs = await definitionWorkflow(s.projectId, s.repositoryId, 'docs', '{push: {paths: ["docs/**"]}}');
    const noDocs = await definitionWorkflow(s.projectId, s.repositoryId, 'code', '{push: {paths-ignore: ["docs/**"]}}');
    const tags = await definitionWorkflow(s.projectId, s.repositoryId, 'release', '{push: {tags: ["v*"]}}');
    const manual = await definitionWorkflow(s.projectId, s.repositoryId, 'by-hand', 'manual');
    const feature = await pushCommit(s.repo, { 'docs/a.md': 'a' }, 'feature/x');
    const d1 = await send(s.url, githubDelivery('push', githubPush('refs/heads/feature/x', null, feature, ['docs/a.md']), s.secret));
    const o1 = (await processed(d1.body.id)).outcome;
    expect(o1.runs.map((r: any) => r.workflow).sort()).toEqual(['any', 'docs']);
    expect(o1.skipped.find((x: any) => x.workflow === 'main-only').reason).toMatch(/does not match feature\/x/);
    expect(o1.skipped.find((x: any) => x.workflow === 'by-hand').reason).toBe('its on has no push');
    const next = await pushCommit(s.repo, { 'src/b.ts': 'b' }, 'main');
    const d2 = await send(s.url, githubDelivery('push', githubPush('refs/heads/main', s.repo.commit, next, ['src/b.ts']), s.secret));
    expect((await processed(d2.body.id)).outcome.runs.map((r: any) => r.workflow).sort()).toEqual(['any', 'code', 'main-only']);
    await git(['tag', 'v1.0', next], s.repo.path);
    const d3 = await send(s.url, githubDelivery('push', githubPush('refs/tags/v1.0', null, next), s.secret));
    expect((await processed(d3.body.id)).outcome.runs.map((r: any) => r.workflow).sort()).toEqual(['any', 'code', 'docs', 'release']);
    const [tagRun] = await runsOf(tags);
    expect(await lastLine(tagRun!.id)).toBe('tag refs/tags/v1.0');
    expect(await runsOf(manual)).toEqual([]);
    expect((await runsOf(main)).map((r) => r.commit)).toEqual([next]);
    expect(await runsOf(docs)).toHaveLength(2);
    expect(await runsOf(noDocs)).toHaveLength(2);
    expect(await runsOf(any)).toHaveLength(3);
  });

  it('record a branch deletion, starting only the workflows that ask for deletions', async () => {
    const s = await setup();
    const push = await definitionWorkflow(s.projectId, s.repositoryId, 'ci', 'push');
    const cleanup = await definitionWorkflow(s.projectId, s.repositoryId, 'cleanup', '{delete: {branches: ["feature/*"]}}', 'echo "$FURROW_EVENT"');
    const gone = await pushCommit(s.repo, { 'x.txt': 'x' }, 'feature/y');
    await git(['update-ref', '-d', 'refs/heads/feature/y'], s.repo.path);
    const d = await send(s.url, githubDelivery('push', githubPush('refs/heads/feature/y', gone, null), s.secret));
    const outcome = (await processed(d.body.id)).outcome;
    expect(outcome).toMatchObject({ summary: 'refs/heads/feature/y removed', runs: [{ workflow: 'cleanup' }], skipped: [{ workflow: 'ci', reason: 'its on has no delete' }] });
    const [run] = await runsOf(cleanup);
    expect(run).toMatchObject({ ref: 'refs/heads/main', reason: { change: 'removed', before: gone } });
    expect(await lastLine(run!.id)).toBe('delete');
    expect(await runsOf(push)).toEqual([]);
  });

  it('keep a file workflow’s schedules in sync with its default branch', async () => {
    const file = (cron: string) => [`on: {push: {branches: [nothing]}, schedule: [{cron: "${cron}"}]}`, 'jobs:', '  a:', '    steps: [{run: "true"}]'].join('\n');
    const s = await setup({ '.furrow/nightly.yml': file('0 3 * * *') });
    const wf = await t.api('POST', `/api/v1/projects/${s.projectId}/workflows`, { name: 'nightly', repositoryId: s.repositoryId, path: '.furrow/nightly.yml' });
    const schedules = async () => (await t.api('GET', `/api/v1/workflows/${wf.body.id}/triggers`)).body.items.map((x: any) => [x.source, x.cron]);
    await until('the file’s schedule', async () => (await schedules()).length === 1);
    expect(await schedules()).toEqual([['file', '0 3 * * *']]);
    expect((await t.api('GET', `/api/v1/workflows/${wf.body.id}`)).body.fileOn).toEqual({ commit: s.repo.commit, triggers: ['push (branches nothing)', 'schedule 0 3 * * * (UTC)'], problem: null });
    const next = await pushCommit(s.repo, { '.furrow/nightly.yml': file('30 4 * * 1') });
    const d = await send(s.url, githubDelivery('push', githubPush('refs/heads/main', s.repo.commit, next, ['.furrow/nightly.yml']), s.secret));
    await processed(d.body.id);
    expect(await schedules()).toEqual([['file', '30 4 * * 1']]);
    // A push elsewhere changes nothing; a broken file on the default branch keeps the schedules, and says why.
    const broken = await pushCommit(s.repo, { '.furrow/nightly.yml': 'on: [push\n' });
    const d2 = await send(s.url, githubDelivery('push', githubPush('refs/heads/main', next, broken), s.secret));
    await processed(d2.body.id);
    expect(await schedules()).toEqual([['file', '30 4 * * 1']]);
    expect((await t.api('GET', `/api/v1/workflows/${wf.body.id}`)).body.fileOn).toMatchObject({ commit: broken, triggers: null, problem: expect.any(String) });
    // The push of an older head, delivered again, brings its schedule back no more.
    const fixed = await pushCommit(s.repo, { '.furrow/nightly.yml': file('15 1 * * *') });
    await processed((await send(s.url, githubDelivery('push', githubPush('refs/heads/main', broken, fixed), s.secret))).body.id);
    expect(await schedules()).toEqual([['file', '15 1 * * *']]);
    expect((await t.api('POST', `/api/v1/deliveries/${d.body.id}/redeliver`)).status).toBe(202);
    await processed(d.body.id);
    expect(await schedules()).toEqual([['file', '15 1 * * *']]);
    // Saving the workflow with the same path keeps the file's triggers and their state.
    const [nightly] = (await t.api('GET', `/api/v1/workflows/${wf.body.id}/triggers`)).body.items;
    expect((await t.api('PATCH', `/api/v1/triggers/${nightly.id}`, { enabled: false })).status).toBe(200);
    expect((await t.api('PATCH', `/api/v1/workflows/${wf.body.id}`, { path: '.furrow/nightly.yml' })).status).toBe(200);
    expect((await t.api('GET', `/api/v1/triggers/${nightly.id}`)).body).toMatchObject({ enabled: false, cron: '15 1 * * *' });
  });

  it('read a file workflow’s on at the pushed commit', async () => {
    const ci = ['on: {push: {branches: [main]}}', 'jobs:', '  a:', '    steps: [{run: "cat version.txt"}]'].join('\n');
    const s = await setup({ '.furrow/ci.yml': ci, 'version.txt': 'one\n' });
    const wf = await t.api('POST', `/api/v1/projects/${s.projectId}/workflows`, { name: 'ci', repositoryId: s.repositoryId, path: '.furrow/ci.yml' });
    expect(wf.status, wf.text).toBe(201);
    const second = await pushCommit(s.repo, { 'version.txt': 'two\n' });
    const d = await send(s.url, githubDelivery('push', githubPush('refs/heads/main', s.repo.commit, second, ['version.txt']), s.secret));
    const [started] = (await processed(d.body.id)).outcome.runs;
    expect((await t.waitForRun(started.runId)).status).toBe('succeeded');
    expect(await lastLine(started.runId)).toBe('two');
    // The same file on another branch does not want that branch; a branch without the file has no workflow.
    await git(['update-ref', 'refs/heads/dev', second], s.repo.path);
    const other = await pushCommit(s.repo, { 'version.txt': 'three\n' }, 'dev');
    const d2 = await send(s.url, githubDelivery('push', githubPush('refs/heads/dev', second, other), s.secret));
    expect((await processed(d2.body.id)).outcome).toMatchObject({ runs: [], skipped: [{ workflow: 'ci', reason: 'its on.push does not match dev' }] });
    const orphan = await pushCommit(s.repo, { 'x.txt': 'x' }, 'orphan');
    const d3 = await send(s.url, githubDelivery('push', githubPush('refs/heads/orphan', null, orphan), s.secret));
    expect((await processed(d3.body.id)).outcome.skipped[0].reason).toMatch(/has no file \.furrow\/ci\.yml/);
  });

  it('take GitLab’s secret token and Gitea’s signature', async () => {
    const s = await setup();
    const wf = await definitionWorkflow(s.projectId, s.repositoryId, 'ci', 'push');
    const gitlabPush = { object_kind: 'push', ref: 'refs/heads/main', before: '0'.repeat(40), after: s.repo.commit, total_commits_count: 1, commits: [{ id: s.repo.commit, added: ['README.md'], modified: [], removed: [] }] };
    expect((await send(s.url, gitlabDelivery('Push Hook', gitlabPush, 'wrong'))).status).toBe(401);
    const gl = await send(s.url, gitlabDelivery('Push Hook', gitlabPush, s.secret));
    expect(gl.status).toBe(202);
    expect((await processed(gl.body.id)).outcome.runs).toHaveLength(1);
    const second = await pushCommit(s.repo, { 'b.txt': 'b' });
    const giteaPush = { ref: 'refs/heads/main', before: s.repo.commit, after: second, commits: [{ id: second, added: ['b.txt'], modified: [], removed: [] }] };
    const forged = giteaDelivery('push', giteaPush, 'wrong');
    expect((await send(s.url, forged)).body.code).toBe('webhook_signature_invalid');
    const gt = await send(s.url, giteaDelivery('push', giteaPush, s.secret));
    expect(gt.body.forge).toBe('gitea');
    expect((await processed(gt.body.id)).outcome.runs).toHaveLength(1);
    expect((await runsOf(wf)).map((r) => r.commit)).toEqual([s.repo.commit, second]);
    // The secret token is not kept with the delivery.
    expect((await t.api('GET', `/api/v1/deliveries/${gl.body.id}`)).body.headers['x-gitlab-token']).toBe('[withheld]');
  });

  it('run a pull request at its head commit without the project’s secrets unless the project allows them', async () => {
    const s = await setup();
    const secret = await t.api('POST', `/api/v1/projects/${s.projectId}/secrets`, { name: 'TOKEN', value: 'sekrit-value' });
    expect(secret.status, secret.text).toBe(201);
    const wf = await definitionWorkflow(s.projectId, s.repositoryId, 'pr', '{pull_request: {branches: [main]}}', 'echo "token=${TOKEN:-none} $FURROW_EVENT"');
    const head = await pushCommit(s.repo, { 'pr.txt': 'pr' }, 'topic');
    await git(['update-ref', 'refs/pull/7/head', head], s.repo.path);
    const pr = githubExample('pull_request', (e) => e.action === 'opened');
    pr.number = 7;
    pr.pull_request.number = 7;
    pr.pull_request.head.sha = head;
    pr.pull_request.base.ref = 'main';
    const d = await send(s.url, githubDelivery('pull_request', pr, s.secret));
    const [run] = (await processed(d.body.id)).outcome.runs;
    const ended = await t.waitForRun(run.runId);
    expect(ended).toMatchObject({ commit: head, ref: 'refs/pull/7/head' });
    expect(await lastLine(run.runId)).toBe('token=none pull_request');
    expect((await t.api('PATCH', `/api/v1/projects/${s.projectId}`, { pullRequestSecrets: true })).body.pullRequestSecrets).toBe(true);
    pr.action = 'synchronize';
    const d2 = await send(s.url, githubDelivery('pull_request', pr, s.secret));
    const [run2] = (await processed(d2.body.id)).outcome.runs;
    await t.waitForRun(run2.runId);
    expect(await lastLine(run2.runId)).toBe('token=*** pull_request');
    pr.action = 'labeled';
    const d3 = await send(s.url, githubDelivery('pull_request', pr, s.secret));
    expect(d3.body).toMatchObject({ status: 'done', outcome: { summary: expect.stringMatching(/labeled/) } });
    expect(await runsOf(wf)).toHaveLength(2);
    // A fork's pull request never gets them, whatever the project allows; and a chain after a pull
    // request's run runs its own default branch, not the pull request's code.
    const after = await definitionWorkflow(s.projectId, s.repositoryId, 'after-pr', '{workflow_run: {workflows: [pr]}}', 'echo "$FURROW_SHA ${TOKEN:-none}"');
    pr.action = 'reopened';
    pr.pull_request.head.repo = { ...pr.pull_request.head.repo, full_name: 'stranger/fork' };
    const d4 = await send(s.url, githubDelivery('pull_request', pr, s.secret));
    const [run4] = (await processed(d4.body.id)).outcome.runs;
    expect(await lastLine(run4.runId)).toBe('token=none pull_request');
    const [chained] = await until('the chained run', async () => {
      const r = await runsOf(after);
      return r.length > 0 && r;
    });
    expect(chained).toMatchObject({ commit: s.repo.commit, ref: 'refs/heads/main' });
    expect(await lastLine(chained!.id)).toBe(`${s.repo.commit} ***`);
  });
});

describe('delivery retention', () => {
  it('removes deliveries older than the retention, keeping queued ones and the runs they started', async () => {
    const s = await setup();
    const wf = await definitionWorkflow(s.projectId, s.repositoryId, 'ci', 'push');
    const done = await send(s.url, githubDelivery('push', githubPush('refs/heads/main', null, s.repo.commit), s.secret));
    const [run] = (await processed(done.body.id)).outcome.runs;
    const fresh = await send(s.url, githubDelivery('ping', githubExample('ping'), s.secret));
    // An old one still queued: its hold is taken, so the pump leaves it be.
    const queued = await send(s.url, githubDelivery('ping', { ...githubExample('ping'), zen: 'queued' }, s.secret));
    await pool().query(`UPDATE deliveries SET received_at = now() - interval '31 days' WHERE id = ANY($1)`, [[done.body.id, queued.body.id]]);
    await pool().query(`UPDATE deliveries SET status = 'queued', claimed_until = now() + interval '1 hour' WHERE id = $1`, [queued.body.id]);
    expect(await pruneDeliveries(t.instance.resources.database.db, 30)).toBe(1);
    expect((await t.api('GET', `/api/v1/deliveries/${done.body.id}`)).status).toBe(404);
    expect((await t.api('GET', `/api/v1/deliveries/${fresh.body.id}`)).status).toBe(200);
    expect((await t.api('GET', `/api/v1/deliveries/${queued.body.id}`)).status).toBe(200);
    expect((await runsOf(wf)).map((r) => r.id)).toEqual([run.runId]);
  });
});

describe('webhook triggers', () => {
  it('start their workflow with the body’s fields as parameters, signed or not', async () => {
    const { workflowId } = await t.workflow('echo "deploy $VERSION to $TARGET ($FURROW_EVENT)"');
    const created = await t.api('POST', `/api/v1/workflows/${workflowId}/triggers`, { kind: 'webhook', fields: { VERSION: 'release.tag', TARGET: 'where' }, parameters: { TARGET: 'staging' } });
    expect(created.status, created.text).toBe(201);
    const { url, secret, signatureHeader } = created.body.webhook;
    expect(signatureHeader).toBe('X-Furrow-Signature-256');
    const body = JSON.stringify({ release: { tag: 'v2.1' } });
    const { createHmac } = await import('node:crypto');
    const sign = (b: string, key = secret) => `sha256=${createHmac('sha256', key).update(b).digest('hex')}`;
    const refused = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-furrow-signature-256': sign(body, 'wrong') } });
    expect(refused.status).toBe(401);
    const ok = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-furrow-signature-256': sign(body), 'idempotency-key': 'deploy-1' } });
    expect(ok.status).toBe(202);
    const d = (await ok.json()) as any;
    const [run] = (await processed(d.id)).outcome.runs;
    await t.waitForRun(run.runId);
    expect(await lastLine(run.runId)).toBe('deploy v2.1 to staging (webhook)');
    const again = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-furrow-signature-256': sign(body), 'idempotency-key': 'deploy-1' } });
    expect(again.status).toBe(200);
    expect((await t.api('GET', `/api/v1/triggers/${created.body.id}/deliveries`)).body.items).toHaveLength(1);

    const open = await t.api('POST', `/api/v1/workflows/${workflowId}/triggers`, { kind: 'webhook', signed: false });
    expect(open.body.webhook.secret).toBeNull();
    const plain = await fetch(open.body.webhook.url, { method: 'POST', body: 'not json', headers: { 'content-type': 'text/plain' } });
    expect(plain.status).toBe(202);
    expect((await t.api('PATCH', `/api/v1/triggers/${open.body.id}`, { enabled: false })).status).toBe(200);
    const off = await fetch(open.body.webhook.url, { method: 'POST', body: '{}' });
    expect(off.status).toBe(409);
  });
});

describe('pushes to a deployment queue', () => {
  /** 20 commits on main, then one signed push delivery for each, all sent within a second, in push order. */
  /**
   * With `firstRunning`, the pushes after the first wait until the first one's deployment runs
   * (a run not claimed yet would be superseded too, rightly).
   */
  async function twentyPushes(group: string, run: string, processedAll: () => Promise<void> = async () => undefined, firstRunning = false) {
    const s = await setup();
    const definition = ['on: {push: {branches: [main]}}', `concurrency: ${group}`, 'jobs:', '  deploy:', `    steps: [{run: ${JSON.stringify(run)}}]`].join('\n');
    const wf = await t.api('POST', `/api/v1/projects/${s.projectId}/workflows`, { name: 'deploy', repositoryId: s.repositoryId, definition });
    expect(wf.status, wf.text).toBe(201);
    const commits = [s.repo.commit];
    for (let i = 0; i < 20; i++) commits.push(await pushCommit(s.repo, { 'n.txt': `${i}\n` }));
    const deliveries = commits.slice(1).map((after, i) => githubDelivery('push', githubPush('refs/heads/main', commits[i]!, after, ['n.txt']), s.secret));
    let started = Date.now();
    const answers = [];
    for (const d of deliveries) {
      answers.push(await send(s.url, d));
      if (firstRunning && answers.length === 1) {
        const [first] = (await processed(answers[0]!.body.id)).outcome.runs;
        await until('the first deployment runs', async () => (await t.api('GET', `/api/v1/runs/${first.runId}/jobs`)).body.items[0]?.status === 'running');
        started = Date.now(); // the other 19 within a second of each other
      }
    }
    expect(Date.now() - started).toBeLessThan(1000);
    expect(answers.map((a) => a.status)).toEqual(deliveries.map(() => 202));
    for (const a of answers) await processed(a.body.id);
    await processedAll();
    const runs = await runsOf(wf.body.id);
    expect(runs.map((r) => r.commit)).toEqual(commits.slice(1));
    const ended = await Promise.all(runs.map((r) => t.waitForRun(r.id, 90_000)));
    const jobs = (await Promise.all(runs.map(async (r) => (await t.api('GET', `/api/v1/runs/${r.id}/jobs`)).body.items[0]))) as any[];
    return { ended, jobs };
  }

  it('queue: run one at a time, in push order', async () => {
    const { ended, jobs } = await twentyPushes('production', 'sleep 0.05');
    expect(ended.map((r) => r.status)).toEqual(ended.map(() => 'succeeded'));
    for (let i = 1; i < jobs.length; i++) expect(Date.parse(jobs[i].startedAt), `job ${i}`).toBeGreaterThanOrEqual(Date.parse(jobs[i - 1].finishedAt));
  });

  it('supersede: run the first and the newest only', async () => {
    // The first deployment lasts until every push was turned into a run, however long that takes.
    const marks = await mkdtemp(path.join(tmpdir(), 'furrow-marks-'));
    await chmod(marks, 0o1777);
    const mark = path.join(marks, 'all-queued');
    const { ended, jobs } = await twentyPushes('{group: production, supersede: true}', `until [ -e ${mark} ]; do sleep 0.05; done`, () => writeFile(mark, ''), true);
    expect(ended.map((r) => r.status)).toEqual(ended.map((_, i) => (i === 0 || i === 19 ? 'succeeded' : 'skipped')));
    expect(Date.parse(jobs[19].startedAt)).toBeGreaterThanOrEqual(Date.parse(jobs[0].finishedAt));
  });
});
