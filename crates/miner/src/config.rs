//! The miner's configuration: TOML on disk, the same fields from the command line.
//!
//! ```toml
//! devices = ["cpu:2"]   # top-level keys come before any [section] or [[pool]]
//!
//! [[pool]]
//! url = "stratum+tcp://127.0.0.1:3333"
//! user = "bc1q...worker"
//! password = "x"
//!
//! [api]
//! listen = "127.0.0.1:4028"
//! write_token = "s3cret"            # privileged cgminer commands need it ...
//! allow_write = ["127.0.0.1"]       # ... or to come from one of these addresses
//!
//! [http]
//! listen = "127.0.0.1:8080"
//!
//! [failover]
//! failback_after_secs = 30
//! stall_secs = 120
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything a miner needs to start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinerConfig {
    /// Pools in priority order: the first healthy one is mined on.
    #[serde(default, rename = "pool")]
    pub pools: Vec<PoolConfig>,
    /// Devices to mine with (`cpu[:threads]`, `emulated:<profile>`, `serial:<path>:<chip>`).
    #[serde(default = "default_devices")]
    pub devices: Vec<DeviceSpec>,
    /// Faults injected into emulated machines, in the `KIND:ARGS` syntax of
    /// [`hashforge_asic::Fault`] (its `SYNTAX` lists every kind).
    #[serde(default)]
    pub faults: Vec<String>,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub failover: FailoverConfig,
    /// The machine's serial number as its label gives it: fleet consoles match the miner to
    /// their asset register by it (the web CGI's `serinum`).
    #[serde(default)]
    pub serial: Option<String>,
}

fn default_devices() -> Vec<DeviceSpec> {
    vec![DeviceSpec::Cpu { threads: None }]
}

impl Default for MinerConfig {
    fn default() -> Self {
        MinerConfig {
            pools: Vec::new(),
            devices: default_devices(),
            faults: Vec::new(),
            api: ApiConfig::default(),
            http: HttpConfig::default(),
            failover: FailoverConfig::default(),
            serial: None,
        }
    }
}

impl MinerConfig {
    /// Parses a TOML configuration file's text.
    pub fn from_toml(text: &str) -> Result<MinerConfig, ConfigError> {
        let config: MinerConfig =
            toml::from_str(text).map_err(|e| ConfigError::Toml(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: at least one pool and one device.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.pools.is_empty() {
            return Err(ConfigError::NoPool);
        }
        if self.devices.is_empty() {
            return Err(ConfigError::NoDevice);
        }
        match &self.http.web_password {
            Some(_) if self.http.listen.is_none() => return Err(ConfigError::WebPassword(
                "the web CGI is served on the HTTP address: give --http HOST:PORT too ([http] listen)",
            )),
            Some(p) if p.is_empty() => return Err(ConfigError::WebPassword(
                "an empty password is no password: give one, or leave the web CGI off",
            )),
            _ => {}
        }
        if let Some(sn) = &self.serial {
            let ok = (1..=64).contains(&sn.len())
                && sn
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !ok {
                return Err(ConfigError::Serial(sn.escape_debug().to_string()));
            }
        }
        self.failover.validate()
    }
}

/// One pool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    pub url: PoolUrl,
    pub user: String,
    #[serde(default = "default_password")]
    pub password: String,
}

fn default_password() -> String {
    "x".into()
}

/// `stratum+tcp://host:port` (also `stratum://` and a bare `host:port`), or Stratum V2's
/// `stratum2+tcp://host:port/<authority_pubkey>` (the form Braiins OS takes): the pool must
/// prove it holds that key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PoolUrl {
    pub host: String,
    pub port: u16,
    /// Stratum V2, with the pool's authority key; `None`: Stratum V1.
    pub sv2: Option<hashforge_sv2::AuthorityPublicKey>,
}

