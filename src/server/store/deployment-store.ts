import { sql } from 'kysely';
import type { Db } from '../../db/database.js';
import { encodeCursor } from './run-store.js';

/**
 * A deployment: a run with jobs in the environment. Its status is that of those jobs (latest
 * attempts): `succeeded` when all did, `in_progress` while one has not ended, else `failed`,
 * `canceled` or `skipped`, the worst first.
 */
export interface Deployment {
  runId: string;
  runNumber: number;
  workflowId: string;
  workflow: string;
  commit: string | null;
  ref: string | null;
  /** What started the run (its `reason`: a user, a schedule …). */
  trigger: Record<string, unknown>;
  status: 'succeeded' | 'in_progress' | 'failed' | 'canceled' | 'skipped';
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

const STATUS = sql<Deployment['status']>`CASE
  WHEN bool_and(j.status = 'succeeded') THEN 'succeeded'
  WHEN bool_or(j.status IN ('waiting', 'queued', 'running')) THEN 'in_progress'
  WHEN bool_or(j.status IN ('failed', 'timed_out', 'runner_lost')) THEN 'failed'
  WHEN bool_or(j.status = 'canceled') THEN 'canceled'
  ELSE 'skipped' END`;

/** The environment's deployments, newest first, a page at a time; `succeededOnly` for the latest success. */
export async function listDeployments(db: Db, environmentId: string, page: { limit: number; cursor?: { createdAt: string; id: string } | undefined; succeededOnly?: boolean }) {
  const { rows } = await sql<Deployment & { cursorAt: string }>`
    SELECT r.id AS "runId", r.number AS "runNumber", r.workflow_id AS "workflowId", w.name AS workflow, r.commit_sha AS commit, r.ref,
      r.reason AS trigger, r.created_at AS "createdAt", r.created_at::text AS "cursorAt",
      min(j.started_at) AS "startedAt", CASE WHEN bool_and(j.finished_at IS NOT NULL) THEN max(j.finished_at) END AS "finishedAt", ${STATUS} AS status
    FROM jobs j JOIN runs r ON r.id = j.run_id JOIN workflows w ON w.id = r.workflow_id
    WHERE j.environment_id = ${environmentId} AND NOT j.retried
      ${page.cursor ? sql`AND (r.created_at, r.id) < (${page.cursor.createdAt}::timestamptz, ${page.cursor.id}::uuid)` : sql``}
    GROUP BY r.id, w.name
    ${page.succeededOnly ? sql`HAVING bool_and(j.status = 'succeeded')` : sql``}
    ORDER BY r.created_at DESC, r.id DESC
    LIMIT ${page.limit + 1}`.execute(db);
  const items = rows.slice(0, page.limit).map(({ cursorAt: _, ...d }) => d);
  const last = rows[page.limit - 1];
  return { items, nextCursor: rows.length > page.limit && last ? encodeCursor(last.cursorAt, last.runId) : null };
}
