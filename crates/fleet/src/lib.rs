//! The fleet console: find every miner, read it, watch many of them from one
//! machine.
//!
//! - [`range`]: the address ranges an operator writes.
//! - [`sim`]: simulated fleets on loopback addresses, answering through `minerapi`.
//! - [`client`] and [`http`]: reading one miner, with a timeout and a size limit on
//!   everything; [`scan`]: discovery with bounded concurrency and retries.
//! - [`poll`]: the collector (enrolment checks, poll cycles); [`state`]: what it keeps per
//!   miner, history rolled up as it ages; [`alerts`]: the rules and open/closed alerts.
//! - [`console`]: the web UI and JSON API.
//!
//! Part 2, every machine from order to repair:
//!
//! - [`assets`]: the register (machines by serial, `assets.csv` / `events.csv` import, the
//!   database tables); [`lifecycle`]: the state machine every event goes through.
//! - [`tariffs`]: the dated duty schedule, landed cost and the what-if by origin.
//! - [`economics`]: hashprice, revenue, power cost, payback; [`reports`]: customs, tariffs,
//!   repairs, vendors, economics and lead times as typed structs the CLI and the console
//!   both render.
//! - [`date`], [`money`], [`csv`]: days, fixed-point dollars and rates, an RFC 4180 reader.

pub mod alerts;
pub mod assets;
pub mod client;
pub mod console;
pub mod csv;
pub mod curtail;
pub mod date;
pub mod economics;
pub mod fuzzing;
pub mod http;
pub mod lifecycle;
pub mod money;
pub mod poll;
pub mod range;
pub mod reports;
pub mod scan;
pub mod sim;
pub mod state;
pub mod store;
pub mod tariffs;

/// The wall clock in unix seconds (0 before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
