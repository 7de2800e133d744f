import { sql, type SelectQueryBuilder } from 'kysely';
import type { Tx } from '../../db/database.js';
import type { Database, RunStatus } from '../../db/schema.js';
import { notFound } from '../app-error.js';
import type { RunPlan } from './run-plan.js';

/** A run as its use-cases see it, read with its row lock held. */
export interface LockedRun {
  id: string;
  status: RunStatus;
  projectId: string;
  organizationId: string;
  workflowId: string;
  number: number;
  plan: RunPlan | null;
  cancelRequestedAt: Date | null;
  cancelForced: boolean;
  /** The email of who canceled it, for the jobs' reasons. */
  canceledBy: string | null;
}

/**
 * Takes a run's row lock. Every use-case that changes a run's jobs takes it first, before it
 * touches any job of the run: one lock order (run, then its jobs) for all of them, so no two
 * transactions deadlock, and each sees the jobs as the one before it left them.
 */
export async function lockRun(tx: Tx, runId: string): Promise<LockedRun> {
  const run = await lockedRun(tx, runId);
  if (!run) throw notFound('Run');
  return run;
}

/**
 * Takes the lock of the run `jobId` belongs to, in the same statement that finds it (a job never
 * moves), as lockRun would; undefined when there is no such job.
 */
export function lockRunOfJob(tx: Tx, jobId: string): Promise<LockedRun | undefined> {
  return lockedRun(tx, tx.selectFrom('jobs').select('run_id').where('id', '=', jobId));
}

/**
 * Takes the row locks of every run of a project or an organization, in id order, before deleting
 * it. Its cascade would lock them only after the parent's row, which a run's use-cases refer to
 * (recording an activity) while they hold the run's lock: locked first, the runs make the deletion
 * wait for those use-cases instead of deadlocking with them.
 */
export async function lockRunsOf(tx: Tx, owner: { projectId: string } | { organizationId: string }): Promise<void> {
  const projects =
    'projectId' in owner
      ? [owner.projectId]
      : tx.selectFrom('projects').select('projects.id').where('projects.organization_id', '=', owner.organizationId);
  await tx.selectFrom('runs').select('runs.id').where('runs.project_id', 'in', projects).orderBy('runs.id').forUpdate().execute();
}

async function lockedRun(tx: Tx, runId: string | SelectQueryBuilder<Database, 'jobs', { run_id: string }>): Promise<LockedRun | undefined> {
  const run = await tx
    .selectFrom('runs')
    .innerJoin('projects', 'projects.id', 'runs.project_id')
    .select([
      'runs.id',
      'runs.status',
      'runs.project_id as projectId',
      'projects.organization_id as organizationId',
      'runs.workflow_id as workflowId',
      'runs.number',
      'runs.plan',
      'runs.cancel_requested_at as cancelRequestedAt',
      'runs.cancel_forced as cancelForced',
      sql<string | null>`(SELECT email FROM users WHERE users.id = runs.canceled_by)`.as('canceledBy'),
    ])
    .where('runs.id', '=', runId)
    .forUpdate('runs')
    .executeTakeFirst();
  return run && { ...run, plan: run.plan as RunPlan | null, cancelRequestedAt: run.cancelRequestedAt as Date | null };
}
