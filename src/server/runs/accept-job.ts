import { sql } from 'kysely';
import type { Db } from '../../db/database.js';
import { inTransaction } from '../../db/transaction.js';
import { sourcesOf } from '../../domain/run-state.js';
import { transitionJob } from '../store/job-transitions.js';
import { lockRunOfJob } from './lock-run.js';
import { runStarted, settleRun } from './settle-run.js';

/**
 * The runner starts the job it claimed: queued -> running, and so its run. A job asked to stop
 * since the claim ends canceled instead, and false tells the runner not to start it.
 */
export async function acceptJob(db: Db, jobId: string, runnerId: string): Promise<boolean> {
  if (await startClaimed(db, jobId, runnerId)) return true;
  return inTransaction(db, async (tx) => {
    const run = await lockRunOfJob(tx, jobId);
    if (!run) return false;
    const job = await tx.selectFrom('jobs').select(['cancel_requested', 'cancel_reason', 'status', 'runner_id']).where('id', '=', jobId).executeTakeFirst();
    // A resend after a reconnect: the first accept went through.
    if (job?.status === 'running' && job.runner_id === runnerId) return !job.cancel_requested;
    const to = job?.cancel_requested ? 'canceled' : 'running';
    const moved = await transitionJob(tx, jobId, to, { runnerId, ...(to === 'canceled' ? { error: job?.cancel_reason ?? 'canceled before it started' } : {}) });
    if (!moved) return false;
    if (to === 'running') await runStarted(tx, run);
    else await settleRun(tx, run);
    return to === 'running';
  });
}

/**
 * The usual accept in one statement, as the transaction above would make it: the run's lock
 * first (the job's row is locked only once its run's is held, the one lock order), then the job
 * queued -> running, the run queued -> running with `run.running`, and their notifications. It
 * applies only to a job claimed by this runner and not asked to stop; anything else (a cancel
 * since the claim, a resend) goes through the transaction.
 */
async function startClaimed(db: Db, jobId: string, runnerId: string): Promise<boolean> {
  const runFrom = sourcesOf('running');
  const { rows } = await sql<{ moved: boolean }>`
    WITH run AS (
      SELECT runs.id, runs.project_id, runs.workflow_id, runs.number, projects.organization_id
      FROM runs JOIN projects ON projects.id = runs.project_id
      WHERE runs.id = (SELECT run_id FROM jobs WHERE id = ${jobId}) FOR UPDATE OF runs),
    job AS (
      UPDATE jobs SET status = 'running', started_at = now()
      WHERE id = ${jobId} AND status = 'queued' AND runner_id = ${runnerId} AND NOT cancel_requested AND EXISTS (SELECT 1 FROM run)
      RETURNING id, pg_notify('furrow_job', ${jobId})),
    started AS (
      UPDATE runs SET status = 'running', started_at = coalesce(started_at, now()), finished_at = NULL
      WHERE id = (SELECT id FROM run) AND EXISTS (SELECT 1 FROM job) AND status = ANY(${runFrom}::run_status[])
      RETURNING id, pg_notify('furrow_run', id::text)),
    activity AS (
      INSERT INTO activities (type, organization_id, project_id, actor_user_id, subject_type, subject_id, payload)
      SELECT 'run.running', run.organization_id, run.project_id, NULL, 'run', run.id::text, jsonb_build_object('workflowId', run.workflow_id, 'number', run.number)
      FROM run WHERE EXISTS (SELECT 1 FROM started))
    SELECT EXISTS (SELECT 1 FROM job) AS moved`.execute(db);
  return rows[0]?.moved === true;
}
