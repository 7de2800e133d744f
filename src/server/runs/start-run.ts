import type { Resources } from '../resources.js';
import { manualParameters } from '../triggers/manual-parameters.js';
import { planWorkflowRun, type PlanOptions, type RunTarget } from '../triggers/workflow-plan.js';
import { queueRun, type QueueRunInput } from './queue-run.js';

export interface StartRunRequest {
  workflowId: string;
  /** Where to run and what started it (`manual`, and the triggers' events). */
  target: RunTarget;
  environmentId?: string | undefined;
  parameters: Record<string, string>;
  /** Who or what started it, as the run's `reason` shows it. */
  reason: Record<string, unknown>;
  actorUserId: string | null;
  /** What a trigger starts the run for: see QueueRunInput.triggerKey. */
  triggerKey?: string;
}

/** What starting a run takes from the instance. */
export type RunStartDeps = Pick<Resources, 'database' | 'secretBox' | 'config'>;

export function planOptions(res: RunStartDeps): PlanOptions {
  return { db: res.database.db, secretBox: res.secretBox, dataDir: res.config.dataDir, gitTimeoutSeconds: res.config.gitTimeoutSeconds };
}

/** What every run's queueing takes from the instance's settings. */
export function queueLimits(res: RunStartDeps): Pick<QueueRunInput, 'defaultTimeoutSeconds' | 'leaseSeconds' | 'maxJobs'> {
  return { defaultTimeoutSeconds: res.config.defaultTimeoutSeconds, leaseSeconds: res.config.jobLeaseSeconds, maxJobs: res.config.maxJobsPerRun };
}

/**
 * The one way a run starts, whatever starts it: the workflow is planned at its commit, a start by
 * hand gets its inputs checked and filled in, and the run is queued with its jobs in one transaction.
 */
export async function startRun(res: RunStartDeps, req: StartRunRequest) {
  const { plan, origin } = await planWorkflowRun(planOptions(res), req.workflowId, req.target);
  const parameters = req.target.event === 'manual' ? manualParameters(plan, req.parameters) : req.parameters;
  return queueRun(res.database.db, {
    workflowId: req.workflowId,
    plan,
    origin,
    environmentId: req.environmentId,
    parameters,
    reason: req.reason,
    actorUserId: req.actorUserId,
    ...(req.triggerKey !== undefined ? { triggerKey: req.triggerKey } : {}),
    ...queueLimits(res),
  });
}
