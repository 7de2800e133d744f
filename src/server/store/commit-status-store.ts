import { sql } from 'kysely';
import type { Db } from '../../db/database.js';
import type { CommitState } from '../../domain/commit-status.js';

/** Tries of one status before it is given up (graphile-worker's exponential backoff waits between them). */
export const STATUS_ATTEMPTS = 8;

/**
 * Common table expressions (`status_row`, `status_sent`) that add a run's commit status to the
 * outbox and queue a sender, when its repository reports statuses and it runs at a commit; a
 * final state only when its pending one was. The forge shows one status per commit and workflow
 * (its context): one sender task per commit and workflow (its job key and queue) sends theirs in
 * the order written, so that an older run's late retry never lands after a newer run's status.
 */
export function commitStatusCtes(runId: string, state: CommitState, description: string) {
  return sql`status_row AS (
      INSERT INTO commit_statuses (run_id, repository_id, commit_sha, state, description)
      SELECT r.id, r.repository_id, r.commit_sha, ${state}, ${description} FROM runs r JOIN repositories p ON p.id = r.repository_id
      WHERE r.id = ${runId} AND r.commit_sha IS NOT NULL AND p.status_forge IS NOT NULL
        AND (${state} = 'pending' OR EXISTS (SELECT 1 FROM commit_statuses c WHERE c.run_id = r.id))
      RETURNING id, run_id
    ), status_sent AS (
      SELECT graphile_worker.add_job('send-commit-statuses', json_build_object('runId', s.run_id), queue_name => k.key, job_key => k.key, max_attempts => 25)
      FROM status_row s JOIN runs r ON r.id = s.run_id, LATERAL (SELECT 'commit-status:' || r.repository_id || ':' || r.commit_sha || ':' || r.workflow_id AS key) k
    )`;
}

/** A run's commit statuses, in the order they were written. */
export function runCommitStatuses(db: Db, runId: string) {
  return db
    .selectFrom('commit_statuses')
    .select(['id', 'state', 'description', 'status', 'attempts', 'last_error as error', 'created_at as createdAt', 'sent_at as sentAt'])
    .where('run_id', '=', runId)
    .orderBy('created_at')
    .orderBy('id')
    .execute();
}
