//! A tiny migration runner: numbered SQL files embedded in the binary, applied in order,
//! each in its own transaction, and remembered in `schema_migrations`. One numbered set
//! serves SQLite and PostgreSQL: a migration is one portable file, or, where the databases
//! cannot share SQL (changing a column's type), one file for each.

use sqlx::{AnyPool, Row};

use super::dialect::Dialect;
use super::LedgerError;
use crate::now_ms;

/// One schema change. Versions are dense and start at 1; a file is never edited once
/// released, only followed by a new one.
struct Migration {
    version: i64,
    name: &'static str,
    sql: Sql,
}

pub(crate) enum Sql {
    Portable(&'static str),
    PerDatabase {
        sqlite: &'static str,
        postgres: &'static str,
    },
}

const MIGRATIONS: &[Migration] = &[
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
];

/// The newest schema version this build knows.
pub(crate) fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Brings the database up to [`latest_version`]; refuses a database a newer build has
/// migrated, rather than writing rows it may no longer understand.
pub(crate) async fn run(pool: &AnyPool, dialect: Dialect) -> Result<(), LedgerError> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY,
            name TEXT NOT NULL,
            applied_ms BIGINT NOT NULL
        )",
    )
    .execute(pool)
    .await?;
    let applied: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        .fetch_one(pool)
        .await?
        .try_get(0)?;
    if applied > latest_version() {
        return Err(LedgerError::SchemaTooNew {
            found: applied,
            known: latest_version(),
        });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > applied) {
        let mut tx = pool.begin().await?;
        sqlx::raw_sql(dialect.pick(&m.sql))
            .execute(&mut *tx)
            .await
            .map_err(|e| LedgerError::Migration {
                name: m.name,
                message: e.to_string(),
            })?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, name, applied_ms) VALUES ($1, $2, $3)",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(migration = m.name, "ledger schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_dense_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "{}", m.name);
            assert!(m.name.starts_with(&format!("{:04}_", m.version)));
        }
    }
}
