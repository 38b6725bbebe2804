//! What the console keeps on disk, in the same database stack as the pool (`hashforge_store`:
//! SQLite by default, PostgreSQL by URL):
//!
//! - `fleet_miners`: the inventory, one row per machine by identity (serial, else MAC, else
//!   its address at its site), with its last reading as JSON for consoles of other sites;
//! - `fleet_addresses`: the addresses each machine had, first and last seen;
//! - `fleet_hourly`: history, one row per machine and hour ([`HourRow`]), integers where
//!   they suffice (GH/s, tenths of a degree, watts), boards packed in one short text;
//! - `fleet_alerts`: every alert with its site, start, end and evidence;
//! - `fleet_sites`: each collector's last poll cycle.
//!
//! Several collectors (`--site`) may write into one database; a console without ranges of
//! its own reads every site from it. Writes are batched: one JSON parameter carries a batch's
//! rows, which the database unpacks (the statements below are the only SQL that differs
//! between SQLite and PostgreSQL), all of a cycle in one transaction.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use hashforge_store::{Dialect, Migration, Schema, Sql, StoreError};
use serde_json::{json, Value};
use sqlx::{AnyPool, Row};

use crate::alerts::{Alert, AlertKind};
use crate::poll::CycleReport;
use crate::state::{BoardHour, HourRow, Miner};

pub const FLEET: Schema = Schema {
    name: "fleet",
    table: "fleet_schema_migrations",
    migrations: &[
        Migration {
            version: 1,
            name: "0001_fleet",
            sql: Sql::PerDatabase {
                sqlite: include_str!("../migrations/0001_fleet.sqlite.sql"),
                postgres: include_str!("../migrations/0001_fleet.postgres.sql"),
            },
        },
        Migration {
            version: 2,
            name: "0002_assets",
            sql: Sql::PerDatabase {
                sqlite: include_str!("../migrations/0002_assets.sqlite.sql"),
                postgres: include_str!("../migrations/0002_assets.postgres.sql"),
            },
        },
        Migration {
            version: 3,
            name: "0003_register_version",
            sql: Sql::Portable(include_str!("../migrations/0003_register_version.sql")),
        },
    ],
};

/// Rows per statement.
pub const BATCH: usize = 2_000;
/// Closed alerts a console reads back.
const CLOSED_READ: i64 = 10_000;

/// A miner's row once written: its id, a digest of what the row says (so an unchanged miner
/// is not written again) and, when the row is keyed by the address, that address (so the
/// row is renamed when the identity appears). No strings: 100,000 of these stay small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stored {
    pub id: i64,
    digest: u64,
    pub address_key: Option<IpAddr>,
}

impl Stored {
    /// Whether the row still says what `m` is (`by_address`: kept by its address).
    pub fn describes(&self, m: &Miner, by_address: bool) -> bool {
        self.digest == MinerRow::digest(m, by_address)
    }
}

impl MinerRow {
    /// What a miner keeps once this row is written as `id`.
    pub fn stored(&self, id: i64) -> Stored {
        Stored {
            id,
            digest: self.digest,
            address_key: self.key.starts_with("ip:").then_some(self.ip),
        }
    }
}

/// What a cycle hands the store.
#[derive(Default)]
pub struct CycleWrite {
    /// Miners whose identity or address changed, or that have no row yet.
    pub miners: Vec<MinerRow>,
    pub hours: Vec<(RowRef, HourRow, IpAddr)>,
    pub alerts: Vec<Alert>,
    pub report: Option<CycleReport>,
}

/// A miner's row: known by id, or the `n`th of this write's new rows.
#[derive(Clone, Copy, Debug)]
pub enum RowRef {
    Id(i64),
    New(usize),
}

