-- When the lease watch last ran (on any instance). A watch that finds it long ago — no instance
-- was up, or the database was down — first moves every lease on by the gap: runners cannot renew
-- leases while no server can take their renewals, and must not lose their jobs for it.
CREATE TABLE lease_watch (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  checked_at timestamptz NOT NULL
);
