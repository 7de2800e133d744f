import type { PullRequestAction } from '../domain/forge-event.js';

/**
 * A workflow file after parsing and compiling: everything the server needs to queue a run's jobs.
 * It is plain JSON (stored with each run as its plan), so later decisions (releasing dependants,
 * re-runs) never read the file again.
 */

/** Something wrong in a workflow file, where it is (1-based line and column). */
export interface WorkflowProblem {
  file: string;
  line: number;
  column: number;
  message: string;
}

/**
 * Which pushes start a run. Empty lists do not filter; as on GitHub, when only tag filters are set
 * branch pushes do not match, and when only branch filters are set tag pushes do not.
 */
export interface PushFilter {
  branches: string[];
  branchesIgnore: string[];
  tags: string[];
  tagsIgnore: string[];
  paths: string[];
  pathsIgnore: string[];
}

export interface ManualInput {
  description: string;
  required: boolean;
  default: string | null;
  /** Allowed values, when the input is a choice. */
  options: string[] | null;
}

/** When the workflow starts (`on:`); triggers other than manual are acted on by the trigger parts. */
export interface WorkflowTriggers {
  push: PushFilter | null;
  /** `timezone` is an IANA name; null means UTC. */
  schedule: { cron: string; timezone: string | null }[];
  /** Pull requests into matching base branches, for these actions (default: opened, synchronize, reopened). */
  pullRequest: { branches: string[]; branchesIgnore: string[]; types: PullRequestAction[] } | null;
  /** Deletions of matching branches or tags (empty lists: every deletion). */
  delete: { branches: string[]; tags: string[] } | null;
  /** Forge deliveries of these events other than pushes and pull requests (empty: every such event). */
  webhook: { events: string[] } | null;
  manual: { inputs: Record<string, ManualInput> } | null;
  /** Runs after a run of one of `workflows` (by name) ends with one of `statuses` on one of `branches` (empty: any). */
  workflowRun: { workflows: string[]; statuses: ChainStatus[]; branches: string[] } | null;
}

/** The end of an upstream run a chain may wait for. */
export type ChainStatus = 'succeeded' | 'failed' | 'canceled' | 'timed_out' | 'skipped';
export const CHAIN_STATUSES: readonly ChainStatus[] = ['succeeded', 'failed', 'canceled', 'timed_out', 'skipped'];

export interface CompiledStep {
  name: string;
  run: string;
  env: Record<string, string>;
  timeoutSeconds: number | null;
  continueOnError: boolean;
  /** The step's `if` source, or null (runs while the job has succeeded so far). */
  if: string | null;
}

/** One runnable job: a job of the file, or one instance of its matrix. */
export interface CompiledJob {
  /** The job's id in the file (`jobs.<id>`), shared by its matrix instances. */
  id: string;
  /** Unique in the run: the id, or for a matrix instance `id (a=1, b=x)`. */
  key: string;
  /** Display name (`name:` or the id), with `${{ matrix.* }}` substituted and matrix values appended. */
  name: string;
  /** Job ids (not keys) this job waits for: every instance of each must have ended. */
  needs: string[];
  /** Runner labels (`runs-on`), all required. */
  runsOn: string[];
  /** The job's `if` source, or null (runs when every needed job succeeded). */
  if: string | null;
  matrix: Record<string, string> | null;
  /** Workflow `env` overlaid with the job's own. */
  env: Record<string, string>;
  steps: CompiledStep[];
  timeoutSeconds: number | null;
  continueOnError: boolean;
  /**
   * Further attempts after a failure whose outcome is in `on` (runner_lost, failed, timed_out);
   * null when the file does not say (the server's default applies, see domain/job-retry.ts).
   */
  retry: { count: number; on: ('runner_lost' | 'failed' | 'timed_out')[] } | null;
  image: string | null;
  /** Name of the project environment the job runs in (its variables, secrets and protection). */
  environment: string | null;
  concurrency: Concurrency | null;
  /** Matrix instances of this job that may run at once (null: no limit). */
  maxParallel: number | null;
  /** When one matrix instance fails, the others are canceled (GitHub's default: true). */
  failFast: boolean;
  /** Checkout of the run's commit before the steps; `false` turns it off; depth 0 = full history. */
  checkout: { enabled: boolean; depth: number };
  upload: { name: string; paths: string[] }[];
  download: { name: string; path: string }[];
}

/**
 * A concurrency group: its jobs (of any run of the project's workflows) run one at a time, in the
 * order they were queued. A new run with `cancelInProgress` stops the group's unfinished jobs of
 * other runs; with `supersede` it skips those not started yet, and lets a running one finish.
 */
export interface Concurrency {
  group: string;
  cancelInProgress: boolean;
  /** Absent in plans stored before it existed. */
  supersede?: boolean;
}

export interface CompiledWorkflow {
  name: string | null;
  on: WorkflowTriggers;
  env: Record<string, string>;
  /** The workflow's `concurrency`, already each job's default (see CompiledJob.concurrency). */
  concurrency: Concurrency | null;
  /** In file order, matrix instances expanded in place. */
  jobs: CompiledJob[];
}

/** What `if` expressions can read; `furrow.*` names are also reachable as `github.*`. */
export interface ConditionContext {
  furrow: {
    event: string; // manual, push, tag, schedule, webhook, workflow_run, rerun
    ref: string | null; // refs/heads/main, refs/tags/v1
    branch: string | null;
    tag: string | null;
    sha: string | null;
    workflow: string;
    run_number: number;
  };
  matrix: Record<string, string>;
  env: Record<string, string>;
  /**
   * How the jobs it needs (job-level `if`) or the earlier steps (step-level `if`) ended;
   * `skipped` when a needed job was skipped: then only `always()` holds of the status functions.
   */
  status: 'success' | 'failure' | 'cancelled' | 'skipped';
}
