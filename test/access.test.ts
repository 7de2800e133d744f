import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PROTOCOL_VERSION } from '../src/protocol/messages.js';
import { createBareRepo } from './helpers/git-repos.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';
import { wsUpgrade } from './helpers/ws-upgrade.js';

// The access rules as the design states them, written out here rather than imported from src,
// so that a route wired to the wrong capability makes this test fail.
type Role = 'guest' | 'member' | 'manager' | 'owner';
const RANKS: Role[] = ['guest', 'member', 'manager', 'owner'];
type Needs = Role | 'public' | 'authenticated' | 'admin' | 'runner' | 'job';
type Kind = 'organization' | 'project' | 'environment' | 'workflow' | 'run' | 'job' | 'runner' | 'runner_token' | 'repository' | 'secret' | 'trigger' | 'delivery';

interface Route {
  key: string; // `METHOD /path` as registered
  scope: Kind | null; // what `:id` names
  needs: Needs;
  ok: number; // the status an allowed caller gets
  body?: (f: Fixture) => unknown;
  fresh?: boolean; // destroys its object: gets a fixture of its own
  auth?: (f: Fixture) => string; // a credential the route takes instead of the caller's
  query?: (f: Fixture) => string; // appended to the path
}
const r = (key: string, scope: Kind | null, needs: Needs, ok: number, body?: Route['body'], fresh?: boolean, auth?: Route['auth']): Route => ({ key, scope, needs, ok, body, fresh, auth });
const PASSWORD = 'correct horse battery'; // what t.user() sets
const NO_RUNNER = { labels: ['nowhere'] }; // runs started by the walk stay queued
let counter = 0;
const NO_SUCH_ID = '00000000-0000-4000-8000-000000000000';
const named = () => ({ name: `walk-${++counter}` }); // organization names are unique instance-wide
const signIn = (f: Fixture) => ({ email: f.email, password: PASSWORD });
const member = (f: Fixture) => ({ email: f.email, role: 'member' });
const secret = () => ({ name: `WALK_${++counter}`, value: 'walk-secret-value' });
let repoUrl = ''; // a bare repository on disk, made once
const YEARLY = '0 0 1 1 *'; // schedules of the walk never fire while it runs

