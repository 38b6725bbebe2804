//! `hashforge pool` and `hashforge chain export`: flags and a TOML file into a
//! `PoolConfig`, then the pool crate does the work.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use hashforge_pool::bitcoind::RpcAuth;
use hashforge_pool::config::PoolFile;
use hashforge_pool::{Pool, PoolConfig, SourceConfig};

/// Every option is also a key of the `--config` TOML file (same name); flags win.
#[derive(Args, Debug, Default)]
pub struct PoolArgs {
    /// A TOML file with any of these options (`stratum = "0.0.0.0:3333"`, `solo = true`, ...).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where miners connect (Stratum V1) [default: 127.0.0.1:3333].
    #[arg(long, value_name = "HOST:PORT")]
    stratum: Option<SocketAddr>,
    /// Also serve Stratum V2 (Noise-encrypted, authenticated) here. Its authority key is made
    /// on first start in --data-dir (`sv2-authority.key`) and printed as the URL miners use:
    /// stratum2+tcp://HOST:PORT/<authority_pubkey>.
    #[arg(long, value_name = "HOST:PORT")]
    sv2: Option<SocketAddr>,
    /// Also run a Job Declarator Server here (Stratum V2 job declaration, full-template mode,
    /// the --sv2 endpoint's key): a miner's Job Declarator Client declares the block it wants
    /// to mine (its transactions, a coinbase paying the pool), and mines it on --sv2 with
    /// SetCustomMiningJob. Needs --sv2.
    #[arg(long, value_name = "HOST:PORT")]
    sv2_jd: Option<SocketAddr>,
    /// Also be a Stratum V2 Template Provider here (template distribution, the --sv2
    /// endpoint's key): the pool's templates for a Job Declarator Client (SRI's jd_client
    /// takes it as its `Sv2Tp`), and the blocks it finds submitted. Needs --sv2.
    #[arg(long, value_name = "HOST:PORT")]
    sv2_tp: Option<SocketAddr>,
    /// The HTTP API (/api/pool, /api/workers, /api/blocks, /api/payouts), /metrics and a status page.
    #[arg(long, value_name = "HOST:PORT")]
    http: Option<SocketAddr>,
    /// Your bitcoind's RPC URL (http://127.0.0.1:8332). Without it the pool mines an embedded
    /// REGTEST chain (test coins) kept in --data-dir.
    #[arg(long, value_name = "URL")]
    bitcoind: Option<String>,
    #[arg(long, requires = "bitcoind")]
    rpc_user: Option<String>,
    #[arg(long, requires = "rpc_user")]
    rpc_password: Option<String>,
    /// bitcoind's .cookie file (instead of --rpc-user/--rpc-password).
    #[arg(long, value_name = "FILE", conflicts_with = "rpc_user")]
    rpc_cookie: Option<PathBuf>,
    /// The share ledger: sqlite://FILE or postgres://USER:PASS@HOST/DB [default: pool.db in --data-dir].
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Where the embedded chain and the default SQLite ledger live [default: ./hashforge-pool].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The address block rewards go to (pool mode).
    #[arg(long, value_name = "ADDR")]
    payout_address: Option<String>,
    /// Solo mining: each miner's username is `<address>.<worker>` and its blocks pay that address.
    #[arg(long)]
    solo: bool,
    /// The lowest share difficulty vardiff may set [default: 1/65536].
    #[arg(long, value_name = "D")]
    min_difficulty: Option<f64>,
    /// The highest share difficulty vardiff may set.
    #[arg(long, value_name = "D")]
    max_difficulty: Option<f64>,
    /// The difficulty of a new connection's first jobs [default: 1].
    #[arg(long, value_name = "D")]
    start_difficulty: Option<f64>,
    /// Vardiff's target share rate per connection [default: 10].
    #[arg(long, value_name = "N")]
    shares_per_minute: Option<f64>,
    /// Text in every coinbase [default: /hashforge/].
    #[arg(long)]
    tag: Option<String>,
    /// PPLNS window in multiples of the network difficulty [default: 4].
    #[arg(long, value_name = "X")]
    pplns_window: Option<f64>,
    /// Pool fee as a fraction, 0.01 = 1% [default: 0].
    #[arg(long, value_name = "F")]
    pool_fee: Option<f64>,
    /// New ntime/transactions this often without a new block [default: 30].
    #[arg(long, value_name = "SECS")]
    refresh_secs: Option<u64>,
}

#[derive(Subcommand, Debug)]
pub enum ChainCommand {
    /// Print the embedded regtest chain's blocks as raw hex, one per line, in height order
    /// (replay them into Bitcoin Core with `bitcoin-cli -regtest submitblock`).
    Export {
        #[arg(long, value_name = "DIR", default_value = "hashforge-pool")]
        data_dir: PathBuf,
    },
}

fn positive(name: &str, v: Option<f64>) -> Result<Option<f64>, String> {
    match v {
        Some(x) if !(x.is_finite() && x > 0.0) => {
            Err(format!("{name} must be a positive number, got {x}"))
        }
        other => Ok(other),
    }
}

