//! The pool daemon: block templates from the operator's own bitcoind (or an embedded regtest
//! chain), jobs, a Stratum V1 server with per-connection vardiff, a durable share ledger
//! (SQLite or PostgreSQL), PPLNS payouts, and an HTTP API with Prometheus metrics.
//!
//! The pool never trusts a miner's bytes: every line goes through
//! `hashforge_stratum::ServerSession`, which checks every share; the pool only decides who
//! may authorize, records what was accepted (durably, before the miner hears `true`), and
//! submits blocks (before anything else happens to them).
//!
//! ```no_run
//! # async fn run() -> Result<(), hashforge_pool::PoolError> {
//! let pool = hashforge_pool::Pool::start(hashforge_pool::PoolConfig::default()).await?;
//! println!("mine on {}", pool.stratum_url());
//! pool.wait().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod api;
pub mod bitcoind;
pub mod chain;
pub mod config;
mod declare;
pub mod jobs;
pub mod ledger;
pub mod loadgen;
mod pacing;
mod server;
mod server_jd;
mod server_sv2;
mod server_tp;
pub mod stats;
pub mod template;
pub mod testing;
pub mod vardiff;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitcoin::{Address, Network, ScriptBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

pub use config::{PoolConfig, SourceConfig};
use jobs::JobFactory;
use ledger::Ledger;
use stats::{Protocol, Stats};
use template::{SourceError, TemplateSource};

/// Why the pool could not start.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("template source: {0}")]
    Source(#[from] SourceError),
    #[error("ledger: {0}")]
    Ledger(#[from] ledger::LedgerError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("--payout-address {address}: {reason}")]
    PayoutAddress { address: String, reason: String },
    #[error("a pool on {0} needs --payout-address (or --solo, where each miner's username is its address)")]
    NoPayout(Network),
    #[error("the SV2 authority key {path}: {reason}")]
    Sv2Key { path: PathBuf, reason: String },
    #[error("a Job Declarator Server (--sv2-jd) needs the SV2 endpoint (--sv2) its miners mine the declared jobs on")]
    JdWithoutSv2,
    #[error("a Template Provider (--sv2-tp) needs the SV2 endpoint (--sv2) whose key it shares")]
    TpWithoutSv2,
}

/// A new job generation, as the connection tasks hear of it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JobsChanged {
    /// New tips so far: a task that last saw a smaller count has stale jobs out, even if
    /// it missed the clean generation itself (a watch keeps only the latest value).
    tips: u64,
}

/// What every connection task and the API share.
pub(crate) struct Shared {
    config: PoolConfig,
    source: Arc<dyn TemplateSource>,
    network: Network,
    /// The pool-mode payout.
    payout: ScriptBuf,
    jobs: JobFactory,
    /// Sent for each new job generation.
    generation: watch::Sender<JobsChanged>,
    /// Connections started, for each one's place in a refresh's spread ([`pacing`]).
    connections: AtomicU64,
    /// Asks the template task to look for a new tip now (after a block was found here).
    kick: Notify,
    /// The height of the last block this pool found and the node accepted: a block at that
    /// height or below arriving before its miner had the new job is stale, not a block.
    found_height: AtomicU64,
    ledger: Ledger,
    stats: Stats,
    extranonce1: AtomicU32,
    source_status: Mutex<String>,
    /// The SV2 endpoint's authority key pair, when it runs.
    sv2_authority: Option<hashforge_sv2::AuthorityKeypair>,
    /// The Job Declarator Server's tokens and accepted jobs.
    declarations: declare::Declarations,
}

impl Shared {
    /// A new connection's schedule for refreshed jobs.
    fn job_pacer(&self) -> pacing::JobPacer {
        let slot = self.connections.fetch_add(1, Ordering::Relaxed);
        pacing::JobPacer::new(slot, pacing::spread(self.config.refresh))
    }

    fn next_extranonce1(&self) -> [u8; 4] {
        self.extranonce1
            .fetch_add(1, Ordering::Relaxed)
            .to_be_bytes()
    }

    /// A refused share: counted live and, durably, in the ledger.
    fn rejected(&self, worker: Option<&str>, reason: &str) {
        self.stats.rejected(worker, reason);
        self.ledger.count_reject(worker, reason);
    }

