import { sql } from 'kysely';
import type { Tx } from '../../db/database.js';
import type { RunStatus } from '../../db/schema.js';
import { decideJobs, type CancelLevel, type JobDecision, type JobView } from '../../domain/job-decisions.js';
import { canTransition, isTerminal } from '../../domain/run-state.js';
import { runStatusOf } from '../../domain/run-status.js';
import { evaluateCondition } from '../../pipeline/condition.js';
import { activityRow } from '../store/activity-store.js';
import { chainsFollowing } from '../store/trigger-store.js';
import { commitStatusCtes } from '../store/commit-status-store.js';
import { commitStateOf, statusDescription } from '../../domain/commit-status.js';
import { conditionContext } from '../store/job-rows.js';
import { closeSteps, transitionJob } from '../store/job-transitions.js';
import type { LockedRun } from './lock-run.js';

/** Why jobs end when their run is canceled: by whom, or by what. */
export function runCancelReason(run: Pick<LockedRun, 'canceledBy'>): string {
  return run.canceledBy ? `canceled by ${run.canceledBy}` : 'canceled';
}

function cancelLevel(run: LockedRun): CancelLevel {
  if (!run.cancelRequestedAt) return 'none';
  return run.cancelForced ? 'forced' : 'requested';
}

/**
 * Brings a run up to date inside the transaction that changed it, with the run's lock held
 * (`lockRun`): the decisions of `decideJobs` for its jobs' latest attempts are applied — queue,
 * skip, cancel what has not started, tell runners to stop what they hold — then the run's status
 * follows from its jobs through the state machine, with `run.<status>` recorded and live viewers
 * told. This is the only place a run's jobs are released, skipped or canceled.
 */
export async function settleRun(tx: Tx, run: LockedRun, actorUserId: string | null = null): Promise<RunStatus> {
  for (;;) {
    const rows = await tx
      .selectFrom('jobs')
      .select(['id', 'status', 'job_key', 'instance_key', 'needs', 'condition', 'continue_on_error', 'approval', 'fail_fast', 'cancel_requested', 'cancel_reason', 'runner_id'])
      .where('run_id', '=', run.id)
      .where('retried', '=', false)
      .execute();
    const views: JobView[] = rows.map((j) => ({
      id: j.id,
      jobKey: j.job_key,
      status: j.status,
      needs: j.needs,
      continueOnError: j.continue_on_error,
      failFast: j.fail_fast,
      approvalPending: j.approval === 'pending',
      claimed: j.runner_id !== null,
      cancelRequested: j.cancel_requested,
      cancelReason: j.cancel_reason,
    }));
    if (!views.some((j) => !isTerminal(j.status))) return syncRunStatus(tx, run, actorUserId, rows);
    const plan = run.plan;
    const instanceKey = new Map(rows.map((r) => [r.id, r.instance_key]));
    const condition = new Map(rows.map((r) => [r.id, r.condition]));
    const decisions = decideJobs(views, { cancel: cancelLevel(run), cancelReason: runCancelReason(run) }, (job, outcome) => {
      const compiled = plan?.workflow.jobs.find((c) => c.key === instanceKey.get(job.id));
      // A run from before plans were kept has nothing to evaluate: its jobs run on success only.
      return compiled && plan ? evaluateCondition(condition.get(job.id) ?? null, conditionContext(plan.furrow, compiled, outcome)) : outcome === 'success';
    });
    if (decisions.length === 0) return syncRunStatus(tx, run, actorUserId, rows);
    // Jobs changed: their statuses are read again.
    if (await applyAll(tx, decisions)) return syncRunStatus(tx, run, actorUserId);
    // A runner claimed a job this meant to cancel before it started (claims do not take the
    // run's lock): it ends through its runner, and what depends on it is decided again.
  }
}

/**
 * Applies the decisions in order; false, with the rest left out, when a job to cancel turned out
 * to be held by a runner: the decisions after it assumed it had ended.
 */
async function applyAll(tx: Tx, decisions: JobDecision[]): Promise<boolean> {
  for (const decision of decisions) if (!(await apply(tx, decision))) return false;
  return true;
}

/**
 * Brings a run up to date after one of its jobs started, with the run's lock held: a job its
 * runner held already (claimed) counts the same running, so no decision changes, and a run with a
 * running job is running (see runStatusOf). Nothing is read; at most the run's status is written.
 */
