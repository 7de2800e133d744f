import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

let t: TestInstance;
beforeAll(async () => {
  t = await startTestInstance();
});
afterAll(() => t?.stop());

async function emailOf(token: string): Promise<string> {
  return (await t.api('GET', '/api/v1/me', undefined, token)).body.email;
}

describe('memberships', () => {
  it('lets managers manage members but only owners manage owners', async () => {
    const owner = await t.user(`owner-${Date.now()}@example.com`);
    const org = await t.api('POST', '/api/v1/organizations', { name: `members-${Date.now()}` }, owner.token);
    expect(org.status).toBe(201);
    const base = `/api/v1/organizations/${org.body.id}/members`;
    const manager = await t.user(`manager-${Date.now()}@example.com`);
    const member = await t.user(`member-${Date.now()}@example.com`);
    expect((await t.api('PUT', base, { email: await emailOf(manager.token), role: 'manager' }, owner.token)).status).toBe(200);
    expect((await t.api('PUT', base, { email: await emailOf(member.token), role: 'member' }, manager.token)).status).toBe(200);

    const ownerEmail = await emailOf(owner.token);
    const demote = await t.api('PUT', base, { email: ownerEmail, role: 'guest' }, manager.token);
    expect(demote.status).toBe(403);
    expect((await t.api('DELETE', `${base}/${owner.id}`, undefined, manager.token)).status).toBe(403);
    expect((await t.api('PUT', base, { email: await emailOf(member.token), role: 'owner' }, manager.token)).status).toBe(403);
    // A member may read the list but not change it.
    expect((await t.api('GET', base, undefined, member.token)).body.items).toHaveLength(3);
    expect((await t.api('DELETE', `${base}/${manager.id}`, undefined, member.token)).status).toBe(403);

    // The last owner stays.
    const last = await t.api('DELETE', `${base}/${owner.id}`, undefined, owner.token);
    expect(last.status).toBe(409);
    expect((await t.api('PUT', base, { email: ownerEmail, role: 'manager' }, owner.token)).status).toBe(409);
    expect((await t.api('GET', base, undefined, owner.token)).body.items.find((m: { userId: string }) => m.userId === owner.id).role).toBe('owner');

    expect((await t.api('DELETE', `${base}/${member.id}`, undefined, manager.token)).status).toBe(204);
    expect((await t.api('DELETE', `${base}/${member.id}`, undefined, manager.token)).status).toBe(404);
    const unknown = await t.api('PUT', base, { email: 'nobody@example.com', role: 'member' }, owner.token);
    expect(unknown.status).toBe(400);
    expect(unknown.body.details[0].field).toBe('email');
  });

  it('shows a project member the organization but not its other projects', async () => {
    const { organizationId, projectId } = await t.workflow('true');
    const other = await t.api('POST', `/api/v1/organizations/${organizationId}/projects`, { name: 'other' });
    const user = await t.member({ projectId }, 'member');
    expect((await t.api('GET', `/api/v1/organizations/${organizationId}`, undefined, user.token)).status).toBe(200);
    const projects = await t.api('GET', `/api/v1/organizations/${organizationId}/projects`, undefined, user.token);
    expect(projects.body.items.map((p: { id: string }) => p.id)).toEqual([projectId]);
    expect((await t.api('GET', `/api/v1/projects/${other.body.id}`, undefined, user.token)).status).toBe(404);
    const orgs = await t.api('GET', '/api/v1/organizations', undefined, user.token);
    expect(orgs.body.items.map((o: { id: string }) => o.id)).toEqual([organizationId]);
  });

  it('filters activities by type with * as the only wildcard', async () => {
    const { projectId } = await t.workflow('true');
    const all = await t.api('GET', `/api/v1/projects/${projectId}/activities?type=workflow.*`);
    expect(all.body.items.map((a: { type: string }) => a.type)).toEqual(['workflow.created']);
    const literal = await t.api('GET', `/api/v1/projects/${projectId}/activities?type=workflow_created`);
    expect(literal.body.items).toEqual([]);
  });
});

describe('API tokens', () => {
  it('lists and revokes the caller’s own tokens, never another user’s', async () => {
    const alice = await t.user(`alice-${Date.now()}@example.com`);
    const bob = await t.user(`bob-${Date.now()}@example.com`);
    const created = await t.api('POST', '/api/v1/tokens', { name: 'deploy' }, alice.token);
    expect(created.status).toBe(201);
    expect(created.body.token).toMatch(/^furrow_/);
    const { pool } = t.instance.resources.database;
    // Passwords are argon2id hashes; tokens are kept only as their SHA-256.
    const stored = await pool.query('SELECT u.password_hash, k.token_hash FROM users u JOIN api_tokens k ON k.user_id = u.id WHERE k.id = $1', [created.body.id]);
    expect(stored.rows[0].password_hash).toMatch(/^\$argon2id\$/);
    expect(stored.rows[0].token_hash).toEqual(createHash('sha256').update(created.body.token).digest());
    const list = await t.api('GET', '/api/v1/tokens', undefined, alice.token);
    expect(list.body.items.map((k: { name: string }) => k.name).sort()).toEqual(['deploy', 'test']);
    expect(JSON.stringify(list.body)).not.toContain(created.body.token);
    expect((await t.api('GET', '/api/v1/me', undefined, created.body.token)).status).toBe(200);

    expect((await t.api('DELETE', `/api/v1/tokens/${created.body.id}`, undefined, bob.token)).status).toBe(404);
    expect((await t.api('DELETE', `/api/v1/tokens/${created.body.id}`, undefined, alice.token)).status).toBe(204);
    const revoked = await t.api('GET', '/api/v1/me', undefined, created.body.token);
    expect(revoked.status).toBe(401);
    expect(revoked.body.code).toBe('token_invalid');
    expect((await t.api('GET', '/api/v1/me', undefined, alice.token)).status).toBe(200);
    const { rows } = await pool.query('SELECT type, actor_user_id FROM activities WHERE subject_id = $1 ORDER BY id', [created.body.id]);
    expect(rows).toEqual([
      { type: 'token.created', actor_user_id: alice.id },
      { type: 'token.revoked', actor_user_id: alice.id },
    ]);
  });
});
