//! The fleet console, part 1: find every miner, read it, watch many of them from one
//! machine.
//!
//! - [`range`]: the address ranges an operator writes.
//! - [`sim`]: simulated fleets on loopback addresses, answering through `minerapi`.
//! - [`client`] and [`http`]: reading one miner, with a timeout and a size limit on
//!   everything; [`scan`]: discovery with bounded concurrency and retries.
//! - [`poll`]: the collector (enrolment checks, poll cycles); [`state`]: what it keeps per
//!   miner, history rolled up as it ages; [`alerts`]: the rules and open/closed alerts.
//! - [`console`]: the web UI and JSON API.

pub mod alerts;
pub mod client;
pub mod console;
pub mod fuzzing;
pub mod http;
pub mod poll;
pub mod range;
pub mod scan;
pub mod sim;
pub mod state;
pub mod store;

/// The wall clock in unix seconds (0 before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
