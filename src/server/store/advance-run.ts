import { sql } from 'kysely';
import type { Tx } from '../../db/database.js';
import type { RunStatus } from '../../db/schema.js';
import { isTerminal } from '../../domain/run-state.js';
import { evaluateCondition } from '../../pipeline/condition.js';
import type { ConditionContext } from '../../pipeline/workflow-model.js';
import { conditionContext } from './job-rows.js';
import { cancelJobs, transitionJob } from './job-transitions.js';
import type { RunPlan } from './queue-run.js';

const FAILED: readonly RunStatus[] = ['failed', 'timed_out', 'runner_lost'];

interface JobState {
  id: string;
  status: RunStatus;
  job_key: string | null;
  instance_key: string | null;
  needs: string[];
  condition: string | null;
  continue_on_error: boolean;
  approval: 'pending' | 'approved' | null;
  fail_fast: boolean;
  cancel_requested: boolean;
  runner_id: string | null;
  run_id: string;
}

/** How the jobs a job needs ended, as its `if` sees it; `skipped` when one of them was skipped. */
function outcomeOf(needed: JobState[]): ConditionContext['status'] {
  if (needed.some((j) => FAILED.includes(j.status) && !j.continue_on_error)) return 'failure';
  if (needed.some((j) => j.status === 'canceled')) return 'cancelled';
  if (needed.some((j) => j.status === 'skipped')) return 'skipped';
  return 'success';
}

/**
 * Moves a run's DAG forward inside the transaction that ended one of its jobs: a failed matrix
 * instance with fail-fast cancels its siblings; a waiting job whose needed jobs have all ended is
 * queued when its `if` holds (and any approval it needs was given) or skipped when it does not.
 * A skipped need skips its dependants too, unless their `if` uses `always()`.
 */
export async function advanceRun(tx: Tx, runId: string): Promise<void> {
  let plan: RunPlan | null | undefined;
  for (;;) {
    const jobs: JobState[] = await tx
      .selectFrom('jobs')
      .select(['id', 'status', 'job_key', 'instance_key', 'needs', 'condition', 'continue_on_error', 'approval', 'fail_fast', 'cancel_requested', 'runner_id', 'run_id'])
      .where('run_id', '=', runId)
      .where('retried', '=', false)
      .execute();
    if (!jobs.some((j) => j.status === 'waiting' || j.fail_fast)) return;
    await failFast(tx, jobs);
    plan ??= (await tx.selectFrom('runs').select('plan').where('id', '=', runId).executeTakeFirstOrThrow()).plan as RunPlan | null;
    let changed = false;
    for (const job of jobs) {
      if (job.status !== 'waiting') continue;
      const needed = jobs.filter((j) => j.job_key !== null && job.needs.includes(j.job_key));
      if (needed.some((j) => !isTerminal(j.status))) continue;
      const outcome = outcomeOf(needed);
      const compiled = plan?.workflow.jobs.find((j) => j.key === job.instance_key);
      const runs = !plan || !compiled || evaluateCondition(job.condition, conditionContext(plan.furrow, compiled, outcome));
      if (!runs) {
        await transitionJob(tx, job.id, 'skipped', { error: null });
        await tx.updateTable('steps').set({ status: 'skipped', finished_at: sql`now()` }).where('job_id', '=', job.id).where('status', '=', 'queued').execute();
        changed = true;
      } else if (job.approval !== 'pending') {
        await tx.updateTable('jobs').set({ status: 'queued' }).where('id', '=', job.id).where('status', '=', 'waiting').execute();
        await sql`SELECT pg_notify('furrow_jobs', ${job.id}), pg_notify('furrow_job', ${job.id})`.execute(tx);
      }
    }
    // A skipped job may release (skip) its own dependants: look again.
    if (!changed) return;
  }
}

/** Cancels the unfinished siblings of a matrix instance that failed, where fail-fast is on. */
async function failFast(tx: Tx, jobs: JobState[]): Promise<void> {
  const failedKeys = new Set(jobs.filter((j) => j.fail_fast && FAILED.includes(j.status) && !j.continue_on_error).map((j) => j.job_key));
  const siblings = jobs.filter((j) => failedKeys.has(j.job_key) && !isTerminal(j.status) && !j.cancel_requested);
  await cancelJobs(tx, siblings, 'canceled: another instance of its matrix failed (fail-fast)');
}
