//! The migration runner against SQLite and a real PostgreSQL: processes that start at once
//! (the collectors of several sites on one fresh database) all come up, the schema applied
//! once; a database migrated by a newer build is refused.

use hashforge_store::testing::{postgres_enabled, TestDb};
use hashforge_store::{Migration, Schema, Sql, StoreError};
use sqlx::Row;

const TEST: Schema = Schema {
    name: "test",
    table: "test_schema_migrations",
    migrations: &[
        Migration {
            version: 1,
            name: "0001_things",
            sql: Sql::Portable("CREATE TABLE things (id BIGINT PRIMARY KEY, name TEXT NOT NULL)"),
        },
        Migration {
            version: 2,
            name: "0002_more",
            sql: Sql::Portable("CREATE TABLE more_things (id BIGINT PRIMARY KEY)"),
        },
    ],
};

const OLDER: Schema = Schema {
    name: "test",
    table: "test_schema_migrations",
    migrations: &[Migration {
        version: 1,
        name: "0001_things",
        sql: Sql::Portable("CREATE TABLE things (id BIGINT PRIMARY KEY, name TEXT NOT NULL)"),
    }],
};

async fn starts_together(url: &str) {
    let connections = hashforge_store::Connections {
        sqlite: 2,
        postgres: 2,
        sqlite_cache_kib: 1024,
    };
    // Each on a thread and runtime of its own, as separate processes would be.
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let url = url.to_owned();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let (pool, dialect) = hashforge_store::open(&url, connections).await?;
                    TEST.migrate(&pool, dialect).await?;
                    pool.close().await;
                    Ok::<_, StoreError>(())
                })
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap().expect("every process comes up");
    }
    let (pool, dialect) = hashforge_store::open(url, connections).await.unwrap();
    let applied: i64 = sqlx::query("SELECT COUNT(*) FROM test_schema_migrations")
        .fetch_one(&pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(applied, 2, "each migration applied once");
    let e = OLDER.migrate(&pool, dialect).await.unwrap_err().to_string();
    assert!(e.contains("test schema is at version 2"), "{e}");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_starting_together_sqlite() {
    let db = TestDb::sqlite("migrate", "m.db");
    starts_together(&db.url).await;
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_starting_together_postgres() {
    if !postgres_enabled() {
        return;
    }
    let db = TestDb::postgres("migrate").await;
    starts_together(&db.url).await;
    db.remove().await;
}
