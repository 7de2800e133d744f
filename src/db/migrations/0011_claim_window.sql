-- A claim looks at the oldest jobs nobody holds, in the order it takes them: this index walks
-- them oldest first, so a claim reads a few rows however long the queue is.
CREATE INDEX jobs_claimable ON jobs (created_at) WHERE status = 'queued' AND runner_id IS NULL;
