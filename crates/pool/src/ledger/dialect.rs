//! The only ledger SQL that differs between SQLite and PostgreSQL (besides the migrations
//! that change a column's type): the statements that unpack a batch's rows from one JSON
//! parameter (SQLite's `json_each`, PostgreSQL's `json_array_elements`, each with its own
//! casts and hex decoding). Everything else in the ledger is portable SQL with `$n`
//! placeholders.

pub(crate) use hashforge_store::Dialect;

/// The ledger's statements that differ per database.
pub(crate) trait LedgerSql {
    fn insert_shares(self) -> &'static str;
    fn add_rejects(self) -> &'static str;
}

impl LedgerSql for Dialect {
    /// Every share of a batch in one statement: the rows arrive as one JSON array of arrays
    /// (one bind, however many rows; see `writer::shares_json`), the hash as display hex
    /// turned back into its 32 bytes by the database. Measured against multi-row INSERTs
    /// with a placeholder per value (sqlx's SQLite driver looks each `$n` up by name, so
    /// those had to stay at 16 rows).
    fn insert_shares(self) -> &'static str {
        match self {
            Dialect::Sqlite => {
                "INSERT INTO shares \
                 (hash, seq, worker, job_id, height, difficulty, share_difficulty, is_block, time_ms) \
                 SELECT unhex(value ->> 0), value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
                 value ->> 5, value ->> 6, value ->> 7, value ->> 8 FROM json_each($1)"
            }
            Dialect::Postgres => {
                "INSERT INTO shares \
                 (hash, seq, worker, job_id, height, difficulty, share_difficulty, is_block, time_ms) \
                 SELECT decode(r ->> 0, 'hex'), (r ->> 1)::bigint, r ->> 2, r ->> 3, \
                 (r ->> 4)::bigint, (r ->> 5)::double precision, (r ->> 6)::double precision, \
                 (r ->> 7)::boolean, (r ->> 8)::bigint FROM json_array_elements($1::json) AS r"
            }
        }
    }

    /// Adds a batch's refused-share counts to `rejects`: rows `[has_worker, worker, reason,
    /// count]`, one per key (PostgreSQL refuses to update one row twice in a statement).
    fn add_rejects(self) -> &'static str {
        match self {
            Dialect::Sqlite => {
                "INSERT INTO rejects (has_worker, worker, reason, count) \
                 SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 \
                 FROM json_each($1) WHERE true \
                 ON CONFLICT (has_worker, worker, reason) \
                 DO UPDATE SET count = rejects.count + excluded.count"
            }
            Dialect::Postgres => {
                "INSERT INTO rejects (has_worker, worker, reason, count) \
                 SELECT (r ->> 0)::boolean, r ->> 1, r ->> 2, (r ->> 3)::bigint \
                 FROM json_array_elements($1::json) AS r \
                 ON CONFLICT (has_worker, worker, reason) \
                 DO UPDATE SET count = rejects.count + excluded.count"
            }
        }
    }
}
