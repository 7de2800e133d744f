import type { ColumnType, Generated, Selectable } from 'kysely';

import type { Role } from '../domain/capabilities.js';
import type { RunStatus } from '../domain/run-state.js';

export type { Role, RunStatus };

/** Row shapes of the tables created by migrations/, as Kysely sees them. */

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type Json<T> = ColumnType<T, string, string>;

export interface UsersTable {
  id: Generated<string>;
  email: string;
  password_hash: string;
  is_admin: Generated<boolean>;
  created_at: Generated<Date>;
}

export interface ApiTokensTable {
  id: Generated<string>;
  user_id: string;
  name: string;
  token_hash: Buffer;
  created_at: Generated<Date>;
  last_used_at: Timestamp | null;
}

export interface SessionsTable {
  id: Generated<string>;
  user_id: string;
  token_hash: Buffer;
  created_at: Generated<Date>;
  expires_at: Timestamp;
}

export interface OrganizationsTable {
  id: Generated<string>;
  name: string;
  created_at: Generated<Date>;
}

export interface OrganizationMembersTable {
  organization_id: string;
  user_id: string;
  role: Role;
  created_at: Generated<Date>;
}

export interface ProjectsTable {
  id: Generated<string>;
  organization_id: string;
  name: string;
  pull_request_secrets: Generated<boolean>;
  created_at: Generated<Date>;
}

export interface ProjectMembersTable {
  project_id: string;
  user_id: string;
  role: Role;
  created_at: Generated<Date>;
}

