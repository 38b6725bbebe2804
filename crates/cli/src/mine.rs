//! `hashforge mine`: flags and a TOML file into a `MinerConfig`; the miner crate does the
//! work, this prints where to look and a status line every few seconds.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use hashforge_miner::{DeviceSpec, Miner, MinerConfig, PoolConfig, PoolUrl};

/// Flags override the `--config` file; `--pool`, `--user` and `--password` repeat, in
/// priority order (the first pool is mined on while it works).
#[derive(Args, Debug, Default)]
pub struct MineArgs {
    /// A TOML file ([[pool]] url/user/password, devices = ["cpu:2"], [api], [http], [failover]).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A pool, stratum+tcp://host:port; repeat for backups, highest priority first.
    #[arg(long, value_name = "URL")]
    pool: Vec<PoolUrl>,
    /// The worker name for each --pool (the last one is reused for the rest).
    #[arg(long, value_name = "U")]
    user: Vec<String>,
    /// The password for each --pool [default: x].
    #[arg(long, value_name = "P")]
    password: Vec<String>,
    /// What hashes: cpu[:threads], emulated:<profile> or serial:<path>:<chip>; repeatable.
    #[arg(long, value_name = "DEVICE")]
    device: Vec<DeviceSpec>,
    #[arg(long = "fault", value_name = "KIND:ARGS", help = crate::fault_help())]
    fault: Vec<String>,
    /// The cgminer API (what fleet tools read) [default: 127.0.0.1:4028].
    #[arg(long, value_name = "HOST:PORT")]
    api: Option<SocketAddr>,
    /// No cgminer API at all.
    #[arg(long, conflicts_with = "api")]
    no_api: bool,
    /// Privileged API commands (switchpool, addpool, quit ...) need this token (JSON "token").
    #[arg(long, value_name = "TOKEN", env = "HASHFORGE_API_TOKEN")]
    api_token: Option<String>,
    /// Privileged API commands are allowed from this address; repeatable.
    #[arg(long, value_name = "IP")]
    api_allow: Vec<IpAddr>,
    /// REST (/api/summary), Prometheus /metrics and a status page.
    #[arg(long, value_name = "HOST:PORT")]
    http: Option<SocketAddr>,
    /// Also serve the stock Antminer web CGI on the --http address, behind digest auth as
    /// user root with this password (asic-rs reads a miner as an Antminer only from it).
    #[arg(long, value_name = "P", env = "HASHFORGE_WEB_PASSWORD")]
    web_password: Option<String>,
    /// The machine's serial number (the web CGI's `serinum`): fleet consoles match the miner
    /// to their asset register by it.
    #[arg(long, value_name = "SERIAL")]
    serial: Option<String>,
    /// Seconds between status lines on stderr (0: none).
    #[arg(long, value_name = "S", default_value_t = 5)]
    status_every: u64,
}

impl MineArgs {
    fn into_config(self) -> Result<MinerConfig, String> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                toml::from_str::<MinerConfig>(&text)
                    .map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => MinerConfig::default(),
        };
        if !self.pool.is_empty() {
            if self.user.is_empty() {
                return Err("--pool needs --user (the worker name the pool knows you by)".into());
            }
            config.pools = self
                .pool
                .iter()
                .enumerate()
                .map(|(i, url)| PoolConfig {
                    url: url.clone(),
                    user: self
                        .user
                        .get(i)
                        .or(self.user.last())
                        .cloned()
                        .unwrap_or_default(),
                    password: self
                        .password
                        .get(i)
                        .or(self.password.last())
                        .cloned()
                        .unwrap_or_else(|| "x".into()),
                })
                .collect();
        } else if !self.user.is_empty() || !self.password.is_empty() {
            return Err("--user and --password go with --pool stratum+tcp://host:port".into());
        }
        if !self.fault.is_empty() {
            config.faults = self.fault;
        }
        if !self.device.is_empty() {
            config.devices = self.device;
        }
        if let Some(api) = self.api {
            config.api.listen = Some(api);
        }
        if self.no_api {
            config.api.listen = None;
        }
        if self.api_token.is_some() {
            config.api.write_token = self.api_token;
        }
        if !self.api_allow.is_empty() {
            config.api.allow_write = self.api_allow;
        }
        if self.web_password.is_some() {
            config.http.web_password = self.web_password;
        }
        if self.http.is_some() {
            config.http.listen = self.http;
        }
        if self.serial.is_some() {
            config.serial = self.serial;
        }
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }
}

pub fn run(args: MineArgs) -> Result<(), String> {
    crate::logging();
    let every = args.status_every;
    let config = args.into_config()?;
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async {
        let miner = Miner::start(config.clone())
            .await
            .map_err(|e| e.to_string())?;
        eprintln!("hashforge mine:");
        for (i, p) in config.pools.iter().enumerate() {
            eprintln!("  pool {i}:  {} as {}", p.url, p.user);
        }
        for d in &miner.snapshot().devices {
            eprintln!("  device:  {}", d.info.name);
        }
        if let Some(api) = miner.api_addr() {
            eprintln!(
                "  cgminer API:  {api}   (echo '{{\"command\":\"summary\"}}' | nc {} {})",
                api.ip(),
                api.port()
            );
        }
        if let Some(http) = miner.http_addr() {
            eprintln!("  status:  http://{http}/   (JSON at /api/summary, Prometheus at /metrics)");
        }
        let mut tick = tokio::time::interval(Duration::from_secs(every.max(1)));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick(), if every > 0 => eprintln!("{}", miner.status_line()),
                _ = miner.quit_requested() => {
                    eprintln!("stopping: quit from the API");
                    break;
                }
                r = tokio::signal::ctrl_c() => {
                    r.map_err(|e| e.to_string())?;
                    eprintln!("stopping");
                    break;
                }
            }
        }
        miner.stop().await;
        Ok(())
    })
}
