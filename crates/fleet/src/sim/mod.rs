//! Simulated fleets: many lightweight miners on loopback addresses, each answering as its
//! make does through the `minerapi` contracts, with seeded lives (warm-up, noise, faults).

pub mod model;
pub mod serve;

pub use model::{parse_mix, FleetSpec, Kind, SimFault, SimFleet, SimPower};
pub use serve::{Ports, Simulator};
