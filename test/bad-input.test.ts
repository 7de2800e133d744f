import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
