import { randomUUID } from 'node:crypto';
import { sql, type QueryCreator } from 'kysely';
import type { Db, Tx } from '../../db/database.js';
import { inTransaction } from '../../db/transaction.js';
import type { Database, EnvironmentConcurrency, RunStatus } from '../../db/schema.js';
import { effectiveRetry } from '../../domain/job-retry.js';
import { checkParameters } from '../../domain/run-parameters.js';
import { evaluateCondition } from '../../pipeline/condition.js';
import type { CompiledJob, CompiledWorkflow, Concurrency, ConditionContext } from '../../pipeline/workflow-model.js';
import { AppError } from '../app-error.js';
import { activityRow } from '../store/activity-store.js';
import { copyArtifacts } from '../store/artifact-store.js';
import { commitStatusCtes } from '../store/commit-status-store.js';
import { statusDescription } from '../../domain/commit-status.js';
import { concurrencyKey, conditionContext, jobConcurrency, jobLabels, jobSpec, type JobEnvironment, type RunContext } from '../store/job-rows.js';
import { transitionJob } from '../store/job-transitions.js';
import { runColumns, runOfTrigger } from '../store/run-store.js';
import { lockRun } from './lock-run.js';
import type { RunPlan } from './run-plan.js';
import { settleRun } from './settle-run.js';

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
  /** Jobs one run may have (matrix instances included). */
  maxJobs: number;
  /** A re-run of `runId`; `keep` maps instance keys to the ids of the jobs whose success stands. */
  rerun?: { runId: string; keep: Map<string, string> };
  /**
   * What a trigger starts the run for (a schedule's fire time): the workflow's run of that key,
   * if there is one, is the answer instead of a new run.
   */
  triggerKey?: string;
  /** The webhook delivery the run was started for. */
  deliveryId?: string;
  /** A pull request's run gets the project's secrets only when this says so (decided when it is queued). */
  pullRequestSecrets?: boolean;
}

/** The branch or tag a ref names (`refs/heads/…`, `refs/tags/…`), if either. */
export function branchAndTag(ref: string | null): { branch: string | null; tag: string | null } {
  return {
    branch: ref?.startsWith('refs/heads/') ? ref.slice(11) : null,
    tag: ref?.startsWith('refs/tags/') ? ref.slice(10) : null,
  };
}

/**
 * Checks a run of a compiled workflow (its environments and parameters), takes its number, then
 * queues it in one transaction: the run with its plan, one job per compiled job (waiting when it
 * needs others or a protected environment's approval, queued otherwise, skipped when its `if`
 * says no), their steps, and `run.queued`. Runners waiting for
 * work hear of it when the transaction commits.
 */
