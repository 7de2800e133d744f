import { randomUUID } from 'node:crypto';
import { evaluateCondition } from '../../pipeline/condition.js';
import type { EnvironmentConcurrency } from '../../db/schema.js';
import type { CompiledJob, Concurrency, ConditionContext } from '../../pipeline/workflow-model.js';
import type { JobSpec } from '../../protocol/messages.js';

/** What a run's jobs share: where they come from and what their conditions may read. */
export interface RunContext {
  runId: string;
  projectId: string;
  organizationId: string;
  workflow: { id: string; name: string; labels: string[]; image: string | null; network: 'default' | 'none'; timeoutSeconds: number | null };
  runNumber: number;
  furrow: ConditionContext['furrow'];
  repository: { id: string; url: string } | null;
  parameters: Record<string, string>;
  defaultTimeoutSeconds: number;
  leaseSeconds: number;
}

/** The environment a job runs in, as the run's queueing found it. */
export interface JobEnvironment {
  id: string;
  name: string;
  variables: Record<string, string>;
  requiresApproval: boolean;
  concurrency: EnvironmentConcurrency | null;
}

/** How a concurrency group is stored on its jobs: groups are per project. */
export const concurrencyKey = (projectId: string, c: Concurrency) => `${projectId}:${c.group}`;

/** A job's concurrency group: its own (or its workflow's), else its environment's. */
export function jobConcurrency(job: CompiledJob, environment: JobEnvironment | undefined): Concurrency | null {
  if (job.concurrency || !environment?.concurrency) return job.concurrency;
  const mode = environment.concurrency;
  // By id: a renamed environment keeps its queue.
  const group = `environment:${environment.id}`;
  return mode === 'supersede' ? { group, cancelInProgress: false, supersede: true } : { group, cancelInProgress: mode === 'cancel-in-progress' };
}

/** The variables every job gets about its run (FURROW_*) and its matrix values (MATRIX_*). */
function contextEnv(ctx: RunContext, job: CompiledJob, jobId: string): Record<string, string> {
  const f = ctx.furrow;
  return {
    CI: 'true',
    FURROW: 'true',
    FURROW_RUN_ID: ctx.runId,
    FURROW_RUN_NUMBER: String(ctx.runNumber),
    FURROW_JOB_ID: jobId,
    FURROW_JOB_ATTEMPT: '1',
    FURROW_JOB_KEY: job.key,
    FURROW_PROJECT_ID: ctx.projectId,
    FURROW_WORKFLOW_ID: ctx.workflow.id,
    FURROW_WORKFLOW_NAME: ctx.workflow.name,
    FURROW_EVENT: f.event,
    ...(f.ref ? { FURROW_REF: f.ref } : {}),
    ...(f.branch ? { FURROW_BRANCH: f.branch } : {}),
    ...(f.tag ? { FURROW_TAG: f.tag } : {}),
    ...(f.sha ? { FURROW_SHA: f.sha } : {}),
    ...Object.fromEntries(Object.entries(job.matrix ?? {}).map(([k, v]) => [`MATRIX_${k.toUpperCase().replace(/[^A-Z0-9_]/g, '_')}`, v])),
  };
}

/** What a job's (or its steps') `if` reads, for jobs or steps that have ended with `status` so far. */
export function conditionContext(furrow: RunContext['furrow'], job: Pick<CompiledJob, 'matrix' | 'env'>, status: ConditionContext['status']): ConditionContext {
  return { furrow, matrix: job.matrix ?? {}, env: job.env, status };
}

/**
 * A compiled job as the spec a runner executes: variables from its environment under the file's
 * under the run's parameters under FURROW_*; each step's `if` decided for a job that has
 * succeeded so far and for one that has failed. Secrets, the deploy key and the artifact token
 * stay out: they are added when a runner claims the job.
 */
export function jobSpec(ctx: RunContext, job: CompiledJob, environment: JobEnvironment | undefined): JobSpec {
  const jobId = randomUUID();
  const timeoutSeconds = job.timeoutSeconds ?? ctx.workflow.timeoutSeconds ?? ctx.defaultTimeoutSeconds;
  return {
    jobId,
    runId: ctx.runId,
    projectId: ctx.projectId,
    workflowId: ctx.workflow.id,
    runNumber: ctx.runNumber,
    name: job.name,
    attempt: 1,
    timeoutSeconds,
    leaseSeconds: ctx.leaseSeconds,
    image: job.image ?? ctx.workflow.image,
    network: ctx.workflow.network,
    env: { ...(environment?.variables ?? {}), ...job.env, ...ctx.parameters, ...contextEnv(ctx, job, jobId) },
    secrets: [],
    checkout:
      ctx.repository && ctx.furrow.sha && job.checkout.enabled
        ? { stepId: randomUUID(), repositoryId: ctx.repository.id, url: ctx.repository.url, commit: ctx.furrow.sha, ref: ctx.furrow.ref, depth: job.checkout.depth, privateKey: null, knownHosts: null }
        : null,
    artifacts: { token: '', upload: job.upload, download: job.download },
    steps: job.steps.map((step) => ({
      id: randomUUID(),
      name: step.name,
      script: step.run,
      env: step.env,
      timeoutSeconds: step.timeoutSeconds,
      continueOnError: step.continueOnError,
      when: {
        success: evaluateCondition(step.if, conditionContext(ctx.furrow, job, 'success')),
        failure: evaluateCondition(step.if, conditionContext(ctx.furrow, job, 'failure')),
      },
    })),
  };
}

/** The labels a runner needs for a job: the workflow's and the job's `runs-on`. */
export function jobLabels(ctx: RunContext, job: CompiledJob): string[] {
  return [...new Set([...ctx.workflow.labels, ...job.runsOn])];
}
