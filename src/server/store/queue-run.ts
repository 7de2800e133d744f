import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Db, Tx } from '../../db/database.js';
import type { RunStatus } from '../../db/schema.js';
import { evaluateCondition } from '../../pipeline/condition.js';
import type { CompiledJob, CompiledWorkflow, ConditionContext } from '../../pipeline/workflow-model.js';
import { AppError } from '../app-error.js';
import { recordActivity } from './activity-store.js';
import { copyArtifacts } from './artifact-store.js';
import { cancelJobs } from './job-transitions.js';
import { conditionContext, jobLabels, jobSpec, type JobEnvironment, type RunContext } from './job-rows.js';
import { runColumns, syncRunStatus } from './run-store.js';

/** Where a run's code comes from: a commit of a repository, or nothing to check out. */
export interface RunOrigin {
  event: string;
  ref: string | null;
  commit: string | null;
  repository: { id: string; url: string } | null;
}

export interface QueueRunInput {
  workflowId: string;
  plan: CompiledWorkflow;
  origin: RunOrigin;
  environmentId?: string | undefined;
  parameters: Record<string, string>;
  reason: Record<string, unknown>;
  actorUserId: string | null;
  defaultTimeoutSeconds: number;
  leaseSeconds: number;
  /** A re-run of `runId`; `keep` maps instance keys to the ids of the jobs whose success stands. */
  rerun?: { runId: string; keep: Map<string, string> };
}

/** The stored plan: the compiled workflow and what its conditions read, for later decisions. */
export interface RunPlan {
  workflow: CompiledWorkflow;
  furrow: ConditionContext['furrow'];
}

function branchAndTag(ref: string | null): { branch: string | null; tag: string | null } {
  return {
    branch: ref?.startsWith('refs/heads/') ? ref.slice(11) : null,
    tag: ref?.startsWith('refs/tags/') ? ref.slice(10) : null,
  };
}

/**
 * Queues a run of a compiled workflow in one transaction: the run with its plan, one job per
 * compiled job (waiting when it needs others or a protected environment's approval, queued
 * otherwise, skipped when its `if` says no), their steps, and `run.queued`. Runners waiting for
 * work hear of it when the transaction commits.
 */
export function queueRun(db: Db, input: QueueRunInput) {
  return db.transaction().execute(async (tx) => {
    // Locking the workflow row serialises run numbering per workflow.
    const wf = await tx
      .selectFrom('workflows')
      .innerJoin('projects', 'projects.id', 'workflows.project_id')
      .select(['workflows.id', 'workflows.name', 'workflows.project_id', 'workflows.default_environment_id', 'workflows.timeout_seconds', 'workflows.labels', 'workflows.image', 'workflows.network', 'projects.organization_id'])
      .where('workflows.id', '=', input.workflowId)
      .forUpdate('workflows')
      .executeTakeFirstOrThrow();
    const environments = await projectEnvironments(tx, wf.project_id);
    const runEnvironmentId = input.environmentId ?? wf.default_environment_id;
    const runEnvironment = runEnvironmentId ? [...environments.values()].find((e) => e.id === runEnvironmentId) : undefined;
    if (runEnvironmentId && !runEnvironment) {
      throw new AppError('validation_failed', 'environmentId does not name an environment of this project.', [{ field: 'environmentId', message: 'no such environment in this project' }]);
    }
    const { next } = await tx.selectFrom('runs').select(sql<number>`coalesce(max(number), 0) + 1`.as('next')).where('workflow_id', '=', wf.id).executeTakeFirstOrThrow();
    const runId = randomUUID();
    const { ref, commit } = input.origin;
    const furrow: ConditionContext['furrow'] = { event: input.origin.event, ref, ...branchAndTag(ref), sha: commit, workflow: wf.name, run_number: Number(next) };
    const ctx: RunContext = {
      runId,
      projectId: wf.project_id,
      organizationId: wf.organization_id,
      workflow: { id: wf.id, name: wf.name, labels: wf.labels, image: wf.image, network: wf.network, timeoutSeconds: wf.timeout_seconds },
      runNumber: Number(next),
      furrow,
      repository: input.origin.repository,
      parameters: input.parameters,
      defaultTimeoutSeconds: input.defaultTimeoutSeconds,
      leaseSeconds: input.leaseSeconds,
    };
    const plan: RunPlan = { workflow: input.plan, furrow };
    const run = await tx
      .insertInto('runs')
      .values({
        id: runId,
        project_id: wf.project_id,
        workflow_id: wf.id,
        number: next,
        reason: JSON.stringify(input.reason),
        environment_id: runEnvironment?.id ?? null,
        parameters: JSON.stringify(input.parameters),
        created_by: input.actorUserId,
        repository_id: input.origin.repository?.id ?? null,
        ref,
        commit_sha: commit,
        plan: JSON.stringify(plan),
        rerun_of: input.rerun?.runId ?? null,
      })
      .returning(runColumns)
      .executeTakeFirstOrThrow();
    for (const job of input.plan.jobs) {
      const environment = job.environment === null ? runEnvironment : environments.get(job.environment);
      if (job.environment !== null && !environment) {
        throw new AppError('validation_failed', `Job "${job.key}" runs in environment "${job.environment}", which this project does not have.`, [
          { field: `jobs.${job.id}.environment`, message: 'no such environment in this project' },
        ]);
      }
      const kept = input.rerun?.keep.get(job.key);
      await insertJob(tx, ctx, job, environment, kept);
    }
    // A re-run keeps the artifacts of the jobs whose outcome it keeps (the files are shared).
    if (input.rerun) await copyArtifacts(tx, input.rerun.runId, runId, [...input.rerun.keep.values()]);
    await cancelSupersededRuns(tx, ctx, input.plan);
    await recordActivity(tx, {
      type: 'run.queued',
      organizationId: wf.organization_id,
      projectId: wf.project_id,
      actorUserId: input.actorUserId,
      subjectType: 'run',
      subjectId: runId,
      payload: { workflowId: wf.id, number: next, reason: input.reason, ...(commit ? { commit } : {}) },
    });
    // Jobs whose `if` said no at once, or kept ones, may already decide the run's status.
    await syncRunStatus(tx, runId);
    return run;
  });
}