export async function queueRun(db: Db, input: QueueRunInput) {
  if (input.plan.jobs.length > input.maxJobs) {
    throw new AppError('too_many_jobs', `The workflow makes ${input.plan.jobs.length} jobs (matrix instances included); a run may have at most ${input.maxJobs} (FURROW_MAX_JOBS_PER_RUN). Split it, or narrow its matrices.`);
  }
  const { environments: envRows, ...wf } = await db
    .selectFrom('workflows')
    .innerJoin('projects', 'projects.id', 'workflows.project_id')
    .select([
      'workflows.id',
      'workflows.name',
      'workflows.project_id',
      'workflows.default_environment_id',
      'workflows.timeout_seconds',
      'workflows.labels',
      'workflows.image',
      'workflows.network',
      'projects.organization_id',
      // The project's environments ride along: one round trip less on the way to a run's start.
      sql<EnvironmentRow[]>`(SELECT coalesce(json_agg(json_build_object('id', e.id, 'name', e.name, 'variables', e.variables, 'requires_approval', e.requires_approval, 'concurrency', e.concurrency)), '[]')
        FROM environments e WHERE e.project_id = workflows.project_id)`.as('environments'),
    ])
    .where('workflows.id', '=', input.workflowId)
    .executeTakeFirstOrThrow();
  const environments = new Map(envRows.map((e) => [e.name, { id: e.id, name: e.name, variables: e.variables, requiresApproval: e.requires_approval, concurrency: e.concurrency }]));
  const runEnvironmentId = input.environmentId ?? wf.default_environment_id;
  const runEnvironment = runEnvironmentId ? [...environments.values()].find((e) => e.id === runEnvironmentId) : undefined;
  if (runEnvironmentId && !runEnvironment) {
    throw new AppError('validation_failed', 'environmentId does not name an environment of this project.', [{ field: 'environmentId', message: 'no such environment in this project' }]);
  }
  const jobEnvironments = input.plan.jobs.map((job) => (job.environment === null ? runEnvironment : environments.get(job.environment)));
  input.plan.jobs.forEach((job, i) => {
    if (job.environment !== null && !jobEnvironments[i]) {
      throw new AppError('validation_failed', `Job "${job.key}" runs in environment "${job.environment}", which this project does not have.`, [
        { field: `jobs.${job.id}.environment`, message: 'no such environment in this project' },
      ]);
    }
  });
  // A re-run repeats parameters that passed these checks when its run started.
  if (!input.rerun) await checkRunParameters(db, wf.project_id, input, jobEnvironments);
  const started = input.triggerKey === undefined ? undefined : await runOfTrigger(db, wf.id, input.triggerKey);
  if (started) return { ...started, existing: true as const };
  // The number is taken in a statement of its own, after the checks: the workflow's row is
  // locked for that statement only, so runs of one workflow queue side by side. A run whose
  // queueing fails after this (the database went away) leaves a gap in the numbers.
  const { run_counter: next } = await db
    .updateTable('workflows')
    .set({ run_counter: sql`run_counter + 1` })
    .where('id', '=', wf.id)
    .returning('run_counter')
    .executeTakeFirstOrThrow();
  try {
    return await inTransaction(db, (tx) => insertRun(tx, input, { wf, runEnvironment, jobEnvironments, next }));
  } catch (err) {
    // Another instance started the same trigger's run meanwhile (this one's number stays a gap).
    const raced = (err as { constraint?: string }).constraint === 'runs_trigger_key' ? await runOfTrigger(db, wf.id, input.triggerKey!) : undefined;
    if (raced) return { ...raced, existing: true as const };
    throw err;
  }
}

interface QueuedWorkflow {
  wf: { id: string; name: string; project_id: string; timeout_seconds: number | null; labels: string[]; image: string | null; network: 'default' | 'none'; organization_id: string };
  runEnvironment: JobEnvironment | undefined;
  jobEnvironments: (JobEnvironment | undefined)[];
  next: number;
}

/** The run, its jobs and steps, and `run.queued`, in one transaction. */
async function insertRun(tx: Tx, input: QueueRunInput, { wf, runEnvironment, jobEnvironments, next }: QueuedWorkflow) {
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
  // `run.queued` rides on the run's insert.
  const run = await tx
    .with('queued', (db) =>
      db.insertInto('activities').values(
        activityRow({
          type: 'run.queued',
          organizationId: wf.organization_id,
          projectId: wf.project_id,
          actorUserId: input.actorUserId,
          subjectType: 'run',
          subjectId: runId,
          payload: { workflowId: wf.id, number: next, reason: input.reason, ...(commit ? { commit } : {}) },
        }),
      ),
    )
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
      trigger_key: input.triggerKey ?? null,
      delivery_id: input.deliveryId ?? null,
      pull_request_secrets: input.pullRequestSecrets ?? false,
    })
    .returning(runColumns)
    .executeTakeFirstOrThrow();
  // A run at a commit of a repository that reports statuses tells its forge it is pending.
  if (commit) await sql`WITH ${commitStatusCtes(runId, 'pending', statusDescription('queued', Number(next)))} SELECT count(*) FROM status_sent`.execute(tx);
  const statuses: RunStatus[] = [];
  for (const [i, job] of input.plan.jobs.entries()) statuses.push(await insertJob(tx, ctx, job, jobEnvironments[i], input.rerun?.keep.get(job.key)));
  // A re-run keeps the artifacts of the jobs whose outcome it keeps (the files are shared).
  if (input.rerun) await copyArtifacts(tx, input.rerun.runId, runId, [...input.rerun.keep.values()]);
  await makeRoomInGroups(tx, ctx, input.plan.jobs.map((job, i) => jobConcurrency(job, jobEnvironments[i])));
  // Jobs whose `if` said no at once, or kept ones, may already decide the run's status (and
  // release waiting ones); with every job queued or waiting there is nothing to decide yet.
  if (statuses.length === 0 || statuses.some((st) => st !== 'queued' && st !== 'waiting')) run.status = await settleRun(tx, await lockRun(tx, runId));
  return run;
}

