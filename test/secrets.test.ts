import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveJobSecrets } from '../src/server/store/secret-store.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

let t: TestInstance;
let client: pg.Client;
let projectId: string;
let otherProjectId: string;
let stagingId: string;
let productionId: string;
let sshKey: string;
const tempDirs: string[] = [];

const tempDir = async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'furrow-secrets-'));
  tempDirs.push(dir);
  return dir;
};

/** A value no other test uses, long enough to be a secret. */
const fresh = () => `s3cr3t-${randomBytes(9).toString('base64url')}`;

async function create(body: Record<string, unknown>, project = projectId) {
  return t.api('POST', `/api/v1/projects/${project}/secrets`, body);
}

async function environment(project: string, name: string): Promise<string> {
  const res = await t.api('POST', `/api/v1/projects/${project}/environments`, { name });
  expect(res.status).toBe(201);
  return res.body.id;
}

const resolve = (environmentId: string | null) => resolveJobSecrets(t.instance.resources.database.db, t.instance.resources.secretBox, projectId, environmentId);

beforeAll(async () => {
  t = await startTestInstance();
  client = new pg.Client({ connectionString: t.databaseUrl });
  await client.connect();
  ({ projectId } = await t.workflow('true'));
  ({ projectId: otherProjectId } = await t.workflow('true'));
  stagingId = await environment(projectId, 'staging');
  productionId = await environment(projectId, 'production');
  const keyFile = path.join(await tempDir(), 'id_ed25519');
  await promisify(execFile)('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'deploy@example', '-f', keyFile]);
  sshKey = await readFile(keyFile, 'utf8');
});
afterAll(async () => {
  await client?.end();
  await t?.stop();
  await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('secrets', () => {
  it('creates env and ssh secrets and never returns their values', async () => {
    const value = fresh();
    const env = await create({ name: 'API_TOKEN', value });
    expect(env.status).toBe(201);
    expect(env.body).toEqual({ id: expect.any(String), name: 'API_TOKEN', kind: 'env', environmentId: null, createdAt: expect.any(String), updatedAt: expect.any(String), createdBy: expect.any(String) });
    const ssh = await create({ name: 'DEPLOY_KEY', kind: 'ssh', value: sshKey, environmentId: stagingId });
    expect(ssh.status).toBe(201);
    expect(ssh.body).toMatchObject({ kind: 'ssh', environmentId: stagingId });

    const keyBody = sshKey.split('\n')[1]!;
    const answers = [
      env,
      ssh,
      await t.api('GET', `/api/v1/projects/${projectId}/secrets`),
      await t.api('GET', `/api/v1/secrets/${env.body.id}`),
      await t.api('GET', `/api/v1/secrets/${ssh.body.id}`),
      await t.api('PUT', `/api/v1/secrets/${env.body.id}`, { value }),
    ];
    for (const res of answers) {
      expect(res.status).toBeLessThan(300);
      expect(res.text).not.toContain(value);
      expect(res.text).not.toContain(keyBody);
      expect(res.text).not.toContain('"value"');
    }
    const list = answers[2]!.body.items.map((s: { name: string }) => s.name);
    expect(list).toEqual(expect.arrayContaining(['API_TOKEN', 'DEPLOY_KEY']));
  });

  it('stores neither the value nor its base64 in the database, bound to its row', async () => {
    const a = fresh();
    const b = fresh();
    const idA = (await create({ name: 'SEALED_A', value: a })).body.id;
    const idB = (await create({ name: 'SEALED_B', value: b })).body.id;
    const { rows } = await client.query<{ id: string; value: Buffer }>('SELECT id, value FROM secrets WHERE id = ANY($1)', [[idA, idB]]);
    const sealedA = rows.find((r) => r.id === idA)!.value;
    for (const form of [a, Buffer.from(a).toString('base64'), Buffer.from(a).toString('hex')]) {
      expect(sealedA.includes(Buffer.from(form))).toBe(false);
      expect(sealedA.toString('latin1')).not.toContain(form);
    }
    const box = t.instance.resources.secretBox;
    expect(box.openText(sealedA, `secret:${idA}`)).toBe(a);
    expect(() => box.openText(sealedA, `secret:${idB}`)).toThrow();
    // Copied into another row, a sealed value does not open there.
    await client.query('UPDATE secrets SET value = $1 WHERE id = $2', [sealedA, idB]);
    await expect(resolve(null)).rejects.toThrow();
    await client.query('DELETE FROM secrets WHERE id = ANY($1)', [[idA, idB]]);
  });

  it('refuses bad names, short values, bad keys and foreign environments with 400', async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ name: 'SHORT', value: 'abc' }, 'value', /shorter than 4 characters.*masking them would hide too much/],
      [{ name: 'KEY', kind: 'ssh', value: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 not-private' }, 'value', /not an SSH private key \(OpenSSH or PEM format, without a passphrase\)/],
      [{ name: 'BIG', value: 'x'.repeat(64 * 1024 + 1) }, 'value', /64 KiB/],
      [{ name: '1ABC', value: fresh() }, 'name', /letters, digits or underscores/],
      [{ name: 'WITH-DASH', value: fresh() }, 'name', /letters, digits or underscores/],
      [{ name: 'A'.repeat(129), value: fresh() }, 'name', /letters, digits or underscores/],
      [{ name: 'FURROW_TOKEN', value: fresh() }, 'name', /FURROW_/],
      [{ name: 'ELSEWHERE', value: fresh(), environmentId: await environment(otherProjectId, 'foreign') }, 'environmentId', /no such environment/],
    ];
    for (const [body, field, message] of cases) {
      const res = await create(body);
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(res.body.code).toBe('validation_failed');
      expect(res.body.details).toEqual([{ field, message: expect.stringMatching(message) }]);
    }
    for (const body of [{ name: 'X_KIND', kind: 'file', value: fresh() }, { name: 'X_EXTRA', value: fresh(), scope: 'all' }, { name: 'X_ENV', value: fresh(), environmentId: 'staging' }]) {
      const res = await create(body);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('validation_failed');
    }
    const names = (await t.api('GET', `/api/v1/projects/${projectId}/secrets`)).body.items.map((s: { name: string }) => s.name);
    expect(names.some((n: string) => ['SHORT', 'KEY', 'BIG', 'FURROW_TOKEN', 'ELSEWHERE', 'X_EXTRA'].includes(n))).toBe(false);
  });

  it('answers a duplicate name in the same scope with 409, and allows it in another scope', async () => {
    expect((await create({ name: 'DUPLICATE', value: fresh() })).status).toBe(201);
    const again = await create({ name: 'DUPLICATE', value: fresh() });
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('conflict');
    expect((await create({ name: 'DUPLICATE', value: fresh(), environmentId: stagingId })).status).toBe(201);
    expect((await create({ name: 'DUPLICATE', value: fresh(), environmentId: stagingId })).status).toBe(409);
    expect((await create({ name: 'DUPLICATE', value: fresh() }, otherProjectId)).status).toBe(201);
  });

  it('replaces a value, checked against the kind', async () => {
    const ssh = (await t.api('GET', `/api/v1/projects/${projectId}/secrets?environmentId=${stagingId}`)).body.items.find((s: { name: string }) => s.name === 'DEPLOY_KEY');
    const bad = await t.api('PUT', `/api/v1/secrets/${ssh.id}`, { value: 'not a key at all' });
    expect(bad.status).toBe(400);
    expect(bad.body.details[0].field).toBe('value');
    const short = await t.api('PUT', `/api/v1/secrets/${ssh.id}`, { value: 'ab' });
    expect(short.body.details).toEqual([{ field: 'value', message: expect.stringMatching(/shorter than 4/) }]);

    const created = await create({ name: 'ROTATED', value: fresh() });
    const next = fresh();
    const updated = await t.api('PUT', `/api/v1/secrets/${created.body.id}`, { value: next });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ id: created.body.id, name: 'ROTATED', kind: 'env' });
    expect(new Date(updated.body.updatedAt) >= new Date(created.body.updatedAt)).toBe(true);
    expect((await resolve(null)).find((s) => s.name === 'ROTATED')!.value).toBe(next);
    expect((await t.api('PUT', `/api/v1/secrets/${created.body.id}`, { value: next, name: 'RENAMED' })).status).toBe(400);
  });

  it('gives a job the project secrets, overridden by its environment’s, sorted by name', async () => {
    const { projectId: project } = await t.workflow('true');
    const staging = await environment(project, 'staging');
    const production = await environment(project, 'production');
    const add = async (name: string, value: string, environmentId?: string) => expect((await create({ name, value, ...(environmentId ? { environmentId } : {}) }, project)).status).toBe(201);
    await add('ZETA', 'project-zeta');
    await add('SHARED', 'project-shared');
    await add('SHARED', 'staging-shared', staging);
    await add('ALPHA', 'staging-alpha', staging);
    await add('ONLY_PROD', 'production-only', production);
    const { db } = t.instance.resources.database;
    const jobSecrets = (environmentId: string | null) => resolveJobSecrets(db, t.instance.resources.secretBox, project, environmentId);
    expect(await jobSecrets(null)).toEqual([
      { name: 'SHARED', kind: 'env', value: 'project-shared' },
      { name: 'ZETA', kind: 'env', value: 'project-zeta' },
    ]);
    expect(await jobSecrets(staging)).toEqual([
      { name: 'ALPHA', kind: 'env', value: 'staging-alpha' },
      { name: 'SHARED', kind: 'env', value: 'staging-shared' },
      { name: 'ZETA', kind: 'env', value: 'project-zeta' },
    ]);
    expect((await jobSecrets(production)).map((s) => s.name)).toEqual(['ONLY_PROD', 'SHARED', 'ZETA']);
    expect((await jobSecrets(production)).find((s) => s.name === 'SHARED')!.value).toBe('project-shared');

    const listed = (query: string) => t.api('GET', `/api/v1/projects/${project}/secrets${query}`).then((r) => r.body.items.map((s: { name: string; environmentId: string | null }) => [s.name, s.environmentId]));
    expect(await listed('')).toEqual([['ALPHA', staging], ['ONLY_PROD', production], ['SHARED', null], ['SHARED', staging], ['ZETA', null]]);
    expect(await listed(`?environmentId=${staging}`)).toEqual([['ALPHA', staging], ['SHARED', staging]]);
  });

  it('passes an ssh secret through as the key it was given', async () => {
    const [key] = (await resolve(stagingId)).filter((s) => s.name === 'DEPLOY_KEY');
    expect(key).toEqual({ name: 'DEPLOY_KEY', kind: 'ssh', value: sshKey });
    expect((await resolve(productionId)).some((s) => s.name === 'DEPLOY_KEY')).toBe(false);
  });

  it('deletes a secret, and lets members read but only managers write', async () => {
    const value = fresh();
    const created = await create({ name: 'DOOMED', value });
    const member = await t.member({ projectId }, 'member');
    const manager = await t.member({ projectId }, 'manager');
    expect((await t.api('GET', `/api/v1/projects/${projectId}/secrets`, undefined, member.token)).status).toBe(200);
    expect((await t.api('POST', `/api/v1/projects/${projectId}/secrets`, { name: 'BY_MEMBER', value: fresh() }, member.token)).status).toBe(403);
    expect((await t.api('PUT', `/api/v1/secrets/${created.body.id}`, { value: fresh() }, member.token)).status).toBe(403);
    expect((await t.api('DELETE', `/api/v1/secrets/${created.body.id}`, undefined, member.token)).status).toBe(403);
    expect((await t.api('DELETE', `/api/v1/secrets/${created.body.id}`, undefined, manager.token)).status).toBe(204);
    expect((await t.api('GET', `/api/v1/secrets/${created.body.id}`)).status).toBe(404);
    expect((await t.api('DELETE', `/api/v1/secrets/${created.body.id}`)).status).toBe(404);
  });

  it('records activities with name, kind and scope, never the value', async () => {
    const value = fresh();
    const next = fresh();
    const created = await create({ name: 'AUDITED', value, environmentId: productionId });
    await t.api('PUT', `/api/v1/secrets/${created.body.id}`, { value: next });
    await t.api('DELETE', `/api/v1/secrets/${created.body.id}`);
    const res = await t.api('GET', `/api/v1/projects/${projectId}/activities?type=secret.*`);
    const mine = res.body.items.filter((a: { subjectId: string }) => a.subjectId === created.body.id);
    expect(mine.map((a: { type: string }) => a.type)).toEqual(['secret.deleted', 'secret.updated', 'secret.created']);
    for (const a of mine) expect(a.payload).toEqual({ name: 'AUDITED', kind: 'env', environmentId: productionId });
    expect(res.text).not.toContain(value);
    expect(res.text).not.toContain(next);
    const { rows } = await client.query<{ payload: unknown }>("SELECT payload FROM activities WHERE type LIKE 'secret.%'");
    expect(JSON.stringify(rows)).not.toMatch(/s3cr3t-|OPENSSH PRIVATE KEY/);
  });
});

