-- Shares are keyed by `seq`, the order the writer gives them, instead of by hash: see the
-- SQLite file of this migration for why. The hash stays, indexed only for the shares that
-- found blocks.
ALTER TABLE shares DROP CONSTRAINT shares_pkey;
ALTER TABLE shares ADD PRIMARY KEY (seq);
DROP INDEX shares_seq;
CREATE INDEX shares_block ON shares (hash) WHERE is_block;
