import fc from 'fast-check';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBareRepo } from './helpers/git-repos.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

/**
 * Every route of the OpenAPI document, fed generated and mutated requests as the admin, a guest
 * and nobody: no answer is a 5xx, and a refused request leaves every table as it was.
 */

const SEED = Number(process.env.FUZZ_SEED ?? 20261202);
const RUNS_PER_ROUTE = Number(process.env.FUZZ_RUNS ?? 20);

type Schema = Record<string, any>;

let t: TestInstance;
let client: pg.Client;
let repoDir: string;
let guestToken: string;
const ids: string[] = [];
/** Ids of the objects created for the fuzzer, by the path segment naming their kind. */
const fixtures: Record<string, string> = {};

/** Row counts of every table and a checksum of each table's rows, leaving out when a token or runner was last seen. */
async function snapshot(): Promise<Record<string, string>> {
  // lease_watch only records when the lease watch last ran: it changes on a timer, not by requests.
  const { rows: tables } = await client.query<{ name: string }>(`SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'lease_watch' ORDER BY 1`);
  const parts = tables.map(
    (x) => `SELECT '${x.name}' AS t, count(*)::text || ':' || coalesce(md5(string_agg(md5((to_jsonb(r) - 'last_used_at' - 'last_seen_at')::text), ',' ORDER BY md5((to_jsonb(r) - 'last_used_at' - 'last_seen_at')::text))), '') AS v FROM "${x.name}" r`,
  );
  const { rows } = await client.query<{ t: string; v: string }>(parts.join(' UNION ALL '));
  return Object.fromEntries(rows.map((r) => [r.t, r.v]));
}

/** Anything a client might send where a value belongs. */
const nasty = fc.oneof(
  fc.constantFrom(null, '', ' ', 'a\u0000b', '\ud800', '..', '../..', '%00', '\u0000', 'null', '-1', '1e309', 'DROP TABLE runs', '🦊', 'Ä'.repeat(200), 'x'.repeat(70_000), -1, 0, 2 ** 31, 2 ** 53, -(2 ** 63), 1.5, true, [], {}),
  fc.uuid(),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.integer(),
  fc.double(),
  fc.jsonValue({ maxDepth: 3 }),
);

/** Waits until the background tasks an earlier request queued (key generation, checks) have run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const { rows } = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM graphile_worker._private_jobs WHERE locked_at IS NOT NULL OR (run_at <= now() AND attempts < max_attempts)`);
    if (rows[0]!.n === 0) return;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Strings of a pattern (fast-check cannot build every regex: then any string, as mutations are). */
function matching(schema: Schema): fc.Arbitrary<string> {
  const fits = (s: string) => s.length <= (schema.maxLength ?? 1e6) && s.length >= (schema.minLength ?? 0);
  try {
    return fc.stringMatching(new RegExp(schema.pattern as string)).filter(fits);
  } catch {
    return fc.string({ minLength: schema.minLength ?? 0, maxLength: Math.min(schema.maxLength ?? 40, 40) });
  }
}

/** Values that fit a JSON schema (as TypeBox writes them), roughly: the fuzzer mutates them anyway. */
function valueOf(schema: Schema | undefined, depth = 0): fc.Arbitrary<unknown> {
  if (!schema || depth > 4) return fc.jsonValue({ maxDepth: 2 });
  if ('const' in schema) return fc.constant(schema.const);
  if (schema.enum) return fc.constantFrom(...(schema.enum as unknown[]));
  const alternatives = (schema.anyOf ?? schema.oneOf) as Schema[] | undefined;
  if (alternatives) return fc.oneof(...alternatives.map((s) => valueOf(s, depth + 1)));
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  const fitting = fitValueOf(schema, type, depth);
  // Now and then a value that only a careless client sends, deep inside an otherwise valid body.
  return fc.oneof({ weight: 5, arbitrary: fitting }, { weight: 1, arbitrary: nasty });
}