export function runStarted(tx: Tx, run: LockedRun): Promise<RunStatus> {
  return syncRunStatus(tx, run, null, [{ status: 'running', continue_on_error: false }]);
}

/** Applies one decision; false when a job to cancel was claimed meanwhile, and is told to stop instead. */
async function apply(tx: Tx, d: JobDecision): Promise<boolean> {
  switch (d.action) {
    case 'queue':
      await tx
        .updateTable('jobs')
        .set({ status: 'queued', queued_at: sql`now()` })
        .where('id', '=', d.jobId)
        .where('status', '=', 'waiting')
        .returning(sql<string>`pg_notify('furrow_jobs', ${d.jobId})`.as('notified'))
        .execute();
      return true;
    case 'skip':
      await transitionJob(tx, d.jobId, 'skipped', { error: null });
      return true;
    case 'cancel': {
      // Flag it first: a runner that claims it in between is told to stop when it accepts.
      await tx.updateTable('jobs').set({ cancel_requested: true, cancel_reason: sql`coalesce(cancel_reason, ${d.reason})` }).where('id', '=', d.jobId).execute();
      const ended = await tx
        .updateTable('jobs')
        .set({ status: 'canceled', error: sql`cancel_reason`, finished_at: sql`now()`, lease_expires_at: null })
        .where('id', '=', d.jobId)
        .where((eb) => eb.or([eb('status', '=', 'waiting'), eb.and([eb('status', '=', 'queued'), eb('runner_id', 'is', null)])]))
        .returning(sql<string>`pg_notify('furrow_job', ${d.jobId})`.as('notified'))
        .executeTakeFirst();
      if (ended) {
        await closeSteps(tx, d.jobId, 'canceled');
        return true;
      }
      await sql`SELECT pg_notify('furrow_cancel', ${d.jobId})`.execute(tx);
      return false;
    }
    case 'stop':
      await tx.updateTable('jobs').set({ cancel_requested: true, cancel_reason: sql`coalesce(cancel_reason, ${d.reason})` }).where('id', '=', d.jobId).execute();
      await sql`SELECT pg_notify('furrow_cancel', ${d.jobId})`.execute(tx);
      return true;
  }
}

/** The run's status from its jobs' latest attempts, applied through the state machine. */
async function syncRunStatus(tx: Tx, run: LockedRun, actorUserId: string | null, known?: { status: RunStatus; continue_on_error: boolean }[]): Promise<RunStatus> {
  // Attempts that were retried do not count: their retry speaks for them.
  const jobs = known ?? (await tx.selectFrom('jobs').select(['status', 'continue_on_error']).where('run_id', '=', run.id).where('retried', '=', false).execute());
  const next = runStatusOf(jobs.map((j) => (j.status === 'failed' && j.continue_on_error ? 'succeeded' : j.status)));
  if (next === run.status || !canTransition(run.status, next)) return run.status;
  // One statement: the run's new status, its notification and `run.<status>`.
  await tx
    .with('moved', (db) =>
      db
        .updateTable('runs')
        .set((eb) => ({
          status: next,
          started_at: next === 'running' ? sql`coalesce(started_at, now())` : eb.ref('started_at'),
          finished_at: isTerminal(next) ? sql`now()` : null,
        }))
        .where('id', '=', run.id)
        .returning(sql<string>`pg_notify('furrow_run', ${run.id})`.as('notified')),
    )
    .insertInto('activities')
    .values(
      activityRow({
        type: `run.${next}`,
        organizationId: run.organizationId,
        projectId: run.projectId,
        actorUserId,
        subjectType: 'run',
        subjectId: run.id,
        payload: { workflowId: run.workflowId, number: run.number },
      }),
    )
    .execute();
  // An ended run sets off the chains that follow its workflow, if any do, and reports its
  // outcome as a commit status, if its pending one was: both once it commits, in one statement.
  if (isTerminal(next)) {
    await sql`WITH chained AS (
        SELECT graphile_worker.add_job('start-chained-runs', json_build_object('runId', ${run.id}::text)) WHERE EXISTS (${chainsFollowing(run.workflowId)})
      ), ${commitStatusCtes(run.id, commitStateOf(next), statusDescription(next, Number(run.number)))}
      SELECT (SELECT count(*) FROM chained), (SELECT count(*) FROM status_sent)`.execute(tx);
  }
  run.status = next;
  return next;
}
