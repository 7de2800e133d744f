-- Runners as stored records: registration tokens, runners with their own credentials, and job
-- attempts (a job whose runner vanished ends `runner_lost` and is retried as a new attempt).

CREATE TABLE runner_tokens (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- NULL: an instance-wide token (admins); otherwise runners registered with it serve only this
  -- organization's projects.
  organization_id uuid REFERENCES organizations (id) ON DELETE CASCADE,
  description text NOT NULL DEFAULT '',
  token_hash bytea NOT NULL UNIQUE,
  created_by uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz
);

CREATE TABLE runners (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  organization_id uuid REFERENCES organizations (id) ON DELETE CASCADE,
  name text NOT NULL,
  credential_hash bytea NOT NULL UNIQUE,
  -- The runner inside `furrow start` (one per server host name); it has no usable credential.
  local boolean NOT NULL DEFAULT false,
  labels text[] NOT NULL DEFAULT '{}',
  executor text NOT NULL DEFAULT 'shell',
  capacity integer NOT NULL DEFAULT 1,
  version text NOT NULL DEFAULT '',
  paused boolean NOT NULL DEFAULT false,
  -- Connected to some server instance; trusted only while last_seen_at is recent, since an
  -- instance that died cannot clear it.
  connected boolean NOT NULL DEFAULT false,
  last_seen_at timestamptz,
  registered_with uuid REFERENCES runner_tokens (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX runners_local_name ON runners (name) WHERE local;

ALTER TYPE run_status ADD VALUE 'runner_lost';

ALTER TABLE workflows
  ADD COLUMN image text,
  ADD COLUMN network text NOT NULL DEFAULT 'default' CHECK (network IN ('default', 'none')),
  ADD COLUMN retry_count integer NOT NULL DEFAULT 1 CHECK (retry_count BETWEEN 0 AND 10),
  ADD COLUMN retry_on text[] NOT NULL DEFAULT '{runner_lost}';

ALTER TABLE jobs
  ADD COLUMN organization_id uuid REFERENCES organizations (id) ON DELETE CASCADE,
  ADD COLUMN attempt integer NOT NULL DEFAULT 1,
  ADD COLUMN max_attempts integer NOT NULL DEFAULT 2,
  ADD COLUMN retry_on text[] NOT NULL DEFAULT '{runner_lost}',
  -- The attempt this one retries; the earlier attempt keeps its log and outcome.
  ADD COLUMN retry_of uuid REFERENCES jobs (id) ON DELETE SET NULL,
  ADD COLUMN retried boolean NOT NULL DEFAULT false;
UPDATE jobs SET organization_id = p.organization_id FROM runs r JOIN projects p ON p.id = r.project_id WHERE r.id = jobs.run_id;
ALTER TABLE jobs ALTER COLUMN organization_id SET NOT NULL;
CREATE INDEX jobs_runner ON jobs (runner_id) WHERE status IN ('queued', 'running');