impl FromStr for PoolUrl {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<PoolUrl, ConfigError> {
        let bad = |why: &str| ConfigError::PoolUrl {
            url: s.to_string(),
            why: why.to_string(),
        };
        let rest = s.trim();
        let mut sv2 = None;
        let rest = if let Some((scheme, rest)) = rest.split_once("://") {
            match scheme {
                "stratum+tcp" | "stratum" | "tcp" => rest,
                "stratum2+tcp" => {
                    let (addr, key) = rest.split_once('/').ok_or_else(|| {
                        bad("an SV2 URL ends with the pool's authority key: stratum2+tcp://host:port/<authority_pubkey>")
                    })?;
                    let key = key.trim_end_matches('/');
                    sv2 = Some(
                        key.parse::<hashforge_sv2::AuthorityPublicKey>()
                            .map_err(|e| bad(&e.to_string()))?,
                    );
                    addr
                }
                _ => return Err(bad("the scheme must be stratum+tcp or stratum2+tcp")),
            }
        } else {
            rest
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad("a port is missing (stratum+tcp://host:port)"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains('/') {
            return Err(bad("the host is empty or not a host name"));
        }
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("the port must be 1-65535"))?;
        Ok(PoolUrl {
            host: host.to_string(),
            port,
            sv2,
        })
    }
}

impl TryFrom<String> for PoolUrl {
    type Error = ConfigError;
    fn try_from(s: String) -> Result<PoolUrl, ConfigError> {
        s.parse()
    }
}

impl From<PoolUrl> for String {
    fn from(u: PoolUrl) -> String {
        u.to_string()
    }
}

impl fmt::Display for PoolUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.sv2.is_some() {
            "stratum2+tcp"
        } else {
            "stratum+tcp"
        };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)?;
        }
        match &self.sv2 {
            Some(key) => write!(f, "/{key}"),
            None => Ok(()),
        }
    }
}

/// Which hardware hashes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    /// The `sha256d` scanner on this many threads (default: every core).
    Cpu { threads: Option<usize> },
    /// A BM13xx hash board emulated in this process (`emulated:s21pro`).
    Emulated { profile: String },
    /// A BM13xx chain on a serial port (`serial:/dev/ttyUSB0:bm1368`).
    Serial { path: String, chip: String },
}

impl FromStr for DeviceSpec {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<DeviceSpec, ConfigError> {
        let bad = |why: &str| ConfigError::Device {
            spec: s.to_string(),
            why: why.to_string(),
        };
        let s = s.trim();
        let (kind, rest) = s.split_once(':').unwrap_or((s, ""));
        match kind {
            "cpu" if rest.is_empty() => Ok(DeviceSpec::Cpu { threads: None }),
            "cpu" => match rest.parse::<usize>() {
                Ok(n) if (1..=1024).contains(&n) => Ok(DeviceSpec::Cpu { threads: Some(n) }),
                _ => Err(bad("threads must be a number from 1 to 1024 (cpu:4)")),
            },
            "emulated" if !rest.is_empty() => Ok(DeviceSpec::Emulated {
                profile: rest.to_string(),
            }),
            "emulated" => Err(bad("name a profile (emulated:s21pro)")),
            "serial" => match rest.rsplit_once(':') {
                Some((path, chip)) if !path.is_empty() && !chip.is_empty() => {
                    Ok(DeviceSpec::Serial {
                        path: path.to_string(),
                        chip: chip.to_string(),
                    })
                }
                _ => Err(bad("name a port and a chip (serial:/dev/ttyUSB0:bm1368)")),
            },
            _ => Err(bad(
                "expected cpu[:threads], emulated:<profile> or serial:<path>:<chip>",
            )),
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = ConfigError;
    fn try_from(s: String) -> Result<DeviceSpec, ConfigError> {
        s.parse()
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu { threads: None } => write!(f, "cpu"),
            DeviceSpec::Cpu { threads: Some(n) } => write!(f, "cpu:{n}"),
            DeviceSpec::Emulated { profile } => write!(f, "emulated:{profile}"),
            DeviceSpec::Serial { path, chip } => write!(f, "serial:{path}:{chip}"),
        }
    }
}

/// The cgminer API (TCP, default 127.0.0.1:4028).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Where to listen; `None` turns the API off.
    #[serde(default = "default_api_listen")]
    pub listen: Option<SocketAddr>,
    /// Privileged commands carrying this token (JSON field `"token"`) are allowed.
    #[serde(default)]
    pub write_token: Option<String>,
    /// Privileged commands from these addresses are allowed.
    #[serde(default)]
    pub allow_write: Vec<IpAddr>,
    /// `VERSION[0].Type`; fleet tools pick their parser from it. Default: from the device.
    #[serde(default)]
    pub model: Option<String>,
}

