//! The asset register in the fleet database (migration `0002_assets`, beside the inventory
//! of polled miners):
//!
//! - `fleet_assets`: one row per machine by serial: what was ordered (maker, model,
//!   nameplate, origin, HTS code, price, order), where it is in its life (state, last event,
//!   the first date of each stage, last shipment, position once deployed);
//! - `fleet_events`: every event of every machine, numbered per machine (`seq`);
//! - `fleet_holds`: customs holds (start, end or open, storage fee per unit and day);
//! - `fleet_repairs`: repair tickets (fault, board, chips, evidence, centre, dates);
//! - `fleet_board_reports`: `hashforge board test` reports by hash-board serial.
//!
//! Dates are days since 1970-01-01, money millionths of a dollar. An import is one
//! transaction: every row of a file is checked against the register first, and a file with
//! any bad row changes nothing. Rows go in batches, each one JSON parameter that the
//! database unpacks (the only SQL that differs between SQLite and PostgreSQL is generated
//! by [`batch_insert`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use hashforge_store::{Dialect, StoreError};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::{Any, Row, Transaction};

use super::{
    AssetSpec, CheckedEvent, Hold, ImportError, ImportErrors, Milestones, Position, Repair, Track,
};
use crate::date::Date;
use crate::lifecycle::State;
use crate::money::Usd;
use crate::store::{Store, BATCH};

/// Why an import or an event was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum ImportFailure {
    /// Bad rows; nothing was written.
    #[error("{0}")]
    Rows(ImportErrors),
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ImportFailure {
    fn from(e: sqlx::Error) -> ImportFailure {
        ImportFailure::Store(e.into())
    }
}

/// What an import wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Imported {
    /// Rows of the file.
    pub rows: usize,
    /// Machines new to the register (assets) or machines whose life moved (events).
    pub machines: usize,
    pub holds: usize,
    pub repairs: usize,
}

/// A machine as the reports read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AssetRecord {
    pub id: i64,
    pub serial: String,
    pub maker: String,
    pub model: String,
    pub nameplate_ghs: u64,
    pub nameplate_w: u32,
    pub origin: String,
    pub hts_code: String,
    pub price: Usd,
    pub order_id: String,
    pub ordered_on: Date,
    pub state: State,
    pub last_on: Date,
    pub milestones: Milestones,
    pub shipment: Option<String>,
    pub mac: Option<String>,
    pub site: Option<String>,
}

/// What of the register to read besides the machines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parts {
    pub holds: bool,
    pub repairs: bool,
    /// A repair's board, chips, evidence, shipment and dispatch date (no report needs them).
    pub repair_details: bool,
    /// A machine's serial, model, HTS code, order, MAC and site (read empty without).
    pub asset_details: bool,
    /// A repair's fault and centre, a hold's shipment, reason and place (read empty
    /// without: the economics need only dates and machines).
    pub keys: bool,
}

impl Parts {
    pub const ALL: Parts = Parts {
        holds: true,
        repairs: true,
        repair_details: true,
        asset_details: true,
        keys: true,
    };
}

