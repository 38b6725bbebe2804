//! The pool's settings: every one has a default, a TOML key and a command-line flag (the
//! flags live in the `hashforge` binary and fill this struct).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::bitcoind::RpcAuth;
use crate::vardiff::VardiffConfig;

/// Where templates come from.
#[derive(Clone, Debug)]
pub enum SourceConfig {
    /// The embedded regtest chain kept in the data directory.
    Embedded,
    Bitcoind {
        url: String,
        auth: RpcAuth,
    },
}

#[derive(Clone, Debug)]
pub struct PoolConfig {
    pub stratum: SocketAddr,
    /// The Stratum V2 endpoint, if any (its authority key lives in `data_dir`).
    pub sv2: Option<SocketAddr>,
    /// The Job Declarator Server, if any (with the SV2 endpoint's key): miners whose
    /// SV2 connection asks for work selection mine jobs they declared here.
    pub sv2_jd: Option<SocketAddr>,
    /// The Template Provider, if any (with the SV2 endpoint's key): the pool's templates
    /// over SV2's Template Distribution protocol, for a Job Declarator Client.
    pub sv2_tp: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub source: SourceConfig,
    /// `sqlite://...` or `postgres://...`; default: `pool.db` in `data_dir`.
    pub database: Option<String>,
    pub data_dir: PathBuf,
    pub payout_address: Option<String>,
    /// Each miner's username (`<address>.<worker>`) names the address its blocks pay.
    pub solo: bool,
    pub start_difficulty: f64,
    pub vardiff: VardiffConfig,
    /// Text in every coinbase.
    pub tag: String,
    pub extranonce2_size: usize,
    /// New ntime (and transactions) this often without a new tip.
    pub refresh: Duration,
    /// PPLNS window, in multiples of the network difficulty.
    pub pplns_window: f64,
    /// Pool fee, a fraction (0.01 = 1%).
    pub pool_fee: f64,
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    /// Invalid shares in a row before a connection is dropped.
    pub max_reject_streak: u32,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            stratum: SocketAddr::from(([127, 0, 0, 1], 3333)),
            sv2: None,
            sv2_jd: None,
            sv2_tp: None,
            http: None,
            source: SourceConfig::Embedded,
            database: None,
            data_dir: PathBuf::from("hashforge-pool"),
            payout_address: None,
            solo: false,
            start_difficulty: 1.0,
            vardiff: VardiffConfig::default(),
            tag: "/hashforge/".into(),
            extranonce2_size: 8,
            refresh: Duration::from_secs(30),
            pplns_window: 4.0,
            pool_fee: 0.0,
            max_connections: 100_000,
            handshake_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(900),
            max_reject_streak: 50,
        }
    }
}

impl PoolConfig {
    pub fn database_url(&self) -> String {
        self.database
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("pool.db").display()))
    }
}

/// The TOML file: the same names as the flags, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PoolFile {
    pub stratum: Option<SocketAddr>,
    pub sv2: Option<SocketAddr>,
    pub sv2_jd: Option<SocketAddr>,
    pub sv2_tp: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub bitcoind: Option<String>,
    pub rpc_user: Option<String>,
    pub rpc_password: Option<String>,
    pub rpc_cookie: Option<PathBuf>,
    pub database: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub payout_address: Option<String>,
    pub solo: Option<bool>,
    pub min_difficulty: Option<f64>,
    pub max_difficulty: Option<f64>,
    pub start_difficulty: Option<f64>,
    pub shares_per_minute: Option<f64>,
    pub tag: Option<String>,
    pub extranonce2_size: Option<usize>,
    pub refresh_secs: Option<u64>,
    pub pplns_window: Option<f64>,
    pub pool_fee: Option<f64>,
    pub max_connections: Option<usize>,
}

impl PoolFile {
    /// Parses a TOML file's text; errors name the line and the key.
    pub fn parse(text: &str) -> Result<PoolFile, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}