/** Parameters pass only where they cannot redirect a deployment: see domain/run-parameters.ts. */
async function checkRunParameters(tx: Db, projectId: string, input: QueueRunInput, jobEnvironments: (JobEnvironment | undefined)[]): Promise<void> {
  if (Object.keys(input.parameters).length === 0) return;
  const protectedNames = new Map<string, string>();
  const used = [...new Map(jobEnvironments.flatMap((e) => (e ? [[e.id, e] as const] : []))).values()];
  for (const e of used) for (const name of Object.keys(e.variables)) protectedNames.set(name, `environment ${e.name}`);
  const secrets = await tx
    .selectFrom('secrets')
    .select(['name', 'environment_id'])
    .where('project_id', '=', projectId)
    .where((eb) => eb.or([eb('environment_id', 'is', null), ...(used.length > 0 ? [eb('environment_id', 'in', used.map((e) => e.id))] : [])]))
    .execute();
  for (const s of secrets) protectedNames.set(s.name, 'a secret');
  const inputs = Object.keys(input.plan.on.manual?.inputs ?? {});
  const problems = checkParameters(input.parameters, { inputs: inputs.length > 0 ? inputs : null, protectedNames });
  if (problems.length > 0) throw new AppError('parameter_not_allowed', `The run's parameters: ${problems.map((p) => `${p.field} ${p.message}`).join('; ')}.`, problems);
}

interface EnvironmentRow {
  id: string;
  name: string;
  variables: Record<string, string>;
  requires_approval: boolean;
  concurrency: EnvironmentConcurrency | null;
}

/** The status a job starts in: kept from an earlier run, waiting, queued, or skipped by its `if`. */
function initialStatus(ctx: RunContext, job: CompiledJob, environment: JobEnvironment | undefined, kept: string | undefined): RunStatus {
  if (kept) return 'succeeded';
  if (job.needs.length > 0) return 'waiting';
  if (!evaluateCondition(job.if, conditionContext(ctx.furrow, job, 'success'))) return 'skipped';
  return environment?.requiresApproval ? 'waiting' : 'queued';
}

/** Inserts a job and its steps; `kept` is the earlier run's job whose success this one takes over. Resolves with the job's status. */
async function insertJob(tx: Tx, ctx: RunContext, job: CompiledJob, environment: JobEnvironment | undefined, kept: string | undefined): Promise<RunStatus> {
  const spec = jobSpec(ctx, job, environment);
  const status = initialStatus(ctx, job, environment, kept);
  const concurrency = jobConcurrency(job, environment);
  const retry = effectiveRetry(job.retry, environment !== undefined);
  const jobRow = (db: QueryCreator<Database>) =>
    db
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
      max_attempts: 1 + retry.count,
      retry_on: [...retry.on],
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
      concurrency_group: concurrency ? concurrencyKey(ctx.projectId, concurrency) : null,
      ...(status === 'skipped' || kept ? { finished_at: sql`now()` } : {}),
      ...(status === 'queued' ? { queued_at: sql`now()` } : {}),
      // Distinct times in file order, within the one transaction: the order lists and claims keep.
      created_at: sql`clock_timestamp()`,
    })
    .returning(sql<string>`CASE WHEN ${status} = 'queued' THEN pg_notify('furrow_jobs', ${spec.jobId}) END`.as('notified'));
  const stepStatus: RunStatus = status === 'skipped' || kept ? 'skipped' : 'queued';
  const steps = [...(spec.checkout ? [{ id: spec.checkout.stepId, name: 'checkout' }] : []), ...spec.steps];
  // The job and its steps in one statement.
  if (steps.length === 0) await jobRow(tx).execute();
  else await tx.with('job', jobRow).insertInto('steps').values(steps.map((step, position) => ({ id: step.id, job_id: spec.jobId, position, name: step.name, status: stepStatus }))).execute();
  if (kept) await keepOutput(tx, kept, spec.jobId);
  return status;
}

