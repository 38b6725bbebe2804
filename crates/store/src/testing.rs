//! Databases for tests: a fresh SQLite file, or a fresh schema in the PostgreSQL that
//! `HASHFORGE_TEST_POSTGRES` names (`.ci/run` starts one). Under `CI=true` a missing
//! PostgreSQL fails the test instead of skipping it, so a CI that lost its database cannot
//! pass by skipping.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, Executor};

/// The variable naming the test PostgreSQL: a `postgres://` URL to a database the tests
/// may create schemas in.
pub const POSTGRES_ENV: &str = "HASHFORGE_TEST_POSTGRES";

static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// A name no other test of any process uses: `hf_{name}_{pid}_{n}_{nanos}`.
pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "hf_{name}_{}_{}_{nanos}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    )
}

/// A database for one test, removed by [`TestDb::remove`] when the test passes.
pub struct TestDb {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    File(PathBuf),
    Schema { admin_url: String, schema: String },
}

impl TestDb {
    /// A new SQLite file (`file`) in a directory of its own.
    pub fn sqlite(name: &str, file: &str) -> TestDb {
        let dir = std::env::temp_dir().join(unique(name));
        TestDb {
            url: format!("sqlite://{}", dir.join(file).display()),
            cleanup: Cleanup::File(dir),
        }
    }

    /// A new schema in the test PostgreSQL; the URL selects it as the search path.
    ///
    /// # Panics
    /// When `HASHFORGE_TEST_POSTGRES` is unset or the server refuses: a test's setup.
    pub async fn postgres(name: &str) -> TestDb {
        let admin_url = std::env::var(POSTGRES_ENV).unwrap_or_else(|_| {
            panic!(
                "{POSTGRES_ENV} is not set: PostgreSQL tests need a postgres:// URL to an empty database (.ci/run sets one up)"
            )
        });
        sqlx::any::install_default_drivers();
        let schema = unique(name);
        let mut conn = sqlx::AnyConnection::connect(&admin_url)
            .await
            .expect("connect to the test PostgreSQL");
        conn.execute(format!("CREATE SCHEMA {schema}").as_str())
            .await
            .expect("create a test schema");
        let _ = conn.close().await;
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        TestDb {
            url: format!("{admin_url}{sep}options[search_path]={schema}"),
            cleanup: Cleanup::Schema { admin_url, schema },
        }
    }

    /// Deletes the file or drops the schema.
    pub async fn remove(self) {
        match self.cleanup {
            Cleanup::File(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Schema { admin_url, schema } => {
                if let Ok(mut conn) = sqlx::AnyConnection::connect(&admin_url).await {
                    let _ = conn
                        .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
                        .await;
                }
            }
        }
    }
}

/// Whether the PostgreSQL tests run: yes with the URL, no without it, and a panic without
/// it under `CI=true`.
pub fn postgres_enabled() -> bool {
    if std::env::var_os(POSTGRES_ENV).is_some() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but {POSTGRES_ENV} is unset: the PostgreSQL tests must run in CI");
    }
    eprintln!("skipping: set {POSTGRES_ENV}=postgres://... to run the PostgreSQL tests");
    false
}

/// Runs each `async fn check(url: &str)` of the calling test file twice: in `mod sqlite`
/// against a fresh SQLite file named `$file`, and in `mod postgres` against a fresh schema of
/// the test PostgreSQL ([`postgres_enabled`] decides whether that one runs). The caller
/// depends on tokio with its test macro.
#[macro_export]
macro_rules! both_databases {
    ($file:literal; $($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let db = $crate::testing::TestDb::sqlite(stringify!($check), $file);
                    super::$check(&db.url).await;
                    db.remove().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    if !$crate::testing::postgres_enabled() {
                        return;
                    }
                    let db = $crate::testing::TestDb::postgres(stringify!($check)).await;
                    super::$check(&db.url).await;
                    db.remove().await;
                }
            )*
        }
    };
}