/// A miner's inventory columns.
#[derive(Clone, Debug)]
pub struct MinerRow {
    pub key: String,
    /// The key its row had, when the identity just became known (an address-keyed row is
    /// renamed rather than left behind).
    pub old_key: Option<String>,
    pub ip: IpAddr,
    pub make: String,
    pub model: String,
    pub firmware: String,
    pub serial: Option<String>,
    pub mac: Option<String>,
    pub hostname: Option<String>,
    pub first_seen: u64,
    pub last_seen: Option<u64>,
    digest: u64,
}

impl MinerRow {
    /// The row of `m` under its identity; `old_key` is set when its row was written under
    /// another key.
    pub fn of(m: &Miner) -> MinerRow {
        MinerRow::build(m, false)
    }

    /// The row of `m`, under its address key when `by_address` (another machine holds its
    /// identity).
    pub fn build(m: &Miner, by_address: bool) -> MinerRow {
        let key = if by_address {
            address_key(&m.site, m.ip)
        } else {
            m.identity_key()
        };
        let old_key = m
            .stored
            .and_then(|s| s.address_key)
            .map(|ip| address_key(&m.site, ip))
            .filter(|old| *old != key);
        MinerRow {
            old_key,
            ip: m.ip,
            make: m.make.clone(),
            model: m.model.clone(),
            firmware: m.firmware.clone(),
            serial: m.serial.clone(),
            mac: m.mac.clone(),
            hostname: m.hostname.clone(),
            first_seen: m.first_seen,
            last_seen: m.last_seen,
            digest: MinerRow::digest(m, by_address),
            key,
        }
    }

    /// What the row of `m` says, as one number, without building it: a cycle compares it
    /// with what each miner's row said when written.
    pub fn digest(m: &Miner, by_address: bool) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (
            by_address,
            &m.site,
            m.ip,
            &m.make,
            &m.model,
            &m.firmware,
            &m.serial,
            &m.mac,
        )
            .hash(&mut h);
        m.hostname.hash(&mut h);
        h.finish()
    }

    /// Who `m` is, as one number (its identity key's hash), without allocating the key.
    pub fn identity_hash(m: &Miner) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        match (&m.serial, &m.mac) {
            (Some(sn), _) => (0u8, sn).hash(&mut h),
            (None, Some(mac)) => (1u8, mac.to_ascii_lowercase()).hash(&mut h),
            (None, None) => (2u8, &m.site, m.ip).hash(&mut h),
        }
        h.finish()
    }
}

/// The register as read under its version.
pub(crate) type Versioned = (i64, Arc<crate::assets::db::Register>);

/// The fleet's database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    site: String,
    /// The register last read whole, under its version (`Store::register_cached`); shared
    /// by the store's clones.
    pub(crate) cached: Arc<tokio::sync::Mutex<Option<Versioned>>>,
}

impl Store {
    /// Opens (creating if missing) and migrates the fleet schema at `url` for the collector
    /// of `site`.
    pub async fn open(url: &str, site: &str) -> Result<Store, StoreError> {
        let connections = hashforge_store::Connections {
            sqlite: 2,
            postgres: 4,
            // The collector writes a cycle and reads little: a small cache keeps 100,000
            // miners' console inside its memory target (`bench fleet`).
            sqlite_cache_kib: 2048,
        };
        let (pool, dialect) = hashforge_store::open(url, connections).await?;
        FLEET.migrate(&pool, dialect).await?;
        Ok(Store {
            pool,
            dialect,
            site: site.to_owned(),
            cached: Arc::default(),
        })
    }