export interface EnvironmentsTable {
  id: Generated<string>;
  project_id: string;
  name: string;
  variables: Json<Record<string, string>>;
  requires_approval: Generated<boolean>;
  /** The group its jobs join when they name none (see 0013_environment_concurrency.sql). */
  concurrency: EnvironmentConcurrency | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export type EnvironmentConcurrency = 'queue' | 'supersede' | 'cancel-in-progress';

/** A workflow file's `on` as read at a commit of its default branch: its triggers in words, or why they could not be read. */
export interface FileOn {
  commit: string;
  triggers: string[] | null;
  problem: string | null;
}

export interface WorkflowsTable {
  id: Generated<string>;
  project_id: string;
  name: string;
  script: string | null;
  default_environment_id: string | null;
  timeout_seconds: number | null;
  labels: string[];
  image: string | null;
  network: Generated<'default' | 'none'>;
  /** Both null: the default policy (see domain/job-retry.ts). */
  retry_count: number | null;
  retry_on: string[] | null;
  definition: string | null;
  repository_id: string | null;
  path: string | null;
  /** The number of the workflow's latest run (see queue-run.ts). */
  run_counter: Generated<number>;
  /** A file's `on` as last read at the default branch (see migration 0015). */
  file_on: Json<FileOn | null> | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface RunsTable {
  id: Generated<string>;
  project_id: string;
  workflow_id: string;
  number: number;
  status: Generated<RunStatus>;
  reason: Json<Record<string, unknown>>;
  environment_id: string | null;
  parameters: Json<Record<string, string>>;
  created_by: string | null;
  repository_id: string | null;
  ref: string | null;
  commit_sha: string | null;
  plan: Json<unknown> | null;
  rerun_of: string | null;
  /** What a trigger started the run for (see 0012_triggers.sql); null for other runs. */
  trigger_key: string | null;
  delivery_id: Generated<string | null>;
  pull_request_secrets: Generated<boolean>;
  cancel_requested_at: Timestamp | null;
  cancel_forced: Generated<boolean>;
  canceled_by: string | null;
  created_at: Generated<Date>;
  started_at: Timestamp | null;
  finished_at: Timestamp | null;
}

export interface JobsTable {
  id: Generated<string>;
  run_id: string;
  name: string;
  status: Generated<RunStatus>;
  labels: string[];
  spec: Json<unknown>;
  timeout_seconds: number;
  runner_id: string | null;
  lease_expires_at: Timestamp | null;
  cancel_requested: Generated<boolean>;
  exit_code: number | null;
  error: string | null;
  log_size: Generated<number>;
  organization_id: string;
  attempt: Generated<number>;
  max_attempts: Generated<number>;
  retry_on: Generated<string[]>;
  retry_of: string | null;
  retried: Generated<boolean>;
  job_key: string | null;
  instance_key: string | null;
  needs: Generated<string[]>;
  condition: string | null;
  continue_on_error: Generated<boolean>;
  matrix: Json<Record<string, string>> | null;
  max_parallel: number | null;
  fail_fast: Generated<boolean>;
  environment_id: string | null;
  approval: 'pending' | 'approved' | null;
  approved_by: string | null;
  concurrency_group: string | null;
  log_received: Generated<number>;
  job_token_hash: Buffer | null;
  cancel_reason: string | null;
  queued_at: Timestamp | null;
  not_before: Timestamp | null;
  created_at: Generated<Date>;
  started_at: Timestamp | null;
  finished_at: Timestamp | null;
}

export interface RunnerTokensTable {
  id: Generated<string>;
  organization_id: string | null;
  description: Generated<string>;
  token_hash: Buffer;
  created_by: string | null;
  created_at: Generated<Date>;
  last_used_at: Timestamp | null;
  prefix: Generated<string>;
  max_uses: Generated<number>;
  uses: Generated<number>;
  expires_at: Timestamp | null;
  revoked_at: Timestamp | null;
  last_used_by: string | null;
  last_used_by_name: string | null;
}

export interface RunnersTable {
  id: Generated<string>;
  organization_id: string | null;
  name: string;
  credential_hash: Buffer;
  local: Generated<boolean>;
  labels: Generated<string[]>;
  executor: Generated<string>;
  capacity: Generated<number>;
  version: Generated<string>;
  paused: Generated<boolean>;
  connected: Generated<boolean>;
  last_seen_at: Timestamp | null;
  registered_with: string | null;
  created_at: Generated<Date>;
}

export interface StepsTable {
  id: Generated<string>;
  job_id: string;
  position: number;
  name: string;
  status: Generated<RunStatus>;
  exit_code: number | null;
  started_at: Timestamp | null;
  finished_at: Timestamp | null;
}

export interface LogChunksTable {
  job_id: string;
  offset: number;
  size: number;
  compressed: boolean;
  data: Buffer;
}

export interface ActivitiesTable {
  id: Generated<number>;
  type: string;
  organization_id: string | null;
  project_id: string | null;
  actor_user_id: string | null;
  subject_type: string;
  subject_id: string;
  payload: Json<Record<string, unknown>>;
  created_at: Generated<Date>;
}

export interface RepositoriesTable {
  id: Generated<string>;
  project_id: string;
  name: string;
  url: string;
  default_branch: Generated<string>;
  key_type: Generated<'ed25519' | 'rsa'>;
  public_key: string | null;
  private_key: Buffer | null;
  key_fingerprint: string | null;
  known_hosts: string | null;
  access_status: Generated<'pending' | 'ok' | 'failed'>;
  access_error: string | null;
  access_checked_at: Timestamp | null;
  webhook_slug: Generated<string>;
  webhook_secret: Buffer | null;
  webhook_refused_at: Timestamp | null;
  webhook_refused_reason: string | null;
  polling: Generated<boolean>;
  polled_at: Timestamp | null;
  poll_next_at: Timestamp | null;
  poll_claimed_until: Timestamp | null;
  poll_failures: Generated<number>;
  poll_error: string | null;
  status_forge: StatusForge | null;
  status_api_url: string | null;
  status_repository: string | null;
  status_token: Buffer | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface SecretsTable {
  id: Generated<string>;
  project_id: string;
  environment_id: string | null;
  name: string;
  kind: 'env' | 'ssh';
  value: Buffer;
  created_by: string | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface ArtifactsTable {
  id: Generated<string>;
  run_id: string;
  job_id: string | null;
  name: string;
  size: number;
  unpacked_size: number;
  sha256: string;
  storage_key: string;
  created_at: Generated<Date>;
}

export type TriggerKind = 'schedule' | 'workflow' | 'webhook' | 'git';

export interface TriggersTable {
  id: Generated<string>;
  workflow_id: string;
  kind: TriggerKind;
  source: Generated<'api' | 'file'>;
  description: Generated<string>;
  enabled: Generated<boolean>;
  disabled_reason: string | null;
  ref: string | null;
  parameters: Json<Record<string, string>>;
  cron: string | null;
  timezone: Generated<string>;
  run_at: Timestamp | null;
  missed: Generated<'run-once' | 'skip'>;
  next_fire_at: Timestamp | null;
  claimed_until: Timestamp | null;
  last_fired_at: Timestamp | null;
  last_run_id: string | null;
  last_error: string | null;
  failures: Generated<number>;
  upstream_workflow_id: string | null;
  upstream_name: string | null;
  statuses: Generated<string[]>;
  branches: Generated<string[]>;
  webhook_slug: string | null;
  webhook_secret: Buffer | null;
  fields: ColumnType<Record<string, string>, string | undefined, string>;
  refs: Generated<string[]>;
  changes: Generated<string[]>;
  created_by: string | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export type Forge = 'github' | 'gitlab' | 'gitea' | 'generic';
export type DeliveryStatus = 'queued' | 'done' | 'failed';

export interface DeliveriesTable {
  id: Generated<string>;
  project_id: string;
  repository_id: string | null;
  trigger_id: string | null;
  forge: Forge;
  event: string;
  delivery_key: string;
  headers: Json<Record<string, string>>;
  body: Buffer;
  source_address: string | null;
  status: Generated<DeliveryStatus>;
  outcome: Json<unknown> | null;
  attempts: Generated<number>;
  claimed_until: Timestamp | null;
  next_attempt_at: Timestamp | null;
  queued_at: Generated<Date>;
  claim_token: string | null;
  received_at: Generated<Date>;
  processed_at: Timestamp | null;
}

export type StatusForge = 'github' | 'gitlab' | 'gitea';
export type CommitState = 'pending' | 'success' | 'failure' | 'error';

export interface CommitStatusesTable {
  id: Generated<string>;
  run_id: string;
  repository_id: string;
  commit_sha: string;
  state: CommitState;
  description: string;
  status: Generated<'queued' | 'sent' | 'failed'>;
  attempts: Generated<number>;
  last_error: string | null;
  created_at: Generated<Date>;
  sent_at: Timestamp | null;
}

export interface RepositoryRefsTable {
  repository_id: string;
  ref: string;
  commit_sha: string;
}

export interface Database {
  users: UsersTable;
  api_tokens: ApiTokensTable;
  sessions: SessionsTable;
  organizations: OrganizationsTable;
  organization_members: OrganizationMembersTable;
  projects: ProjectsTable;
  project_members: ProjectMembersTable;
  environments: EnvironmentsTable;
  workflows: WorkflowsTable;
  runs: RunsTable;
  jobs: JobsTable;
  steps: StepsTable;
  log_chunks: LogChunksTable;
  activities: ActivitiesTable;
  runner_tokens: RunnerTokensTable;
  runners: RunnersTable;
  repositories: RepositoriesTable;
  secrets: SecretsTable;
  artifacts: ArtifactsTable;
  triggers: TriggersTable;
  deliveries: DeliveriesTable;
  repository_refs: RepositoryRefsTable;
  commit_statuses: CommitStatusesTable;
}

export type Run = Selectable<RunsTable>;
export type Job = Selectable<JobsTable>;
export type Step = Selectable<StepsTable>;
export type Workflow = Selectable<WorkflowsTable>;