async function projectEnvironments(tx: Tx, projectId: string): Promise<Map<string, JobEnvironment>> {
  const rows = await tx.selectFrom('environments').select(['id', 'name', 'variables', 'requires_approval']).where('project_id', '=', projectId).execute();
  return new Map(rows.map((e) => [e.name, { id: e.id, variables: e.variables, requiresApproval: e.requires_approval }]));
}

/** The status a job starts in: kept from an earlier run, waiting, queued, or skipped by its `if`. */
function initialStatus(ctx: RunContext, job: CompiledJob, environment: JobEnvironment | undefined, kept: string | undefined): RunStatus {
  if (kept) return 'succeeded';
  if (job.needs.length > 0) return 'waiting';
  if (!evaluateCondition(job.if, conditionContext(ctx.furrow, job, 'success'))) return 'skipped';
  return environment?.requiresApproval ? 'waiting' : 'queued';
}

/** Inserts a job and its steps; `kept` is the earlier run's job whose success this one takes over. */
async function insertJob(tx: Tx, ctx: RunContext, job: CompiledJob, environment: JobEnvironment | undefined, kept: string | undefined): Promise<void> {
  const spec = jobSpec(ctx, job, environment);
  const status = initialStatus(ctx, job, environment, kept);
  const concurrency = job.concurrency;
  await tx
    .insertInto('jobs')
    .values({
      id: spec.jobId,
      run_id: ctx.runId,
      organization_id: ctx.organizationId,
      name: job.name,
      status,
      labels: jobLabels(ctx, job),
      spec: JSON.stringify(spec),
      timeout_seconds: spec.timeoutSeconds,
      max_attempts: 1 + job.retry.count,
      retry_on: job.retry.on,
      retry_of: kept ?? null,
      job_key: job.id,
      instance_key: job.key,
      needs: job.needs,
      condition: job.if,
      continue_on_error: job.continueOnError,
      matrix: job.matrix ? JSON.stringify(job.matrix) : null,
      max_parallel: job.maxParallel,
      fail_fast: job.failFast,
      environment_id: environment?.id ?? null,
      approval: environment?.requiresApproval && !kept ? 'pending' : null,
      concurrency_group: concurrency ? `${ctx.projectId}:${concurrency.group}` : null,
      ...(status === 'skipped' || kept ? { finished_at: sql`now()` } : {}),
      // Distinct times in file order, within the one transaction: the order lists and claims keep.
      created_at: sql`clock_timestamp()`,
    })
    .returning(sql<string>`CASE WHEN ${status} = 'queued' THEN pg_notify('furrow_jobs', ${spec.jobId}) END`.as('notified'))
    .execute();
  const stepStatus: RunStatus = status === 'skipped' || kept ? 'skipped' : 'queued';
  const steps = [...(spec.checkout ? [{ id: spec.checkout.stepId, name: 'checkout' }] : []), ...spec.steps];
  if (steps.length > 0) {
    await tx
      .insertInto('steps')
      .values(steps.map((step, position) => ({ id: step.id, job_id: spec.jobId, position, name: step.name, status: stepStatus })))
      .execute();
  }
}

/** `cancel-in-progress`: jobs of other runs in the same concurrency group are canceled. */
async function cancelSupersededRuns(tx: Tx, ctx: RunContext, plan: CompiledWorkflow): Promise<void> {
  const groups = [...new Set(plan.jobs.flatMap((j) => (j.concurrency?.cancelInProgress ? [`${ctx.projectId}:${j.concurrency.group}`] : [])))];
  if (groups.length === 0) return;
  const superseded = await tx
    .selectFrom('jobs')
    .select(['id', 'status', 'runner_id', 'run_id'])
    .where('concurrency_group', 'in', groups)
    .where('run_id', '!=', ctx.runId)
    .where('status', 'in', ['waiting', 'queued', 'running'])
    .execute();
  const runs = await cancelJobs(tx, superseded, `superseded by run ${ctx.runNumber} of its concurrency group`);
  for (const runId of runs) await syncRunStatus(tx, runId);
}