    pub fn site(&self) -> &str {
        &self.site
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The connection pool, for the asset register's statements (`assets::db`).
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Writes one cycle in one transaction; returns the ids of `w.miners`, in order.
    pub async fn write(&self, w: &CycleWrite) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // An identity that just became known renames its address-keyed row, unless the
        // machine already has a row under that identity (it moved here): then that one is
        // its row, and the placeholder goes.
        for m in &w.miners {
            if let Some(old) = &m.old_key {
                let taken = sqlx::query("SELECT id FROM fleet_miners WHERE key = $1")
                    .bind(&m.key)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(row) = taken {
                    // The placeholder's hours join the machine's (where it has none of its
                    // own for the hour), then the placeholder goes.
                    let keep: i64 = row.try_get(0)?;
                    let gone = sqlx::query("SELECT id FROM fleet_miners WHERE key = $1")
                        .bind(old)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if let Some(gone) = gone {
                        let gone: i64 = gone.try_get(0)?;
                        sqlx::query(
                            "UPDATE fleet_hourly SET miner_id = $1 WHERE miner_id = $2 AND hour \
                             NOT IN (SELECT hour FROM fleet_hourly WHERE miner_id = $1)",
                        )
                        .bind(keep)
                        .bind(gone)
                        .execute(&mut *tx)
                        .await?;
                        for table in ["fleet_hourly", "fleet_addresses"] {
                            sqlx::query(&format!("DELETE FROM {table} WHERE miner_id = $1"))
                                .bind(gone)
                                .execute(&mut *tx)
                                .await?;
                        }
                        sqlx::query("DELETE FROM fleet_miners WHERE id = $1")
                            .bind(gone)
                            .execute(&mut *tx)
                            .await?;
                    }
                } else {
                    sqlx::query("UPDATE fleet_miners SET key = $1 WHERE key = $2")
                        .bind(&m.key)
                        .bind(old)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        let mut ids = Vec::with_capacity(w.miners.len());
        for chunk in w.miners.chunks(BATCH) {
            let rows: Vec<Value> = chunk
                .iter()
                .map(|m| {
                    json!([
                        m.key,
                        self.site,
                        m.ip.to_string(),
                        m.make,
                        m.model,
                        m.firmware,
                        m.serial,
                        m.mac,
                        m.hostname,
                        m.first_seen,
                        m.last_seen
                    ])
                })
                .collect();
            let returned = sqlx::query(self.upsert_miners())
                .bind(Value::Array(rows).to_string())
                .fetch_all(&mut *tx)
                .await?;
            let mut by_key: HashMap<String, i64> = HashMap::with_capacity(returned.len());
            for r in returned {
                by_key.insert(r.try_get(1)?, r.try_get(0)?);
            }
            for m in chunk {
                ids.push(by_key.get(&m.key).copied().ok_or_else(|| {
                    StoreError::Database(std::sync::Arc::new(sqlx::Error::RowNotFound))
                })?);
            }
            let addresses: Vec<Value> = chunk
                .iter()
                .zip(&ids[ids.len() - chunk.len()..])
                .map(|(m, id)| {
                    let seen = m.last_seen.unwrap_or(m.first_seen);
                    json!([id, m.ip.to_string(), m.first_seen.min(seen), seen])
                })
                .collect();
            sqlx::query(self.upsert_addresses())
                .bind(Value::Array(addresses).to_string())
                .execute(&mut *tx)
                .await?;
        }
        let id_of = |r: RowRef| match r {
            RowRef::Id(id) => Some(id),
            RowRef::New(i) => ids.get(i).copied(),
        };
        for chunk in w.hours.chunks(BATCH) {
            let rows: Vec<Value> = chunk
                .iter()
                .filter_map(|(r, h, _)| id_of(*r).map(|id| hour_json(id, h)))
                .collect();
            sqlx::query(self.upsert_hours())
                .bind(Value::Array(rows).to_string())
                .execute(&mut *tx)
                .await?;
            // The address was in use that day: touched with the day's first hour, so an
            // address's last use is known to the day (a change of address is written when
            // it happens, with the miner's row) without rewriting 100,000 rows an hour. One
            // row per machine and address (a statement may not update a row twice).
            let mut seen: HashMap<(i64, IpAddr), (u64, u64)> = HashMap::new();
            for (r, h, ip) in chunk.iter().filter(|(_, h, _)| h.hour % 24 == 0) {
                if let Some(id) = id_of(*r) {
                    let at = h.hour * 3600;
                    let e = seen.entry((id, *ip)).or_insert((at, at));
                    *e = (e.0.min(at), e.1.max(at));
                }
            }
            let seen: Vec<Value> = seen
                .into_iter()
                .map(|((id, ip), (first, last))| json!([id, ip.to_string(), first, last]))
                .collect();
            if !seen.is_empty() {
                sqlx::query(self.upsert_addresses())
                    .bind(Value::Array(seen).to_string())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        for chunk in w.alerts.chunks(BATCH) {
            let rows: Vec<Value> = chunk
                .iter()
                .map(|a| {
                    json!([
                        a.site,
                        a.id,
                        kind_name(a.kind),
                        a.ip.to_string(),
                        a.board,
                        a.start,
                        a.end,
                        a.evidence
                    ])
                })
                .collect();
            sqlx::query(self.upsert_alerts())
                .bind(Value::Array(rows).to_string())
                .execute(&mut *tx)
                .await?;
        }
        if let Some(report) = &w.report {
            sqlx::query(
                "INSERT INTO fleet_sites (site, last_cycle_at, report) VALUES ($1, $2, $3) \
                 ON CONFLICT (site) DO UPDATE SET last_cycle_at = excluded.last_cycle_at, \
                 report = excluded.report",
            )
            .bind(&self.site)
            .bind(crate::unix_now() as i64)
            .bind(serde_json::to_string(report).unwrap_or_default())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// Writes last readings: `batch` is [`readings_batch`]'s text. Readings are the latest
    /// state, not history: each batch is its own statement, so a cycle's readings never sit
    /// in memory all at once.
    pub async fn write_readings(&self, batch: &str) -> Result<(), StoreError> {
        sqlx::query(self.update_readings())
            .bind(batch)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The miners of this store's site, or of every site (`all`), as last written, each with
    /// the day of hourly history before `now`.
    pub async fn load_miners(&self, all: bool, now: u64) -> Result<Vec<Miner>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, reading FROM fleet_miners \
             WHERE reading IS NOT NULL AND ($1 OR site = $2) ORDER BY id",
        )
        .bind(all)
        .bind(&self.site)
        .fetch_all(&self.pool)
        .await?;
        let mut miners = Vec::with_capacity(rows.len());
        let mut by_id = HashMap::with_capacity(rows.len());
        for r in rows {
            let id: i64 = r.try_get(0)?;
            let text: String = r.try_get(1)?;
            match serde_json::from_str::<Miner>(&text) {
                Ok(mut m) => {
                    m.stored = Some(MinerRow::of(&m).stored(id));
                    by_id.insert(id, miners.len());
                    miners.push(m);
                }
                // A reading an older or newer build wrote in another shape: the miner is
                // found again by the next scan.
                Err(e) => tracing::warn!("fleet database: miner {id}'s reading is unreadable: {e}"),
            }
        }
        let since = (now / 3600).saturating_sub(crate::state::HOURLY as u64);
        let hours = sqlx::query(
            "SELECT h.miner_id, h.hour, h.samples, h.answered, h.hashrate_ghs, h.temp_dc, \
             h.power_w, h.accepted, h.rejected, h.boards FROM fleet_hourly h \
             JOIN fleet_miners m ON m.id = h.miner_id \
             WHERE h.hour >= $1 AND ($2 OR m.site = $3) ORDER BY h.miner_id, h.hour",
        )
        .bind(since as i64)
        .bind(all)
        .bind(&self.site)
        .fetch_all(&self.pool)
        .await?;
        for r in hours {
            let (id, row) = hour_of(&r)?;
            if let Some(&i) = by_id.get(&id) {
                miners[i].keep_hour(row.sample());
            }
        }
        Ok(miners)
    }

    /// One machine's hourly history since `since_hour`, by its address at this store's site
    /// (or any site).
    pub async fn hours_of(&self, ip: IpAddr, since_hour: u64) -> Result<Vec<HourRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT h.miner_id, h.hour, h.samples, h.answered, h.hashrate_ghs, h.temp_dc, \
             h.power_w, h.accepted, h.rejected, h.boards FROM fleet_hourly h \
             JOIN fleet_miners m ON m.id = h.miner_id \
             WHERE m.ip = $1 AND h.hour >= $2 ORDER BY h.hour",
        )
        .bind(ip.to_string())
        .bind(since_hour as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| hour_of(r).map(|(_, h)| h)).collect()
    }

    /// The addresses a machine had: (address, first seen, last seen), oldest first.
    pub async fn addresses_of(&self, id: i64) -> Result<Vec<(String, u64, u64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT ip, first_seen, last_seen FROM fleet_addresses WHERE miner_id = $1 \
             ORDER BY first_seen, ip",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push((
                r.try_get(0)?,
                r.try_get::<i64, _>(1)?.max(0) as u64,
                r.try_get::<i64, _>(2)?.max(0) as u64,
            ));
        }
        Ok(out)
    }

    /// Open alerts and the most recent closed ones of this site (or every site), and the
    /// highest alert number this site has used.
    pub async fn load_alerts(
        &self,
        all: bool,
    ) -> Result<(Vec<Alert>, Vec<Alert>, u64), StoreError> {
        let cols = "SELECT site, id, kind, ip, board, start_at, end_at, evidence FROM fleet_alerts";
        let open = sqlx::query(&format!(
            "{cols} WHERE end_at IS NULL AND ($1 OR site = $2) ORDER BY start_at, site, id"
        ))
        .bind(all)
        .bind(&self.site)
        .fetch_all(&self.pool)
        .await?;
        let closed = sqlx::query(&format!(
            "{cols} WHERE end_at IS NOT NULL AND ($1 OR site = $2) \
             ORDER BY end_at DESC, site, id DESC LIMIT $3"
        ))
        .bind(all)
        .bind(&self.site)
        .bind(CLOSED_READ)
        .fetch_all(&self.pool)
        .await?;
        let next: Option<i64> = sqlx::query("SELECT MAX(id) FROM fleet_alerts WHERE site = $1")
            .bind(&self.site)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        let read = |rows: Vec<sqlx::any::AnyRow>| -> Result<Vec<Alert>, StoreError> {
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                if let Some(a) = alert_of(&r)? {
                    out.push(a);
                }
            }
            Ok(out)
        };
        let mut closed = read(closed)?;
        closed.reverse();
        Ok((read(open)?, closed, next.map_or(0, |n| n.max(0) as u64)))
    }