impl PoolArgs {
    /// The configuration: defaults, then the file, then the flags.
    pub fn into_config(self) -> Result<PoolConfig, String> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                PoolFile::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => PoolFile::default(),
        };
        let mut c = PoolConfig::default();
        if let Some(v) = self.stratum.or(file.stratum) {
            c.stratum = v;
        }
        c.sv2 = self.sv2.or(file.sv2);
        c.sv2_jd = self.sv2_jd.or(file.sv2_jd);
        c.sv2_tp = self.sv2_tp.or(file.sv2_tp);
        c.http = self.http.or(file.http);
        let bitcoind = self.bitcoind.or(file.bitcoind);
        let user = self.rpc_user.or(file.rpc_user);
        let password = self.rpc_password.or(file.rpc_password);
        let cookie = self.rpc_cookie.or(file.rpc_cookie);
        if let Some(url) = bitcoind {
            let auth = match (user, password, cookie) {
                (Some(user), password, None) => RpcAuth::UserPass {
                    user,
                    password: password.unwrap_or_default(),
                },
                (None, _, Some(path)) => RpcAuth::Cookie(path),
                (Some(_), _, Some(_)) => {
                    return Err(
                        "give either --rpc-user/--rpc-password or --rpc-cookie, not both".into(),
                    )
                }
                (None, _, None) => RpcAuth::None,
            };
            c.source = SourceConfig::Bitcoind { url, auth };
        }
        c.database = self.database.or(file.database);
        if let Some(d) = self.data_dir.or(file.data_dir) {
            c.data_dir = d;
        }
        c.payout_address = self.payout_address.or(file.payout_address);
        c.solo = self.solo || file.solo.unwrap_or(false);
        if let Some(d) = positive(
            "--min-difficulty",
            self.min_difficulty.or(file.min_difficulty),
        )? {
            c.vardiff.min = d;
        }
        if let Some(d) = positive(
            "--max-difficulty",
            self.max_difficulty.or(file.max_difficulty),
        )? {
            c.vardiff.max = d;
        }
        if c.vardiff.min > c.vardiff.max {
            return Err(format!(
                "--min-difficulty {} is above --max-difficulty {}",
                c.vardiff.min, c.vardiff.max
            ));
        }
        if let Some(d) = positive(
            "--start-difficulty",
            self.start_difficulty.or(file.start_difficulty),
        )? {
            c.start_difficulty = d;
        }
        if let Some(r) = positive(
            "--shares-per-minute",
            self.shares_per_minute.or(file.shares_per_minute),
        )? {
            c.vardiff.shares_per_minute = r;
        }
        if let Some(t) = self.tag.or(file.tag) {
            c.tag = t;
        }
        if let Some(n) = file.extranonce2_size {
            if !(2..=16).contains(&n) {
                return Err(format!("extranonce2-size must be 2..16, got {n}"));
            }
            c.extranonce2_size = n;
        }
        if let Some(w) = positive("--pplns-window", self.pplns_window.or(file.pplns_window))? {
            c.pplns_window = w;
        }
        if let Some(f) = self.pool_fee.or(file.pool_fee) {
            if !(0.0..1.0).contains(&f) {
                return Err(format!("--pool-fee is a fraction in [0, 1), got {f}"));
            }
            c.pool_fee = f;
        }
        if let Some(s) = self.refresh_secs.or(file.refresh_secs) {
            c.refresh = Duration::from_secs(s.max(1));
        }
        if let Some(n) = file.max_connections {
            c.max_connections = n;
        }
        Ok(c)
    }
}

pub fn run(args: PoolArgs) -> Result<(), String> {
    crate::logging();
    let config = args.into_config()?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let pool = Pool::start(config).await.map_err(|e| e.to_string())?;
        eprintln!("hashforge pool: templates from {}", pool.source());
        eprintln!("  miners:  {}", pool.stratum_url());
        if let Some(url) = pool.sv2_url() {
            eprintln!("  sv2:     {url}");
            if let Some(key) = pool.sv2_authority() {
                eprintln!(
                    "           authority_pubkey {key} (the key in --data-dir/{}; keep it)",
                    hashforge_pool::SV2_KEY_FILE
                );
            }
        }
        if let Some(addr) = pool.sv2_tp_addr() {
            eprintln!("  sv2 tp:  {addr}   (template provider: this pool's templates for a job declarator client)");
        }
        if let Some(addr) = pool.sv2_jd_addr() {
            eprintln!(
                "  sv2 jd:  {addr}   (job declaration: miners choose their blocks' transactions)"
            );
        }
        if let Some(http) = pool.http_addr() {
            eprintln!("  status:  http://{http}/   (API under /api, Prometheus at /metrics)");
        }
        tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
        eprintln!("stopping: flushing the ledger");
        pool.stop().await;
        Ok(())
    })
}

pub fn chain(cmd: ChainCommand) -> Result<(), String> {
    match cmd {
        ChainCommand::Export { data_dir } => {
            let hex = hashforge_pool::chain::EmbeddedChain::export(&data_dir)
                .map_err(|e| e.to_string())?;
            print!("{hex}");
            Ok(())
        }
    }
}
