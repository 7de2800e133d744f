-- Commit statuses: a repository may report the runs at its commits to its forge (GitHub, GitLab,
-- Gitea/Forgejo) with a token (sealed with purpose `forge-token:<repository id>`) on the forge's
-- API (its base URL, for self-hosted forges) for one of its repositories there ("owner/name", or
-- GitLab's project path or id).
ALTER TABLE repositories
  ADD COLUMN status_forge text CHECK (status_forge IN ('github', 'gitlab', 'gitea')),
  ADD COLUMN status_api_url text,
  ADD COLUMN status_repository text,
  ADD COLUMN status_token bytea,
  ADD CONSTRAINT repositories_status_complete CHECK ((status_forge IS NULL) = (status_token IS NULL) AND (status_forge IS NULL) = (status_repository IS NULL));

-- The statuses to send, an outbox: written in the transaction that queues a run (pending) and the
-- one that ends it (its outcome), sent in that order by a background task per run, with retries.
CREATE TABLE commit_statuses (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  run_id uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  repository_id uuid NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
  commit_sha text NOT NULL,
  state text NOT NULL CHECK (state IN ('pending', 'success', 'failure', 'error')),
  description text NOT NULL,
  status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  last_error text,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  sent_at timestamptz
);
CREATE INDEX commit_statuses_run ON commit_statuses (run_id, created_at);

-- The deliveries an instance holds, by queue: few at any time, looked up for every claim.
CREATE INDEX deliveries_held ON deliveries ((coalesce(repository_id, trigger_id))) WHERE status = 'queued' AND claimed_until IS NOT NULL;
