import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PATTERN_WORDS } from '../src/server/api/schemas.js';
import { createBareRepo } from './helpers/git-repos.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

let t: TestInstance;
let client: pg.Client;
let projectId: string;
let workflowId: string;

/** Row counts of every table a bad request could have written to. */
async function counts(): Promise<Record<string, number>> {
  const { rows } = await client.query<{ t: string; n: number }>(
    `SELECT 'workflows' AS t, count(*)::int AS n FROM workflows UNION ALL SELECT 'runs', count(*)::int FROM runs
     UNION ALL SELECT 'jobs', count(*)::int FROM jobs UNION ALL SELECT 'activities', count(*)::int FROM activities
     UNION ALL SELECT 'environments', count(*)::int FROM environments UNION ALL SELECT 'organizations', count(*)::int FROM organizations`,
  );
  return Object.fromEntries(rows.map((r) => [r.t, r.n]));
}

beforeAll(async () => {
  t = await startTestInstance();
  client = new pg.Client({ connectionString: t.databaseUrl });
  await client.connect();
  ({ projectId, workflowId } = await t.workflow('true'));
});
afterAll(async () => {
  await client?.end();
  await t?.stop();
});

describe('bad input', () => {
  const cases: { name: string; method: string; route: () => string; body: unknown; status: number; code: string; field?: string; headers?: Record<string, string> }[] = [
    { name: 'malformed JSON', method: 'POST', route: () => `/api/v1/projects/${projectId}/workflows`, body: '{"name": "x", "script":', status: 400, code: 'invalid_json' },
    { name: 'unknown field', method: 'POST', route: () => `/api/v1/projects/${projectId}/workflows`, body: { name: 'x', script: 'true', colour: 'red' }, status: 400, code: 'validation_failed', field: 'colour' },
    { name: 'wrong type', method: 'POST', route: () => `/api/v1/projects/${projectId}/workflows`, body: { name: 'x', script: 'true', timeoutSeconds: '30' }, status: 400, code: 'validation_failed', field: 'timeoutSeconds' },
    { name: 'missing field', method: 'POST', route: () => `/api/v1/projects/${projectId}/workflows`, body: { name: 'x' }, status: 400, code: 'validation_failed', field: 'script' },
    { name: 'empty name', method: 'POST', route: () => '/api/v1/organizations', body: { name: '' }, status: 400, code: 'validation_failed', field: 'name' },
    { name: 'bad variable name', method: 'POST', route: () => `/api/v1/projects/${projectId}/environments`, body: { name: 'e', variables: { 'BAD-NAME': 'v' } }, status: 400, code: 'validation_failed' },
    { name: 'unknown run option', method: 'POST', route: () => `/api/v1/workflows/${workflowId}/runs`, body: { parameters: {}, priority: 1 }, status: 400, code: 'validation_failed', field: 'priority' },
    { name: 'parameters of the wrong type', method: 'POST', route: () => `/api/v1/workflows/${workflowId}/runs`, body: { parameters: { A: 1 } }, status: 400, code: 'validation_failed', field: 'parameters.A' },
    { name: 'environment of another project', method: 'POST', route: () => `/api/v1/workflows/${workflowId}/runs`, body: { environmentId: '00000000-0000-4000-8000-000000000000' }, status: 400, code: 'validation_failed', field: 'environmentId' },
    { name: 'a body that is not an object', method: 'POST', route: () => '/api/v1/organizations', body: '[1,2]', status: 400, code: 'validation_failed' },
    { name: 'a 2 MB body', method: 'POST', route: () => `/api/v1/projects/${projectId}/workflows`, body: { name: 'big', script: 'x'.repeat(2 * 1024 * 1024) }, status: 413, code: 'body_too_large' },
    { name: 'a body that is not JSON', method: 'POST', route: () => '/api/v1/organizations', body: 'name=x', status: 415, code: 'unsupported_media_type', headers: { 'content-type': 'application/x-www-form-urlencoded' } },
    { name: 'a malformed id', method: 'GET', route: () => '/api/v1/runs/not-a-uuid', body: undefined, status: 404, code: 'not_found' },
    { name: 'an unknown route', method: 'GET', route: () => '/api/v1/nothing-here', body: undefined, status: 404, code: 'route_not_found' },
    { name: 'an out-of-range query value', method: 'GET', route: () => `/api/v1/projects/${projectId}/runs?limit=5000`, body: undefined, status: 400, code: 'validation_failed', field: 'limit' },
  ];

  for (const c of cases) {
    it(`answers ${c.name} with ${c.status} ${c.code} and writes nothing`, async () => {
      const before = await counts();
      const res = await t.api(c.method, c.route(), c.body, undefined, c.headers);
      expect(res.status).toBe(c.status);
      expect(res.body.code).toBe(c.code);
      expect(typeof res.body.message).toBe('string');
      expect(res.text).not.toMatch(/\bat .+\.(js|ts):\d+/); // no stack trace
      if (c.field) expect(res.body.details.map((d: { field: string }) => d.field)).toContain(c.field);
      expect(await counts()).toEqual(before);
    });
  }

  it('refuses a duplicate name with 409 conflict', async () => {
    const first = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: 'twice', script: 'true' });
    expect(first.status).toBe(201);
    const before = await counts();
    const second = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: 'twice', script: 'true' });
    expect(second.status).toBe(409);
    expect(second.body.code).toBe('conflict');
    expect(await counts()).toEqual(before);
  });

  it('names the object that already has a name, and counts names differing only in case as equal', async () => {
    const first = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: 'Deploy', script: 'true' });
    const before = await counts();
    const second = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: 'deploy', script: 'true' });
    expect(second.status).toBe(409);
    expect(second.body.code).toBe('conflict');
    expect(second.body.message).toContain(first.body.id);
    expect(second.body.message).toContain('"Deploy"');
    expect(second.body.message).toMatch(/letter case/);
    expect(second.body.details[0].existing).toEqual({ id: first.body.id, name: 'Deploy' });
    const org = await t.api('POST', '/api/v1/organizations', { name: `Acme-${Date.now()}` });
    const afterOrg = await counts();
    const orgAgain = await t.api('POST', '/api/v1/organizations', { name: org.body.name.toUpperCase() });
    expect(orgAgain.status).toBe(409);
    expect(orgAgain.body.details[0].existing.id).toBe(org.body.id);
    expect(afterOrg.workflows).toBe(before.workflows);
    expect(await counts()).toEqual(afterOrg);
  });

  it('keeps secret names exact: TOKEN and token are two secrets', async () => {
    expect((await t.api('POST', `/api/v1/projects/${projectId}/secrets`, { name: 'TOKEN', value: 'one-value' })).status).toBe(201);
    expect((await t.api('POST', `/api/v1/projects/${projectId}/secrets`, { name: 'token', value: 'two-value' })).status).toBe(201);
    const again = await t.api('POST', `/api/v1/projects/${projectId}/secrets`, { name: 'TOKEN', value: 'three-value' });
    expect(again.status).toBe(409);
    expect(again.body.message).toMatch(/A secret named "TOKEN" already exists/);
  });

  it('lists the allowed values of an enum once', async () => {
    const res = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: 'net', script: 'true', network: 'bridge' });
    expect(res.status).toBe(400);
    expect(res.body.details).toEqual([{ field: 'network', message: 'must be one of "default", "none"' }]);
    const env = await t.api('POST', `/api/v1/projects/${projectId}/environments`, { name: 'queued', concurrency: 'fifo' });
    expect(env.body.details).toEqual([{ field: 'concurrency', message: 'must be one of "queue", "supersede", "cancel-in-progress", or null' }]);
    expect(res.body.message.match(/"none"/g)).toHaveLength(1);
  });

  it('says in words what a pattern allows', async () => {
    const res = await t.api('POST', '/api/v1/organizations', { name: ' padded ' });
    expect(res.status).toBe(400);
    expect(res.body.details).toEqual([{ field: 'name', message: 'must be text without spaces at its start or end' }]);
    const commit = await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, { commit: 'abc123' });
    expect(commit.body.details[0].message).toBe('must be a full commit sha: 40 characters 0-9 and a-f');
    const variable = await t.api('POST', `/api/v1/projects/${projectId}/environments`, { name: 'vars', variables: { 'BAD-NAME': 'v' } });
    expect(variable.body.details[0]).toEqual({ field: 'variables.BAD-NAME', message: 'is not an allowed name: use letters, digits and `_`, not starting with a digit' });
    for (const r of [res, commit, variable]) expect(r.body.message).not.toMatch(/\^|\$"|\[A-Z/);
  });

  it('has words for every pattern of the OpenAPI document', async () => {
    const doc = (await t.api('GET', '/api/v1/openapi.json')).body;
    const patterns = new Set<string>();
    const walk = (node: unknown): void => {
      if (!node || typeof node !== 'object') return;
      const o = node as Record<string, unknown>;
      if (typeof o.pattern === 'string') patterns.add(o.pattern);
      if (o.patternProperties && typeof o.patternProperties === 'object') for (const k of Object.keys(o.patternProperties)) patterns.add(k);
      Object.values(o).forEach(walk);
    };
    walk(doc);
    expect(patterns.size).toBeGreaterThan(5);
    expect([...patterns].filter((p) => !PATTERN_WORDS.has(p))).toEqual([]);
  });

  it('suggests the nearest known field for an unknown one', async () => {
    const res = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: 'typo', sript: 'true' });
    expect(res.status).toBe(400);
    expect(res.body.details).toContainEqual({ field: 'sript', message: 'is not a known field; did you mean "script"?' });
  });

  it('says a uuid field wants a UUID, and a nullable one that null is fine too', async () => {
    const res = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: 'u', script: 'true', repositoryId: 'nope' });
    expect(res.body.details).toEqual([{ field: 'repositoryId', message: 'must be a UUID, or must be null' }]);
  });

  it('refuses a NUL character in any text of the body', async () => {
    const before = await counts();
    const res = await t.api('POST', `/api/v1/projects/${projectId}/environments`, { name: 'nul', variables: { A: 'x\u0000y' } });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
    expect(res.body.details).toEqual([{ field: 'variables.A', message: 'contains a NUL character (\\u0000), which text may not hold' }]);
    const query = await t.api('GET', `/api/v1/projects/${projectId}/secrets?environmentId=%00`);
    expect(query.status).toBe(400);
    expect(await counts()).toEqual(before);
  });

  it('refuses a body nested deeper than any route takes, however deep, as a 400', async () => {
    const before = await counts();
    for (const depth of [33, 10_000, 100_000]) {
      // Sent as text: the test's own JSON.stringify would not get that deep either.
      const res = await fetch(`${t.url}/api/v1/projects/${projectId}/environments`, {
        method: 'POST',
        headers: { authorization: `Bearer ${t.adminToken}`, 'content-type': 'application/json' },
        body: `{"name":${'['.repeat(depth)}${']'.repeat(depth)}}`,
      });
      const answer = (await res.json()) as { details: unknown };
      expect(res.status, `${depth}: ${JSON.stringify(answer)}`).toBe(400);
      expect(answer.details).toEqual([{ field: 'name' + '.0'.repeat(31), message: 'nests deeper than 32 levels' }]);
    }
    expect(await counts()).toEqual(before);
  });

  it('says a wrong or revoked token is not valid rather than asking to sign in', async () => {
    const res = await t.api('GET', '/api/v1/me', undefined, 'furrow_mistyped');
    expect(res.status).toBe(401);
    expect(res.body.code).toBe('token_invalid');
    expect(res.body.message).toMatch(/not valid: it is mistyped, or it was revoked/);
    const cookie = await t.api('GET', '/api/v1/me', undefined, null, { cookie: 'furrow_session=gone' });
    expect(cookie.status).toBe(401);
    expect(cookie.body.code).toBe('session_expired');
  });

  it('answers a run at an unknown commit with 422 commit_not_found', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'furrow-bad-input-'));
    try {
      const repo = await createBareRepo(path.join(dir, 'repo.git'), { '.furrow/ci.yml': 'jobs:\n  build:\n    steps:\n      - run: "true"\n' });
      const repository = await t.api('POST', `/api/v1/projects/${projectId}/repositories`, { name: 'code', url: repo.url });
      const wf = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, { name: 'from-file', repositoryId: repository.body.id, path: '.furrow/ci.yml' });
      expect(wf.status).toBe(201);
      // The deploy key is made and the access checked in the background, each with an activity: let them land first.
      const background = `SELECT count(*)::int AS n FROM activities WHERE type IN ('repository.key_generated', 'repository.checked') AND subject_id = $1`;
      await expect.poll(async () => (await client.query(background, [repository.body.id])).rows[0].n, { timeout: 10_000 }).toBe(2);
      const before = await counts();
      const res = await t.api('POST', `/api/v1/workflows/${wf.body.id}/runs`, { commit: 'f'.repeat(40) });
      expect(res.status).toBe(422);
      expect(res.body.code).toBe('commit_not_found');
      expect(res.body.message).toContain('f'.repeat(40));
      expect(await counts()).toEqual(before);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses an anonymous caller before looking at the body', async () => {
    const res = await t.api('POST', `/api/v1/projects/${projectId}/workflows`, '{"name": ', null);
    expect(res.status).toBe(401);
    expect(res.body.code).toBe('unauthenticated');
  });

  it('tags every answer with a request id', async () => {
    const res = await t.api('GET', '/api/v1/me', undefined, undefined, { 'x-request-id': 'trace-me-123' });
    expect(res.headers.get('x-request-id')).toBe('trace-me-123');
  });
});
