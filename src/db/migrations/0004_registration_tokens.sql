-- Registration tokens are spent by use: single-use unless created with more uses, optionally
-- expiring, and revoked by marking (so the list keeps showing what a token did) rather than deleting.
ALTER TABLE runner_tokens
  ADD COLUMN prefix text NOT NULL DEFAULT '',
  ADD COLUMN max_uses integer NOT NULL DEFAULT 1 CHECK (max_uses >= 1),
  ADD COLUMN uses integer NOT NULL DEFAULT 0 CHECK (uses >= 0),
  ADD COLUMN expires_at timestamptz,
  ADD COLUMN revoked_at timestamptz,
  ADD COLUMN last_used_by uuid REFERENCES runners (id) ON DELETE SET NULL,
  ADD COLUMN last_used_by_name text;

-- Tokens made before this change had no limit: one that was ever used counts as spent, one that
-- never was keeps a single use.
UPDATE runner_tokens t SET
  uses = CASE WHEN t.last_used_at IS NULL THEN 0
              ELSE greatest(1, (SELECT count(*) FROM runners r WHERE r.registered_with = t.id)) END,
  last_used_by_name = (SELECT r.name FROM runners r WHERE r.registered_with = t.id ORDER BY r.created_at DESC LIMIT 1),
  last_used_by = (SELECT r.id FROM runners r WHERE r.registered_with = t.id ORDER BY r.created_at DESC LIMIT 1);
UPDATE runner_tokens SET max_uses = greatest(1, uses);