    /// Each site's last poll cycle, by site.
    pub async fn sites(&self) -> Result<Vec<(String, u64, CycleReport)>, StoreError> {
        let rows = sqlx::query("SELECT site, last_cycle_at, report FROM fleet_sites ORDER BY site")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let report: String = r.try_get(2)?;
            out.push((
                r.try_get(0)?,
                r.try_get::<i64, _>(1)?.max(0) as u64,
                serde_json::from_str(&report).unwrap_or_default(),
            ));
        }
        Ok(out)
    }

    /// Rows and bytes the history takes: (hour rows, bytes on disk). SQLite: the whole file
    /// (readings are updated in place, so its growth is history). PostgreSQL: the history
    /// tables with their indexes (`fleet_miners`' readings are rewritten every cycle, whose
    /// dead versions autovacuum reuses: churn, not growth).
    pub async fn size(&self) -> Result<(u64, u64), StoreError> {
        let rows: i64 = sqlx::query("SELECT COUNT(*) FROM fleet_hourly")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        let bytes: i64 = match self.dialect {
            Dialect::Sqlite => sqlx::query(
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
            )
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?,
            Dialect::Postgres => sqlx::query(
                "SELECT (COALESCE(SUM(pg_total_relation_size(c.oid)), 0))::bigint FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind = 'r' AND c.relname IN ('fleet_hourly', 'fleet_addresses') \
                 AND n.nspname = current_schema()",
            )
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?,
        };
        Ok((rows.max(0) as u64, bytes.max(0) as u64))
    }

    /// Checkpoints SQLite's WAL into the file, so its size is the data's.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        if self.dialect == Dialect::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn upsert_miners(&self) -> &'static str {
        match self.dialect {
            // `WHERE true`: SQLite's parser otherwise takes ON CONFLICT for a join's ON.
            Dialect::Sqlite => {
                "INSERT INTO fleet_miners (key, site, ip, make, model, firmware, serial, mac, \
                 hostname, first_seen, last_seen) \
                 SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
                 value ->> 5, value ->> 6, value ->> 7, value ->> 8, value ->> 9, value ->> 10 \
                 FROM json_each($1) WHERE true \
                 ON CONFLICT (key) DO UPDATE SET site = excluded.site, ip = excluded.ip, \
                 make = excluded.make, model = excluded.model, firmware = excluded.firmware, \
                 serial = excluded.serial, mac = excluded.mac, hostname = excluded.hostname, \
                 first_seen = MIN(fleet_miners.first_seen, excluded.first_seen), \
                 last_seen = COALESCE(excluded.last_seen, fleet_miners.last_seen) \
                 RETURNING id, key"
            }
            Dialect::Postgres => {
                "INSERT INTO fleet_miners (key, site, ip, make, model, firmware, serial, mac, \
                 hostname, first_seen, last_seen) \
                 SELECT r ->> 0, r ->> 1, r ->> 2, r ->> 3, r ->> 4, r ->> 5, r ->> 6, r ->> 7, \
                 r ->> 8, (r ->> 9)::bigint, (r ->> 10)::bigint \
                 FROM json_array_elements($1::json) AS r \
                 ON CONFLICT (key) DO UPDATE SET site = excluded.site, ip = excluded.ip, \
                 make = excluded.make, model = excluded.model, firmware = excluded.firmware, \
                 serial = excluded.serial, mac = excluded.mac, hostname = excluded.hostname, \
                 first_seen = LEAST(fleet_miners.first_seen, excluded.first_seen), \
                 last_seen = COALESCE(excluded.last_seen, fleet_miners.last_seen) \
                 RETURNING id, key"
            }
        }
    }

    fn upsert_addresses(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => {
                "INSERT INTO fleet_addresses (miner_id, ip, first_seen, last_seen) \
                 SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 \
                 FROM json_each($1) WHERE true \
                 ON CONFLICT (miner_id, ip) DO UPDATE SET \
                 first_seen = MIN(fleet_addresses.first_seen, excluded.first_seen), \
                 last_seen = MAX(fleet_addresses.last_seen, excluded.last_seen)"
            }
            Dialect::Postgres => {
                "INSERT INTO fleet_addresses (miner_id, ip, first_seen, last_seen) \
                 SELECT (r ->> 0)::bigint, r ->> 1, (r ->> 2)::bigint, (r ->> 3)::bigint \
                 FROM json_array_elements($1::json) AS r \
                 ON CONFLICT (miner_id, ip) DO UPDATE SET \
                 first_seen = LEAST(fleet_addresses.first_seen, excluded.first_seen), \
                 last_seen = GREATEST(fleet_addresses.last_seen, excluded.last_seen)"
            }
        }
    }

    fn update_readings(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => {
                "UPDATE fleet_miners SET reading = x.value -> 1, \
                 reading_at = COALESCE(x.value ->> 2, fleet_miners.reading_at), \
                 last_seen = COALESCE(x.value ->> 2, fleet_miners.last_seen) \
                 FROM json_each($1) AS x WHERE fleet_miners.id = x.value ->> 0"
            }
            Dialect::Postgres => {
                "UPDATE fleet_miners SET reading = (r -> 1)::text, \
                 reading_at = COALESCE((r ->> 2)::bigint, fleet_miners.reading_at), \
                 last_seen = COALESCE((r ->> 2)::bigint, fleet_miners.last_seen) \
                 FROM json_array_elements($1::json) AS r \
                 WHERE fleet_miners.id = (r ->> 0)::bigint"
            }
        }
    }

    fn upsert_hours(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => {
                "INSERT INTO fleet_hourly (miner_id, hour, samples, answered, hashrate_ghs, \
                 temp_dc, power_w, accepted, rejected, boards) \
                 SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
                 value ->> 5, value ->> 6, value ->> 7, value ->> 8, value ->> 9 \
                 FROM json_each($1) WHERE true \
                 ON CONFLICT (miner_id, hour) DO UPDATE SET samples = excluded.samples, \
                 answered = excluded.answered, hashrate_ghs = excluded.hashrate_ghs, \
                 temp_dc = excluded.temp_dc, power_w = excluded.power_w, \
                 accepted = excluded.accepted, rejected = excluded.rejected, \
                 boards = excluded.boards"
            }
            Dialect::Postgres => {
                "INSERT INTO fleet_hourly (miner_id, hour, samples, answered, hashrate_ghs, \
                 temp_dc, power_w, accepted, rejected, boards) \
                 SELECT (r ->> 0)::bigint, (r ->> 1)::integer, (r ->> 2)::smallint, \
                 (r ->> 3)::smallint, (r ->> 4)::integer, (r ->> 5)::smallint, \
                 (r ->> 6)::integer, (r ->> 7)::integer, (r ->> 8)::integer, r ->> 9 \
                 FROM json_array_elements($1::json) AS r \
                 ON CONFLICT (miner_id, hour) DO UPDATE SET samples = excluded.samples, \
                 answered = excluded.answered, hashrate_ghs = excluded.hashrate_ghs, \
                 temp_dc = excluded.temp_dc, power_w = excluded.power_w, \
                 accepted = excluded.accepted, rejected = excluded.rejected, \
                 boards = excluded.boards"
            }
        }
    }

    fn upsert_alerts(&self) -> &'static str {
        match self.dialect {
            Dialect::Sqlite => {
                "INSERT INTO fleet_alerts (site, id, kind, ip, board, start_at, end_at, evidence) \
                 SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
                 value ->> 5, value ->> 6, value ->> 7 FROM json_each($1) WHERE true \
                 ON CONFLICT (site, id) DO UPDATE SET end_at = excluded.end_at, \
                 evidence = excluded.evidence"
            }
            Dialect::Postgres => {
                "INSERT INTO fleet_alerts (site, id, kind, ip, board, start_at, end_at, evidence) \
                 SELECT r ->> 0, (r ->> 1)::bigint, r ->> 2, r ->> 3, (r ->> 4)::integer, \
                 (r ->> 5)::bigint, (r ->> 6)::bigint, r ->> 7 \
                 FROM json_array_elements($1::json) AS r \
                 ON CONFLICT (site, id) DO UPDATE SET end_at = excluded.end_at, \
                 evidence = excluded.evidence"
            }
        }
    }
}

