-- What deployments to an environment do when they meet: every job that runs in it and names no
-- concurrency group of its own joins the environment's group, which queues (one at a time, in
-- order), supersedes (a newer run skips the older ones not started yet) or cancels in progress.
ALTER TABLE environments ADD COLUMN concurrency text CHECK (concurrency IN ('queue', 'supersede', 'cancel-in-progress'));

-- An environment's deployments: the runs that had jobs in it, newest first.
CREATE INDEX jobs_environment ON jobs (environment_id, run_id) WHERE environment_id IS NOT NULL;