function fitValueOf(schema: Schema, type: string, depth: number): fc.Arbitrary<unknown> {
  switch (type) {
    case 'string': {
      if (schema.format === 'uuid') return fc.oneof(fc.uuid(), fc.constantFrom(...ids));
      if (schema.format === 'email') return fc.emailAddress();
      if (schema.format === 'date-time') return fc.date({ noInvalidDate: true }).map((d) => d.toISOString());
      if (schema.pattern) return matching(schema);
      return fc.string({ minLength: schema.minLength ?? 0, maxLength: Math.min(schema.maxLength ?? 40, 40) });
    }
    case 'integer':
      return fc.integer({ min: schema.minimum ?? -1e6, max: schema.maximum ?? 1e6 });
    case 'number':
      return fc.double({ min: schema.minimum ?? -1e6, max: schema.maximum ?? 1e6, noNaN: true });
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array':
      return fc.array(valueOf(schema.items, depth + 1), { minLength: schema.minItems ?? 0, maxLength: Math.min(schema.maxItems ?? 4, 4) });
    case 'object': {
      const props = (schema.properties ?? {}) as Record<string, Schema>;
      const required = new Set<string>(schema.required ?? []);
      const record = fc.record(Object.fromEntries(Object.entries(props).map(([k, s]) => [k, valueOf(s, depth + 1)])), { requiredKeys: [...required].filter((k) => k in props) });
      const extra = schema.patternProperties ? (Object.entries(schema.patternProperties)[0] as [string, Schema]) : undefined;
      if (!extra) return record;
      return fc.tuple(record, fc.dictionary(fc.stringMatching(new RegExp(extra[0])), valueOf(extra[1], depth + 1), { maxKeys: 3 })).map(([a, b]) => ({ ...b, ...a }));
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** A valid body, then one of: a field replaced, a field removed, a field added, or the whole body replaced. */
function bodyOf(schema: Schema | undefined): fc.Arbitrary<unknown> {
  const base = valueOf(schema);
  return fc.oneof(
    base,
    fc.tuple(base, fc.string({ maxLength: 12 }), nasty).map(([b, k, v]) => {
      if (b && typeof b === 'object' && !Array.isArray(b)) {
        const keys = Object.keys(b);
        const key = keys.length > 0 && k.length % 2 === 0 ? keys[k.length % keys.length]! : k;
        return { ...b, [key]: v };
      }
      return v;
    }),
    fc.tuple(base, fc.nat()).map(([b, n]) => {
      if (!b || typeof b !== 'object' || Array.isArray(b)) return b;
      const keys = Object.keys(b);
      if (keys.length === 0) return b;
      const copy = { ...(b as Record<string, unknown>) };
      delete copy[keys[n % keys.length]!];
      return copy;
    }),
    nasty,
  );
}

/** Mostly the id of the real object the route names, so that requests get past the access check. */
const pathValue = (route: string, name: string) => {
  const kind = name === 'userId' ? 'users' : (route.split('/{')[0]!.split('/').pop() ?? '');
  const real = fixtures[kind];
  return fc.oneof({ weight: real ? 6 : 0, arbitrary: fc.constant(real ?? '') }, { weight: 1, arbitrary: anyPathValue() });
};
const anyPathValue = () => fc.oneof(fc.constantFrom(...ids), fc.uuid(), fc.constantFrom('..', '.', '%2e%2e', 'x'.repeat(5000), '00000000-0000-0000-0000-000000000000', 'ZZZZZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZZZZZZZZZ', '1', '%F0%9F%A6%8A', '%FF'), fc.string({ minLength: 1, maxLength: 20 }).map(encodeURIComponent));

interface Req {
  path: string;
  query: string;
  body: unknown;
  raw?: string;
  contentType?: string;
  as: 'admin' | 'guest' | 'nobody' | 'bogus';
}

function requestOf(route: string, op: Schema): fc.Arbitrary<Req> {
  const params = (op.parameters ?? []) as { in: string; name: string; schema: Schema }[];
  const pathParams = params.filter((p) => p.in === 'path');
  const queryParams = params.filter((p) => p.in === 'query');
  const bodySchema = op.requestBody?.content?.['application/json']?.schema as Schema | undefined;
  const pathArb = fc.tuple(...pathParams.map((p) => pathValue(route, p.name))).map((values) => {
    let p = route;
    pathParams.forEach((param, i) => (p = p.replace(`{${param.name}}`, values[i]!)));
    return p;
  });
  const queryArb = fc
    .array(
      fc.oneof(
        ...(queryParams.length > 0 ? [fc.tuple(fc.constantFrom(...queryParams)).chain(([q]) => fc.oneof(valueOf(q.schema), nasty).map((v) => [q.name, typeof v === 'string' ? v : JSON.stringify(v)] as const))] : []),
        fc.tuple(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 })),
      ),
      { maxLength: 3 },
    )
    .map((pairs) => (pairs.length ? `?${new URLSearchParams(pairs.map(([k, v]) => [k, String(v)])).toString()}` : ''));
  const bodyArb = fc.oneof(
    { weight: 6, arbitrary: bodyOf(bodySchema).map((body) => ({ body, raw: undefined, contentType: undefined })) },
    { weight: 1, arbitrary: fc.constantFrom('{"a":', '{', '[1,', 'nul', '"\\ud800"', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{}}}').map((raw) => ({ body: undefined, raw, contentType: 'application/json' })) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data', 'application/gzip', 'application/json; charset=latin1', 'foo'), fc.string({ maxLength: 30 })).map(([contentType, raw]) => ({ body: undefined, raw, contentType })) },
  );
  return fc.record({ path: pathArb, query: queryArb, b: bodyArb, as: fc.constantFrom('admin', 'admin', 'admin', 'guest', 'nobody', 'bogus') }).map(({ path: p, query, b, as }) => ({ path: p, query, as, ...b }) as Req);
}

