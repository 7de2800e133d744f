-- Git polling (as Harrow's metadata preflight): a repository that workflows read by definition or
-- file, or that git triggers watch, is asked for its branches and tags every interval unless
-- polling is off for it (one that receives webhooks). `repository_refs` is what the last poll
-- saw; the next one's differences are the ref changes. An instance takes a due poll until
-- `poll_claimed_until`; failures back the next poll off.
ALTER TABLE repositories
  ADD COLUMN polling boolean NOT NULL DEFAULT true,
  ADD COLUMN polled_at timestamptz,
  ADD COLUMN poll_next_at timestamptz,
  ADD COLUMN poll_claimed_until timestamptz,
  ADD COLUMN poll_failures integer NOT NULL DEFAULT 0,
  ADD COLUMN poll_error text;
CREATE INDEX repositories_poll_due ON repositories (poll_next_at) WHERE polling;

CREATE TABLE repository_refs (
  repository_id uuid NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
  ref text NOT NULL,
  commit_sha text NOT NULL,
  PRIMARY KEY (repository_id, ref)
);

-- The `on` of a workflow file as last read at its repository's default branch: the commit, and its
-- triggers in words, or the problem that kept them from being read. Its schedules and chains
-- are the workflow's triggers of source `file`.
ALTER TABLE workflows ADD COLUMN file_on jsonb;

-- A delivery's place in its queue: when it was queued (again, for a redelivery), by the clock
-- rather than the transaction's start. The instance holding it holds `claim_token` too: what it
-- records after its hold passed (another instance took over) is not recorded.
ALTER TABLE deliveries ADD COLUMN queued_at timestamptz, ADD COLUMN claim_token uuid;
UPDATE deliveries SET queued_at = received_at;
ALTER TABLE deliveries ALTER COLUMN queued_at SET DEFAULT clock_timestamp(), ALTER COLUMN queued_at SET NOT NULL;
DROP INDEX deliveries_queued;
CREATE INDEX deliveries_queued ON deliveries ((coalesce(repository_id, trigger_id)), queued_at, id) WHERE status = 'queued';

-- Whether a pull request's run gets the project's secrets: decided when it is queued (never for
-- a fork's), so that a later change of the project's setting does not reach runs queued before.
ALTER TABLE runs ADD COLUMN pull_request_secrets boolean NOT NULL DEFAULT false;