    fn set_status(&self, status: String) {
        *self.source_status.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }

    pub(crate) fn status(&self) -> String {
        self.source_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A running pool.
pub struct Pool {
    shared: Arc<Shared>,
    stratum: SocketAddr,
    sv2: Option<SocketAddr>,
    jd: Option<SocketAddr>,
    tp: Option<SocketAddr>,
    http: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Opens the ledger and the template source, binds the listeners and starts serving.
    pub async fn start(config: PoolConfig) -> Result<Pool, PoolError> {
        let source: Arc<dyn TemplateSource> = match &config.source {
            SourceConfig::Embedded => Arc::new(chain::EmbeddedChain::open(&config.data_dir)?),
            SourceConfig::Bitcoind { url, auth } => {
                Arc::new(connect_bitcoind(url, auth.clone()).await?)
            }
        };
        let network = source.network();
        let payout = payout_script(&config, network)?;
        let database = config.database_url();
        let ledger = Ledger::open(&database).await?;
        let stats = Stats::default();
        // Refused shares count all time: the totals so far come from the ledger.
        stats.restore_rejected(ledger.rejects().await?);
        let (listener, stratum) = bind(config.stratum)?;
        let mut sv2 = None;
        if let Some(addr) = config.sv2 {
            let key = load_or_create_key(&config.data_dir)?;
            let (listener, bound) = bind(addr)?;
            sv2 = Some((listener, bound, key));
        }
        if config.sv2.is_none() && config.sv2_jd.is_some() {
            return Err(PoolError::JdWithoutSv2);
        }
        if config.sv2.is_none() && config.sv2_tp.is_some() {
            return Err(PoolError::TpWithoutSv2);
        }
        let mut jd = None;
        if let Some(addr) = config.sv2_jd {
            jd = Some(bind(addr)?);
        }
        let mut tp = None;
        if let Some(addr) = config.sv2_tp {
            tp = Some(bind(addr)?);
        }
        let tag = config.tag.as_bytes().to_vec();
        let shared = Arc::new(Shared {
            jobs: JobFactory::new(tag, 4 + config.extranonce2_size),
            generation: watch::channel(JobsChanged::default()).0,
            connections: AtomicU64::new(0),
            kick: Notify::new(),
            found_height: AtomicU64::new(0),
            ledger,
            stats,
            extranonce1: AtomicU32::new(rand_seed()),
            source_status: Mutex::new("starting".into()),
            sv2_authority: sv2.as_ref().map(|(_, _, key)| key.clone()),
            declarations: declare::Declarations::default(),
            config,
            source,
            network,
            payout,
        });
        tracing::info!("templates from {}", shared.source.describe());
        tracing::info!("ledger: {}", hashforge_store::redact(&database));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = vec![
            tokio::spawn(template_loop(Arc::clone(&shared), shutdown_rx.clone())),
            tokio::spawn(server::accept_loop(
                Arc::clone(&shared),
                listener,
                Protocol::V1,
                shutdown_rx.clone(),
            )),
        ];
        let sv2_addr = sv2.as_ref().map(|(_, addr, _)| *addr);
        if let Some((listener, _, _)) = sv2 {
            tasks.push(tokio::spawn(server::accept_loop(
                Arc::clone(&shared),
                listener,
                Protocol::Sv2,
                shutdown_rx.clone(),
            )));
        }
        let jd_addr = jd.as_ref().map(|(_, addr)| *addr);
        let tp_addr = tp.as_ref().map(|(_, addr)| *addr);
        for (listener, protocol) in [(jd, Protocol::Sv2Jd), (tp, Protocol::Sv2Tp)] {
            if let Some((listener, _)) = listener {
                tasks.push(tokio::spawn(server::accept_loop(
                    Arc::clone(&shared),
                    listener,
                    protocol,
                    shutdown_rx.clone(),
                )));
            }
        }
        let mut http = None;
        if let Some(addr) = shared.config.http {
            let (listener, bound) = bind(addr)?;
            http = Some(bound);
            tasks.push(tokio::spawn(api::serve(
                Arc::clone(&shared),
                listener,
                shutdown_rx,
            )));
        }
        tracing::info!("stratum on {}", server::describe_listener(stratum));
        let pool = Pool {
            shared,
            stratum,
            sv2: sv2_addr,
            jd: jd_addr,
            tp: tp_addr,
            http,
            shutdown,
            tasks,
        };
        if let Some(url) = pool.sv2_url() {
            tracing::info!("stratum v2 on {url}");
        }
        if let Some(addr) = pool.jd {
            tracing::info!("job declarator server on {addr} (the same authority key)");
        }
        if let Some(addr) = pool.tp {
            tracing::info!("template provider on {addr} (the same authority key)");
        }
        Ok(pool)
    }

    pub fn stratum_addr(&self) -> SocketAddr {
        self.stratum
    }
    pub fn stratum_url(&self) -> String {
        server::describe_listener(self.stratum)
    }
    /// The SV2 endpoint's address, when it runs.
    pub fn sv2_addr(&self) -> Option<SocketAddr> {
        self.sv2
    }

    /// Where the Job Declarator Server listens, when it runs.
    pub fn sv2_jd_addr(&self) -> Option<SocketAddr> {
        self.jd
    }

    /// Where the Template Provider listens, when it runs.
    pub fn sv2_tp_addr(&self) -> Option<SocketAddr> {
        self.tp
    }
    /// The key SV2 miners pin (`authority_pubkey`), when the SV2 endpoint runs.
    pub fn sv2_authority(&self) -> Option<hashforge_sv2::AuthorityPublicKey> {
        self.shared.sv2_authority.as_ref().map(|k| k.public())
    }
    /// `stratum2+tcp://host:port/<authority_pubkey>`, the URL an SV2 miner configures.
    pub fn sv2_url(&self) -> Option<String> {
        Some(format!(
            "stratum2+tcp://{}/{}",
            self.sv2?,
            self.sv2_authority()?
        ))
    }
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http
    }
    /// What the templates come from, as said in logs and the API.
    pub fn source(&self) -> String {
        self.shared.source.describe()
    }

    /// Runs until [`Pool::stop`] (or forever).
    pub async fn wait(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }

    /// Stops accepting, closes connections (each finishes the line it is on), then flushes
    /// and closes the ledger.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.shared.stats.connections() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.shared.ledger.clone().close().await;
    }
}

/// The file the SV2 authority key pair is kept in, in the data directory.
pub const SV2_KEY_FILE: &str = "sv2-authority.key";

/// The SV2 authority key pair kept in `data_dir` ([`SV2_KEY_FILE`]: comment lines, then the
/// secret key), or `None` when there is none yet.
pub fn sv2_key_in(data_dir: &Path) -> Result<Option<hashforge_sv2::AuthorityKeypair>, PoolError> {
    let path = data_dir.join(SV2_KEY_FILE);
    let err = |reason: String| PoolError::Sv2Key {
        path: path.clone(),
        reason,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let secret = text
                .lines()
                .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                .unwrap_or_default();
            hashforge_sv2::AuthorityKeypair::from_secret_text(secret)
                .map(Some)
                .map_err(|e| err(format!("{e}; remove the file to make a new key (miners must then be given the new authority_pubkey)")))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(e.to_string())),
    }
}