/// The key of a machine known only by its address at its site.
pub fn address_key(site: &str, ip: IpAddr) -> String {
    format!("ip:{site}/{ip}")
}

/// Rows for [`Store::write_readings`], `[[id, reading, last seen], ...]`, serialized straight
/// into one text (the reading as a JSON object, not a string inside one).
pub fn readings_batch<'a>(miners: impl Iterator<Item = (i64, &'a Miner)>) -> String {
    let mut out = Vec::with_capacity(64 * 1024);
    out.push(b'[');
    for (n, (id, m)) in miners.enumerate() {
        if n > 0 {
            out.push(b',');
        }
        // A `Miner` always serializes (no maps with non-string keys, no failing impls).
        let _ = serde_json::to_writer(&mut out, &(id, m, m.last_seen));
    }
    out.push(b']');
    String::from_utf8(out).unwrap_or_default()
}

/// An hour as a row of [`Store::upsert_hours`]: rates in whole GH/s, temperatures in tenths
/// of a degree, power in watts, boards as `GHS/DC` pairs (`-` for no temperature) joined by
/// spaces.
fn hour_json(id: i64, h: &HourRow) -> Value {
    let boards: Vec<String> = h
        .boards
        .iter()
        .map(|b| {
            let t = b.temp.map_or("-".to_string(), |t| {
                format!("{}", (t * 10.0).round() as i64)
            });
            format!("{}/{t}", (b.hashrate_ths * 1000.0).round() as i64)
        })
        .collect();
    // Within the narrowest column types (0001_fleet.postgres.sql); `as` saturates.
    let int = |x: f32| x.round() as i32;
    json!([
        id,
        h.hour.min(i32::MAX as u64),
        h.samples.min(i16::MAX as u32),
        h.answered.min(i16::MAX as u32),
        int(h.hashrate_ths * 1000.0),
        h.temp.map(|t| (t * 10.0).round() as i16),
        h.power_w.map(int),
        h.accepted.min(i32::MAX as u64),
        h.rejected.min(i32::MAX as u64),
        boards.join(" ")
    ])
}