fn default_api_listen() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 4028)))
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: default_api_listen(),
            write_token: None,
            allow_write: Vec::new(),
            model: None,
        }
    }
}

/// REST, Prometheus `/metrics` and the status page.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Where to listen; `None` (the default) turns HTTP off.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Serves the stock Antminer web CGI (`/cgi-bin/*.cgi`, what asic-rs and pyasic read)
    /// behind HTTP digest auth as user `root` with this password, and puts the status page
    /// behind it too, as stock firmware does. There is no default password: without one
    /// the CGI is off.
    #[serde(default)]
    pub web_password: Option<String>,
}

/// When to leave a pool and when to come back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverConfig {
    /// A higher-priority pool must have been healthy this long before the miner returns.
    #[serde(default = "default_failback")]
    pub failback_after_secs: f64,
    /// A pool that sent no new job for this long counts as down.
    #[serde(default = "default_stall")]
    pub stall_secs: f64,
    /// Give up a connection attempt after this long.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: f64,
    /// The longest wait between reconnection attempts.
    #[serde(default = "default_retry")]
    pub max_retry_secs: f64,
}

fn default_failback() -> f64 {
    30.0
}
fn default_stall() -> f64 {
    120.0
}
fn default_connect_timeout() -> f64 {
    3.0
}
fn default_retry() -> f64 {
    10.0
}

impl Default for FailoverConfig {
    fn default() -> Self {
        FailoverConfig {
            failback_after_secs: default_failback(),
            stall_secs: default_stall(),
            connect_timeout_secs: default_connect_timeout(),
            max_retry_secs: default_retry(),
        }
    }
}

impl FailoverConfig {
    /// Every value is a number of seconds a timer can hold: the delays positive (a zero
    /// stall would make every pool stale forever), the failback delay zero or more.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check = |key: &'static str, value: f64, zero_ok: bool| {
            let ok = value.is_finite()
                && value <= MAX_SECS
                && (value > 0.0 || (zero_ok && value == 0.0));
            if ok {
                Ok(())
            } else {
                Err(ConfigError::Failover {
                    key,
                    value,
                    expected: if zero_ok {
                        "0 or more seconds, at most a year"
                    } else {
                        "more than 0 seconds, at most a year"
                    },
                })
            }
        };
        check("failback_after_secs", self.failback_after_secs, true)?;
        check("stall_secs", self.stall_secs, false)?;
        check("connect_timeout_secs", self.connect_timeout_secs, false)?;
        check("max_retry_secs", self.max_retry_secs, false)
    }

    /// A validated value as a duration.
    pub(crate) fn secs(x: f64) -> Duration {
        Duration::from_secs_f64(x.clamp(0.0, MAX_SECS))
    }
}

/// A year: longer than any timer a miner needs, short enough for any clock.
const MAX_SECS: f64 = 365.0 * 24.0 * 3600.0;