/// Moves the register's version (migration 0003), first in every transaction that changes
/// the machines, their holds or their repairs: the console reads the register again when
/// it moves. Being the transaction's first write, it also takes the write lock (SQLite)
/// or the version's row lock (PostgreSQL) up front, so writers of the register take turns
/// instead of deadlocking halfway.
async fn bump_register(tx: &mut Transaction<'static, Any>) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE fleet_register_version SET v = v + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A JSON text the database built that does not decode: a bug here, not bad input.
fn decode(e: serde_json::Error) -> StoreError {
    StoreError::Database(std::sync::Arc::new(sqlx::Error::Decode(Box::new(e))))
}

/// Everything the reports read, loaded at once.
#[derive(Clone, Debug, Default)]
pub struct Register {
    pub assets: Vec<AssetRecord>,
    /// `assets` index by id.
    pub by_id: HashMap<i64, usize>,
    pub holds: Vec<Hold>,
    pub repairs: Vec<Repair>,
}

impl Register {
    pub fn asset(&self, id: i64) -> Option<&AssetRecord> {
        self.by_id.get(&id).map(|&i| &self.assets[i])
    }
}

/// `INSERT INTO table (cols) SELECT ... FROM <the JSON array $1>` for this database, each
/// row a JSON array in column order; `types` are PostgreSQL's casts (`text` needs none).
fn batch_insert(dialect: Dialect, table: &str, cols: &[(&str, &str)], tail: &str) -> String {
    let names: Vec<&str> = cols.iter().map(|c| c.0).collect();
    let (select, from) = match dialect {
        Dialect::Sqlite => (
            (0..cols.len())
                .map(|i| format!("value ->> {i}"))
                .collect::<Vec<_>>(),
            // `WHERE true`: SQLite's parser otherwise takes ON CONFLICT for a join's ON.
            "json_each($1) WHERE true",
        ),
        Dialect::Postgres => (
            cols.iter()
                .enumerate()
                .map(|(i, (_, ty))| {
                    if *ty == "text" {
                        format!("r ->> {i}")
                    } else {
                        format!("(r ->> {i})::{ty}")
                    }
                })
                .collect(),
            "json_array_elements($1::json) AS r",
        ),
    };
    format!(
        "INSERT INTO {table} ({}) SELECT {} FROM {from} {tail}",
        names.join(", "),
        select.join(", ")
    )
}

const ASSET_COLS: [(&str, &str); 20] = [
    ("serial", "text"),
    ("maker", "text"),
    ("model", "text"),
    ("nameplate_ghs", "bigint"),
    ("nameplate_w", "integer"),
    ("firmware", "text"),
    ("mac", "text"),
    ("control_board", "text"),
    ("psu", "text"),
    ("hash_boards", "text"),
    ("origin", "text"),
    ("hts_code", "text"),
    ("price_micro_usd", "bigint"),
    ("currency", "text"),
    ("order_id", "text"),
    ("ordered_on", "integer"),
    ("state", "text"),
    ("last_event", "text"),
    ("last_on", "integer"),
    ("seq", "integer"),
];

const EVENT_COLS: [(&str, &str); 9] = [
    ("asset_id", "bigint"),
    ("seq", "integer"),
    ("event", "text"),
    ("on_day", "integer"),
    ("place", "text"),
    ("shipment", "text"),
    ("reason", "text"),
    ("fee_micro_usd", "bigint"),
    ("note", "text"),
];

const HOLD_COLS: [(&str, &str); 8] = [
    ("asset_id", "bigint"),
    ("seq", "integer"),
    ("shipment", "text"),
    ("reason", "text"),
    ("place", "text"),
    ("start_on", "integer"),
    ("end_on", "integer"),
    ("fee_micro_usd", "bigint"),
];

const REPAIR_COLS: [(&str, &str); 12] = [
    ("asset_id", "bigint"),
    ("seq", "integer"),
    ("opened_on", "integer"),
    ("fault", "text"),
    ("board", "integer"),
    ("chips", "text"),
    ("evidence", "text"),
    ("centre", "text"),
    ("shipment", "text"),
    ("sent_on", "integer"),
    ("back_on", "integer"),
    ("outcome", "text"),
];

/// The columns an event moves, in `UPDATE fleet_assets`' order.
const TRACK_COLS: [(&str, &str); 17] = [
    ("id", "bigint"),
    ("state", "text"),
    ("last_event", "text"),
    ("last_on", "integer"),
    ("seq", "integer"),
    ("produced_on", "integer"),
    ("shipped_on", "integer"),
    ("held_on", "integer"),
    ("released_on", "integer"),
    ("delivered_on", "integer"),
    ("deployed_on", "integer"),
    ("retired_on", "integer"),
    ("shipment", "text"),
    ("site", "text"),
    ("row_name", "text"),
    ("rack", "text"),
    ("position", "text"),
];

fn day(d: Option<Date>) -> Value {
    d.map_or(Value::Null, |d| json!(d.days()))
}

fn hold_json(h: &Hold) -> Value {
    json!([
        h.asset_id,
        h.seq,
        h.shipment,
        h.reason,
        h.place,
        h.start.days(),
        day(h.end),
        h.fee.map(Usd::micros)
    ])
}

fn repair_json(r: &Repair) -> Value {
    json!([
        r.asset_id,
        r.seq,
        r.opened.days(),
        r.fault,
        r.board,
        r.chips,
        r.evidence,
        r.centre,
        r.shipment,
        day(r.sent),
        day(r.back),
        r.outcome
    ])
}

fn track_json(t: &Track) -> Value {
    let m = &t.milestones;
    json!([
        t.id,
        t.state.name(),
        t.last_event,
        t.last_on.days(),
        t.seq,
        day(m.produced),
        day(m.shipped),
        day(m.held),
        day(m.released),
        day(m.delivered),
        day(m.deployed),
        day(m.retired),
        t.shipment,
        t.position.site,
        t.position.row,
        t.position.rack,
        t.position.position
    ])
}

fn event_json(asset_id: i64, seq: i32, e: &CheckedEvent) -> Value {
    json!([
        asset_id,
        seq,
        e.event.name(),
        e.date.days(),
        e.place,
        e.shipment,
        e.reason,
        e.fee.map(Usd::micros),
        e.note
    ])
}

fn date_of(r: &sqlx::any::AnyRow, i: usize) -> Result<Date, sqlx::Error> {
    Ok(Date::from_days(r.try_get::<i64, _>(i)? as i32))
}

fn opt_date(r: &sqlx::any::AnyRow, i: usize) -> Result<Option<Date>, sqlx::Error> {
    Ok(r.try_get::<Option<i64>, _>(i)?
        .map(|d| Date::from_days(d as i32)))
}

impl Store {
    /// Adds the machines of an `assets.csv` (a machine already in the register gets the
    /// file's description; its life is kept), all in one transaction.
    pub async fn import_assets(
        &self,
        rows: &[(usize, AssetSpec)],
    ) -> Result<Imported, ImportFailure> {
        let mut tx = self.pool().begin().await?;
        bump_register(&mut tx).await?;
        let known: i64 = sqlx::query("SELECT COUNT(*) FROM fleet_assets")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let sql = batch_insert(
            self.dialect(),
            "fleet_assets",
            &ASSET_COLS,
            "ON CONFLICT (serial) DO UPDATE SET maker = excluded.maker, model = excluded.model, \
             nameplate_ghs = excluded.nameplate_ghs, nameplate_w = excluded.nameplate_w, \
             firmware = excluded.firmware, mac = excluded.mac, \
             control_board = excluded.control_board, psu = excluded.psu, \
             hash_boards = excluded.hash_boards, origin = excluded.origin, \
             hts_code = excluded.hts_code, price_micro_usd = excluded.price_micro_usd, \
             currency = excluded.currency, order_id = excluded.order_id, \
             ordered_on = CASE WHEN fleet_assets.seq = 0 THEN excluded.ordered_on \
             ELSE fleet_assets.ordered_on END, \
             last_on = CASE WHEN fleet_assets.seq = 0 THEN excluded.last_on \
             ELSE fleet_assets.last_on END",
        );
        for chunk in rows.chunks(BATCH) {
            let batch: Vec<Value> = chunk
                .iter()
                .map(|(_, a)| {
                    json!([
                        a.serial,
                        a.maker,
                        a.model,
                        a.nameplate_ghs,
                        a.nameplate_w,
                        a.firmware,
                        a.mac,
                        a.control_board,
                        a.psu,
                        a.hash_boards.join(" "),
                        a.origin.code(),
                        a.hts_code,
                        a.price.micros(),
                        a.currency,
                        a.order_id,
                        a.ordered_on.days(),
                        State::Ordered.name(),
                        "ordered",
                        a.ordered_on.days(),
                        0
                    ])
                })
                .collect();
            sqlx::query(&sql)
                .bind(Value::Array(batch).to_string())
                .execute(&mut *tx)
                .await?;
        }
        let now: i64 = sqlx::query("SELECT COUNT(*) FROM fleet_assets")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        tx.commit().await?;
        Ok(Imported {
            rows: rows.len(),
            machines: (now - known).max(0) as usize,
            ..Imported::default()
        })
    }

    /// The tracks of every machine, with their open holds and repairs, by serial.
    async fn tracks(
        &self,
        tx: &mut Transaction<'static, Any>,
        only: Option<&str>,
    ) -> Result<HashMap<String, Track>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, serial, state, last_event, last_on, seq, produced_on, shipped_on, \
             held_on, released_on, delivered_on, deployed_on, retired_on, shipment, site, \
             row_name, rack, position FROM fleet_assets WHERE CAST($1 AS TEXT) IS NULL OR serial = $1",
        )
        .bind(only)
        .fetch_all(&mut **tx)
        .await?;
        let mut tracks = HashMap::with_capacity(rows.len());
        let mut by_id = HashMap::with_capacity(rows.len());
        for r in rows {
            let state: String = r.try_get(2)?;
            let t = Track {
                id: r.try_get(0)?,
                state: state.parse().unwrap_or(State::Retired),
                last_event: r.try_get(3)?,
                last_on: date_of(&r, 4)?,
                seq: r.try_get::<i64, _>(5)? as i32,
                milestones: Milestones {
                    produced: opt_date(&r, 6)?,
                    shipped: opt_date(&r, 7)?,
                    held: opt_date(&r, 8)?,
                    released: opt_date(&r, 9)?,
                    delivered: opt_date(&r, 10)?,
                    deployed: opt_date(&r, 11)?,
                    retired: opt_date(&r, 12)?,
                },
                shipment: r.try_get(13)?,
                position: Position {
                    site: r.try_get(14)?,
                    row: r.try_get(15)?,
                    rack: r.try_get(16)?,
                    position: r.try_get(17)?,
                },
                open_hold: None,
                open_repair: None,
            };
            let serial: String = r.try_get(1)?;
            by_id.insert(t.id, serial.clone());
            tracks.insert(serial, t);
        }
        let one = only.map(|_| tracks.values().next().map_or(-1, |t| t.id));
        let open = |what: &str| match one {
            None => format!("{what} IS NULL"),
            Some(id) => format!("{what} IS NULL AND asset_id = {id}"),
        };
        for h in self.holds_where(&mut **tx, &open("end_on"), true).await? {
            if let Some(t) = by_id.get(&h.asset_id).and_then(|s| tracks.get_mut(s)) {
                t.open_hold = Some(h);
            }
        }
        for r in self
            .repairs_where(&mut **tx, &open("outcome"), true, true)
            .await?
        {
            if let Some(t) = by_id.get(&r.asset_id).and_then(|s| tracks.get_mut(s)) {
                t.open_repair = Some(r);
            }
        }
        Ok(tracks)
    }

    /// Records the events of an `events.csv` (or one posted event) in file order, each
    /// through the lifecycle; any refused row (an unknown serial, a wrong transition, a
    /// date before the machine's last) and nothing is written.
    pub async fn import_events(
        &self,
        rows: &[(usize, CheckedEvent)],
    ) -> Result<Imported, ImportFailure> {
        self.record_events(rows, None, |_| {}).await
    }

    /// One event (from the API or by hand): the machine's new state, or why not.
    pub async fn record_event(&self, e: CheckedEvent) -> Result<State, EventError> {
        self.record_with(e, |_| {}).await
    }

    async fn record_with(
        &self,
        e: CheckedEvent,
        amend: impl Fn(&mut Repair),
    ) -> Result<State, EventError> {
        let serial = e.serial.clone();
        match self.record_events(&[(1, e)], Some(&serial), amend).await {
            Ok(_) => {}
            Err(ImportFailure::Store(e)) => return Err(EventError::Store(e)),
            Err(ImportFailure::Rows(rows)) => {
                let reason = rows
                    .errors
                    .into_iter()
                    .next()
                    .map(|e| e.reason)
                    .unwrap_or_default();
                return Err(if reason.contains("is not in the register") {
                    EventError::UnknownSerial(serial)
                } else {
                    EventError::Refused(reason)
                });
            }
        }
        let state: String = sqlx::query("SELECT state FROM fleet_assets WHERE serial = $1")
            .bind(&serial)
            .fetch_one(self.pool())
            .await
            .map_err(StoreError::from)?
            .try_get(0)
            .map_err(StoreError::from)?;
        Ok(state.parse().unwrap_or(State::Retired))
    }

    /// Opens a repair ticket by hand: a `failed` event on `on` for `serial`, whose ticket
    /// names the fault, board, chip positions and evidence (a chip map, a note).
    pub async fn open_repair(&self, t: &RepairOpen) -> Result<State, EventError> {
        let e = CheckedEvent {
            serial: t.serial.clone(),
            event: crate::lifecycle::Event::Failed,
            date: t.date,
            place: None,
            shipment: None,
            reason: Some(t.fault.clone()),
            fee: None,
            note: t.evidence.clone(),
        };
        let (board, chips) = (t.board, t.chips.clone());
        self.record_with(e, move |r| {
            r.board = board;
            r.chips.clone_from(&chips);
        })
        .await
    }

    /// Opens a repair ticket from a part-1 alert (a dead chip, a board gone...): the
    /// machine at the alert's address is found in the register by its polled serial or
    /// MAC, and gets a `failed` event on `on` whose ticket names the board and the chip
    /// positions the alert's evidence lists.
    pub async fn repair_from_alert(
        &self,
        alert: &crate::alerts::Alert,
        on: Date,
    ) -> Result<(String, State), EventError> {
        let row = sqlx::query(
            "SELECT a.serial FROM fleet_miners m JOIN fleet_assets a \
             ON a.serial = m.serial OR (m.mac IS NOT NULL AND a.mac = LOWER(m.mac)) \
             WHERE m.site = $1 AND m.ip = $2 LIMIT 1",
        )
        .bind(&alert.site)
        .bind(alert.ip.to_string())
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::from)?;
        let Some(row) = row else {
            return Err(EventError::UnknownSerial(format!(
                "the miner at {} ({})",
                alert.ip, alert.site
            )));
        };
        let serial: String = row.try_get(0).map_err(StoreError::from)?;
        let e = CheckedEvent {
            serial: serial.clone(),
            event: crate::lifecycle::Event::Failed,
            date: on,
            place: None,
            shipment: None,
            reason: Some(crate::store::kind_name(alert.kind)),
            fee: None,
            note: Some(alert.evidence.clone()),
        };
        let (board, chips) = (alert.board, chip_positions(&alert.evidence));
        let state = self
            .record_with(e, move |r| {
                r.board = board;
                r.chips.clone_from(&chips);
            })
            .await?;
        Ok((serial, state))
    }

    /// [`Store::import_events`] over the machines of `only` (one serial) or all, letting
    /// `amend` fill in what an event's row cannot carry (a repair ticket's board and chips).
    async fn record_events(
        &self,
        rows: &[(usize, CheckedEvent)],
        only: Option<&str>,
        amend: impl Fn(&mut Repair),
    ) -> Result<Imported, ImportFailure> {
        let mut tx = self.pool().begin().await?;
        // Before reading the tracks: the write lock, so two imports take turns.
        bump_register(&mut tx).await?;
        let mut tracks = self.tracks(&mut tx, only).await?;
        let mut errors = ImportErrors {
            errors: Vec::new(),
            total: 0,
        };
        let mut holds: HashMap<(i64, i32), Hold> = HashMap::new();
        let mut repairs: HashMap<(i64, i32), Repair> = HashMap::new();
        let mut moved: HashSet<String> = HashSet::new();
        let mut events: Vec<Value> = Vec::with_capacity(BATCH);
        let insert = batch_insert(self.dialect(), "fleet_events", &EVENT_COLS, "");
        for (line, e) in rows {
            let Some(t) = tracks.get_mut(&e.serial) else {
                errors.push(ImportError {
                    line: *line,
                    reason: format!(
                        "serial `{}` is not in the register (import it with --assets first)",
                        e.serial
                    ),
                });
                continue;
            };
            match t.apply(e) {
                Ok(fx) => {
                    if !moved.contains(&e.serial) {
                        moved.insert(e.serial.clone());
                    }
                    if let Some(h) = fx.hold {
                        holds.insert((h.asset_id, h.seq), h);
                    }
                    if let Some(mut r) = fx.repair {
                        amend(&mut r);
                        repairs.insert((r.asset_id, r.seq), r);
                    }
                    if errors.is_empty() {
                        events.push(event_json(t.id, t.seq, e));
                        if events.len() >= BATCH {
                            let batch = Value::Array(std::mem::take(&mut events)).to_string();
                            sqlx::query(&insert).bind(batch).execute(&mut *tx).await?;
                        }
                    }
                }
                Err(refused) => errors.push(ImportError {
                    line: *line,
                    reason: format!("{}: {refused}", e.serial),
                }),
            }
        }
        if !errors.is_empty() {
            tx.rollback().await?;
            return Err(ImportFailure::Rows(errors));
        }
        if !events.is_empty() {
            sqlx::query(&insert)
                .bind(Value::Array(events).to_string())
                .execute(&mut *tx)
                .await?;
        }
        let upsert_holds = batch_insert(
            self.dialect(),
            "fleet_holds",
            &HOLD_COLS,
            "ON CONFLICT (asset_id, seq) DO UPDATE SET end_on = excluded.end_on",
        );
        let holds: Vec<Value> = holds.values().map(hold_json).collect();
        for chunk in holds.chunks(BATCH) {
            sqlx::query(&upsert_holds)
                .bind(Value::Array(chunk.to_vec()).to_string())
                .execute(&mut *tx)
                .await?;
        }
        let upsert_repairs = batch_insert(
            self.dialect(),
            "fleet_repairs",
            &REPAIR_COLS,
            "ON CONFLICT (asset_id, seq) DO UPDATE SET centre = excluded.centre, \
             shipment = excluded.shipment, sent_on = excluded.sent_on, \
             back_on = excluded.back_on, outcome = excluded.outcome, \
             board = COALESCE(excluded.board, fleet_repairs.board), \
             chips = COALESCE(excluded.chips, fleet_repairs.chips)",
        );
        let repairs_n = repairs.len();
        let repairs: Vec<Value> = repairs.values().map(repair_json).collect();
        for chunk in repairs.chunks(BATCH) {
            sqlx::query(&upsert_repairs)
                .bind(Value::Array(chunk.to_vec()).to_string())
                .execute(&mut *tx)
                .await?;
        }
        let moved: Vec<&String> = moved.iter().collect();
        let update = self.update_tracks();
        for chunk in moved.chunks(BATCH) {
            let batch: Vec<Value> = chunk
                .iter()
                .filter_map(|s| tracks.get(*s).map(track_json))
                .collect();
            sqlx::query(&update)
                .bind(Value::Array(batch).to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Imported {
            rows: rows.len(),
            machines: moved.len(),
            holds: holds.len(),
            repairs: repairs_n,
        })
    }

    fn update_tracks(&self) -> String {
        let sets: Vec<String> = TRACK_COLS[1..]
            .iter()
            .enumerate()
            .map(|(i, (name, ty))| match self.dialect() {
                Dialect::Sqlite => format!("{name} = x.value ->> {}", i + 1),
                Dialect::Postgres if *ty == "text" => format!("{name} = r ->> {}", i + 1),
                Dialect::Postgres => format!("{name} = (r ->> {})::{ty}", i + 1),
            })
            .collect();
        match self.dialect() {
            Dialect::Sqlite => format!(
                "UPDATE fleet_assets SET {} FROM json_each($1) AS x WHERE fleet_assets.id = x.value ->> 0",
                sets.join(", ")
            ),
            Dialect::Postgres => format!(
                "UPDATE fleet_assets SET {} FROM json_array_elements($1::json) AS r \
                 WHERE fleet_assets.id = (r ->> 0)::bigint",
                sets.join(", ")
            ),
        }
    }

    /// The rows of `SELECT cols FROM table WHERE filter ORDER BY order` as one JSON text,
    /// `[[...], ...]`, built by the database: one value to decode instead of a value per
    /// column and row (the reports read 100,000 machines in a fraction of the time).
    async fn json_rows<'e>(
        &self,
        ex: impl sqlx::Executor<'e, Database = Any>,
        cols: &str,
        table: &str,
        filter: &str,
        order: &str,
    ) -> Result<String, StoreError> {
        // A column may be `expression AS name`: SQLite's outer query reads it by name.
        let part = |c: &str, name: bool| {
            let (expr, alias) = c.rsplit_once(" AS ").unwrap_or((c, c));
            (if name { alias } else { expr }).trim().to_owned()
        };
        let names: Vec<String> = cols.split(',').map(|c| part(c, true)).collect();
        let exprs: Vec<String> = cols.split(',').map(|c| part(c, false)).collect();
        let (names, exprs) = (names.join(", "), exprs.join(", "));
        let sql = match self.dialect() {
            Dialect::Sqlite => format!(
                "SELECT json_group_array(json_array({names})) FROM \
                 (SELECT {cols} FROM {table} WHERE {filter} ORDER BY {order})"
            ),
            Dialect::Postgres => format!(
                "SELECT COALESCE(json_agg(json_build_array({exprs}) ORDER BY {order}), '[]'::json)::text \
                 FROM {table} WHERE {filter}"
            ),
        };
        Ok(sqlx::query(&sql).fetch_one(ex).await?.try_get(0)?)
    }

    async fn holds_where<'e>(
        &self,
        ex: impl sqlx::Executor<'e, Database = Any>,
        filter: &str,
        keys: bool,
    ) -> Result<Vec<Hold>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Raw(
            i64,
            i32,
            Option<String>,
            Option<String>,
            Option<String>,
            i32,
            Option<i32>,
            Option<i64>,
        );
        let text = self
            .json_rows(
                ex,
                if keys {
                    "asset_id, seq, shipment, reason, place, start_on, end_on, fee_micro_usd"
                } else {
                    "asset_id, seq, NULL, NULL, NULL, start_on, end_on, fee_micro_usd"
                },
                "fleet_holds",
                filter,
                "asset_id, seq",
            )
            .await?;
        let rows: Vec<Raw> = serde_json::from_str(&text).map_err(decode)?;
        Ok(rows
            .into_iter()
            .map(|r| Hold {
                asset_id: r.0,
                seq: r.1,
                shipment: r.2,
                reason: r.3,
                place: r.4,
                start: Date::from_days(r.5),
                end: r.6.map(Date::from_days),
                fee: r.7.map(Usd::from_micros),
            })
            .collect())
    }

    /// Repairs as the economics read them: whose, from when, until when, and whether the
    /// machine was retired (four values a ticket: 270,000 tickets in a third of the time).
    async fn downtime<'e>(
        &self,
        ex: impl sqlx::Executor<'e, Database = Any>,
        filter: &str,
    ) -> Result<Vec<Repair>, StoreError> {
        let text = self
            .json_rows(
                ex,
                "asset_id, opened_on, back_on, outcome = 'retired' AS retired",
                "fleet_repairs",
                filter,
                "asset_id, seq",
            )
            .await?;
        let rows: Vec<(i64, i32, Option<i32>, Option<serde_json::Value>)> =
            serde_json::from_str(&text).map_err(decode)?;
        Ok(rows
            .into_iter()
            .map(|(asset_id, opened, back, retired)| Repair {
                asset_id,
                seq: 0,
                opened: Date::from_days(opened),
                fault: String::new(),
                board: None,
                chips: None,
                evidence: None,
                triage: None,
                centre: None,
                shipment: None,
                sent: None,
                back: back.map(Date::from_days),
                // PostgreSQL says true, SQLite 1.
                outcome: retired
                    .is_some_and(|v| v == serde_json::json!(true) || v == serde_json::json!(1))
                    .then_some("retired"),
            })
            .collect())
    }

    async fn repairs_where<'e>(
        &self,
        ex: impl sqlx::Executor<'e, Database = Any>,
        filter: &str,
        details: bool,
        keys: bool,
    ) -> Result<Vec<Repair>, StoreError> {
        if !details && !keys {
            return self.downtime(ex, filter).await;
        }
        #[derive(serde::Deserialize)]
        #[allow(clippy::type_complexity)]
        struct Raw(
            i64,
            i32,
            i32,
            String,
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<i32>,
            Option<i32>,
            Option<String>,
            Option<String>,
        );
        let text = self
            .json_rows(
                ex,
                if details {
                    "asset_id, seq, opened_on, fault, board, chips, evidence, centre, shipment, \
                     sent_on, back_on, outcome, triage"
                } else {
                    "asset_id, seq, opened_on, fault, NULL, NULL, NULL, centre, NULL, NULL, \
                     back_on, outcome, NULL"
                },
                "fleet_repairs",
                filter,
                "asset_id, seq",
            )
            .await?;
        let rows: Vec<Raw> = serde_json::from_str(&text).map_err(decode)?;
        Ok(rows
            .into_iter()
            .map(|r| Repair {
                asset_id: r.0,
                seq: r.1,
                opened: Date::from_days(r.2),
                fault: r.3,
                board: r.4.and_then(|b| u8::try_from(b).ok()),
                chips: r.5,
                evidence: r.6,
                triage: r.12.filter(|t| !t.is_empty()),
                centre: r.7,
                shipment: r.8,
                sent: r.9.map(Date::from_days),
                back: r.10.map(Date::from_days),
                outcome: r
                    .11
                    .as_deref()
                    .and_then(|o| ["on_site", "rma", "retired"].into_iter().find(|k| *k == o)),
            })
            .collect())
    }

    /// The whole register, for the reports.
    pub async fn register(&self) -> Result<Register, StoreError> {
        self.register_with(Parts::ALL).await
    }

    /// The machines, and the holds and repairs when `parts` asks for them (each report reads
    /// only what it needs: [`crate::reports::parts`]).
    pub async fn register_with(&self, parts: Parts) -> Result<Register, StoreError> {
        self.register_where(parts, "true", "true").await
    }

    /// The register's version: every change to its machines, holds or repairs moves it, in
    /// the change's own transaction, whichever process made it ([`bump_register`]).
    pub async fn register_version(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT v FROM fleet_register_version WHERE id = 1")
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// The whole register ([`Parts::ALL`]), read again only when its version has moved
    /// since the last read: what the console's pages show, so that a page over 100,000
    /// machines costs its report and not a second of reading. The version is read before
    /// the register, so the register kept is never older than the version it is kept under.
    pub async fn register_cached(&self) -> Result<Arc<Register>, StoreError> {
        let mut cached = self.cached.lock().await;
        let version = self.register_version().await?;
        if let Some((v, register)) = cached.as_ref() {
            if *v == version {
                return Ok(Arc::clone(register));
            }
        }
        // Let the old one go before reading the new: two registers of 100,000 machines
        // need not be in memory at once.
        *cached = None;
        let register = Arc::new(self.register_with(Parts::ALL).await?);
        *cached = Some((version, Arc::clone(&register)));
        Ok(register)
    }

    /// One machine of the register with its holds and repairs (everything read), or
    /// `None` when no machine has that serial: what its page reads, without the rest.
    pub async fn machine(&self, serial: &str) -> Result<Option<Register>, StoreError> {
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM fleet_assets WHERE serial = $1")
            .bind(serial)
            .fetch_optional(self.pool())
            .await?;
        match id {
            // An integer from the database: safe in the SQL text.
            Some(id) => Ok(Some(
                self.register_where(
                    Parts::ALL,
                    &format!("id = {id}"),
                    &format!("asset_id = {id}"),
                )
                .await?,
            )),
            None => Ok(None),
        }
    }

    /// How many machines are in each state, by the state's name.
    pub async fn state_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM fleet_assets GROUP BY state")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
            .collect()
    }

    /// [`Store::register_with`] over the machines `assets` (SQL on `fleet_assets`) and the
    /// holds and repairs `theirs` (SQL on their `asset_id`) selects.
    async fn register_where(
        &self,
        parts: Parts,
        assets: &str,
        theirs: &str,
    ) -> Result<Register, StoreError> {
        #[derive(serde::Deserialize)]
        #[allow(clippy::type_complexity)]
        struct Raw(
            i64,
            Option<String>,
            String,
            Option<String>,
            i64,
            i64,
            String,
            Option<String>,
            i64,
            Option<String>,
            i32,
            String,
            i32,
            Option<i32>,
            Option<i32>,
            Option<i32>,
            Option<i32>,
            Option<i32>,
            Option<i32>,
            Option<i32>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let text = self
            .json_rows(
                self.pool(),
                if parts.asset_details {
                    "id, serial, maker, model, nameplate_ghs, nameplate_w, origin, hts_code, \
                     price_micro_usd, order_id, ordered_on, state, last_on, produced_on, \
                     shipped_on, held_on, released_on, delivered_on, deployed_on, retired_on, \
                     shipment, mac, site"
                } else {
                    "id, NULL, maker, NULL, nameplate_ghs, nameplate_w, origin, NULL, \
                     price_micro_usd, NULL, ordered_on, state, last_on, produced_on, \
                     shipped_on, held_on, released_on, delivered_on, deployed_on, retired_on, \
                     shipment, NULL, NULL"
                },
                "fleet_assets",
                assets,
                "id",
            )
            .await?;
        let rows: Vec<Raw> = serde_json::from_str(&text).map_err(decode)?;
        drop(text);
        let mut assets = Vec::with_capacity(rows.len());
        let mut by_id = HashMap::with_capacity(rows.len());
        let day = |d: Option<i32>| d.map(Date::from_days);
        for r in rows {
            let a = AssetRecord {
                id: r.0,
                serial: r.1.unwrap_or_default(),
                maker: r.2,
                model: r.3.unwrap_or_default(),
                nameplate_ghs: r.4.max(0) as u64,
                nameplate_w: r.5.clamp(0, i64::from(u32::MAX)) as u32,
                origin: r.6,
                hts_code: r.7.unwrap_or_default(),
                price: Usd::from_micros(r.8),
                order_id: r.9.unwrap_or_default(),
                ordered_on: Date::from_days(r.10),
                state: r.11.parse().unwrap_or(State::Retired),
                last_on: Date::from_days(r.12),
                milestones: Milestones {
                    produced: day(r.13),
                    shipped: day(r.14),
                    held: day(r.15),
                    released: day(r.16),
                    delivered: day(r.17),
                    deployed: day(r.18),
                    retired: day(r.19),
                },
                shipment: r.20,
                mac: r.21,
                site: r.22,
            };
            by_id.insert(a.id, assets.len());
            assets.push(a);
        }
        let holds = if parts.holds {
            self.holds_where(self.pool(), theirs, parts.keys).await?
        } else {
            Vec::new()
        };
        let repairs = if parts.repairs {
            self.repairs_where(self.pool(), theirs, parts.repair_details, parts.keys)
                .await?
        } else {
            Vec::new()
        };
        Ok(Register {
            assets,
            by_id,
            holds,
            repairs,
        })
    }

    /// One machine's events, oldest first: (event, date, place, shipment, reason, note).
    pub async fn events_of(&self, serial: &str) -> Result<Vec<Value>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.seq, e.event, e.on_day, e.place, e.shipment, e.reason, e.fee_micro_usd, \
             e.note FROM fleet_events e JOIN fleet_assets a ON a.id = e.asset_id \
             WHERE a.serial = $1 ORDER BY e.seq",
        )
        .bind(serial)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(json!({
                "seq": r.try_get::<i64, _>(0)?,
                "event": r.try_get::<String, _>(1)?,
                "date": date_of(&r, 2)?,
                "place": r.try_get::<Option<String>, _>(3)?,
                "shipment": r.try_get::<Option<String>, _>(4)?,
                "reason": r.try_get::<Option<String>, _>(5)?,
                "fee_usd_per_unit_day": r.try_get::<Option<i64>, _>(6)?.map(|m| Usd::from_micros(m).dollars()),
                "note": r.try_get::<Option<String>, _>(7)?,
            }));
        }
        Ok(out)
    }

    /// Polled miners matched to the register by serial, else MAC: (miners matched, the
    /// polled miners no order names: (site, address, make, model, serial, MAC)).
    pub async fn match_miners(&self) -> Result<MinerMatch, StoreError> {
        let rows = sqlx::query(
            "SELECT m.site, m.ip, m.make, m.model, m.serial, m.mac, \
             (SELECT a.serial FROM fleet_assets a WHERE a.serial = m.serial) AS by_serial, \
             (SELECT a.serial FROM fleet_assets a WHERE a.mac = LOWER(m.mac) LIMIT 1) AS by_mac \
             FROM fleet_miners m ORDER BY m.site, m.ip",
        )
        .fetch_all(self.pool())
        .await?;
        let mut out = MinerMatch::default();
        for r in rows {
            let by_serial: Option<String> = r.try_get(6)?;
            let by_mac: Option<String> = r.try_get(7)?;
            let miner = PolledMiner {
                site: r.try_get(0)?,
                ip: r.try_get(1)?,
                make: r.try_get(2)?,
                model: r.try_get(3)?,
                serial: r.try_get(4)?,
                mac: r.try_get(5)?,
                asset: by_serial.clone().or(by_mac.clone()),
                matched_by: if by_serial.is_some() {
                    Some("serial")
                } else if by_mac.is_some() {
                    Some("mac")
                } else {
                    None
                },
            };
            if miner.asset.is_some() {
                out.matched.push(miner);
            } else {
                out.unordered.push(miner);
            }
        }
        Ok(out)
    }

    /// Attaches a `hashforge board test` report (its JSON) to a hash board's serial.
    pub async fn attach_board_report(
        &self,
        board_serial: &str,
        place: &str,
        report: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO fleet_board_reports (board_serial, at_unix, place, report) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (board_serial, at_unix) DO UPDATE \
             SET place = excluded.place, report = excluded.report",
        )
        .bind(board_serial)
        .bind(crate::unix_now() as i64)
        .bind(place)
        .bind(report)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The reports attached to a hash board, oldest first: (unix time, place, JSON).
    pub async fn board_reports(
        &self,
        board_serial: &str,
    ) -> Result<Vec<(i64, String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT at_unix, place, report FROM fleet_board_reports WHERE board_serial = $1 \
             ORDER BY at_unix",
        )
        .bind(board_serial)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// Adds a triage step (`reseat`, `swap cable: fault stayed on chain 2`, `board test:
    /// fail`) to a machine's open repair ticket; false when it has none.
    pub async fn add_triage(&self, serial: &str, step: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        bump_register(&mut tx).await?;
        let done = sqlx::query(
            "UPDATE fleet_repairs SET triage = CASE WHEN triage = '' THEN $1 \
             ELSE triage || '; ' || $1 END \
             WHERE outcome IS NULL AND asset_id = (SELECT id FROM fleet_assets WHERE serial = $2)",
        )
        .bind(step)
        .bind(serial)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// A repair ticket opened by hand (`POST /api/assets/repairs`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct RepairOpen {
    pub serial: String,
    pub date: Date,
    /// The fault kind: `bad_chips`, `board_gone`, `psu`, `fan_failed`...
    pub fault: String,
    #[serde(default)]
    pub board: Option<u8>,
    /// Chip positions on the board (`7, 30`).
    #[serde(default)]
    pub chips: Option<String>,
    /// The chip map, the technician's note.
    #[serde(default)]
    pub evidence: Option<String>,
}

