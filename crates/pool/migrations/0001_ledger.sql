-- The share ledger: one schema for SQLite and PostgreSQL, so only portable types
-- (TEXT, BIGINT, DOUBLE PRECISION, BOOLEAN) and no AUTOINCREMENT/SERIAL: the single
-- writer assigns `seq`, the order PPLNS walks back through.

-- Every accepted share. `hash` is the header's SHA-256d in display hex (byte-reversed,
-- as explorers show it), so a block's share has the block's own hash; the primary key is
-- what makes a replayed share count once.
CREATE TABLE shares (
    hash TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    worker TEXT NOT NULL,
    job_id TEXT NOT NULL,
    height BIGINT NOT NULL,
    difficulty DOUBLE PRECISION NOT NULL,
    share_difficulty DOUBLE PRECISION NOT NULL,
    is_block BOOLEAN NOT NULL,
    time_ms BIGINT NOT NULL
);
CREATE INDEX shares_seq ON shares (seq);
CREATE INDEX shares_time ON shares (time_ms);

CREATE TABLE blocks (
    hash TEXT PRIMARY KEY,
    height BIGINT NOT NULL,
    worker TEXT NOT NULL,
    reward_sats BIGINT NOT NULL,
    time_ms BIGINT NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX blocks_time ON blocks (time_ms);

-- One row per block whose PPLNS payout was computed: the first computation is final.
CREATE TABLE payout_blocks (
    block_hash TEXT PRIMARY KEY,
    reward_sats BIGINT NOT NULL,
    window_units DOUBLE PRECISION NOT NULL,
    fee DOUBLE PRECISION NOT NULL,
    pool_sats BIGINT NOT NULL,
    last_share_seq BIGINT NOT NULL,
    credited DOUBLE PRECISION NOT NULL,
    time_ms BIGINT NOT NULL
);

CREATE TABLE payouts (
    block_hash TEXT NOT NULL,
    worker TEXT NOT NULL,
    amount_sats BIGINT NOT NULL,
    difficulty DOUBLE PRECISION NOT NULL,
    time_ms BIGINT NOT NULL,
    PRIMARY KEY (block_hash, worker)
);
CREATE INDEX payouts_time ON payouts (time_ms);
