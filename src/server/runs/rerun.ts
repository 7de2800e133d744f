import { keptInstances } from '../../domain/rerun-keep.js';
import { isTerminal } from '../../domain/run-state.js';
import { AppError, notFound } from '../app-error.js';
import type { Resources } from '../resources.js';
import { queueRun } from './queue-run.js';
import { queueLimits } from './start-run.js';
import type { RunPlan } from './run-plan.js';

/**
 * Runs a finished run again as a new run with the same plan, commit, environment and parameters
 * (the workflow file is not read again). With `failedOnly`, jobs that succeeded keep their outcome
 * and artifacts, and only the others (and whatever depends on them) run.
 */
export async function rerun(res: Resources, runId: string, failedOnly: boolean, actorUserId: string) {
  const { db } = res.database;
  const run = await db
    .selectFrom('runs')
    .leftJoin('repositories', 'repositories.id', 'runs.repository_id')
    .select(['runs.status', 'runs.workflow_id', 'runs.plan', 'runs.ref', 'runs.commit_sha', 'runs.environment_id', 'runs.parameters', 'repositories.id as repositoryId', 'repositories.url'])
    .where('runs.id', '=', runId)
    .executeTakeFirst();
  if (!run) throw notFound('Run');
  if (!isTerminal(run.status)) throw new AppError('run_not_finished', `The run is ${run.status}; cancel it or wait for it to finish before running it again.`);
  const plan = run.plan as RunPlan | null;
  if (!plan) throw new AppError('conflict', 'This run was made before runs kept their plan; start the workflow instead.');
  const keep = new Map<string, string>();
  if (failedOnly) {
    const jobs = await db.selectFrom('jobs').select(['id', 'job_key', 'instance_key', 'status', 'needs']).where('run_id', '=', runId).where('retried', '=', false).execute();
    // Skipped jobs run again (their `if` is decided anew), but alone they are no reason to.
    if (jobs.every((j) => j.status === 'succeeded' || j.status === 'skipped')) throw new AppError('conflict', 'No job of this run failed: there is nothing failed to run again.');
    const kept = keptInstances(jobs.flatMap((j) => (j.job_key && j.instance_key ? [{ jobKey: j.job_key, instanceKey: j.instance_key, status: j.status, needs: j.needs }] : [])));
    for (const j of jobs) if (j.instance_key && kept.has(j.instance_key)) keep.set(j.instance_key, j.id);
  }
  return queueRun(db, {
    workflowId: run.workflow_id,
    plan: plan.workflow,
    origin: {
      event: plan.furrow.event,
      ref: run.ref,
      commit: run.commit_sha,
      repository: run.repositoryId && run.url ? { id: run.repositoryId, url: run.url } : null,
    },
    environmentId: run.environment_id ?? undefined,
    parameters: run.parameters,
    reason: { type: 'rerun', runId, failedOnly, userId: actorUserId },
    actorUserId,
    ...queueLimits(res),
    rerun: { runId, keep },
  });
}

