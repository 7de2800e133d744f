import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

let t: TestInstance;
beforeAll(async () => {
  t = await startTestInstance();
});
afterAll(() => t?.stop());

let counter = 0;
const emailOf = async (token: string): Promise<string> => (await t.api('GET', '/api/v1/me', undefined, token)).body.email;

/** An organization with two owners, each with a token. */
async function twoOwners() {
  const a = await t.user(`owner-a-${++counter}-${Date.now()}@example.com`);
  const org = await t.api('POST', '/api/v1/organizations', { name: `owners-${counter}-${Date.now()}` }, a.token);
  const b = await t.user(`owner-b-${counter}-${Date.now()}@example.com`);
  const base = `/api/v1/organizations/${org.body.id}/members`;
  expect((await t.api('PUT', base, { email: await emailOf(b.token), role: 'owner' }, a.token)).status).toBe(200);
  return { org: org.body as { id: string; name: string }, base, a: { ...a, email: await emailOf(a.token) }, b: { ...b, email: await emailOf(b.token) } };
}

async function until(done: () => Promise<boolean>, ms = 5000): Promise<void> {
  for (const deadline = Date.now() + ms; !(await done()); ) {
    if (Date.now() > deadline) throw new Error(`still not so after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A request sent byte for byte as written: no client normalises its path. */
function rawRequest(method: string, path: string, token: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(t.url);
    const req = request({ host: hostname, port, method, path, agent: false, headers: { authorization: `Bearer ${token}` } }, (res) => {
      let text = '';
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('owners', () => {
  it('keeps an owner through 20 races of two owners demoting or removing each other', async () => {
    const outcomes: string[] = [];
    for (let i = 0; i < 20; i++) {
      const { org, base, a, b } = await twoOwners();
      // Half the races demote, half remove; each owner acts against the other at the same moment.
      const act = (actor: typeof a, target: typeof a) =>
        i % 2 === 0 ? t.api('PUT', base, { email: target.email, role: 'member' }, actor.token) : t.api('DELETE', `${base}/${target.id}`, undefined, actor.token);
      const results = await Promise.all([act(a, b), act(b, a)]);
      for (const res of results) {
        if (res.status >= 300) {
          // The later one finds that its target is the last owner, or that it is no owner any more:
          // while it waited for the other change (409), or already when its access was checked.
          if (res.status === 403 || res.status === 404) {
            // Demoted, it may no longer do this (403); removed, it no longer sees the organization (404).
            expect(res.body.code).toBe(res.status === 403 ? 'forbidden' : 'not_found');
          } else {
            expect(res.status).toBe(409);
            expect(res.body.code).toMatch(/^(last_owner|role_changed)$/);
            expect(res.body.message).toMatch(/at least one owner|changed while this request waited/);
          }
        }
        outcomes.push(String(res.status));
      }
      const members = (await t.api('GET', base, undefined, t.adminToken)).body.items as { role: string }[];
      expect(members.filter((m) => m.role === 'owner'), `race ${i} in ${org.name}`).toHaveLength(1);
    }
    // Every race has exactly one winner.
    expect(outcomes.filter((s) => ['403', '404', '409'].includes(s))).toHaveLength(20);
  });

  it('refuses a change by an owner who was demoted while the request waited', async () => {
    const { org, base, a, b } = await twoOwners();
    const c = await t.user(`owner-c-${++counter}-${Date.now()}@example.com`);
    const cEmail = await emailOf(c.token);
    expect((await t.api('PUT', base, { email: cEmail, role: 'owner' }, a.token)).status).toBe(200);
    // A holds the organization while it demotes B; B's demotion of C, let in as an owner, waits.
    const held = await t.instance.resources.database.pool.connect();
    try {
      await held.query('BEGIN');
      await held.query('SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE', [org.id]);
      const pending = t.api('PUT', base, { email: cEmail, role: 'member' }, b.token);
      await until(async () => (await held.query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")).rowCount! > 0);
      await held.query("UPDATE organization_members SET role = 'member' WHERE organization_id = $1 AND user_id = $2", [org.id, b.id]);
      await held.query('COMMIT');
      const res = await pending;
      expect(res.status).toBe(409);
      expect(res.body).toMatchObject({ code: 'role_changed', message: expect.stringContaining('it is now member') });
    } finally {
      held.release();
    }
    const members = (await t.api('GET', base)).body.items as { email: string; role: string }[];
    expect(members.find((m) => m.email === cEmail)?.role).toBe('owner');
  });

  it('still refuses a manager who demotes or removes an owner, checked under the lock', async () => {
    const { base, a, b } = await twoOwners();
    const manager = await t.user(`manager-${++counter}-${Date.now()}@example.com`);
    expect((await t.api('PUT', base, { email: await emailOf(manager.token), role: 'manager' }, a.token)).status).toBe(200);
    expect((await t.api('PUT', base, { email: b.email, role: 'member' }, manager.token)).body.code).toBe('forbidden');
    expect((await t.api('DELETE', `${base}/${b.id}`, undefined, manager.token)).body.code).toBe('forbidden');
    expect((await t.api('PUT', base, { email: b.email, role: 'member' }, a.token)).status).toBe(200);
    expect((await t.api('DELETE', `${base}/${b.id}`, undefined, manager.token)).status).toBe(204);
  });
});

describe('deleting', () => {
  it('deletes an organization only when the request names it', async () => {
    const { organizationId } = await t.workflow('true');
    const { name } = (await t.api('GET', `/api/v1/organizations/${organizationId}`)).body;
    const url = `/api/v1/organizations/${organizationId}`;

    const bare = await t.api('DELETE', url);
    expect(bare.status).toBe(400);
    expect(bare.body).toMatchObject({ code: 'confirmation_required' });
    expect(bare.body.message).toContain(`?confirm=${encodeURIComponent(name)}`);
    const wrong = await t.api('DELETE', `${url}?confirm=${encodeURIComponent(name + 'x')}`);
    expect(wrong.status).toBe(400);
    expect(wrong.body.code).toBe('confirmation_mismatch');
    expect((await t.api('GET', url)).status).toBe(200);

    expect((await t.api('DELETE', `${url}?confirm=${encodeURIComponent(name)}`)).status).toBe(204);
    expect((await t.api('GET', url)).status).toBe(404);
  });

  it('deletes a project only when the request names it', async () => {
    const { projectId } = await t.workflow('true');
    const url = `/api/v1/projects/${projectId}`;
    const { name } = (await t.api('GET', url)).body;
    expect((await t.api('DELETE', url)).body.code).toBe('confirmation_required');
    expect((await t.api('DELETE', `${url}?confirm=${encodeURIComponent(name.toUpperCase())}x`)).body.code).toBe('confirmation_mismatch');
    expect((await t.api('GET', url)).status).toBe(200);
    expect((await t.api('DELETE', `${url}?confirm=${encodeURIComponent(name)}`)).status).toBe(204);
    expect((await t.api('GET', url)).status).toBe(404);
  });

  it('never reaches the organization’s DELETE through a member path that ends in ..', async () => {
    const { organizationId, projectId } = await t.workflow('true');
    const paths = [
      `/api/v1/organizations/${organizationId}/members/..`,
      `/api/v1/organizations/${organizationId}/members/%2e%2e`,
      `/api/v1/organizations/${organizationId}/members/../`,
      `/api/v1/organizations/${organizationId}/`, // what curl and fetch make of the first
      `/api/v1/projects/${projectId}/members/..`,
      `/api/v1/projects/${projectId}/`,
    ];
    for (const path of paths) {
      const res = await rawRequest('DELETE', path, t.adminToken);
      expect(res.status, path).toBeGreaterThanOrEqual(400);
      expect(res.status, path).toBeLessThan(500);
    }
    expect((await t.api('GET', `/api/v1/organizations/${organizationId}`)).status).toBe(200);
    expect((await t.api('GET', `/api/v1/projects/${projectId}`)).status).toBe(200);
  });
});
