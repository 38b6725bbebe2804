-- A share's key becomes the 32 bytes of its hash (display order, as the hex was) instead of
-- 64 hex characters: half the key in the table and in its index, which every share's
-- INSERT searches. SQLite cannot change a column's type, so the table is copied.
-- `unhex` (SQLite 3.41+; the bundled one is newer) turns the hex back into the bytes; a
-- row whose hash is not hex would become NULL and fail NOT NULL, stopping the migration.
CREATE TABLE shares_0002 (
    hash BLOB NOT NULL PRIMARY KEY,
    seq BIGINT NOT NULL,
    worker TEXT NOT NULL,
    job_id TEXT NOT NULL,
    height BIGINT NOT NULL,
    difficulty DOUBLE PRECISION NOT NULL,
    share_difficulty DOUBLE PRECISION NOT NULL,
    is_block BOOLEAN NOT NULL,
    time_ms BIGINT NOT NULL
);
INSERT INTO shares_0002
    (hash, seq, worker, job_id, height, difficulty, share_difficulty, is_block, time_ms)
SELECT unhex(hash), seq, worker, job_id, height, difficulty, share_difficulty, is_block, time_ms
FROM shares ORDER BY seq;
DROP TABLE shares;
ALTER TABLE shares_0002 RENAME TO shares;
CREATE INDEX shares_seq ON shares (seq);
CREATE INDEX shares_time ON shares (time_ms);
