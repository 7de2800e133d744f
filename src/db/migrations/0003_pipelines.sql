-- Repositories with deploy keys, encrypted secrets, workflow files compiled into runs of several
-- jobs (a DAG with matrix instances), approvals, concurrency groups and artifacts.

CREATE TABLE repositories (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  name text NOT NULL,
  url text NOT NULL,
  default_branch text NOT NULL DEFAULT 'main',
  key_type text NOT NULL DEFAULT 'ed25519' CHECK (key_type IN ('ed25519', 'rsa')),
  -- NULL until the key maker has run (or when the key material was lost: `furrow keys rekey-missing`).
  public_key text,
  private_key bytea, -- sealed with the instance's secret key
  key_fingerprint text,
  -- Pinned host keys (known_hosts lines): learned at the first access check unless given.
  known_hosts text,
  access_status text NOT NULL DEFAULT 'pending' CHECK (access_status IN ('pending', 'ok', 'failed')),
  access_error text,
  access_checked_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (project_id, name)
);

CREATE TABLE secrets (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  -- NULL: every run of the project; otherwise only runs in this environment (which win on a clash).
  environment_id uuid REFERENCES environments (id) ON DELETE CASCADE,
  name text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('env', 'ssh')),
  value bytea NOT NULL, -- sealed with the instance's secret key
  created_by uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX secrets_name ON secrets (project_id, coalesce(environment_id, '00000000-0000-0000-0000-000000000000'::uuid), name);

ALTER TABLE environments ADD COLUMN requires_approval boolean NOT NULL DEFAULT false;

-- A workflow is a script (UI), a YAML definition written in the UI, or a file in a repository.
ALTER TABLE workflows
  ALTER COLUMN script DROP NOT NULL,
  ADD COLUMN definition text,
  ADD COLUMN repository_id uuid REFERENCES repositories (id) ON DELETE CASCADE,
  ADD COLUMN path text,
  ADD CONSTRAINT workflows_one_source CHECK ((script IS NOT NULL)::int + (definition IS NOT NULL)::int + (path IS NOT NULL)::int = 1),
  ADD CONSTRAINT workflows_file_in_repository CHECK (path IS NULL OR repository_id IS NOT NULL);

ALTER TYPE run_status ADD VALUE 'waiting' BEFORE 'queued';
ALTER TYPE run_status ADD VALUE 'skipped';

ALTER TABLE runs
  ADD COLUMN repository_id uuid REFERENCES repositories (id) ON DELETE SET NULL,
  ADD COLUMN ref text,
  ADD COLUMN commit_sha text,
  -- The compiled workflow and the context its conditions are evaluated in: later decisions
  -- (releasing dependants, re-runs) read it instead of the file, which may have changed.
  ADD COLUMN plan jsonb,
  ADD COLUMN rerun_of uuid REFERENCES runs (id) ON DELETE SET NULL;

ALTER TABLE jobs
  -- The job's id in the workflow file (shared by its matrix instances), the instance's key in
  -- the run (`test (node=20)`), and the job ids it needs.
  ADD COLUMN job_key text,
  ADD COLUMN instance_key text,
  ADD COLUMN needs text[] NOT NULL DEFAULT '{}',
  ADD COLUMN condition text,
  ADD COLUMN continue_on_error boolean NOT NULL DEFAULT false,
  ADD COLUMN matrix jsonb,
  -- Matrix instances of one job_key: at most max_parallel run at once; fail_fast cancels siblings.
  ADD COLUMN max_parallel integer,
  ADD COLUMN fail_fast boolean NOT NULL DEFAULT false,
  ADD COLUMN environment_id uuid REFERENCES environments (id) ON DELETE SET NULL,
  -- 'pending' while a protected environment waits for a manager; 'approved' once one approved.
  ADD COLUMN approval text CHECK (approval IN ('pending', 'approved')),
  ADD COLUMN approved_by uuid REFERENCES users (id) ON DELETE SET NULL,
  -- project id + ':' + the group's name; one job of a group runs at a time.
  ADD COLUMN concurrency_group text,
  -- Bytes of the runner's log stream taken in; log_size counts what was stored after masking.
  ADD COLUMN log_received bigint NOT NULL DEFAULT 0,
  -- SHA-256 of the token the job's runner uses for artifacts while the job runs.
  ADD COLUMN job_token_hash bytea;
CREATE INDEX jobs_concurrency ON jobs (concurrency_group) WHERE concurrency_group IS NOT NULL;
CREATE UNIQUE INDEX jobs_token ON jobs (job_token_hash) WHERE job_token_hash IS NOT NULL;

CREATE TABLE artifacts (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  run_id uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  job_id uuid REFERENCES jobs (id) ON DELETE SET NULL,
  name text NOT NULL,
  size bigint NOT NULL,
  sha256 text NOT NULL,
  -- File under the data dir's artifacts/ folder; a re-run's copy shares its original's file.
  storage_key text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (run_id, name)
);