/// A configuration that cannot be used, said so a person can fix it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("pool URL `{url}`: {why}")]
    PoolUrl { url: String, why: String },
    #[error("device `{spec}`: {why}")]
    Device { spec: String, why: String },
    #[error("no pool configured: give --pool stratum+tcp://host:port --user U, or [[pool]] in the config file")]
    NoPool,
    #[error("no device configured: give --device cpu (or devices = [\"cpu\"] in the config file)")]
    NoDevice,
    #[error("{0}")]
    Toml(String),
    #[error("web password: {0}")]
    WebPassword(&'static str),
    #[error("serial `{0}`: 1 to 64 letters, digits, `-`, `_` or `.`")]
    Serial(String),
    #[error("[failover] {key} = {value}: must be {expected}")]
    Failover {
        key: &'static str,
        value: f64,
        expected: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_urls() {
        let u: PoolUrl = "stratum+tcp://pool.example:3333".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port), ("pool.example", 3333));
        assert_eq!(u.to_string(), "stratum+tcp://pool.example:3333");
        assert_eq!("127.0.0.1:1".parse::<PoolUrl>().unwrap().port, 1);
        // Braiins OS's SV2 form, with SRI's example authority key.
        let key = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72";
        let sv2: PoolUrl = format!("stratum2+tcp://pool.example:3336/{key}")
            .parse()
            .unwrap();
        assert_eq!((sv2.host.as_str(), sv2.port), ("pool.example", 3336));
        assert_eq!(sv2.sv2.unwrap().to_string(), key);
        assert_eq!(
            sv2.to_string(),
            format!("stratum2+tcp://pool.example:3336/{key}")
        );
        for bad in [
            "stratum2+tcp://pool.example:3336",
            "stratum2+tcp://pool.example:3336/notakey",
            "stratum2+tcp://pool.example/9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72",
        ] {
            assert!(bad.parse::<PoolUrl>().is_err(), "{bad}");
        }
        assert!("http://x:1".parse::<PoolUrl>().is_err());
        assert!("stratum+tcp://x".parse::<PoolUrl>().is_err());
        assert!("stratum+tcp://x:70000".parse::<PoolUrl>().is_err());
    }

    #[test]
    fn device_specs() {
        assert_eq!(
            "cpu:3".parse::<DeviceSpec>().unwrap(),
            DeviceSpec::Cpu { threads: Some(3) }
        );
        assert_eq!(
            "serial:/dev/ttyUSB0:bm1368".parse::<DeviceSpec>().unwrap(),
            DeviceSpec::Serial {
                path: "/dev/ttyUSB0".into(),
                chip: "bm1368".into()
            }
        );
        assert!("cpu:0".parse::<DeviceSpec>().is_err());
        assert!("gpu".parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn toml_file() {
        let text = r#"
devices = ["cpu:2"]
[[pool]]
url = "stratum+tcp://127.0.0.1:3333"
user = "w"
[[pool]]
url = "stratum+tcp://127.0.0.1:3334"
user = "w2"
password = "p"
[api]
write_token = "t"
[failover]
failback_after_secs = 5
"#;
        let c = MinerConfig::from_toml(text).unwrap();
        assert_eq!(c.pools.len(), 2);
        assert_eq!(c.pools[0].password, "x");
        assert_eq!(c.api.listen, default_api_listen());
        assert_eq!(c.failover.failback_after_secs, 5.0);
        let zero_stall = text.replace("failback_after_secs = 5", "stall_secs = 0");
        assert_eq!(
            MinerConfig::from_toml(&zero_stall).unwrap_err().to_string(),
            "[failover] stall_secs = 0: must be more than 0 seconds, at most a year"
        );
        let negative = text.replace("failback_after_secs = 5", "failback_after_secs = -1");
        assert_eq!(
            MinerConfig::from_toml(&negative).unwrap_err().to_string(),
            "[failover] failback_after_secs = -1: must be 0 or more seconds, at most a year"
        );
        let e = MinerConfig::from_toml("[[pool]]\nurl = \"stratum+tcp://h\"\nuser = \"u\"\n")
            .unwrap_err();
        assert!(e.to_string().contains("port"), "{e}");
        assert_eq!(MinerConfig::from_toml(""), Err(ConfigError::NoPool));
    }
}
