-- A workflow's run numbers come from a counter taken in a statement of its own, so runs of one
-- workflow are no longer queued one at a time behind a lock on its row.
ALTER TABLE workflows ADD COLUMN run_counter bigint NOT NULL DEFAULT 0;
UPDATE workflows w SET run_counter = coalesce((SELECT max(number) FROM runs r WHERE r.workflow_id = w.id), 0);