const ROUTES: Route[] = [
  r('GET /healthz', null, 'public', 200),
  r('GET /readyz', null, 'public', 200),
  r('GET /metrics', null, 'public', 200),
  r('GET /api/v1/openapi.json', null, 'public', 200),
  r('POST /api/v1/sessions', null, 'public', 201, signIn),
  r('DELETE /api/v1/sessions/current', null, 'authenticated', 204),
  r('GET /api/v1/me', null, 'authenticated', 200),
  r('POST /api/v1/tokens', null, 'authenticated', 201, named),
  r('GET /api/v1/tokens', null, 'authenticated', 200),
  r('DELETE /api/v1/tokens/:id', null, 'authenticated', 404), // someone else's (here: no) token
  r('GET /api/v1/live', null, 'authenticated', 101), // WebSocket upgrade
  r('POST /api/v1/organizations', null, 'authenticated', 201, named),
  r('GET /api/v1/organizations', null, 'authenticated', 200),
  r('GET /api/v1/organizations/:id', 'organization', 'guest', 200),
  r('PATCH /api/v1/organizations/:id', 'organization', 'manager', 200, named),
  r('GET /api/v1/organizations/:id/projects', 'organization', 'guest', 200),
  r('POST /api/v1/organizations/:id/projects', 'organization', 'manager', 201, named),
  r('GET /api/v1/organizations/:id/members', 'organization', 'guest', 200),
  r('PUT /api/v1/organizations/:id/members', 'organization', 'manager', 200, member),
  r('DELETE /api/v1/organizations/:id/members/:userId', 'organization', 'manager', 204),
  r('GET /api/v1/projects/:id', 'project', 'guest', 200),
  r('PATCH /api/v1/projects/:id', 'project', 'manager', 200, named),
  r('GET /api/v1/projects/:id/members', 'project', 'guest', 200),
  r('PUT /api/v1/projects/:id/members', 'project', 'manager', 200, member),
  r('DELETE /api/v1/projects/:id/members/:userId', 'project', 'manager', 204),
  r('GET /api/v1/projects/:id/environments', 'project', 'guest', 200),
  r('POST /api/v1/projects/:id/environments', 'project', 'manager', 201, named),
  r('GET /api/v1/projects/:id/workflows', 'project', 'guest', 200),
  r('POST /api/v1/projects/:id/workflows', 'project', 'manager', 201, () => ({ ...named(), script: 'true', ...NO_RUNNER })),
  r('GET /api/v1/projects/:id/runs', 'project', 'guest', 200),
  r('GET /api/v1/projects/:id/secrets', 'project', 'member', 200),
  r('POST /api/v1/projects/:id/secrets', 'project', 'manager', 201, secret),
  r('GET /api/v1/secrets/:id', 'secret', 'member', 200),
  r('PUT /api/v1/secrets/:id', 'secret', 'manager', 200, () => ({ value: 'another-value' })),
  r('GET /api/v1/projects/:id/repositories', 'project', 'guest', 200),
  r('POST /api/v1/projects/:id/repositories', 'project', 'manager', 201, () => ({ ...named(), url: repoUrl })),
  r('GET /api/v1/repositories/:id', 'repository', 'guest', 200),
  r('PATCH /api/v1/repositories/:id', 'repository', 'manager', 200, named),
  r('POST /api/v1/repositories/:id/check', 'repository', 'member', 200),
  r('POST /api/v1/repositories/:id/rekey', 'repository', 'manager', 200),
  r('GET /api/v1/repositories/:id/workflow-files', 'repository', 'guest', 200),
  r('GET /api/v1/projects/:id/activities', 'project', 'guest', 200),
  r('GET /api/v1/environments/:id', 'environment', 'guest', 200),
  r('PATCH /api/v1/environments/:id', 'environment', 'manager', 200, () => ({ variables: { A: '1' } })),
  r('GET /api/v1/environments/:id/deployments', 'environment', 'guest', 200),
  r('GET /api/v1/workflows/:id', 'workflow', 'guest', 200),
  r('PATCH /api/v1/workflows/:id', 'workflow', 'manager', 200, named),
  r('POST /api/v1/workflows/:id/runs', 'workflow', 'member', 202, () => ({})),
  r('GET /api/v1/workflows/:id/triggers', 'workflow', 'guest', 200),
  r('POST /api/v1/workflows/:id/triggers', 'workflow', 'member', 201, () => ({ kind: 'schedule', cron: YEARLY })),
  r('GET /api/v1/triggers/:id', 'trigger', 'guest', 200),
  r('GET /api/v1/triggers/:id/upcoming', 'trigger', 'guest', 200),
  r('GET /api/v1/triggers/:id/webhook', 'trigger', 'member', 200),
  r('POST /api/v1/triggers/:id/webhook/regenerate', 'trigger', 'member', 200),
  r('GET /api/v1/triggers/:id/deliveries', 'trigger', 'member', 200),
  r('GET /api/v1/repositories/:id/webhook', 'repository', 'manager', 200),
  r('PUT /api/v1/repositories/:id/commit-statuses', 'repository', 'manager', 200, () => ({ forge: 'gitea', apiUrl: 'http://127.0.0.1:9', repository: 'a/b', token: 'walk' })),
  r('DELETE /api/v1/repositories/:id/commit-statuses', 'repository', 'manager', 200),
  r('GET /api/v1/runs/:id/commit-statuses', 'run', 'guest', 200),
  r('POST /api/v1/repositories/:id/webhook/regenerate', 'repository', 'manager', 200),
  r('GET /api/v1/repositories/:id/deliveries', 'repository', 'member', 200),
  r('GET /api/v1/deliveries/:id', 'delivery', 'member', 200),
  r('POST /api/v1/deliveries/:id/redeliver', 'delivery', 'member', 202),
  r('POST /api/v1/hooks/:slug', null, 'public', 404), // no such slug: webhook_not_found
  r('PATCH /api/v1/triggers/:id', 'trigger', 'member', 200, () => ({ description: 'walked' })),
  r('POST /api/v1/schedules/preview', null, 'authenticated', 200, () => ({ cron: YEARLY })),
  r('GET /api/v1/runs/:id', 'run', 'guest', 200),
  r('GET /api/v1/runs/:id/jobs', 'run', 'guest', 200),
  r('GET /api/v1/runs/:id/log', 'run', 'guest', 200),
  r('POST /api/v1/runs/:id/cancel', 'run', 'member', 409), // the run has finished: run_finished
  r('POST /api/v1/runs/:id/rerun', 'run', 'member', 202, () => ({})),
  r('GET /api/v1/runs/:id/artifacts', 'run', 'guest', 200),
  r('GET /api/v1/runs/:id/artifacts/:name', 'run', 'guest', 404), // the run has no artifact of that name
  r('POST /api/v1/jobs/:id/approve', 'job', 'manager', 409), // the job has finished: approval_not_pending
  r('PUT /api/v1/jobs/:id/artifacts/:name', null, 'job', 201),
  r('GET /api/v1/jobs/:id/artifacts/:name', null, 'job', 200),
  r('GET /api/v1/jobs/:id/log', 'job', 'guest', 200),
  r('POST /api/v1/runners/register', null, 'public', 201, () => ({ version: PROTOCOL_VERSION, name: 'walker', labels: [], capacity: 1, executor: 'shell', agentVersion: 'test' }), false, (f) => f.registrationToken),
  r('GET /api/v1/runner', null, 'runner', 101),
  r('POST /api/v1/runner/requests', null, 'runner', 200),
  r('GET /api/v1/runner/pushes', null, 'runner', 200),
  r('POST /api/v1/runner-tokens', null, 'admin', 201, () => ({ description: 'walk' })),
  r('GET /api/v1/runner-tokens', null, 'admin', 200),
  r('GET /api/v1/runners', null, 'admin', 200),
  r('POST /api/v1/organizations/:id/runner-tokens', 'organization', 'owner', 201, () => ({})),
  r('GET /api/v1/organizations/:id/runner-tokens', 'organization', 'owner', 200),
  r('GET /api/v1/organizations/:id/runners', 'organization', 'guest', 200),
  r('GET /api/v1/runners/:id', 'runner', 'guest', 200),
  r('POST /api/v1/runners/:id/pause', 'runner', 'owner', 200),
  r('POST /api/v1/runners/:id/resume', 'runner', 'owner', 200),
  r('DELETE /api/v1/runners/:id', 'runner', 'owner', 204, undefined, true),
  r('DELETE /api/v1/runner-tokens/:id', 'runner_token', 'owner', 204, undefined, true),
  r('DELETE /api/v1/triggers/:id', 'trigger', 'member', 204, undefined, true),
  r('DELETE /api/v1/environments/:id', 'environment', 'owner', 204, undefined, true),
  r('DELETE /api/v1/secrets/:id', 'secret', 'manager', 204, undefined, true),
  r('DELETE /api/v1/repositories/:id', 'repository', 'owner', 204, undefined, true),
  r('DELETE /api/v1/workflows/:id', 'workflow', 'owner', 204, undefined, true),
  { ...r('DELETE /api/v1/projects/:id', 'project', 'owner', 204, undefined, true), query: (f) => `?confirm=${encodeURIComponent(f.projectName)}` },
  { ...r('DELETE /api/v1/organizations/:id', 'organization', 'owner', 204, undefined, true), query: (f) => `?confirm=${encodeURIComponent(f.organizationName)}` },
];