/// Reads the pool's SV2 authority key pair, or makes one on first start (readable by the
/// operator only): miners pin its public half, so it must survive restarts.
fn load_or_create_key(data_dir: &Path) -> Result<hashforge_sv2::AuthorityKeypair, PoolError> {
    let path = data_dir.join(SV2_KEY_FILE);
    let err = |reason: String| PoolError::Sv2Key {
        path: path.clone(),
        reason,
    };
    match sv2_key_in(data_dir)? {
        Some(key) => Ok(key),
        None => {
            let key = hashforge_sv2::AuthorityKeypair::generate();
            std::fs::create_dir_all(data_dir).map_err(|e| err(e.to_string()))?;
            let text = format!(
                "# The pool's Stratum V2 authority secret key (SRI's base58-check form). Keep it secret.\n# Its public key, which miners configure: {}\n{}\n",
                key.public(),
                key.secret_text()
            );
            write_private(&path, &text).map_err(|e| err(e.to_string()))?;
            tracing::info!("made a new SV2 authority key in {}", path.display());
            Ok(key)
        }
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// Unix time in milliseconds (the ledger's and the API's clock).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Connections the kernel may hold for a listener before the pool accepts them (Linux caps
/// it at `net.core.somaxconn`, 4096 by default). tokio's own is 1024: when thousands of
/// miners reconnect at once (a pool restart), SV2 handshakes keep the pool busy, the queue
/// overflowed 28,670 times in one 19,900-connection bench run, and now and then a miner's
/// connection was reset before it was accepted.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds a listener; the address it got (the port, when asked for 0).
fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), PoolError> {
    let listen = || {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // As `TcpListener::bind` does: a restarted pool may bind while old sockets linger.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    let listener = listen().map_err(|source| PoolError::Listen { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| PoolError::Listen { addr, source })?;
    Ok((listener, bound))
}

fn rand_seed() -> u32 {
    // Distinct extranonce1 ranges across restarts; uniqueness within a run comes from the
    // counter.
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(16))
        .unwrap_or(0)
}

async fn connect_bitcoind(
    url: &str,
    auth: bitcoind::RpcAuth,
) -> Result<bitcoind::Bitcoind, SourceError> {
    let mut delay = Duration::from_millis(500);
    loop {
        match bitcoind::Bitcoind::connect(url, auth.clone()).await {
            Ok(b) => return Ok(b),
            Err(e @ (SourceError::Unauthorized | SourceError::Malformed { .. })) => return Err(e),
            Err(e) => {
                tracing::warn!("{e}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

fn payout_script(config: &PoolConfig, network: Network) -> Result<ScriptBuf, PoolError> {
    match &config.payout_address {
        Some(a) => {
            let bad = |reason: String| PoolError::PayoutAddress {
                address: a.clone(),
                reason,
            };
            Ok(Address::from_str(a)
                .map_err(|e| bad(format!("not a bitcoin address ({e})")))?
                .require_network(network)
                .map_err(|_| bad(format!("not an address on {network}")))?
                .script_pubkey())
        }
        // Test coins only: an anyone-can-spend output, as Bitcoin Core's own regtest tests use.
        None if network == Network::Regtest => {
            if !config.solo {
                tracing::warn!("no --payout-address: regtest block rewards go to an anyone-can-spend (OP_TRUE) output");
            }
            Ok(ScriptBuf::from_bytes(vec![0x51]))
        }
        None if config.solo => Ok(ScriptBuf::new()),
        None => Err(PoolError::NoPayout(network)),
    }
}

/// Watches the tip (every 100 ms, or at once when kicked), refreshes templates every
/// `refresh` seconds, and keeps serving the last good job while the source is unwell.
async fn template_loop(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut tip = None;
    let mut refreshed = Instant::now();
    let mut backoff = Duration::from_millis(100);
    loop {
        let result = match shared.source.best_block().await {
            Ok(best) if Some(best) != tip => shared
                .source
                .template()
                .await
                .map(|t| (t, true, Some(best)))
                .map_err(Some),
            Ok(_) if refreshed.elapsed() >= shared.config.refresh => shared
                .source
                .template()
                .await
                .map(|t| (t, false, None))
                .map_err(Some),
            Ok(_) => {
                backoff = Duration::from_millis(100);
                Err(None)
            }
            Err(e) => Err(Some(e)),
        };
        match result {
            Ok((template, clean, best)) => {
                if let Some(best) = best {
                    tip = Some(best);
                    // Debug: the pool's own blocks are announced as BLOCK FOUND already, and
                    // on a test chain a new tip comes with every share.
                    tracing::debug!(height = template.height, "new tip {best}: clean jobs");
                }
                refreshed = Instant::now();
                shared.set_status("ok".into());
                let tips = shared.jobs.set_template(Arc::new(template), clean);
                shared.generation.send_replace(JobsChanged { tips });
            }
            Err(None) => {}
            Err(Some(e)) => {
                if shared.status() != e.to_string() {
                    tracing::warn!("{e}; serving the last job meanwhile");
                }
                shared.set_status(e.to_string());
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
        let wait = if shared.status() == "ok" {
            Duration::from_millis(100)
        } else {
            backoff
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.kick.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}
