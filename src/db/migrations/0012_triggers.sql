-- What starts a workflow by itself. A schedule fires at the times of its cron expression (in its
-- time zone) or once at `run_at`; `next_fire_at` is the next time to fire (null: nothing to wait
-- for), and an instance that takes a due fire holds it until `claimed_until`, so that with several
-- instances each fire is taken by one. A workflow trigger (a chain) fires when a run of its
-- upstream workflow ends with one of `statuses` (any when empty) on one of `branches` (any when
-- empty); the file's name it by `upstream_name`. Triggers of a workflow file's `on` have source
-- `file` and follow the file.
CREATE TABLE triggers (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workflow_id uuid NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
  kind text NOT NULL CHECK (kind IN ('schedule', 'workflow')),
  source text NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'file')),
  description text NOT NULL DEFAULT '',
  enabled boolean NOT NULL DEFAULT true,
  disabled_reason text,
  ref text,
  parameters jsonb NOT NULL DEFAULT '{}',
  cron text,
  timezone text NOT NULL DEFAULT 'UTC',
  run_at timestamptz,
  missed text NOT NULL DEFAULT 'run-once' CHECK (missed IN ('run-once', 'skip')),
  next_fire_at timestamptz,
  claimed_until timestamptz,
  last_fired_at timestamptz,
  last_run_id uuid REFERENCES runs (id) ON DELETE SET NULL,
  last_error text,
  failures integer NOT NULL DEFAULT 0,
  upstream_workflow_id uuid REFERENCES workflows (id) ON DELETE CASCADE,
  upstream_name text,
  statuses text[] NOT NULL DEFAULT '{}',
  branches text[] NOT NULL DEFAULT '{}',
  created_by uuid REFERENCES users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CHECK (kind <> 'schedule' OR (cron IS NULL) <> (run_at IS NULL)),
  CHECK (kind <> 'workflow' OR (upstream_workflow_id IS NULL) <> (upstream_name IS NULL))
);
CREATE INDEX triggers_workflow ON triggers (workflow_id, created_at);
CREATE INDEX triggers_upstream ON triggers (upstream_workflow_id) WHERE upstream_workflow_id IS NOT NULL;
CREATE INDEX triggers_upstream_name ON triggers (upstream_name) WHERE upstream_name IS NOT NULL;
CREATE INDEX triggers_due ON triggers (next_fire_at) WHERE next_fire_at IS NOT NULL;

-- A run a trigger started carries the key of what it was started for (a schedule's fire time):
-- a second start for the same key finds the first run instead of making another.
ALTER TABLE runs ADD COLUMN trigger_key text;
CREATE UNIQUE INDEX runs_trigger_key ON runs (workflow_id, trigger_key) WHERE trigger_key IS NOT NULL;
