-- A share's key becomes the 32 bytes of its hash (display order, as the hex was) instead of
-- 64 hex characters: half the key in the table and in its index, which every share's
-- INSERT searches. `decode` fails on a row whose hash is not hex, stopping the migration.
ALTER TABLE shares ALTER COLUMN hash TYPE BYTEA USING decode(hash, 'hex');
