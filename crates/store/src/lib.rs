//! The database stack every hashforge daemon shares: SQLite by default (one file in WAL
//! mode), PostgreSQL by URL, both through `sqlx::AnyPool` and portable SQL with `$n`
//! placeholders. This crate owns what is the same for every user of a database: reading
//! the URL, opening and tuning the connection pool, and running numbered migrations.
//! What a schema holds, and the few statements that must differ per database, stay with
//! their owner (the pool's ledger, the fleet's store).

use std::str::FromStr;
use std::sync::{Arc, Once};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor, Row};

/// Which database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// A migration's SQL for this database.
    pub fn pick(self, sql: &Sql) -> &'static str {
        match (sql, self) {
            (Sql::Portable(s), _) => s,
            (Sql::PerDatabase { sqlite, .. }, Dialect::Sqlite) => sqlite,
            (Sql::PerDatabase { postgres, .. }, Dialect::Postgres) => postgres,
        }
    }
}

/// Why a database could not be opened or migrated.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported database URL `{0}`: use sqlite:///path/to/file.db, sqlite:path or postgres://user:password@host/database"
    )]
    UnsupportedUrl(String),
    #[error("database: {0}")]
    Database(Arc<sqlx::Error>),
    #[error("cannot create the database's directory {path}: {message}")]
    CreateDir { path: String, message: String },
    #[error("{schema} migration {name} failed: {message}")]
    Migration {
        schema: &'static str,
        name: &'static str,
        message: String,
    },
    #[error(
        "the database's {schema} schema is at version {found}, newer than this hashforge knows ({known}); run a newer hashforge or use another database"
    )]
    SchemaTooNew {
        schema: &'static str,
        found: i64,
        known: i64,
    },
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        StoreError::Database(Arc::new(e))
    }
}

/// The URL sqlx is given, and its database: `sqlite:///path`, `sqlite:path` (the file and
/// its directory are created) or `postgres://...`.
pub fn connect_url(url: &str) -> Result<(String, Dialect), StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((url.to_owned(), Dialect::Postgres));
    }
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return Err(StoreError::UnsupportedUrl(redact(url)));
    };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, params) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(StoreError::UnsupportedUrl(url.to_owned()));
    }
    if path != ":memory:" {
        if let Some(dir) = std::path::Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::CreateDir {
                path: dir.display().to_string(),
                message: e.to_string(),
            })?;
        }
    }
    let params = if params.split('&').any(|p| p.starts_with("mode=")) {
        params.to_owned()
    } else if params.is_empty() {
        "mode=rwc".to_owned()
    } else {
        format!("{params}&mode=rwc")
    };
    Ok((format!("sqlite://{path}?{params}"), Dialect::Sqlite))
}

/// A URL with its password masked, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match url[scheme + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}

/// Connections a pool may hold, per database, and SQLite's page cache per connection.
#[derive(Clone, Copy, Debug)]
pub struct Connections {
    pub sqlite: u32,
    pub postgres: u32,
    pub sqlite_cache_kib: u32,
}

/// Opens (creating an SQLite file if missing) a connection pool for `url`.
///
/// SQLite connections run in WAL mode with `synchronous=NORMAL`: a commit is in the WAL
/// (the OS's cache) when it returns, so it survives a killed process, though not the
/// machine losing power; only a checkpoint fsyncs. The rest was measured on the pool's
/// ledger (`bench pool`, 19,900 connections at 20k shares/s for 15 s, reply p99 by WAL
/// pages per writer checkpoint: 512: 75 ms; 1024: 14-19 ms; 2048: 18-19 ms; 8192: 28 ms;
/// 16384: 37 ms; an 8 MiB page cache measured as well as 64 MiB, so the ledger takes 8).
pub async fn open(url: &str, connections: Connections) -> Result<(AnyPool, Dialect), StoreError> {
    static DRIVERS: Once = Once::new();
    DRIVERS.call_once(sqlx::any::install_default_drivers);

    let (url, dialect) = connect_url(url)?;
    let sqlite = dialect == Dialect::Sqlite;
    let cache_kib = connections.sqlite_cache_kib;
    let options = AnyConnectOptions::from_str(&url)?;
    let pool = AnyPoolOptions::new()
        .max_connections(if sqlite {
            connections.sqlite
        } else {
            connections.postgres
        })
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if sqlite {
                    // WAL persists in the file; `synchronous` is per connection.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    let cache = format!("PRAGMA cache_size = -{}", cache_kib.max(64));
                    conn.execute(cache.as_str()).await?;
                    conn.execute("PRAGMA wal_autocheckpoint = 1024").await?;
                    conn.execute("PRAGMA journal_size_limit = 67108864").await?;
                    // Statement journals and sort spills in memory, not in temp files.
                    conn.execute("PRAGMA temp_store = MEMORY").await?;
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await?;
    Ok((pool, dialect))
}

/// One schema change. Versions are dense and start at 1; a file is never edited once
/// released, only followed by a new one.
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: Sql,
}