type Grant = 'stranger' | 'admin' | 'organization' | 'project';
interface Caller {
  grant: Grant;
  role?: Role;
}
const CALLERS: Caller[] = [
  { grant: 'stranger' },
  { grant: 'admin' },
  ...RANKS.map((role) => ({ grant: 'organization' as const, role })),
  ...RANKS.map((role) => ({ grant: 'project' as const, role })),
];
const nameOf = (c: Caller) => (c.role ? `${c.grant} ${c.role}` : c.grant);

/** 'ok', or the status and code a signed-in caller must get. */
function expected(route: Route, c: Caller): 'ok' | [401, 'unauthenticated'] | [403, 'forbidden'] | [404, 'not_found'] {
  // Runner and job routes take a runner's or a running job's own credential, never a user's.
  if (route.needs === 'runner' || route.needs === 'job') return [401, 'unauthenticated'];
  if (route.needs === 'public' || route.needs === 'authenticated' || c.grant === 'admin') return 'ok';
  if (route.needs === 'admin') return [403, 'forbidden'];
  if (c.grant === 'stranger') return [404, 'not_found'];
  // A project-only member sees the organization (and its runners) as a guest.
  const orgLevel = route.scope === 'organization' || route.scope === 'runner' || route.scope === 'runner_token';
  const role = c.grant === 'project' && orgLevel ? 'guest' : c.role!;
  return RANKS.indexOf(role) >= RANKS.indexOf(route.needs) ? 'ok' : [403, 'forbidden'];
}

