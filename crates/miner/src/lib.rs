//! The miner daemon (a control board's firmware): pools in priority order with failover
//! and failback, work dispatch to devices, every nonce re-checked, statistics, and the
//! interfaces fleet tools read — the cgminer API (shaped like stock Antminer firmware),
//! REST, Prometheus metrics and a status page.
//!
//! Data flows one way: pool job ([`hashforge_stratum::Job`]) -> [`WorkUnit`] (one
//! extranonce2 and ntime, never shared) -> [`Device`] -> [`FoundNonce`] -> re-hash and judge ->
//! share -> pool. Stratum is the `stratum` crate's sans-I/O `ClientSession` inside a tokio
//! task per pool; this crate writes no Stratum of its own and validates no blocks.
//!
//! ```no_run
//! # async fn f() -> Result<(), hashforge_miner::StartError> {
//! use hashforge_miner::{Miner, MinerConfig, PoolConfig};
//! let mut config = MinerConfig::default();
//! config.pools.push(PoolConfig {
//!     url: "stratum+tcp://127.0.0.1:3333".parse()?,
//!     user: "worker".into(),
//!     password: "x".into(),
//! });
//! let miner = Miner::start(config).await?;
//! eprintln!("{}", miner.status_line());
//! miner.stop().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod cgminer;
mod chain;
pub mod config;
pub mod device;
pub mod failover;
pub mod feed;
mod http;
mod miner;
mod pool;
mod power;
mod snapshot;
pub mod stats;

pub use config::{
    ApiConfig, ConfigError, DeviceSpec, FailoverConfig, HttpConfig, MinerConfig, PoolConfig,
    PoolUrl,
};
pub use device::{
    Celsius, CpuDevice, Device, DeviceContext, DeviceError, DeviceInfo, FoundNonce, PowerControl,
    Rpm, Telemetry,
};
pub use feed::{WorkFeed, WorkUnit};
pub use miner::{Miner, MinerHandle, StartError};
pub use snapshot::{ChainSnapshot, DeviceSnapshot, PoolSnapshot, Rates, Snapshot};
