import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

let t: TestInstance;
beforeAll(async () => {
  t = await startTestInstance();
});
afterAll(() => t?.stop());

describe('operability', () => {
  it('answers /healthz and /readyz', async () => {
    expect((await t.api('GET', '/healthz', undefined, null)).body).toEqual({ status: 'ok' });
    expect((await t.api('GET', '/readyz', undefined, null)).body).toEqual({ status: 'ready' });
  });

  it('reports unready when migrations are missing', async () => {
    const { pool } = t.instance.resources.database;
    // Pretend migration 0001 was never applied (a newer one stands in its place).
    await pool.query("UPDATE furrow_migrations SET id = 9999 WHERE id = 1");
    try {
      const res = await t.api('GET', '/readyz', undefined, null);
      expect(res.status).toBe(503);
      expect(res.body.reason).toMatch(/0001_core/);
    } finally {
      await pool.query('UPDATE furrow_migrations SET id = 1 WHERE id = 9999');
    }
  });

  it('exports Prometheus metrics: runs by status, queue depth, runners, HTTP latency', async () => {
    const { workflowId } = await t.workflow('true');
    const run = await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, {});
    await t.waitForRun(run.body.id);
    const res = await t.api('GET', '/metrics', undefined, null);
    expect(res.status).toBe(200);
    expect(res.text).toMatch(/^furrow_runs\{status="succeeded"\} [1-9]/m);
    expect(res.text).toMatch(/^furrow_queue_depth \d+/m);
    expect(res.text).toMatch(/^furrow_runners\{state="online"\} 1$/m); // the local runner
    expect(res.text).toMatch(/^furrow_runners\{state="offline"\} 0$/m);
    expect(res.text).toMatch(/^furrow_http_request_duration_seconds_bucket\{.*route="\/api\/v1\/workflows\/:id\/runs".*\} \d+/m);
  });

  it('publishes an OpenAPI document and browsable docs', async () => {
    const spec = await t.api('GET', '/api/v1/openapi.json', undefined, null);
    expect(spec.status).toBe(200);
    expect(spec.body.openapi).toMatch(/^3\./);
    expect(Object.keys(spec.body.paths)).toEqual(expect.arrayContaining(['/api/v1/workflows/{id}/runs', '/api/v1/runs/{id}/log', '/api/v1/organizations']));
    const docs = await fetch(`${t.url}/api/docs/`);
    expect(docs.status).toBe(200);
    expect(await docs.text()).toMatch(/swagger/i);
  });

  it('rate-limits logins', async () => {
    let last = 0;
    for (let i = 0; i < 12; i++) {
      const res = await t.api('POST', '/api/v1/sessions', { email: 'nobody@example.com', password: 'wrong' }, null);
      last = res.status;
      if (i === 0) expect(res.body.code).toBe('invalid_credentials');
    }
    expect(last).toBe(429);
  });
});