/** Every `METHOD /path` the app serves, read from Fastify's route tree (HEAD mirrors GET). */
function registeredRoutes(app: FastifyInstance): string[] {
  const stack: string[] = [];
  const keys: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^(.*?)[├└]── (\S+)(?: \((.+)\))?$/.exec(line);
    if (!m) continue;
    stack.length = m[1]!.length / 4;
    stack.push(m[2]!);
    for (const method of m[3]?.split(', ') ?? []) if (method !== 'HEAD') keys.push(`${method} ${stack.join('')}`);
  }
  return keys;
}

let t: TestInstance;
let repoDir = '';
beforeAll(async () => {
  t = await startTestInstance({ FURROW_LOGIN_RATE_LIMIT: '10000' }); // the walk signs in once per caller
  repoDir = await mkdtemp(path.join(tmpdir(), 'furrow-walk-'));
  repoUrl = (await createBareRepo(path.join(repoDir, 'walk.git'), { '.furrow/ci.yml': 'jobs:\n  a:\n    steps:\n      - run: true\n' })).url;
});
afterAll(async () => {
  await t?.stop();
  await rm(repoDir, { recursive: true, force: true });
});

type Fixture = Record<Kind, string> & { user: string; email: string; registrationToken: string; organizationName: string; projectName: string };