/** A kept job shows what the job it stands for did: its steps' outcomes, its times and its log. */
async function keepOutput(tx: Tx, from: string, to: string): Promise<void> {
  await sql`UPDATE jobs t SET exit_code = f.exit_code, started_at = f.started_at, finished_at = f.finished_at, log_size = f.log_size, log_received = f.log_received
    FROM jobs f WHERE f.id = ${from} AND t.id = ${to}`.execute(tx);
  await sql`UPDATE steps t SET status = f.status, exit_code = f.exit_code, started_at = f.started_at, finished_at = f.finished_at
    FROM steps f WHERE f.job_id = ${from} AND t.job_id = ${to} AND f.position = t.position`.execute(tx);
  await sql`INSERT INTO log_chunks (job_id, "offset", size, compressed, data) SELECT ${to}, "offset", size, compressed, data FROM log_chunks WHERE job_id = ${from}`.execute(tx);
}

/**
 * What a new run does to the other runs of its concurrency groups, each run under its own lock
 * (taken in id order, so two new runs of a group never deadlock): `cancel-in-progress` asks their
 * unfinished jobs of the group to stop; `supersede` skips those not started yet (waiting, or
 * queued and not claimed by a runner), and lets a running one finish.
 */
async function makeRoomInGroups(tx: Tx, ctx: RunContext, concurrency: (Concurrency | null)[]): Promise<void> {
  const key = (c: Concurrency) => concurrencyKey(ctx.projectId, c);
  const cancel = [...new Set(concurrency.flatMap((c) => (c?.cancelInProgress ? [key(c)] : [])))];
  const supersede = [...new Set(concurrency.flatMap((c) => (c?.supersede ? [key(c)] : [])))];
  if (cancel.length === 0 && supersede.length === 0) return;
  const reason = `superseded by run #${ctx.runNumber} of its concurrency group`;
  const runs = await tx
    .selectFrom('jobs')
    .select('run_id')
    .distinct()
    .where('concurrency_group', 'in', [...cancel, ...supersede])
    .where('run_id', '!=', ctx.runId)
    .where('status', 'in', ['waiting', 'queued', 'running'])
    .orderBy('run_id')
    .execute();
  for (const { run_id } of runs) {
    const run = await lockRun(tx, run_id);
    if (cancel.length > 0) {
      const stopped = await tx
        .updateTable('jobs')
        .set({ cancel_requested: true, cancel_reason: sql`coalesce(cancel_reason, ${reason})` })
        .where('run_id', '=', run_id)
        .where('concurrency_group', 'in', cancel)
        .where('status', 'in', ['waiting', 'queued', 'running'])
        .returning(['id'])
        .execute();
      for (const { id } of stopped) await sql`SELECT pg_notify('furrow_cancel', ${id})`.execute(tx);
    }
    if (supersede.length > 0) {
      // Locked, so that a claim (which takes no run lock) either has it already or skips it.
      const unstarted = await tx
        .selectFrom('jobs')
        .select('id')
        .where('run_id', '=', run_id)
        .where('concurrency_group', 'in', supersede)
        .where((eb) => eb.or([eb('status', '=', 'waiting'), eb.and([eb('status', '=', 'queued'), eb('runner_id', 'is', null)])]))
        .forUpdate()
        .execute();
      for (const { id } of unstarted) await transitionJob(tx, id, 'skipped', { error: reason });
    }
    await settleRun(tx, run);
  }
}