describe('secret key', () => {
  it('is made in the data dir with mode 0600 when none is given', async () => {
    const info = await stat(path.join(t.dataDir, 'secret.key'));
    expect(info.mode & 0o777).toBe(0o600);
  });

  it('may be given as FURROW_SECRET_KEY in hex or base64, the same key either way', async () => {
    const key = randomBytes(32);
    const start = async (secretKey: string) => startTestInstance({ FURROW_SECRET_KEY: secretKey, FURROW_LOCAL_RUNNER: 'false' }, { databaseUrl: t.databaseUrl, dataDir: await tempDir() });
    const hex = await start(key.toString('hex'));
    const value = fresh();
    let project: string;
    try {
      ({ projectId: project } = await hex.workflow('true'));
      expect((await hex.api('POST', `/api/v1/projects/${project}/secrets`, { name: 'UNDER_GIVEN_KEY', value })).status).toBe(201);
      await expect(stat(path.join(hex.dataDir, 'secret.key'))).rejects.toThrow();
    } finally {
      await hex.stop(false);
    }
    const opened = (instance: TestInstance) => resolveJobSecrets(instance.instance.resources.database.db, instance.instance.resources.secretBox, project, null);
    const base64 = await start(key.toString('base64'));
    try {
      expect(await opened(base64)).toEqual([{ name: 'UNDER_GIVEN_KEY', kind: 'env', value }]);
    } finally {
      await base64.stop(false);
    }
    // Under the data dir's key, the secret does not open.
    await expect(opened(t)).rejects.toThrow();
  });

  it('stops the start with a clear message when FURROW_SECRET_KEY is malformed', async () => {
    for (const bad of ['not-a-key', randomBytes(16).toString('hex'), randomBytes(31).toString('base64')]) {
      await expect(startTestInstance({ FURROW_SECRET_KEY: bad, FURROW_LOCAL_RUNNER: 'false' }, { databaseUrl: t.databaseUrl, dataDir: await tempDir() })).rejects.toThrow(
        /FURROW_SECRET_KEY must be 32 bytes written as 64 hex digits or as base64/,
      );
    }
  });
});