async function send(method: string, req: Req): Promise<{ status: number; text: string }> {
  const token = { admin: t.adminToken, guest: guestToken, nobody: null, bogus: 'furrow_not-a-real-token' }[req.as];
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (req.raw !== undefined) {
    body = req.raw;
    headers['content-type'] = req.contentType ?? 'application/json';
  } else if (req.body !== undefined && method !== 'GET' && method !== 'DELETE') {
    body = JSON.stringify(req.body);
    headers['content-type'] = 'application/json';
  }
  if (method === 'GET' || method === 'HEAD') body = undefined;
  const res = await fetch(`${t.url}${req.path}${req.query}`, { method, headers, ...(body !== undefined ? { body } : {}), redirect: 'manual' });
  return { status: res.status, text: await res.text() };
}

beforeAll(async () => {
  t = await startTestInstance({ FURROW_LOCAL_RUNNER: 'false', FURROW_LOGIN_RATE_LIMIT: '1000' });
  client = new pg.Client({ connectionString: t.databaseUrl });
  await client.connect();
  repoDir = await mkdtemp(path.join(tmpdir(), 'furrow-fuzz-'));
  const repo = await createBareRepo(path.join(repoDir, 'repo.git'), { '.furrow/ci.yml': 'jobs:\n  build:\n    steps:\n      - run: "true"\n' });
  const { organizationId, projectId, workflowId } = await t.workflow('true');
  const env = await t.api('POST', `/api/v1/projects/${projectId}/environments`, { name: 'staging', variables: { A: '1' } });
  const secret = await t.api('POST', `/api/v1/projects/${projectId}/secrets`, { name: 'TOKEN', value: 's3cret' });
  const repository = await t.api('POST', `/api/v1/projects/${projectId}/repositories`, { name: 'repo', url: repo.url });
  const run = await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, {});
  const runJobs = await t.api('GET', `/api/v1/runs/${run.body.id}/jobs`);
  const guest = await t.member({ projectId }, 'guest');
  guestToken = guest.token;
  ids.push(organizationId, projectId, workflowId, env.body.id, secret.body.id, repository.body.id, run.body.id, guest.id);
  const jobId = runJobs.body.items[0]?.id as string;
  ids.push(jobId);
  Object.assign(fixtures, { organizations: organizationId, projects: projectId, workflows: workflowId, environments: env.body.id, secrets: secret.body.id, repositories: repository.body.id, runs: run.body.id, jobs: jobId, users: guest.id });
  if (ids.some((id) => typeof id !== 'string')) throw new Error(`fixtures not created: ${JSON.stringify(ids)}`);
});
afterAll(async () => {
  await client?.end();
  await t?.stop();
  await rm(repoDir, { recursive: true, force: true });
});

describe('every route', () => {
  it('answers generated and mutated requests below 500, and a refused one writes nothing', async () => {
    const doc = (await t.api('GET', '/api/v1/openapi.json')).body as { paths: Record<string, Record<string, Schema>> };
    const routes = Object.entries(doc.paths).flatMap(([route, ops]) => Object.entries(ops).map(([method, op]) => ({ route, method: method.toUpperCase(), op })));
    // Deletes last, so that the other routes see the fixtures; the live and runner sockets have fuzzers of their own.
    routes.sort((a, b) => Number(a.method === 'DELETE') - Number(b.method === 'DELETE'));
    expect(routes.length).toBeGreaterThan(30);
    const failures: string[] = [];
    for (const { route, method, op } of routes) {
      if (route === '/api/v1/live' || route === '/api/v1/runner') continue;
      await fc.assert(
        fc.asyncProperty(requestOf(route, op), async (req) => {
          await settle();
          const before = await snapshot();
          const res = await send(method, req);
          if (res.status >= 500) throw new Error(`${method} ${req.path}${req.query} as ${req.as} → ${res.status} ${res.text.slice(0, 300)}\nbody: ${(req.raw ?? JSON.stringify(req.body))?.slice(0, 300)}`);
          expect(res.text).not.toMatch(/\bat .+\.(js|ts):\d+/);
          if (res.status >= 400) {
            const after = await snapshot();
            const changed = Object.keys(after).filter((k) => after[k] !== before[k]);
            if (changed.length) throw new Error(`${method} ${req.path} → ${res.status} ${res.text.slice(0, 200)} changed ${changed.join(', ')}`);
          }
        }),
        { seed: SEED, numRuns: RUNS_PER_ROUTE, endOnFailure: true },
      ).catch((err: Error) => failures.push(`${method} ${route} (seed ${SEED}): ${err.message.split('\n').filter((l) => /→|Counterexample/.test(l)).join('\n')}`));
    }
    expect(failures, failures.join('\n\n')).toEqual([]);
  }, 600_000);
});