fn hour_of(r: &sqlx::any::AnyRow) -> Result<(i64, HourRow), StoreError> {
    let int = |i: usize| -> Result<i64, StoreError> { Ok(r.try_get::<i64, _>(i)?) };
    let opt = |i: usize| -> Result<Option<i64>, StoreError> { Ok(r.try_get::<Option<i64>, _>(i)?) };
    let boards: String = r.try_get(9)?;
    Ok((
        int(0)?,
        HourRow {
            hour: int(1)?.max(0) as u64,
            samples: int(2)?.clamp(0, i64::from(u32::MAX)) as u32,
            answered: int(3)?.clamp(0, i64::from(u32::MAX)) as u32,
            hashrate_ths: int(4)? as f32 / 1000.0,
            temp: opt(5)?.map(|t| t as f32 / 10.0),
            power_w: opt(6)?.map(|p| p as f32),
            accepted: int(7)?.max(0) as u64,
            rejected: int(8)?.max(0) as u64,
            boards: boards
                .split_whitespace()
                .map(|b| {
                    let (g, t) = b.split_once('/').unwrap_or((b, "-"));
                    BoardHour {
                        hashrate_ths: g.parse::<f32>().unwrap_or(0.0) / 1000.0,
                        temp: t.parse::<f32>().ok().map(|t| t / 10.0),
                    }
                })
                .collect(),
        },
    ))
}

/// An alert kind's JSON name (`bad_chips`).
pub(crate) fn kind_name(k: AlertKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// An alert row; `None` for a kind this build does not know (a newer build wrote it).
fn alert_of(r: &sqlx::any::AnyRow) -> Result<Option<Alert>, StoreError> {
    let kind: String = r.try_get(2)?;
    let Ok(kind) = serde_json::from_value::<AlertKind>(Value::String(kind)) else {
        return Ok(None);
    };
    let ip: String = r.try_get(3)?;
    let Ok(ip) = ip.parse() else {
        return Ok(None);
    };
    Ok(Some(Alert {
        site: r.try_get(0)?,
        id: r.try_get::<i64, _>(1)?.max(0) as u64,
        kind,
        ip,
        board: r
            .try_get::<Option<i64>, _>(4)?
            .and_then(|b| u8::try_from(b).ok()),
        start: r.try_get::<i64, _>(5)?.max(0) as u64,
        end: r.try_get::<Option<i64>, _>(6)?.map(|e| e.max(0) as u64),
        evidence: r.try_get(7)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_dense() {
        assert!(FLEET.versions_are_dense());
    }
}