/// A migration's SQL: one portable text, or, where the databases cannot share SQL
/// (changing a column's type, an identity column), one for each.
pub enum Sql {
    Portable(&'static str),
    PerDatabase {
        sqlite: &'static str,
        postgres: &'static str,
    },
}

/// A set of migrations with the table that remembers which were applied. Each owner has
/// its own table, so a pool and a fleet may share one database.
pub struct Schema {
    /// For messages: `ledger`, `fleet`.
    pub name: &'static str,
    /// `schema_migrations`, `fleet_schema_migrations`.
    pub table: &'static str,
    pub migrations: &'static [Migration],
}

impl Schema {
    /// The newest version this build knows.
    pub fn latest_version(&self) -> i64 {
        self.migrations.last().map_or(0, |m| m.version)
    }

    /// Brings the database up to [`Schema::latest_version`], each migration in its own
    /// transaction; refuses a database a newer build has migrated, rather than writing rows
    /// it may no longer understand. Processes that start together (the collectors of
    /// several sites) take turns, under an advisory lock on PostgreSQL and the write lock on
    /// SQLite, so each migration is applied once.
    pub async fn migrate(&self, pool: &AnyPool, dialect: Dialect) -> Result<(), StoreError> {
        debug_assert!(self.versions_are_dense(), "{} migrations", self.name);
        let mut conn = pool.acquire().await?;
        let lock = self.lock_key();
        if dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(lock)
                .execute(&mut *conn)
                .await?;
        }
        let result = self.migrate_on(&mut conn, dialect).await;
        if dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(lock)
                .execute(&mut *conn)
                .await?;
        }
        result
    }

    /// The advisory lock's number: the table's name, hashed (FNV-1a).
    fn lock_key(&self) -> i64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.table.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        h as i64
    }

    async fn migrate_on(
        &self,
        conn: &mut sqlx::AnyConnection,
        dialect: Dialect,
    ) -> Result<(), StoreError> {
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {} (
                version BIGINT PRIMARY KEY,
                name TEXT NOT NULL,
                applied_ms BIGINT NOT NULL
            )",
            self.table
        );
        sqlx::raw_sql(&create).execute(&mut *conn).await?;
        let latest = format!("SELECT COALESCE(MAX(version), 0) FROM {}", self.table);
        let record = format!(
            "INSERT INTO {} (version, name, applied_ms) VALUES ($1, $2, $3)",
            self.table
        );
        let applied: i64 = sqlx::query(&latest)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        if applied > self.latest_version() {
            return Err(StoreError::SchemaTooNew {
                schema: self.name,
                found: applied,
                known: self.latest_version(),
            });
        }
        for m in self.migrations.iter().filter(|m| m.version > applied) {
            // Under the write lock (SQLite: BEGIN IMMEDIATE), look again: another process
            // may have applied it since.
            let begin = match dialect {
                Dialect::Sqlite => "BEGIN IMMEDIATE",
                Dialect::Postgres => "BEGIN",
            };
            sqlx::raw_sql(begin).execute(&mut *conn).await?;
            let step = async {
                let now: i64 = sqlx::query(&latest)
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get(0)?;
                if now >= m.version {
                    return Ok(false);
                }
                sqlx::raw_sql(dialect.pick(&m.sql))
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| StoreError::Migration {
                        schema: self.name,
                        name: m.name,
                        message: e.to_string(),
                    })?;
                sqlx::query(&record)
                    .bind(m.version)
                    .bind(m.name)
                    .bind(now_ms())
                    .execute(&mut *conn)
                    .await?;
                Ok::<_, StoreError>(true)
            }
            .await;
            match step {
                Ok(applied) => {
                    sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
                    if applied {
                        tracing::info!(migration = m.name, "{} schema migrated", self.name);
                    }
                }
                Err(e) => {
                    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Versions run 1, 2, 3... and each name starts with its version (`0001_`).
    pub fn versions_are_dense(&self) -> bool {
        self.migrations.iter().enumerate().all(|(i, m)| {
            m.version == i as i64 + 1 && m.name.starts_with(&format!("{:04}_", m.version))
        })
    }
}

pub mod testing;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_create_the_file_and_keep_their_parameters() {
        let dir = std::env::temp_dir().join(format!("hashforge-store-url-{}", std::process::id()));
        let db = dir.join("sub").join("pool.db");
        let (url, dialect) = connect_url(&format!("sqlite://{}", db.display())).unwrap();
        assert_eq!(dialect, Dialect::Sqlite);
        assert_eq!(url, format!("sqlite://{}?mode=rwc", db.display()));
        assert!(db.parent().unwrap().is_dir());
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            connect_url("sqlite:pool.db").unwrap().0,
            "sqlite://pool.db?mode=rwc"
        );
        assert_eq!(
            connect_url("sqlite:pool.db?mode=ro").unwrap().0,
            "sqlite://pool.db?mode=ro"
        );
        assert_eq!(
            connect_url("postgres://u:p@h/db").unwrap().1,
            Dialect::Postgres
        );
    }

    #[test]
    fn a_bad_url_is_refused_without_its_password() {
        let e = connect_url("mysql://user:secret@host/db")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mysql://user:***@host/db"), "{e}");
        assert!(!e.contains("secret"));
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("http://a:b@c:1/x"), "http://a:***@c:1/x");
    }
}
