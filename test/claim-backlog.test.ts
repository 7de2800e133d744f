import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, type ServerReply } from '../src/protocol/messages.js';
import { CLAIM_WINDOW, claimJob } from '../src/server/runs/claim-job.js';
import { newJobToken } from '../src/server/store/job-token.js';
import { startTestInstance, type TestInstance } from './helpers/test-instance.js';

let t: TestInstance;
beforeAll(async () => {
  // No local runner: nothing may take the jobs these tests queue.
  t = await startTestInstance({ FURROW_LOCAL_RUNNER: 'false' });
});
afterAll(() => t?.stop());

/** Registers a runner with these labels (capacity 8) and returns its id. */
async function register(name: string, labels: string[]): Promise<string> {
  const c = t.instance.resources.gateway.connect(undefined);
  const reply = (await c.handle({ type: 'register', version: PROTOCOL_VERSION, name, labels, capacity: 8, executor: 'shell', agentVersion: 'test', jobs: [] })) as Extract<ServerReply, { type: 'registered' }>;
  expect(reply.type).toBe('registered');
  return reply.runnerId;
}

/** Queues a run whose one job needs `labels`, then `copies` more queued jobs like it, each created later. */
async function queue(labels: string[], copies: number): Promise<string> {
  const { workflowId } = await t.workflow('true', { labels });
  const run = await t.api('POST', `/api/v1/workflows/${workflowId}/runs`, {});
  expect(run.status).toBe(202);
  const db = t.instance.resources.database.db;
  const { rows } = await sql<{ id: string }>`SELECT id FROM jobs WHERE run_id = ${run.body.id}`.execute(db);
  await sql`INSERT INTO jobs SELECT (jsonb_populate_record(NULL::jobs, to_jsonb(j)
      || jsonb_build_object('id', gen_random_uuid(), 'created_at', j.created_at + n * interval '1 millisecond'))).*
    FROM jobs j, generate_series(1, ${copies}::int) n WHERE j.id = ${rows[0]!.id}`.execute(db);
  return rows[0]!.id;
}

/**
 * One claim for `runnerId`, rolled back, with the rows of `jobs` it fetched, as this transaction's
 * own statistics count them (index and sequential scans).
 */
async function claimCost(runnerId: string): Promise<{ claimedLabels: string[] | undefined; fetched: number }> {
  const db = t.instance.resources.database.db;
  let result: { claimedLabels: string[] | undefined; fetched: number } | undefined;
  await db
    .transaction()
    .execute(async (tx) => {
      const claimed = await claimJob(tx, runnerId, 30, newJobToken().hash);
      const { rows } = await sql<{ fetched: string }>`SELECT coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0) AS fetched
        FROM pg_stat_xact_user_tables WHERE relname = 'jobs'`.execute(tx);
      const labels = claimed ? (await sql<{ labels: string[] }>`SELECT labels FROM jobs WHERE id = ${claimed.spec.jobId}`.execute(tx)).rows[0]?.labels : undefined;
      result = { claimedLabels: labels, fetched: Number(rows[0]!.fetched) };
      throw new Error('roll back');
    })
    .catch((err: Error) => {
      if (err.message !== 'roll back') throw err;
    });
  return result!;
}

describe('claims under a backlog', () => {
  it('reads about as many rows with thousands of jobs waiting as with a hundred, with or without fresh statistics', async () => {
    const runnerId = await register('backlog', ['backlog']);
    await queue(['backlog'], 100);
    const small = await claimCost(runnerId);
    expect(small.claimedLabels).toEqual(['backlog']);
    await queue(['backlog'], 3000);
    const large = await claimCost(runnerId);
    expect(large.claimedLabels).toEqual(['backlog']);
    await sql`ANALYZE jobs`.execute(t.instance.resources.database.db);
    const analyzed = await claimCost(runnerId);
    expect(analyzed.claimedLabels).toEqual(['backlog']);
    // Bounded by the window, not by the queue: 3100 jobs wait.
    for (const cost of [large, analyzed]) expect(cost.fetched).toBeLessThanOrEqual(small.fetched + CLAIM_WINDOW);
    for (const cost of [small, large, analyzed]) expect(cost.fetched).toBeLessThanOrEqual(4 * CLAIM_WINDOW);
    await sql`UPDATE jobs SET status = 'canceled' WHERE status = 'queued'`.execute(t.instance.resources.database.db);
  });

  it('still finds a job behind more than a window of jobs it cannot take', async () => {
    const runnerId = await register('picky', ['picky']);
    await queue(['someone-else'], 3 * CLAIM_WINDOW);
    await queue(['picky'], 0);
    const cost = await claimCost(runnerId);
    expect(cost.claimedLabels).toEqual(['picky']);
    await sql`UPDATE jobs SET status = 'canceled' WHERE status = 'queued'`.execute(t.instance.resources.database.db);
  });
});
