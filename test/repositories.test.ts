import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readWorkflowFile } from '../src/server/git/read-workflow-files.js';
import { furrow } from './helpers/furrow-process.js';
import { createBareRepo, git, pushCommit, type BareRepo } from './helpers/git-repos.js';
import { authorizeKey, revokeKey, sshServerAvailable, startSshServer, type SshServer } from './helpers/ssh-server.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

const run = promisify(execFile);
const CI_YML = 'jobs:\n  test:\n    steps:\n      - run: echo hello\n';

let t: TestInstance;
let projectId: string;
let dir: string;
let local: BareRepo;
/** Every API answer about repositories, to prove none carries a private key. */
const answers: string[] = [];

async function api(method: string, route: string, body?: unknown) {
  const res = await t.api(method, `/api/v1${route}`, body);
  answers.push(res.text);
  return res;
}

/** Polls the repository until `done` holds. */
async function waitFor(id: string, done: (repo: any) => boolean, what: string) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const repo = (await api('GET', `/repositories/${id}`)).body;
    if (done(repo)) return repo;
    if (Date.now() > deadline) throw new Error(`repository never ${what}: ${JSON.stringify(repo)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function addRepository(body: Record<string, unknown>) {
  const res = await api('POST', `/projects/${projectId}/repositories`, body);
  expect(res.status, res.text).toBe(201);
  return res.body;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'furrow-repos-'));
  t = await startTestInstance();
  const org = await t.api('POST', '/api/v1/organizations', { name: 'repo-org' });
  projectId = (await t.api('POST', `/api/v1/organizations/${org.body.id}/projects`, { name: 'site' })).body.id;
  local = await createBareRepo(path.join(dir, 'local.git'), { '.furrow/ci.yml': CI_YML, 'README.md': 'hello\n' });
});

afterAll(async () => {
  await t?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('repositories over file://', () => {
  let repoId: string;

  it('creates a repository whose ed25519 deploy key is made in the background, then checked', async () => {
    const created = await addRepository({ name: 'local', url: local.url });
    expect(created).toMatchObject({ name: 'local', url: local.url, defaultBranch: 'main', keyType: 'ed25519', publicKey: null, access: { status: 'pending' } });
    repoId = created.id;
    const keyed = await waitFor(repoId, (r) => r.publicKey !== null, 'got a key');
    expect(keyed.publicKey).toMatch(/^ssh-ed25519 AAAA[A-Za-z0-9+/=]+ furrow/);
    expect(keyed.keyFingerprint).toMatch(/^SHA256:/);
    const checked = await waitFor(repoId, (r) => r.access.status !== 'pending', 'was checked');
    expect(checked.access).toMatchObject({ status: 'ok', error: null });
    expect(Date.parse(checked.access.checkedAt)).not.toBeNaN();
    const listed = await api('GET', `/projects/${projectId}/repositories`);
    expect(listed.body.items.map((r: { id: string }) => r.id)).toContain(repoId);
    const types = (await t.api('GET', `/api/v1/projects/${projectId}/activities`)).body.items.map((a: { type: string }) => a.type);
    expect(types).toEqual(expect.arrayContaining(['repository.created', 'repository.key_generated', 'repository.checked']));
  });

  it('lists the workflow files at the default branch, at another branch and at a sha', async () => {
    const atMain = await api('GET', `/repositories/${repoId}/workflow-files`);
    expect(atMain.status, atMain.text).toBe(200);
    expect(atMain.body).toEqual({ commit: local.commit, files: [{ path: '.furrow/ci.yml' }] });

    const second = await pushCommit(local, { '.furrow/deploy.yaml': CI_YML, '.furrow/notes.txt': 'not a workflow', '.furrow/nested/x.yml': CI_YML });
    const now = await api('GET', `/repositories/${repoId}/workflow-files?ref=main`);
    expect(now.body).toEqual({ commit: second, files: [{ path: '.furrow/ci.yml' }, { path: '.furrow/deploy.yaml' }] });
    const then = await api('GET', `/repositories/${repoId}/workflow-files?ref=${local.commit}`);
    expect(then.body).toEqual({ commit: local.commit, files: [{ path: '.furrow/ci.yml' }] });

    const feature = await pushCommit(local, { '.furrow/feature.yml': CI_YML }, 'feature');
    const onFeature = await api('GET', `/repositories/${repoId}/workflow-files?ref=feature`);
    expect(onFeature.body).toEqual({ commit: feature, files: [{ path: '.furrow/feature.yml' }] });
  });

  it('reads one file at a commit', async () => {
    const repo = { id: repoId, url: local.url, privateKey: null, knownHosts: null };
    const opts = { dataDir: t.dataDir, timeoutSeconds: 30 };
    expect(await readWorkflowFile(repo, local.commit, '.furrow/ci.yml', opts)).toBe(CI_YML);
    expect(await readWorkflowFile(repo, local.commit, '.furrow/deploy.yaml', opts)).toBeUndefined();
    // Concurrent reads into a fresh cache: its fetches take turns.
    const fresh = { ...repo, id: '00000000-0000-4000-8000-00000000cafe' };
    const texts = await Promise.all([1, 2, 3, 4].map(() => readWorkflowFile(fresh, local.commit, '.furrow/ci.yml', opts)));
    expect(texts).toEqual([CI_YML, CI_YML, CI_YML, CI_YML]);
  });

  it('says clearly when a branch does not exist', async () => {
    const res = await api('GET', `/repositories/${repoId}/workflow-files?ref=no-such-branch`);
    expect(res.status).toBe(422);
    expect(res.body.code).toBe('ref_not_found');
    expect(res.body.message).toContain('"no-such-branch"');
  });

  it('makes a 4096-bit RSA key on request', async () => {
    const created = await addRepository({ name: 'rsa', url: local.path, keyType: 'rsa' });
    expect(created.keyType).toBe('rsa');
    const keyed = await waitFor(created.id, (r) => r.publicKey !== null, 'got a key');
    expect(keyed.publicKey).toMatch(/^ssh-rsa AAAA/);
    const file = path.join(dir, 'rsa.pub');
    await writeFile(file, `${keyed.publicKey}\n`);
    const { stdout } = await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', file]);
    expect(stdout).toMatch(new RegExp(`^4096 ${keyed.keyFingerprint.replace(/[+/]/g, '\\$&')} .*\\(RSA\\)`));
  });

  it('refuses URLs git must not be given, with a clear 400', async () => {
    const optionLike = ['ssh://-oProxyCommand=touch%20x/p.git', '-x@host:p.git', 'ssh://-u@host/p.git'];
    for (const url of ['not a url', 'ext::sh -c touch% /tmp/x', '-uhelp', 'ftp://example.com/x.git', 'https://user:secret@example.com/x.git', 'relative/path', ...optionLike]) {
      const res = await api('POST', `/projects/${projectId}/repositories`, { name: `bad-${answers.length}`, url });
      expect(res.status, url).toBe(400);
      expect(res.body.code).toBe('validation_failed');
      expect(res.body.message).toMatch(/url/);
    }
    const patched = await api('PATCH', `/repositories/${repoId}`, { url: 'ext::whatever' });
    expect(patched.status).toBe(400);
    const accepted = ['ssh://git@example.com:2222/acme/site.git', 'git@github.com:acme/site.git', 'https://example.com/acme/site.git', 'file:///srv/git/site.git', '/srv/git/site.git'];
    for (const [i, url] of accepted.entries()) {
      expect((await api('POST', `/projects/${projectId}/repositories`, { name: `ok-${i}`, url })).status, url).toBe(201);
    }
  });

  it('refuses repositories on the server’s own disk unless FURROW_LOCAL_REPOSITORIES allows them', async () => {
    const strict = await startTestInstance({ FURROW_LOCAL_REPOSITORIES: 'false', FURROW_LOCAL_RUNNER: 'false' });
    try {
      const org = await strict.api('POST', '/api/v1/organizations', { name: 'strict-org' });
      const project = (await strict.api('POST', `/api/v1/organizations/${org.body.id}/projects`, { name: 'p' })).body.id;
      for (const url of [local.url, local.path]) {
        const res = await strict.api('POST', `/api/v1/projects/${project}/repositories`, { name: 'mine', url });
        expect(res.status, url).toBe(400);
        expect(res.body.details).toEqual([{ field: 'url', message: expect.stringContaining('FURROW_LOCAL_REPOSITORIES') }]);
      }
      expect((await strict.api('POST', `/api/v1/projects/${project}/repositories`, { name: 'remote', url: 'git@example.com:a/b.git' })).status).toBe(201);
    } finally {
      await strict.stop();
    }
  });

  it('drops pinned host keys when the URL moves to another host, and keeps them for a rename', async () => {
    const pinned = '[git.example.com]:22 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';
    const created = await addRepository({ name: 'moving', url: 'ssh://git@git.example.com/app.git', knownHosts: pinned });
    expect(created.knownHosts).toBe(pinned);
    const renamed = await api('PATCH', `/repositories/${created.id}`, { name: 'moved' });
    expect(renamed.body.knownHosts).toBe(pinned);
    const moved = await api('PATCH', `/repositories/${created.id}`, { url: 'ssh://git@other.example.com/app.git' });
    expect(moved.body).toMatchObject({ knownHosts: null, access: { status: 'pending' } });
    const types = (await t.api('GET', `/api/v1/projects/${projectId}/activities?type=repository.updated`)).body.items.map((a: { payload: { fields: string[] } }) => a.payload.fields);
    expect(types.slice(0, 2)).toEqual([['url'], ['name']]); // what each request changed, newest first
  });

  it('rekeys a repository on request: a new key, checked again', async () => {
    const before = (await api('GET', `/repositories/${repoId}`)).body;
    const res = await api('POST', `/repositories/${repoId}/rekey`);
    expect(res.status, res.text).toBe(200);
    expect(res.body.keyFingerprint).not.toBe(before.keyFingerprint);
    expect(res.body.access.status).toBe('pending');
    await waitFor(repoId, (r) => r.access.status === 'ok', 'was checked again');
  });

  it('keeps the private key sealed in the database and out of every answer', async () => {
    const { secretBox, database } = t.instance.resources;
    const rows = await database.db.selectFrom('repositories').select(['id', 'private_key']).where('private_key', 'is not', null).execute();
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      expect(row.private_key!.toString('latin1')).not.toContain('PRIVATE KEY');
      const key = secretBox.openText(row.private_key!, `deploy-key:${row.id}`);
      expect(key).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----/);
      const body = key.split('\n')[1]!;
      for (const text of answers) expect(text).not.toContain(body);
    }
    for (const text of answers) {
      expect(text).not.toContain('PRIVATE KEY');
      expect(text).not.toMatch(/private_?key/i);
    }
  });
});

describe('furrow keys', () => {
  const env = () => ({ DATABASE_URL: t.databaseUrl, FURROW_DATA_DIR: t.dataDir });
  const keys = async () =>
    new Map((await t.instance.resources.database.db.selectFrom('repositories').select(['name', 'key_fingerprint']).where('project_id', '=', projectId).execute()).map((r) => [r.name, r.key_fingerprint]));
  const waitForKeys = async () => {
    for (const { id } of (await api('GET', `/projects/${projectId}/repositories`)).body.items) await waitFor(id, (r) => r.publicKey !== null, 'got a key');
  };

  it('rekey replaces every deploy key, and asks first', async () => {
    await waitForKeys();
    const refused = await furrow(['keys', 'rekey'], env());
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('--yes');
    const before = await keys();
    const res = await furrow(['keys', 'rekey', '--yes'], env());
    expect(res.code, res.stderr).toBe(0);
    const after = await keys();
    for (const [name, fingerprint] of before) {
      expect(after.get(name)).not.toBe(fingerprint);
      expect(res.stdout).toContain(`${name}`);
      expect(res.stdout).toContain(after.get(name));
    }
  });

  it('rekey-missing only replaces keys that are missing or cannot be opened, and names secrets to enter again', async () => {
    const { db } = t.instance.resources.database;
    await db.updateTable('repositories').set({ public_key: null, private_key: null, key_fingerprint: null }).where('name', '=', 'rsa').execute();
    // Sealed under another secret key (or altered): cannot be opened.
    await db.updateTable('repositories').set({ private_key: Buffer.from('01'.repeat(60), 'hex') }).where('name', '=', 'ok-0').execute();
    await db.insertInto('secrets').values({ project_id: projectId, name: 'DEPLOY_SSH', kind: 'ssh', value: Buffer.from('not sealed here') }).execute();
    await db.insertInto('secrets').values({ project_id: projectId, name: 'API_TOKEN', kind: 'env', value: Buffer.from('not sealed either') }).execute();
    const before = await keys();
    const res = await furrow(['keys', 'rekey-missing'], env());
    expect(res.code, res.stderr).toBe(0);
    const after = await keys();
    for (const [name, fingerprint] of before) {
      if (name === 'rsa' || name === 'ok-0') expect(after.get(name)).toMatch(/^SHA256:/);
      else expect(after.get(name)).toBe(fingerprint);
    }
    expect(after.get('ok-0')).not.toBe(before.get('ok-0'));
    expect(res.stdout).toContain(`rsa`);
    expect(res.stdout).toContain(after.get('rsa'));
    expect(res.stdout).toContain('site: ssh secret DEPLOY_SSH cannot be opened');
    expect(res.stdout).toContain('site: env secret API_TOKEN cannot be opened');
    const rsa = (await api('GET', `/projects/${projectId}/repositories`)).body.items.find((r: { name: string }) => r.name === 'rsa');
    expect(rsa.publicKey).toMatch(/^ssh-rsa /); // keeps its key type
  });
});

const sshOk = await sshServerAvailable();

describe.skipIf(!sshOk)('repositories over SSH', () => {
  let sshd: SshServer;
  let remote: BareRepo;
  let url: string;

  beforeAll(async () => {
    sshd = await startSshServer();
    remote = await createBareRepo(path.join(sshd.dir, 'repos', 'app.git'), { '.furrow/ci.yml': CI_YML });
    // The login user serves the repository: it must own it (git refuses others' repositories).
    await run('chown', ['-R', String(sshd.uid), path.join(sshd.dir, 'repos')]);
    await chmod(path.join(sshd.dir, 'repos'), 0o755);
    url = `ssh://${sshd.user}@127.0.0.1:${sshd.port}${remote.path}`;
  });
  afterAll(() => sshd?.stop());

  it('checks access with the deploy key, pins the host key, reads workflow files, and sees a revoked key', async () => {
    const created = await addRepository({ name: 'over-ssh', url });
    const keyed = await waitFor(created.id, (r) => r.publicKey !== null, 'got a key');
    await authorizeKey(sshd, keyed.publicKey);
    const ok = await api('POST', `/repositories/${created.id}/check`);
    expect(ok.status, ok.text).toBe(200);
    expect(ok.body.access).toMatchObject({ status: 'ok', error: null });
    const hostKey = (await readFile(sshd.knownHosts, 'utf8')).trim().split(' ').slice(1, 3).join(' ');
    expect(ok.body.knownHosts).toBe(`[127.0.0.1]:${sshd.port} ${hostKey}`);

    const files = await api('GET', `/repositories/${created.id}/workflow-files`);
    expect(files.status, files.text).toBe(200);
    expect(files.body).toEqual({ commit: remote.commit, files: [{ path: '.furrow/ci.yml' }] });
    expect(await git(['-C', path.join(t.dataDir, 'git', created.id), 'cat-file', '-t', remote.commit])).toBe('commit');

    await revokeKey(sshd, keyed.publicKey);
    const revoked = await api('POST', `/repositories/${created.id}/check`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.access.status).toBe('failed');
    expect(revoked.body.access.error).toContain('Permission denied');
    expect(revoked.body.knownHosts).toBe(ok.body.knownHosts);

    // Another host key than the pinned one is refused.
    await authorizeKey(sshd, keyed.publicKey);
    const other = (await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'other'), '-C', 'x']).then(() => readFile(path.join(dir, 'other.pub'), 'utf8'))).split(' ');
    await api('PATCH', `/repositories/${created.id}`, { knownHosts: `[127.0.0.1]:${sshd.port} ${other[0]} ${other[1]}` });
    const spoofed = await api('POST', `/repositories/${created.id}/check`);
    expect(spoofed.body.access.status).toBe('failed');
    expect(spoofed.body.access.error).toContain('Host key verification failed');
  });

  it('checks the run’s commit out in the job over SSH with the deploy key, which the steps never see', async () => {
    // A project of its own: the shared one holds a secret the key tests made unreadable.
    const org = await t.api('POST', '/api/v1/organizations', { name: 'checkout-org' });
    const project = (await t.api('POST', `/api/v1/organizations/${org.body.id}/projects`, { name: 'checkout' })).body.id;
    const created = (await api('POST', `/projects/${project}/repositories`, { name: 'checkout-over-ssh', url })).body;
    const keyed = await waitFor(created.id, (r) => r.publicKey !== null, 'got a key');
    await authorizeKey(sshd, keyed.publicKey);
    expect((await api('POST', `/repositories/${created.id}/check`)).body.access.status).toBe('ok'); // pins the host key
    const wf = await api('POST', `/projects/${project}/workflows`, {
      name: 'checkout-over-ssh',
      repositoryId: created.id,
      script: 'git rev-parse HEAD && cat .furrow/ci.yml && ! grep -rqs "PRIVATE KEY" . && ! env | grep -q "PRIVATE KEY" && echo "no key in sight"',
    });
    const started = await api('POST', `/workflows/${wf.body.id}/runs`, {});
    expect(started.status, started.text).toBe(202);
    const done = await t.waitForRun(started.body.id);
    const [job] = (await api('GET', `/runs/${done.id}/jobs`)).body.items;
    const log = (await api('GET', `/jobs/${job.id}/log`)).text;
    expect(done.status, log).toBe('succeeded');
    expect(log).toContain(`fetch --depth 1 --no-tags origin ${remote.commit}`);
    expect(log).toContain(`${remote.commit}\njobs:`); // rev-parse, then the checked-out file
    expect(log).toContain('no key in sight');
    expect(job.steps.map((st: { name: string; status: string }) => [st.name, st.status])).toEqual([['checkout', 'succeeded'], ['script', 'succeeded']]);

    // Without the key on the server, the checkout fails with git's message.
    await revokeKey(sshd, keyed.publicKey);
    const denied = await t.waitForRun((await api('POST', `/workflows/${wf.body.id}/runs`, { commit: remote.commit })).body.id);
    expect(denied.status).toBe('failed');
    const [failedJob] = (await api('GET', `/runs/${denied.id}/jobs`)).body.items;
    expect(failedJob.error).toContain('checking out');
    expect((await api('GET', `/jobs/${failedJob.id}/log`)).text).toContain('Permission denied');
  });

  it('answers 409 while the key is still being made', async () => {
    const { db } = t.instance.resources.database;
    const created = await addRepository({ name: 'keyless', url });
    await waitFor(created.id, (r) => r.publicKey !== null, 'got a key');
    await db.updateTable('repositories').set({ public_key: null, private_key: null, key_fingerprint: null }).where('id', '=', created.id).execute();
    const res = await api('POST', `/repositories/${created.id}/check`);
    expect(res.status).toBe(409);
    expect(res.body.code).toBe('repository_key_pending');
  });
});
