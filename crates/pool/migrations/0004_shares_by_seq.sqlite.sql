-- Shares are keyed by `seq`, the order the writer gives them, instead of by hash. A unique
-- index on a random 32-byte key puts every share's INSERT on a random page: one page more
-- for SQLite to write (and copy back at the checkpoint) per share, and a random read once
-- the index outgrows the caches, so the pool recorded fewer shares a second the longer it
-- ran. Refusing a replayed share is the servers' work (each session remembers the hashes it
-- accepted since the last tip; no two sessions share an extranonce, so never a header).
-- The hash stays, indexed only for the shares that found blocks (PPLNS starts from them).
-- `INTEGER PRIMARY KEY` is SQLite's rowid: the table itself is the seq index.
CREATE TABLE shares_0004 (
    seq INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    worker TEXT NOT NULL,
    job_id TEXT NOT NULL,
    height BIGINT NOT NULL,
    difficulty DOUBLE PRECISION NOT NULL,
    share_difficulty DOUBLE PRECISION NOT NULL,
    is_block BOOLEAN NOT NULL,
    time_ms BIGINT NOT NULL
);
INSERT INTO shares_0004
    (seq, hash, worker, job_id, height, difficulty, share_difficulty, is_block, time_ms)
SELECT seq, hash, worker, job_id, height, difficulty, share_difficulty, is_block, time_ms
FROM shares ORDER BY seq;
DROP TABLE shares;
ALTER TABLE shares_0004 RENAME TO shares;
CREATE INDEX shares_time ON shares (time_ms);
CREATE INDEX shares_block ON shares (hash) WHERE is_block;
