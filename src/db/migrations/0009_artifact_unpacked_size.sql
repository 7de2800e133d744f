-- The limits count an artifact's unpacked size (its tar), not only its compressed one (its tar.gz).
-- Older artifacts were never unpacked: their compressed size stands in.
ALTER TABLE artifacts ADD COLUMN unpacked_size bigint;
UPDATE artifacts SET unpacked_size = size;
ALTER TABLE artifacts ALTER COLUMN unpacked_size SET NOT NULL;
