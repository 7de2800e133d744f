import type { Db } from '../../db/database.js';
import { isTerminal } from '../../domain/run-state.js';
import { AppError, notFound } from '../app-error.js';
import type { Resources } from '../resources.js';
import { queueRun, type RunPlan } from '../store/queue-run.js';
import type { PlanOptions } from './workflow-plan.js';

export function planOptions(res: Resources): PlanOptions {
  return { db: res.database.db, secretBox: res.secretBox, dataDir: res.config.dataDir, gitTimeoutSeconds: res.config.gitTimeoutSeconds };
}

/**
 * Runs a finished run again as a new run with the same plan, commit, environment and parameters
 * (the workflow file is not read again). With `failedOnly`, jobs that succeeded keep their outcome
 * and artifacts, and only the others (and whatever depends on them) run.
 */
export async function rerun(db: Db, res: Resources, runId: string, failedOnly: boolean, actorUserId: string) {
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
    const jobs = await db.selectFrom('jobs').select(['id', 'instance_key', 'status']).where('run_id', '=', runId).where('retried', '=', false).execute();
    for (const j of jobs) if (j.instance_key && j.status === 'succeeded') keep.set(j.instance_key, j.id);
    // Skipped jobs run again (their `if` is decided anew), but alone they are no reason to.
    if (jobs.every((j) => j.status === 'succeeded' || j.status === 'skipped')) throw new AppError('conflict', 'No job of this run failed: there is nothing failed to run again.');
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
    defaultTimeoutSeconds: res.config.defaultTimeoutSeconds,
    leaseSeconds: res.config.jobLeaseSeconds,
    rerun: { runId, keep },
  });
}
