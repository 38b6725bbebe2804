//! The ledger's schema: numbered SQL files embedded in the binary, applied by
//! `hashforge_store`'s runner and remembered in `schema_migrations`. One numbered set serves
//! SQLite and PostgreSQL: a migration is one portable file, or, where the databases cannot
//! share SQL (changing a column's type or a table's key), one file for each.

use hashforge_store::{Migration, Schema, Sql};

pub(crate) const LEDGER: Schema = Schema {
    name: "ledger",
    table: "schema_migrations",
    migrations: &[
        Migration {
            version: 1,
            name: "0001_ledger",
            sql: Sql::Portable(include_str!("../../migrations/0001_ledger.sql")),
        },
        Migration {
            version: 2,
            name: "0002_share_hash_bytes",
            sql: Sql::PerDatabase {
                sqlite: include_str!("../../migrations/0002_share_hash_bytes.sqlite.sql"),
                postgres: include_str!("../../migrations/0002_share_hash_bytes.postgres.sql"),
            },
        },
        Migration {
            version: 3,
            name: "0003_rejects",
            sql: Sql::Portable(include_str!("../../migrations/0003_rejects.sql")),
        },
        Migration {
            version: 4,
            name: "0004_shares_by_seq",
            sql: Sql::PerDatabase {
                sqlite: include_str!("../../migrations/0004_shares_by_seq.sqlite.sql"),
                postgres: include_str!("../../migrations/0004_shares_by_seq.postgres.sql"),
            },
        },
    ],
};

#[cfg(test)]
mod tests {
    #[test]
    fn versions_are_dense_from_one() {
        assert!(super::LEDGER.versions_are_dense());
    }
}
