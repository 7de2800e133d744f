-- The run lifecycle decided in one place: a run remembers that a cancel was asked for (and
-- whether it was forced), a job why it is being canceled, when it was queued (for the queue
-- timeout) and, for a retry of a lost attempt, the time before which no runner may take it.

ALTER TABLE runs
  ADD COLUMN cancel_requested_at timestamptz,
  ADD COLUMN cancel_forced boolean NOT NULL DEFAULT false,
  ADD COLUMN canceled_by uuid REFERENCES users (id) ON DELETE SET NULL;

ALTER TABLE jobs
  ADD COLUMN cancel_reason text,
  ADD COLUMN queued_at timestamptz,
  ADD COLUMN not_before timestamptz;
UPDATE jobs SET queued_at = created_at WHERE status = 'queued';
CREATE INDEX jobs_queued_at ON jobs (queued_at) WHERE status = 'queued' AND runner_id IS NULL;

-- NULL: the default policy (a lost runner's job once, except in an environment).
ALTER TABLE workflows
  ALTER COLUMN retry_count DROP NOT NULL,
  ALTER COLUMN retry_count DROP DEFAULT,
  ALTER COLUMN retry_on DROP NOT NULL,
  ALTER COLUMN retry_on DROP DEFAULT;
UPDATE workflows SET retry_count = NULL, retry_on = NULL WHERE retry_count = 1 AND retry_on = '{runner_lost}';
