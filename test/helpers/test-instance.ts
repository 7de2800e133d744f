import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import WebSocket from 'ws';
import { loadConfig } from '../../src/config/load-config.js';
import type { Role } from '../../src/db/schema.js';
import { runsAsRoot } from '../../src/runner/job-user.js';
import { startInstance, type Instance } from '../../src/server/instance.js';
import { createApiToken, createUser } from '../../src/server/store/account-store.js';
import { removeJobUsers, testJobUser } from './job-users.js';
import { createTestDatabase } from './test-database.js';

export interface ApiResponse<T = any> {
  status: number;
  body: T;
  text: string;
  headers: Headers;
}

export interface TestInstance {
  instance: Instance;
  url: string;
  databaseUrl: string;
  dataDir: string;
  /** Token of an instance admin. */
  adminToken: string;
  /** The instance's log lines at warn level and above (JSON), for tests that assert nothing went wrong. */
  logs: string[];
  api<T = any>(method: string, route: string, body?: unknown, token?: string | null, headers?: Record<string, string>): Promise<ApiResponse<T>>;
  /** Creates a user (and an API token for it). */
  user(email: string, admin?: boolean): Promise<{ id: string; token: string }>;
  /** A user holding `role` on the organization or project. */
  member(scope: { organizationId: string } | { projectId: string }, role: Role): Promise<{ id: string; token: string }>;
  /** An organization, a project and a workflow with this script, owned by the admin. */
  workflow(script: string, extra?: Record<string, unknown>): Promise<{ organizationId: string; projectId: string; workflowId: string }>;
  /** Polls a run until it is in a terminal state. */
  waitForRun(runId: string, timeoutMs?: number): Promise<any>;
  live(token?: string): Promise<WebSocket>;
  /** Stops the instance; keeps the database unless `drop` is true. */
  stop(drop?: boolean): Promise<void>;
}

const TERMINAL = ['succeeded', 'failed', 'canceled', 'timed_out', 'skipped'];
let counter = 0;
/** As root, each instance gets job users of its own (FURROW_JOB_USER); see removeJobUsers. */
function ownJobUser(env: Record<string, string>): Record<string, string> {
  return runsAsRoot() && env.FURROW_JOB_USER === undefined ? { FURROW_JOB_USER: testJobUser('t') } : {};
}

/**
 * A whole Furrow instance (API, workers, local runner) on a fresh database, listening on a free
 * port, as `furrow start` runs it. Pass `databaseUrl` to start on an existing database.
 */
export async function startTestInstance(env: Record<string, string> = {}, existing?: { databaseUrl: string; dataDir: string }): Promise<TestInstance> {
  const database = existing ? { url: existing.databaseUrl, drop: async () => undefined } : await createTestDatabase();
  const dataDir = existing?.dataDir ?? (await mkdtemp(path.join(tmpdir(), 'furrow-test-')));
  // Jobs run as the unprivileged job user when tests run as root: it must reach its workspace,
  // kept in the data dir (not under /var/lib/furrow) so that removing the data dir removes it.
  await chmod(dataDir, 0o711);
  // Tests serve repositories from bare repos on disk (file://); one test turns this off again.
  const own = ownJobUser(env);
  const config = loadConfig({ FURROW_PORT: '0', FURROW_DATA_DIR: dataDir, FURROW_WORK_DIR: path.join(dataDir, 'work'), FURROW_SHUTDOWN_GRACE_SECONDS: '2', DATABASE_URL: database.url, FURROW_LOCAL_REPOSITORIES: 'true', ...own, ...env });
  const logs: string[] = [];
  const logger = process.env.FURROW_TEST_LOG ? pino({ level: 'debug' }) : pino({ level: 'warn' }, { write: (line: string) => void logs.push(line) });
  const instance = await startInstance(config, database.url, logger);
  const { db } = instance.resources.database;

  const api: TestInstance['api'] = async (method, route, body, token, headers = {}) => {
    const res = await fetch(`${instance.url}${route}`, {
      method,
      headers: {
        ...(token !== null ? { authorization: `Bearer ${token ?? t.adminToken}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let parsed: unknown = text;
    if (res.headers.get('content-type')?.includes('application/json')) parsed = JSON.parse(text);
    return { status: res.status, body: parsed as any, text, headers: res.headers };
  };

  const user: TestInstance['user'] = async (email, admin = false) => {
    const u = await createUser(db, email, 'correct horse battery', admin);
    const { token } = await createApiToken(db, u.id, 'test');
    return { id: u.id, token };
  };

  const t: TestInstance = {
    instance,
    url: instance.url,
    databaseUrl: database.url,
    dataDir,
    adminToken: '',
    logs,
    api,
    user,
    async member(scope, role) {
      const u = await user(`${role}-${++counter}-${Date.now()}@example.com`);
      const table = 'organizationId' in scope ? 'organization_members' : 'project_members';
      const values = 'organizationId' in scope ? { organization_id: scope.organizationId, user_id: u.id, role } : { project_id: scope.projectId, user_id: u.id, role };
      await db.insertInto(table).values(values as never).execute();
      return u;
    },
    async workflow(script, extra = {}) {
      const n = ++counter;
      const org = await api('POST', '/api/v1/organizations', { name: `org-${n}-${Date.now()}` });
      const project = await api('POST', `/api/v1/organizations/${org.body.id}/projects`, { name: 'project' });
      const wf = await api('POST', `/api/v1/projects/${project.body.id}/workflows`, { name: 'workflow', script, ...extra });
      if (wf.status !== 201) throw new Error(`workflow not created: ${wf.text}`);
      return { organizationId: org.body.id, projectId: project.body.id, workflowId: wf.body.id };
    },
    async waitForRun(runId, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const r = await api('GET', `/api/v1/runs/${runId}`);
        if (TERMINAL.includes(r.body.status)) return r.body;
        if (Date.now() > deadline) throw new Error(`run ${runId} still ${r.body.status} after ${timeoutMs} ms`);
        await new Promise((res) => setTimeout(res, 50));
      }
    },
    live(token) {
      const ws = new WebSocket(`${instance.url.replace('http', 'ws')}/api/v1/live`, { headers: { authorization: `Bearer ${token ?? t.adminToken}` } });
      return new Promise((resolve, reject) => {
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
      });
    },
    async stop(drop = true) {
      await instance.stop();
      if (own.FURROW_JOB_USER) await removeJobUsers(own.FURROW_JOB_USER);
      if (drop) {
        await database.drop();
        if (!existing) await rm(dataDir, { recursive: true, force: true });
      }
    },
  };
  t.adminToken = (await user(`admin-${++counter}-${Date.now()}@example.com`, true)).token;
  return t;
}
