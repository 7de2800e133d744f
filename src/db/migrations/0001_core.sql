-- Core schema: accounts, organizations, projects, workflows, runs, jobs, steps, logs, activities.

CREATE TABLE users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email text NOT NULL,
  password_hash text NOT NULL,
  is_admin boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE api_tokens (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name text NOT NULL,
  token_hash bytea NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  UNIQUE (user_id, name)
);

CREATE TABLE sessions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  token_hash bytea NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);

CREATE TYPE member_role AS ENUM ('guest', 'member', 'manager', 'owner');

CREATE TABLE organizations (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE organization_members (
  organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role member_role NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (organization_id, user_id)
);

CREATE TABLE projects (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (organization_id, name)
);

CREATE TABLE project_members (
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role member_role NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, user_id)
);

CREATE TABLE environments (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  name text NOT NULL,
  variables jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (project_id, name)
);

CREATE TABLE workflows (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  name text NOT NULL,
  script text NOT NULL,
  default_environment_id uuid REFERENCES environments (id) ON DELETE SET NULL,
  timeout_seconds integer,
  labels text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (project_id, name)
);

CREATE TYPE run_status AS ENUM ('queued', 'running', 'succeeded', 'failed', 'canceled', 'timed_out');

CREATE TABLE runs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  workflow_id uuid NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
  number bigint NOT NULL,
  status run_status NOT NULL DEFAULT 'queued',
  reason jsonb NOT NULL,
  environment_id uuid REFERENCES environments (id) ON DELETE SET NULL,
  parameters jsonb NOT NULL DEFAULT '{}',
  created_by uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz,
  UNIQUE (workflow_id, number)
);
CREATE INDEX runs_project_created ON runs (project_id, created_at DESC, id DESC);
CREATE INDEX runs_status ON runs (status) WHERE status IN ('queued', 'running');

CREATE TABLE jobs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  run_id uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  name text NOT NULL,
  status run_status NOT NULL DEFAULT 'queued',
  labels text[] NOT NULL DEFAULT '{}',
  spec jsonb NOT NULL,
  timeout_seconds integer NOT NULL,
  runner_id text,
  lease_expires_at timestamptz,
  cancel_requested boolean NOT NULL DEFAULT false,
  exit_code integer,
  error text,
  log_size bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz
);
CREATE INDEX jobs_queued ON jobs (created_at) WHERE status = 'queued';
CREATE INDEX jobs_running_lease ON jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_run ON jobs (run_id);

CREATE TABLE steps (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  position integer NOT NULL,
  name text NOT NULL,
  status run_status NOT NULL DEFAULT 'queued',
  exit_code integer,
  started_at timestamptz,
  finished_at timestamptz,
  UNIQUE (job_id, position)
);

-- A job's log is the concatenation of its chunks in offset order; offset is the byte position of
-- the chunk's first byte, so a resent chunk collides on the primary key instead of duplicating.
-- `size` is the chunk's length as written; `data` holds it deflated when `compressed`.
CREATE TABLE log_chunks (
  job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  "offset" bigint NOT NULL,
  size integer NOT NULL,
  compressed boolean NOT NULL,
  data bytea NOT NULL,
  PRIMARY KEY (job_id, "offset")
);
-- The server compresses what compresses; PostgreSQL's own pglz would only spend CPU again.
ALTER TABLE log_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE activities (
  id bigserial PRIMARY KEY,
  type text NOT NULL,
  organization_id uuid REFERENCES organizations (id) ON DELETE CASCADE,
  project_id uuid REFERENCES projects (id) ON DELETE CASCADE,
  actor_user_id uuid REFERENCES users (id) ON DELETE SET NULL,
  subject_type text NOT NULL,
  subject_id text NOT NULL,
  payload jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX activities_project ON activities (project_id, id DESC);
CREATE INDEX activities_organization ON activities (organization_id, id DESC);
