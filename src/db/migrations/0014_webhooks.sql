-- Webhooks. A repository receives its forge's deliveries at an unguessable URL slug, signed with a
-- secret (sealed with purpose `webhook-secret:<repository id>`, made when first asked for); the
-- latest delivery it refused (a bad signature) is kept on it for the person setting it up.
ALTER TABLE repositories
  ADD COLUMN webhook_slug text NOT NULL DEFAULT replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''),
  ADD COLUMN webhook_secret bytea,
  ADD COLUMN webhook_refused_at timestamptz,
  ADD COLUMN webhook_refused_reason text;
CREATE UNIQUE INDEX repositories_webhook_slug ON repositories (webhook_slug);

-- Runs of pull requests get the project's secrets only when the project says so.
ALTER TABLE projects ADD COLUMN pull_request_secrets boolean NOT NULL DEFAULT false;

-- A trigger of kind `webhook` has its own slug and, optionally, a secret (sealed with purpose
-- `webhook-secret:<trigger id>`) its callers sign with; `fields` maps run parameters to paths in
-- the body. A trigger of kind `git` starts a run when a ref matching one of `refs` is added,
-- changed or removed (`changes`; any when empty).
ALTER TABLE triggers DROP CONSTRAINT triggers_kind_check;
ALTER TABLE triggers
  ADD CONSTRAINT triggers_kind_check CHECK (kind IN ('schedule', 'workflow', 'webhook', 'git')),
  ADD COLUMN webhook_slug text,
  ADD COLUMN webhook_secret bytea,
  ADD COLUMN fields jsonb NOT NULL DEFAULT '{}',
  ADD COLUMN refs text[] NOT NULL DEFAULT '{}',
  ADD COLUMN changes text[] NOT NULL DEFAULT '{}',
  ADD CONSTRAINT triggers_webhook_slug CHECK ((kind = 'webhook') = (webhook_slug IS NOT NULL));
CREATE UNIQUE INDEX triggers_webhook_slug_key ON triggers (webhook_slug) WHERE webhook_slug IS NOT NULL;
CREATE INDEX triggers_git ON triggers (workflow_id) WHERE kind = 'git';

-- One received webhook request, kept as it came (headers, body, source address) with what came
-- of it: `queued` until it was turned into runs, then `done` (outcome lists the runs it started
-- and why others did not start) or `failed` (outcome says why). The forge's delivery id (or the
-- body's digest when it sends none) makes a second delivery of it the first one's answer. The
-- deliveries of one repository (or trigger) are turned into runs one at a time, in the order they
-- came: an instance holds the oldest queued one until `claimed_until`; one that failed for a
-- passing reason waits until `next_attempt_at`, and those after it wait with it.
CREATE TABLE deliveries (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  repository_id uuid REFERENCES repositories (id) ON DELETE CASCADE,
  trigger_id uuid REFERENCES triggers (id) ON DELETE CASCADE,
  forge text NOT NULL CHECK (forge IN ('github', 'gitlab', 'gitea', 'generic')),
  event text NOT NULL,
  delivery_key text NOT NULL,
  headers jsonb NOT NULL,
  body bytea NOT NULL,
  source_address text,
  status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'done', 'failed')),
  outcome jsonb,
  attempts integer NOT NULL DEFAULT 0,
  claimed_until timestamptz,
  next_attempt_at timestamptz,
  received_at timestamptz NOT NULL DEFAULT now(),
  processed_at timestamptz,
  CHECK ((repository_id IS NULL) <> (trigger_id IS NULL))
);
CREATE UNIQUE INDEX deliveries_repository_key ON deliveries (repository_id, delivery_key) WHERE repository_id IS NOT NULL;
CREATE UNIQUE INDEX deliveries_trigger_key ON deliveries (trigger_id, delivery_key) WHERE trigger_id IS NOT NULL;
CREATE INDEX deliveries_queued ON deliveries (received_at, id) WHERE status = 'queued';
CREATE INDEX deliveries_repository_received ON deliveries (repository_id, received_at DESC, id DESC) WHERE repository_id IS NOT NULL;
CREATE INDEX deliveries_trigger_received ON deliveries (trigger_id, received_at DESC, id DESC) WHERE trigger_id IS NOT NULL;

-- The delivery a run was started for.
ALTER TABLE runs ADD COLUMN delivery_id uuid REFERENCES deliveries (id) ON DELETE SET NULL;
CREATE INDEX runs_delivery ON runs (delivery_id) WHERE delivery_id IS NOT NULL;