/** An organization with a project, environment, workflow, finished run and job, and one more member. */
async function fixture(withRun: boolean): Promise<Fixture> {
  const { organizationId, projectId, workflowId } = await t.workflow('true');
  const env = await t.api('POST', `/api/v1/projects/${projectId}/environments`, { name: 'staging' });
  const email = `target-${++counter}@example.com`;
  const user = await t.user(email);
  const { db } = t.instance.resources.database;
  await db.insertInto('organization_members').values({ organization_id: organizationId, user_id: user.id, role: 'guest' }).execute();
  await db.insertInto('project_members').values({ project_id: projectId, user_id: user.id, role: 'guest' }).execute();
  let run = '';
  let job = '';
  if (withRun) {
    run = (await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, {})).body.id;
    await t.waitForRun(run);
    job = (await t.api('GET', `/api/v1/runs/${run}/jobs`)).body.items[0].id;
  }
  expect((await t.api('PATCH', `/api/v1/workflows/${workflowId}`, NO_RUNNER)).status).toBe(200);
  const repository = await t.api('POST', `/api/v1/projects/${projectId}/repositories`, { name: 'walk', url: repoUrl });
  const projectSecret = await t.api('POST', `/api/v1/projects/${projectId}/secrets`, secret());
  const trigger = await t.api('POST', `/api/v1/workflows/${workflowId}/triggers`, { kind: 'webhook', signed: false });
  const delivery = await fetch(trigger.body.webhook.url, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
  expect(delivery.status).toBe(202);
  // The key maker runs in the background: routes that use the key need it made.
  for (let i = 0; !(await t.api('GET', `/api/v1/repositories/${repository.body.id}`)).body.publicKey; i++) {
    if (i > 200) throw new Error('no deploy key after 10 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  // Enough uses for the fixture's runner and every register of the walk.
  const registration = await t.api('POST', `/api/v1/organizations/${organizationId}/runner-tokens`, { description: 'walk', maxUses: 100 });
  const runner = await t.api('POST', '/api/v1/runners/register', { version: PROTOCOL_VERSION, name: 'walk', labels: [], capacity: 1, executor: 'shell', agentVersion: 'test' }, registration.body.token);
  expect(runner.status).toBe(201);
  return {
    organization: organizationId,
    project: projectId,
    environment: env.body.id,
    workflow: workflowId,
    run,
    job,
    runner: runner.body.id,
    runner_token: registration.body.id,
    repository: repository.body.id,
    secret: projectSecret.body.id,
    trigger: trigger.body.id,
    delivery: ((await delivery.json()) as { id: string }).id,
    registrationToken: registration.body.token,
    organizationName: (await t.api('GET', `/api/v1/organizations/${organizationId}`)).body.name,
    projectName: (await t.api('GET', `/api/v1/projects/${projectId}`)).body.name,
    user: user.id,
    email,
  };
}

async function tokenFor(c: Caller, f: Fixture): Promise<string> {
  if (c.grant === 'stranger' || c.grant === 'admin') return (await t.user(`${c.grant}-${++counter}@example.com`, c.grant === 'admin')).token;
  return (await t.member(c.grant === 'organization' ? { organizationId: f.organization } : { projectId: f.project }, c.role!)).token;
}

/** WebSocket upgrade: 101 when it opens, else the refusal's status and JSON body. */
const upgrade = (path: string, token: string | null) => wsUpgrade(`${t.url}${path}`, token ? { authorization: `Bearer ${token}` } : {});

async function call(route: Route, f: Fixture, token: string | null, method = route.key.split(' ')[0]!) {
  const url = route.key.split(' ')[1]!.replace(':id', route.scope ? f[route.scope] : NO_SUCH_ID).replace(':userId', f.user).replace(':name', 'walk') + (route.query?.(f) ?? '');
  if ((url === '/api/v1/live' || url === '/api/v1/runner') && method === 'GET') return upgrade(url, token);
  // HEAD answers carry a JSON content type but no body, which t.api would fail to parse.
  if (method === 'HEAD') return { status: (await fetch(`${t.url}${url}`, { method, headers: token ? { authorization: `Bearer ${token}` } : {} })).status, body: undefined };
  return t.api(method, url, route.body?.(f), route.auth ? route.auth(f) : token);
}

describe('access: every route with every role', () => {
  it('the table covers exactly the registered routes', () => {
    // Swagger UI's own routes (/api/docs, /api/docs/*) are exempt from access rules by design.
    const registered = registeredRoutes(t.instance.app).filter((k) => !/ \/api\/docs(\/|\*|$)/.test(k));
    expect(registered.length).toBeGreaterThan(30); // the tree parsed
    expect(registered.sort()).toEqual(ROUTES.map((x) => x.key).sort());
  });

  it('answers 401 unauthenticated without credentials, except on public routes', async () => {
    const f = await fixture(true);
    const wrong: string[] = [];
    for (const route of ROUTES) {
      const methods = route.key.startsWith('GET ') ? ['GET', 'HEAD'] : [route.key.split(' ')[0]!];
      for (const method of methods) {
        const res = await call(route, f, null, method);
        const ok = route.needs === 'public' ? res.status === route.ok : res.status === 401 && (method === 'HEAD' || res.body?.code === 'unauthenticated');
        if (!ok) wrong.push(`${method} ${route.key.split(' ')[1]}: got ${res.status} ${res.body?.code ?? ''}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('treats a bad token or session like none, and a session cookie like a token until sign-out', async () => {
    const f = await fixture(false);
    expect((await t.api('GET', '/api/v1/me', undefined, 'furrow_not-a-token')).status).toBe(401);
    expect((await t.api('GET', '/api/v1/me', undefined, null, { cookie: 'furrow_session=fs_nope' })).status).toBe(401);
    const login = await t.api('POST', '/api/v1/sessions', signIn(f), null);
    const cookie = { cookie: login.headers.get('set-cookie')!.split(';')[0]!, origin: t.url };
    expect((await t.api('GET', `/api/v1/projects/${f.project}`, undefined, null, cookie)).status).toBe(200); // target is a guest
    expect((await t.api('PATCH', `/api/v1/projects/${f.project}`, named(), null, cookie)).body.code).toBe('forbidden');
    expect((await t.api('DELETE', '/api/v1/sessions/current', undefined, null, cookie)).status).toBe(204);
    expect((await t.api('GET', '/api/v1/me', undefined, null, cookie)).status).toBe(401);
  });

  it('lets only callers who may read a run subscribe to it live', async () => {
    const f = await fixture(true);
    const subscribe = async (token: string) => {
      const ws = await t.live(token);
      const reply = new Promise<any>((resolve) => ws.once('message', (data) => resolve(JSON.parse(data.toString()))));
      ws.send(JSON.stringify({ type: 'subscribe', channel: 'run', runId: f.run }));
      const msg = await reply;
      ws.close();
      return msg.type === 'error' ? msg.code : msg.type;
    };
    const stranger = await tokenFor({ grant: 'stranger' }, f);
    expect(await subscribe(stranger)).toBe('not_found');
    expect(await subscribe(await tokenFor({ grant: 'project', role: 'guest' }, f))).toBe('run');
  });

  it.each(CALLERS.map((c) => [nameOf(c), c] as const))('walks every route as %s', async (_name, caller) => {
    const shared = await fixture(true);
    const sharedToken = await tokenFor(caller, shared);
    const wrong: string[] = [];
    for (const route of ROUTES) {
      let [f, token] = [shared, sharedToken];
      if (route.fresh) {
        f = await fixture(false);
        token = await tokenFor(caller, f);
      }
      const want = expected(route, caller);
      const res = await call(route, f, token);
      const ok = want === 'ok' ? res.status === route.ok : res.status === want[0] && res.body?.code === want[1];
      if (!ok) wrong.push(`${route.key}: want ${want === 'ok' ? route.ok : want.join(' ')}, got ${res.status} ${res.body?.code ?? ''}`);
    }
    expect(wrong).toEqual([]);
  });

  it('lets project members see their organization, not its other projects', async () => {
    const f = await fixture(false);
    const other = (await t.api('POST', `/api/v1/organizations/${f.organization}/projects`, { name: 'other' })).body.id;
    const projectMember = await t.member({ projectId: f.project }, 'owner');
    const orgGuest = await t.member({ organizationId: f.organization }, 'guest');
    expect((await t.api('GET', `/api/v1/projects/${other}`, undefined, projectMember.token)).status).toBe(404);
    expect((await t.api('GET', `/api/v1/projects/${other}`, undefined, orgGuest.token)).status).toBe(200);
    const listed = await t.api('GET', `/api/v1/organizations/${f.organization}/projects`, undefined, projectMember.token);
    expect(listed.body.items.map((p: { id: string }) => p.id)).toEqual([f.project]);
    const org = await t.api('GET', `/api/v1/organizations/${f.organization}`, undefined, projectMember.token);
    expect(org.body.role).toBe('guest');
    const orgs = await t.api('GET', '/api/v1/organizations', undefined, projectMember.token);
    expect(orgs.body.items.map((o: { id: string }) => o.id)).toEqual([f.organization]);
  });

  it('answers 404 not_found, even to admins, for objects that do not exist', async () => {
    const missing = { organization: '', project: '', environment: '', workflow: '', run: '', job: '', runner: '', runner_token: '', repository: '', secret: '', user: '', email: '', registrationToken: '', organizationName: '', projectName: '' };
    const wrong: string[] = [];
    for (const id of ['00000000-0000-4000-8000-000000000000', 'not-a-uuid']) {
      const f = Object.fromEntries(Object.keys(missing).map((k) => [k, id])) as Fixture;
      for (const route of ROUTES.filter((x) => x.scope)) {
        const res = await call(route, f, t.adminToken);
        if (res.status !== 404 || res.body?.code !== 'not_found') wrong.push(`${route.key} ${id}: got ${res.status} ${res.body?.code ?? ''}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});