/// Why one event was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("{0} is not in the register")]
    UnknownSerial(String),
    /// A wrong transition or a date before the machine's last event.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// The chip positions an alert's evidence names (`board 2: chips 7, 30 silent or bad`:
/// `7, 30`).
pub fn chip_positions(evidence: &str) -> Option<String> {
    let (_, rest) = evidence.split_once("chip")?;
    let rest = rest.trim_start_matches('s').trim_start();
    let list: Vec<&str> = rest
        .split(',')
        .map(str::trim)
        .map_while(|p| {
            let n = p.split_whitespace().next()?;
            n.bytes().all(|b| b.is_ascii_digit()).then_some(n)
        })
        .collect();
    (!list.is_empty()).then(|| list.join(", "))
}

/// A polled miner and the machine of the register it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolledMiner {
    pub site: String,
    pub ip: String,
    pub make: String,
    pub model: String,
    pub serial: Option<String>,
    pub mac: Option<String>,
    /// The register's serial for it.
    pub asset: Option<String>,
    pub matched_by: Option<&'static str>,
}

/// [`Store::match_miners`]' answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MinerMatch {
    pub matched: Vec<PolledMiner>,
    /// Miners nobody ordered (or whose order is not in the register).
    pub unordered: Vec<PolledMiner>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chip_positions_from_alert_evidence() {
        assert_eq!(
            chip_positions("board 2: chips 7, 30 silent or bad").as_deref(),
            Some("7, 30")
        );
        assert_eq!(
            chip_positions("board 1: chip 7 silent or bad").as_deref(),
            Some("7")
        );
        assert_eq!(
            chip_positions("board 0: chips 1, 2, 3 and 9 more silent or bad").as_deref(),
            Some("1, 2, 3")
        );
        assert_eq!(chip_positions("board 1 gone"), None);
    }
}
