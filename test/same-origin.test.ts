import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';
import { wsUpgrade } from './helpers/ws-upgrade.js';

const PASSWORD = 'correct horse battery'; // what t.user() sets
const FOREIGN = 'https://evil.example.com';

let t: TestInstance;
beforeAll(async () => {
  t = await startTestInstance();
});
afterAll(() => t?.stop());

async function signedIn(instance: TestInstance): Promise<string> {
  const email = `origin-${Date.now()}-${Math.random()}@example.com`;
  await instance.user(email);
  const login = await instance.api('POST', '/api/v1/sessions', { email, password: PASSWORD }, null);
  expect(login.status).toBe(201);
  return login.headers.get('set-cookie')!.split(';')[0]!;
}

const upgrade = (url: string, headers: Record<string, string>) => wsUpgrade(`${url}/api/v1/live`, headers);

describe('requests signed in by the session cookie come from Furrow’s own origin', () => {
  it('refuses a state-changing cookie request from another origin or from none, and takes one from its own', async () => {
    const cookie = await signedIn(t);
    let n = 0;
    const create = (headers: Record<string, string>) => t.api('POST', '/api/v1/tokens', { name: `cli-${++n}` }, null, { cookie, ...headers });
    const foreign = await create({ origin: FOREIGN });
    expect(foreign.status).toBe(403);
    expect(foreign.body).toMatchObject({ code: 'origin_mismatch' });
    expect(foreign.body.message).toContain(FOREIGN);
    expect((await create({ referer: `${FOREIGN}/form` })).body.code).toBe('origin_mismatch');
    const none = await create({});
    expect(none.status).toBe(403);
    expect(none.body.code).toBe('origin_mismatch');
    expect((await create({ origin: t.url })).status).toBe(201);
    expect((await create({ referer: `${t.url}/projects/1` })).status).toBe(201);
    // Nothing was written by the refused ones (t.user made the first token).
    const tokens = await t.api('GET', '/api/v1/tokens', undefined, null, { cookie });
    expect(tokens.body.items.map((x: { name: string }) => x.name)).toEqual(['test', 'cli-4', 'cli-5']);
    // Reading needs no origin: a cross-site page cannot read the answer anyway.
    expect((await t.api('GET', '/api/v1/me', undefined, null, { cookie, origin: FOREIGN })).status).toBe(200);
    // Signing out is a change too.
    expect((await t.api('DELETE', '/api/v1/sessions/current', undefined, null, { cookie, origin: FOREIGN })).body.code).toBe('origin_mismatch');
    expect((await t.api('GET', '/api/v1/me', undefined, null, { cookie })).status).toBe(200);
  });

  it('leaves Bearer-token requests alone', async () => {
    const res = await t.api('POST', '/api/v1/tokens', { name: 'ci' }, undefined, { origin: FOREIGN });
    expect(res.status).toBe(201);
    expect((await upgrade(t.url, { authorization: `Bearer ${t.adminToken}`, origin: FOREIGN })).status).toBe(101);
  });

  it('refuses a live WebSocket upgrade carrying the cookie from another origin or from none', async () => {
    const cookie = await signedIn(t);
    const foreign = await upgrade(t.url, { cookie, origin: FOREIGN });
    expect(foreign.status).toBe(403);
    expect(foreign.body).toMatchObject({ code: 'origin_mismatch' });
    expect((await upgrade(t.url, { cookie })).body).toMatchObject({ code: 'origin_mismatch' });
    expect((await upgrade(t.url, { cookie, origin: t.url })).status).toBe(101);
  });

  it('behind a proxy, checks against FURROW_PUBLIC_URL rather than the address the request reached', async () => {
    const proxied = await startTestInstance({ FURROW_PUBLIC_URL: 'https://ci.example.com/' });
    try {
      const cookie = await signedIn(proxied);
      const create = (origin: string) => proxied.api('POST', '/api/v1/tokens', { name: 'cli' }, null, { cookie, origin });
      expect((await create(proxied.url)).body.code).toBe('origin_mismatch');
      expect((await create('https://ci.example.com')).status).toBe(201);
    } finally {
      await proxied.stop();
    }
  });
});
