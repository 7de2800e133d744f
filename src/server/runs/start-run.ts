import type { CompiledWorkflow } from '../../pipeline/workflow-model.js';
import { isTransientDatabaseError } from '../../db/transient-error.js';
import { AppError } from '../app-error.js';
import type { Resources } from '../resources.js';
import { manualParameters } from '../triggers/manual-parameters.js';
import { planWorkflowRun, type PlanOptions, type RunTarget } from '../triggers/workflow-plan.js';
import { runOfTrigger } from '../store/run-store.js';
import { queueRun, type QueueRunInput } from './queue-run.js';

type QueuedRun = Awaited<ReturnType<typeof queueRun>>;

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
  /** The webhook delivery the run was started for. */
  deliveryId?: string;
  /** For a pull request's run: whether it gets the project's secrets (see QueueRunInput). */
  pullRequestSecrets?: boolean;
  /**
   * Whether the workflow, as planned at the run's commit, wants this run: null when it does, else
   * why not (then no run starts). A file's `on` is only known once it was read at the commit.
   */
  wants?: ((plan: CompiledWorkflow) => string | null | Promise<string | null>) | undefined;
}

/** A run that did not start because its workflow did not want it, and why. */
export interface NotWanted {
  notWanted: string;
}

/**
 * Whether a failed start may succeed if tried again: the database or the repository was out of
 * reach. Anything else (the workflow file is broken, a parameter is refused) fails for good.
 */
export function mayStartLater(err: unknown): boolean {
  return err instanceof AppError ? err.status >= 500 : isTransientDatabaseError(err);
}

/** The wait before another try of a start that failed for a passing reason: 2, 4, 8 … 60 s. */
export const retryDelaySeconds = (failures: number) => Math.min(60, 2 ** (failures + 1));

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
export async function startRun(res: RunStartDeps, req: StartRunRequest & { wants?: undefined }): Promise<QueuedRun>;
export async function startRun(res: RunStartDeps, req: StartRunRequest): Promise<QueuedRun | NotWanted>;
export async function startRun(res: RunStartDeps, req: StartRunRequest): Promise<QueuedRun | NotWanted> {
  // What the trigger starts the run for may have started it already (a push both delivered and
  // polled): then there is nothing to plan, nor a file to read.
  const started = req.triggerKey === undefined ? undefined : await runOfTrigger(res.database.db, req.workflowId, req.triggerKey);
  if (started) return { ...started, existing: true as const };
  const { plan, origin } = await planWorkflowRun(planOptions(res), req.workflowId, req.target);
  const notWanted = await req.wants?.(plan);
  if (notWanted) return { notWanted };
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
    ...(req.deliveryId !== undefined ? { deliveryId: req.deliveryId } : {}),
    ...(req.pullRequestSecrets ? { pullRequestSecrets: true } : {}),
    ...queueLimits(res),
  });
}
