//! The cgminer API on TCP (default port 4028), shaped like stock Antminer (bmminer)
//! firmware, because that is a contract with fleet tools (pyasic, asic-rs, Foreman ...)
//! that read it unchanged: the field names, the types (`GHS 5s` is a string, `GHS av` a
//! number), `STATS[1]`'s `chain_acnN` / `chain_rateN` / `temp2_N` keys, the `STATUS`
//! section, the trailing NUL. Keep it in this module and its tests.
//!
//! Requests: JSON `{"command":"summary","parameter":""}` or plain `summary|param`; several
//! commands joined with `+`. One request per connection, as in cgminer.
//!
//! Privileged commands (`switchpool`, `enablepool`, `disablepool`, `addpool`,
//! `removepool`, `restart`, `quit`, `save`) are refused unless the request carries the
//! configured write token (JSON field `"token"`) or comes from an allowed address. Stock
//! firmware leaves them open to anyone; hashforge does not.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hashforge_asic::Fault;
use hashforge_core::HashRate;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::config::PoolConfig;
use crate::miner::{unix_now, Request, Shared, Snapshot};

/// The longest request read.
const MAX_REQUEST: usize = 64 * 1024;
/// Connections served at once.
const MAX_CONNECTIONS: usize = 64;

const API_VERSION: &str = "3.1";
const BMMINER_VERSION: &str = "2.0.0";

/// cgminer's message codes used here.
mod code {
    pub const POOLS: u32 = 7;
    pub const DEVS: u32 = 9;
    pub const SUMMARY: u32 = 11;
    pub const INVALID_COMMAND: u32 = 14;
    pub const VERSION: u32 = 22;
    pub const INVALID_JSON: u32 = 23;
    pub const MISSING_COMMAND: u32 = 24;
    pub const SWITCH_POOL: u32 = 27;
    pub const MISSING_PARAM: u32 = 31;
    pub const CONFIG: u32 = 33;
    pub const INVALID_PARAM: u32 = 36;
    pub const ACCESS_DENIED: u32 = 45;
    pub const PRIVILEGED_OK: u32 = 46;
    pub const ENABLE_POOL: u32 = 47;
    pub const DISABLE_POOL: u32 = 48;
    pub const ADD_POOL: u32 = 55;
    pub const REMOVE_POOL: u32 = 68;
    pub const DEVDETAILS: u32 = 69;
    pub const STATS: u32 = 70;
    pub const QUIT: u32 = 71;
    pub const RESTART: u32 = 72;
    pub const NOT_SUPPORTED: u32 = 77;
    /// hashforge's own: a fault was injected into an emulated machine.
    pub const FAULT: u32 = 300;
}

/// An ordered JSON object (the API's key order is part of how it reads).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Obj(Vec<(String, Value)>);

impl Obj {
    fn with(mut self, k: impl Into<String>, v: impl Into<Value>) -> Obj {
        self.0.push((k.into(), v.into()));
        self
    }
    fn push(&mut self, k: impl Into<String>, v: impl Into<Value>) {
        self.0.push((k.into(), v.into()));
    }
    fn json(&self) -> String {
        let fields: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), v))
            .collect();
        format!("{{{}}}", fields.join(","))
    }
    fn text(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// One command's answer: a STATUS and, on success, a named section.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Reply {
    status: Obj,
    ok: bool,
    section: Option<(&'static str, Vec<Obj>)>,
}

fn status(kind: &str, code: u32, msg: impl Into<String>) -> Obj {
    Obj::default()
        .with("STATUS", kind)
        .with("When", unix_now())
        .with("Code", code)
        .with("Msg", msg.into())
        .with(
            "Description",
            format!("hashforge {}", env!("CARGO_PKG_VERSION")),
        )
}

impl Reply {
    fn ok(code: u32, msg: impl Into<String>, name: &'static str, items: Vec<Obj>) -> Reply {
        Reply {
            status: status("S", code, msg),
            ok: true,
            section: Some((name, items)),
        }
    }
    fn info(code: u32, msg: impl Into<String>) -> Reply {
        Reply {
            status: status("I", code, msg),
            ok: true,
            section: None,
        }
    }
    fn error(code: u32, msg: impl Into<String>) -> Reply {
        Reply {
            status: status("E", code, msg),
            ok: false,
            section: None,
        }
    }
    fn json(&self) -> String {
        let mut out = format!("{{\"STATUS\":[{}]", self.status.json());
        if let Some((name, items)) = &self.section {
            let items: Vec<String> = items.iter().map(Obj::json).collect();
            out.push_str(&format!(",\"{name}\":[{}]", items.join(",")));
        }
        out.push_str(",\"id\":1}");
        out
    }
    fn text(&self) -> String {
        let mut out = format!("{}|", self.status.text());
        if let Some((name, items)) = &self.section {
            for item in items {
                let indexed = item.0.first().is_some_and(|(k, v)| {
                    v.is_number() && k.chars().all(|c| c.is_ascii_uppercase())
                });
                if indexed {
                    out.push_str(&format!("{}|", item.text()));
                } else {
                    out.push_str(&format!("{name},{}|", item.text()));
                }
            }
        }
        out
    }
}

/// A parsed request.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ApiRequest {
    pub commands: Vec<String>,
    pub parameter: String,
    pub token: Option<String>,
    pub json: bool,
}

/// Reads a request; garbage becomes the error reply to send.
pub(crate) fn parse_request(bytes: &[u8]) -> Result<ApiRequest, Reply> {
    let end = bytes
        .iter()
        .position(|&b| b == 0 || b == b'\n')
        .unwrap_or(bytes.len());
    let text = String::from_utf8_lossy(&bytes[..end]);
    let text = text.trim();
    if looks_json(text) {
        let v: Value = serde_json::from_str(text)
            .map_err(|_| Reply::error(code::INVALID_JSON, "Invalid JSON"))?;
        let command = v
            .get("command")
            .and_then(Value::as_str)
            .ok_or_else(|| Reply::error(code::MISSING_COMMAND, "Missing JSON 'command'"))?;
        let parameter = match v.get("parameter") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(_) => return Err(Reply::error(code::INVALID_PARAM, "Invalid parameter")),
        };
        let token = v.get("token").and_then(Value::as_str).map(str::to_string);
        Ok(ApiRequest {
            commands: split_commands(command),
            parameter,
            token,
            json: true,
        })
    } else {
        let (command, parameter) = text.split_once('|').unwrap_or((text, ""));
        if command.is_empty() {
            return Err(Reply::error(code::INVALID_COMMAND, "Invalid command"));
        }
        Ok(ApiRequest {
            commands: split_commands(command),
            parameter: parameter.to_string(),
            token: None,
            json: false,
        })
    }
}

fn looks_json(text: &str) -> bool {
    text.starts_with('{') || text.starts_with('[')
}

fn split_commands(c: &str) -> Vec<String> {
    c.split('+')
        .map(|s| s.trim().to_ascii_lowercase())
        .collect()
}

const PRIVILEGED: [&str; 10] = [
    "fault",
    "switchpool",
    "enablepool",
    "disablepool",
    "addpool",
    "removepool",
    "restart",
    "quit",
    "save",
    "privileged",
];

fn may_write(shared: &Shared, peer: IpAddr, token: Option<&str>) -> bool {
    let by_token = matches!((&shared.api.write_token, token), (Some(want), Some(got)) if !want.is_empty() && want == got);
    by_token || shared.api.allow_write.contains(&peer)
}

/// Answers a whole request (what is written back, without the NUL).
pub(crate) async fn answer(shared: &Shared, peer: IpAddr, bytes: &[u8]) -> String {
    let req = match parse_request(bytes) {
        Ok(r) => r,
        Err(reply) if looks_json(String::from_utf8_lossy(bytes).trim()) => return reply.json(),
        Err(reply) => return reply.text(),
    };
    let write = may_write(shared, peer, req.token.as_deref());
    if req.commands.len() == 1 {
        let reply = command(shared, &req.commands[0], &req.parameter, write).await;
        return if req.json { reply.json() } else { reply.text() };
    }
    // Joined commands: one object keyed by command; privileged ones may not be joined.
    let mut parts = Vec::new();
    for c in &req.commands {
        let reply = if PRIVILEGED.contains(&c.as_str()) {
            Reply::error(
                code::ACCESS_DENIED,
                format!("Access denied to '{c}' command (it cannot be joined)"),
            )
        } else {
            command(shared, c, &req.parameter, write).await
        };
        if req.json {
            parts.push(format!("{}:[{}]", Value::from(c.as_str()), reply.json()));
        } else {
            parts.push(reply.text());
        }
    }
    if req.json {
        format!("{{{},\"id\":1}}", parts.join(","))
    } else {
        parts.concat()
    }
}

async fn command(shared: &Shared, cmd: &str, param: &str, write: bool) -> Reply {
    if PRIVILEGED.contains(&cmd) && !write {
        return Reply::error(
            code::ACCESS_DENIED,
            format!(
                "Access denied to '{cmd}' command: configure api.write_token or api.allow_write"
            ),
        );
    }
    let snap = || Snapshot::of(shared);
    let index = |p: &str| {
        p.trim()
            .parse::<usize>()
            .map_err(|_| Reply::error(code::MISSING_PARAM, "Missing or invalid pool id"))
    };
    let privileged = |r: Result<String, String>, c: u32| match r {
        Ok(msg) => Reply::info(c, msg),
        Err(msg) => Reply::error(code::INVALID_PARAM, msg),
    };
    match cmd {
        "version" => version(shared),
        "summary" => summary(&snap()),
        "pools" => pools(&snap()),
        "devs" => devs(&snap()),
        "stats" => stats(shared, &snap()),
        "devdetails" => devdetails(shared, &snap()),
        "config" => config(&snap()),
        "privileged" => Reply::info(code::PRIVILEGED_OK, "Privileged access OK"),
        "switchpool" => match index(param) {
            Ok(i) => privileged(
                shared.request(Request::SwitchPool(i)).await,
                code::SWITCH_POOL,
            ),
            Err(e) => e,
        },
        "enablepool" => match index(param) {
            Ok(i) => privileged(
                shared.request(Request::EnablePool(i)).await,
                code::ENABLE_POOL,
            ),
            Err(e) => e,
        },
        "disablepool" => match index(param) {
            Ok(i) => privileged(
                shared.request(Request::DisablePool(i)).await,
                code::DISABLE_POOL,
            ),
            Err(e) => e,
        },
        "removepool" => match index(param) {
            Ok(i) => privileged(
                shared.request(Request::RemovePool(i)).await,
                code::REMOVE_POOL,
            ),
            Err(e) => e,
        },
        "addpool" => {
            let mut it = param.splitn(3, ',');
            let (Some(url), Some(user)) = (it.next(), it.next()) else {
                return Reply::error(code::MISSING_PARAM, "Missing parameter: url,user,pass");
            };
            let password = it.next().unwrap_or("x").to_string();
            match url.parse() {
                Ok(url) => privileged(
                    shared
                        .request(Request::AddPool(PoolConfig {
                            url,
                            user: user.to_string(),
                            password,
                        }))
                        .await,
                    code::ADD_POOL,
                ),
                Err(e) => Reply::error(code::INVALID_PARAM, e.to_string()),
            }
        }
        "restart" => privileged(shared.request(Request::Restart).await, code::RESTART),
        // hashforge's own: `DEVICE,KIND:ARGS` (`0,dead-chip:12`) into an emulated machine.
        "fault" => {
            let Some((device, fault)) = param.split_once(',') else {
                return Reply::error(
                    code::MISSING_PARAM,
                    format!("Missing parameter: device,fault ({})", Fault::SYNTAX),
                );
            };
            let Ok(device) = device.trim().parse::<usize>() else {
                return Reply::error(code::INVALID_PARAM, "Invalid device id");
            };
            match fault.trim().parse::<Fault>() {
                Ok(fault) => privileged(
                    shared.request(Request::InjectFault(device, fault)).await,
                    code::FAULT,
                ),
                Err(e) => Reply::error(code::INVALID_PARAM, e.to_string()),
            }
        }
        "quit" => {
            shared.request_quit();
            Reply::info(code::QUIT, "BYE")
        }
        "save" => Reply::error(
            code::NOT_SUPPORTED,
            "Saving is not supported: edit the miner's TOML configuration file",
        ),
        _ => Reply::error(code::INVALID_COMMAND, "Invalid command"),
    }
}

fn ghs(r: HashRate) -> f64 {
    (r.as_ghs() * 100.0).round() / 100.0
}
fn mhs(r: HashRate) -> f64 {
    (r.as_mhs() * 1000.0).round() / 1000.0
}
/// Megahashes behind `found_difficulty` worth of nonces (a rate over one second is a count).
fn total_mh(found_difficulty: f64) -> f64 {
    HashRate::from_diff1_shares(found_difficulty, 1.0).as_mhs()
}
/// bmminer's `GHS 5s`: a string with two decimals.
fn ghs_text(r: HashRate) -> String {
    format!("{:.2}", r.as_ghs())
}
fn pct(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        (part / whole * 10000.0).round() / 100.0
    } else {
        0.0
    }
}

fn version(shared: &Shared) -> Reply {
    Reply::ok(
        code::VERSION,
        "BMMiner versions",
        "VERSION",
        vec![version_item(shared)],
    )
}

fn version_item(shared: &Shared) -> Obj {
    Obj::default()
        .with("BMMiner", BMMINER_VERSION)
        .with("API", API_VERSION)
        .with("Miner", format!("hashforge {}", env!("CARGO_PKG_VERSION")))
        .with(
            "CompileTime",
            format!("hashforge {}", env!("CARGO_PKG_VERSION")),
        )
        .with("Type", shared.model.clone())
}

fn summary(s: &Snapshot) -> Reply {
    let minutes = (s.elapsed_secs / 60.0).max(1.0 / 60.0);
    let diff_total = s.shares.accepted_difficulty.as_f64()
        + s.shares.rejected_difficulty.as_f64()
        + s.shares.stale_difficulty.as_f64();
    let hashes: Option<u64> = s.devices.iter().map(|d| d.hashes).sum();
    let item = Obj::default()
        .with("Elapsed", s.elapsed_secs as u64)
        .with("GHS 5s", ghs_text(s.hashrate.last_5s))
        .with("GHS av", ghs(s.hashrate.average))
        .with("GHS 1m", ghs(s.hashrate.last_1m))
        .with("GHS 15m", ghs(s.hashrate.last_15m))
        .with("MHS 5s", mhs(s.hashrate.last_5s))
        .with("MHS 1m", mhs(s.hashrate.last_1m))
        .with("MHS 15m", mhs(s.hashrate.last_15m))
        .with("MHS av", mhs(s.hashrate.average))
        .with("Found Blocks", s.found_blocks)
        .with("Getworks", s.pools.iter().map(|p| p.jobs).sum::<u64>())
        .with("Accepted", s.shares.accepted)
        .with("Rejected", s.shares.rejected)
        .with("Hardware Errors", s.hardware_errors)
        .with(
            "Utility",
            (s.shares.accepted as f64 / minutes * 100.0).round() / 100.0,
        )
        .with("Discarded", 0)
        .with("Stale", s.shares.stale)
        .with(
            "Get Failures",
            s.pools.iter().map(|p| p.disconnects).sum::<u64>(),
        )
        .with("Local Work", 0)
        .with("Remote Failures", s.shares.lost)
        .with("Network Blocks", 0)
        .with(
            "Total MH",
            hashes.map_or(total_mh(s.found_difficulty), |h| h as f64 / 1e6),
        )
        .with(
            "Work Utility",
            (s.found_difficulty / minutes * 100.0).round() / 100.0,
        )
        .with("Difficulty Accepted", s.shares.accepted_difficulty.as_f64())
        .with("Difficulty Rejected", s.shares.rejected_difficulty.as_f64())
        .with("Difficulty Stale", s.shares.stale_difficulty.as_f64())
        .with("Best Share", s.best_share)
        .with(
            "Device Hardware%",
            pct(
                s.hardware_errors as f64,
                (s.hardware_errors as f64) + s.found_difficulty.max(0.0),
            ),
        )
        .with(
            "Device Rejected%",
            pct(s.shares.rejected_difficulty.as_f64(), diff_total),
        )
        .with(
            "Pool Rejected%",
            pct(s.shares.rejected_difficulty.as_f64(), diff_total),
        )
        .with(
            "Pool Stale%",
            pct(s.shares.stale_difficulty.as_f64(), diff_total),
        )
        .with("Last getwork", unix_now());
    Reply::ok(code::SUMMARY, "Summary", "SUMMARY", vec![item])
}

fn pools(s: &Snapshot) -> Reply {
    let items = s
        .pools
        .iter()
        .map(|p| {
            let total = p.shares.accepted_difficulty.as_f64()
                + p.shares.rejected_difficulty.as_f64()
                + p.shares.stale_difficulty.as_f64();
            let host = p.url.trim_start_matches("stratum+tcp://").to_string();
            Obj::default()
                .with("POOL", p.index)
                .with("URL", p.url.clone())
                .with("Status", p.status)
                .with("Priority", p.index)
                .with("Quota", 1)
                .with("Long Poll", "N")
                .with("Getworks", p.jobs)
                .with("Accepted", p.shares.accepted)
                .with("Rejected", p.shares.rejected)
                .with("Discarded", 0)
                .with("Stale", p.shares.stale)
                .with("Get Failures", p.disconnects)
                // Shares sent without a verdict (cgminer: submits that failed).
                .with("Remote Failures", p.shares.lost)
                .with("User", p.user.clone())
                .with("Last Share Time", p.last_share_time)
                .with("Diff", format_diff(p.difficulty))
                .with("Diff1 Shares", p.shares.accepted_difficulty.as_f64())
                .with("Proxy Type", "")
                .with("Proxy", "")
                .with("Difficulty Accepted", p.shares.accepted_difficulty.as_f64())
                .with("Difficulty Rejected", p.shares.rejected_difficulty.as_f64())
                .with("Difficulty Stale", p.shares.stale_difficulty.as_f64())
                .with("Last Share Difficulty", p.last_share_difficulty)
                .with("Has Stratum", true)
                .with("Stratum Active", p.active)
                .with("Stratum URL", if p.active { host } else { String::new() })
                .with("Has GBT", false)
                .with("Best Share", p.best_share)
                .with(
                    "Pool Rejected%",
                    pct(p.shares.rejected_difficulty.as_f64(), total),
                )
                .with(
                    "Pool Stale%",
                    pct(p.shares.stale_difficulty.as_f64(), total),
                )
                .with("Bad Work", p.bad_input)
        })
        .collect::<Vec<_>>();
    Reply::ok(
        code::POOLS,
        format!("{} Pool(s)", items.len()),
        "POOLS",
        items,
    )
}

fn format_diff(d: f64) -> String {
    if d >= 1e3 {
        let (v, u) = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")]
            .into_iter()
            .find(|(s, _)| d >= *s)
            .expect("d >= 1e3");
        format!("{:.2}{u}", d / v)
    } else {
        format!("{d}")
    }
}

/// Chains across all devices, numbered from 0 in device order.
fn chains(
    s: &Snapshot,
) -> Vec<(
    usize,
    &crate::miner::DeviceSnapshot,
    &crate::miner::ChainSnapshot,
)> {
    let mut out = Vec::new();
    for d in &s.devices {
        for c in &d.chains {
            out.push((out.len(), d, c));
        }
    }
    out
}

fn devs(s: &Snapshot) -> Reply {
    let minutes = (s.elapsed_secs / 60.0).max(1.0 / 60.0);
    let items: Vec<Obj> = chains(s)
        .into_iter()
        .map(|(n, d, c)| {
            let whole = d.chains.len() == 1;
            let found: f64 = c.chips.iter().map(|x| x.found_difficulty).sum();
            let mut o = Obj::default()
                .with("ASC", n)
                .with("Name", if d.info.kind == "cpu" { "CPU" } else { "BTM" })
                .with("ID", n)
                .with("Enabled", "Y")
                .with("Status", "Alive")
                .with("Temperature", c.chip_temp.map_or(0.0, |t| t.0))
                .with("MHS av", mhs(c.hashrate.average))
                .with("MHS 5s", mhs(c.hashrate.last_5s))
                .with("MHS 1m", mhs(c.hashrate.last_1m))
                .with("MHS 15m", mhs(c.hashrate.last_15m));
            let (acc, rej) = if whole {
                (d.shares.accepted, d.shares.rejected)
            } else {
                (0, 0)
            };
            o.push("Accepted", acc);
            o.push("Rejected", rej);
            o.push("Hardware Errors", c.hardware_errors);
            o.push("Utility", (acc as f64 / minutes * 100.0).round() / 100.0);
            o.push("Diff1 Work", found);
            o.push("Total MH", total_mh(found));
            o.push(
                "Device Hardware%",
                pct(c.hardware_errors as f64, c.hardware_errors as f64 + found),
            );
            o.push("Device Elapsed", s.elapsed_secs as u64);
            o
        })
        .collect();
    Reply::ok(code::DEVS, format!("{} ASC(s)", items.len()), "DEVS", items)
}

fn devdetails(shared: &Shared, s: &Snapshot) -> Reply {
    let items: Vec<Obj> = chains(s)
        .into_iter()
        .map(|(n, d, c)| {
            Obj::default()
                .with("DEVDETAILS", n)
                .with("Name", if d.info.kind == "cpu" { "CPU" } else { "BTM" })
                .with("ID", n)
                .with("Driver", d.info.kind)
                .with("Kernel", "")
                .with("Model", shared.model.clone())
                .with("Device Path", format!("{} chain {}", d.info.name, c.index))
                .with("Chips", c.chips.len())
        })
        .collect();
    Reply::ok(code::DEVDETAILS, "Device Details", "DEVDETAILS", items)
}

fn config(s: &Snapshot) -> Reply {
    let item = Obj::default()
        .with("ASC Count", chains(s).len())
        .with("PGA Count", 0)
        .with("Pool Count", s.pools.len())
        .with("Strategy", "Failover")
        .with("Log Interval", 5)
        .with("Device Code", "")
        .with("OS", std::env::consts::OS)
        .with("Failover-Only", true)
        .with("Hotplug", "None");
    Reply::ok(code::CONFIG, "CGMiner config", "CONFIG", vec![item])
}

/// Stock Antminer `stats`: STATS[0] says what firmware this is; STATS[1] has the chains
/// with 1-based keys (`chain_acn1`, `chain_rate1` in GH/s as a string, `temp2_1` ...).
fn stats(shared: &Shared, s: &Snapshot) -> Reply {
    let mut o = Obj::default()
        .with("STATS", 0)
        .with("ID", "BTM_SOC0")
        .with("Elapsed", s.elapsed_secs as u64)
        .with("Calls", 0)
        .with("Wait", 0.0)
        .with("Max", 0.0)
        .with("Min", 99999999.0)
        .with("GHS 5s", ghs_text(s.hashrate.last_5s))
        .with("GHS av", ghs(s.hashrate.average));
    let all = chains(s);
    let fans: Vec<u32> = s.devices.iter().flat_map(|d| d.fans_rpm.clone()).collect();
    o.push("miner_count", all.len());
    o.push("frequency", "");
    o.push("fan_num", fans.len());
    for (i, f) in fans.iter().enumerate() {
        o.push(format!("fan{}", i + 1), *f);
    }
    let temps: Vec<(usize, f64)> = all
        .iter()
        .filter_map(|(n, _, c)| c.board_temp.map(|t| (*n, t.0)))
        .collect();
    o.push("temp_num", temps.len());
    for (n, t) in &temps {
        o.push(format!("temp{}", n + 1), *t);
    }
    let mut temp_max: f64 = 0.0;
    for (n, _, c) in &all {
        if let Some(t) = c.chip_temp {
            o.push(format!("temp2_{}", n + 1), t.0);
            temp_max = temp_max.max(t.0);
        }
    }
    o.push("temp_max", temp_max);
    let found: f64 = s.found_difficulty;
    o.push(
        "Device Hardware%",
        pct(s.hardware_errors as f64, s.hardware_errors as f64 + found),
    );
    o.push("no_matching_work", s.hardware_errors);
    let mut total_ideal = 0.0;
    let mut total_chips = 0;
    for (n, d, c) in &all {
        let k = n + 1;
        let ideal = d.info.nominal_rate.as_ghs() / d.chains.len().max(1) as f64;
        total_ideal += ideal;
        total_chips += c.chips.len();
        o.push(format!("chain_acn{k}"), c.chips.len());
        o.push(format!("chain_acs{k}"), chip_map(&c.chips));
        o.push(format!("chain_hw{k}"), c.hardware_errors);
        o.push(format!("chain_rate{k}"), ghs_text(c.hashrate.last_5s));
        o.push(
            format!("chain_rateideal{k}"),
            (ideal * 100.0).round() / 100.0,
        );
    }
    o.push("total_rateideal", (total_ideal * 100.0).round() / 100.0);
    o.push("total_freqavg", 0.0);
    o.push("total_acn", total_chips);
    o.push("total_rate", ghs(s.hashrate.last_5s));
    o.push("rate_unit", "GH");
    let head = Obj::default()
        .with("BMMiner", BMMINER_VERSION)
        .with("Miner", format!("hashforge {}", env!("CARGO_PKG_VERSION")))
        .with(
            "CompileTime",
            format!("hashforge {}", env!("CARGO_PKG_VERSION")),
        )
        .with("Type", shared.model.clone());
    Reply::ok(code::STATS, "BMMiner stats", "STATS", vec![head, o])
}

/// cgminer's chip map: `o` per good chip, `x` per chip with errors and no nonces, a space
/// every 8 chips.
fn chip_map(chips: &[crate::stats::ChipStats]) -> String {
    let mut s = String::new();
    for (i, c) in chips.iter().enumerate() {
        if i > 0 && i % 8 == 0 {
            s.push(' ');
        }
        s.push(if c.hardware_errors > 0 && c.nonces == 0 {
            'x'
        } else {
            'o'
        });
    }
    s
}

/// Serves the API until shutdown.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, as the pool's
                        // listener does, instead of spinning on the error.
                        tracing::warn!("cgminer API: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                    // Too many at once: close rather than queue without bound.
                    continue;
                };
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let _permit = permit;
                    let _ = tokio::time::timeout(Duration::from_secs(10), connection(stream, peer, &shared)).await;
                });
            }
            _ = shutdown.changed() => return,
        }
    }
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut chunk)).await {
            Ok(r) => r?,
            Err(_) => break,
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if complete(&buf) || buf.len() >= MAX_REQUEST {
            break;
        }
    }
    if buf.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let mut reply = answer(shared, peer.ip(), &buf).await.into_bytes();
    reply.push(0);
    stream.write_all(&reply).await?;
    stream.shutdown().await
}

/// Whether a request is all there: a newline or NUL, a whole JSON object, or a plain
/// command (cgminer takes one read as the request).
fn complete(buf: &[u8]) -> bool {
    if buf.contains(&b'\n') || buf.contains(&0) {
        return true;
    }
    let start = buf.iter().position(|b| !b.is_ascii_whitespace());
    match start {
        Some(i) if buf[i] == b'{' => serde_json::from_slice::<Value>(&buf[i..]).is_ok(),
        Some(_) => true,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_json_plain_joined_and_garbage() {
        let r = parse_request(br#"{"command":"summary+pools","parameter":""}"#).unwrap();
        assert_eq!(r.commands, vec!["summary", "pools"]);
        assert!(r.json);
        let r = parse_request(b"switchpool|1\0").unwrap();
        assert_eq!(
            (r.commands[0].as_str(), r.parameter.as_str()),
            ("switchpool", "1")
        );
        assert!(!r.json);
        let r = parse_request(br#"{"command":"switchpool","parameter":2,"token":"t"}"#).unwrap();
        assert_eq!((r.parameter.as_str(), r.token.as_deref()), ("2", Some("t")));
        let e = parse_request(b"{not json").unwrap_err();
        assert!(e.json().contains("\"Code\":23"), "{}", e.json());
        let e = parse_request(br#"{"parameter":1}"#).unwrap_err();
        assert!(e.json().contains("\"Code\":24"));
        assert!(parse_request(b"|x").is_err());
    }

    #[test]
    fn replies_render_as_cgminer_json_and_text() {
        let r = Reply::ok(
            7,
            "1 Pool(s)",
            "POOLS",
            vec![Obj::default()
                .with("POOL", 0)
                .with("URL", "stratum+tcp://h:1")],
        );
        let j = r.json();
        assert!(
            j.starts_with("{\"STATUS\":[{\"STATUS\":\"S\",\"When\":"),
            "{j}"
        );
        assert!(
            j.ends_with(",\"POOLS\":[{\"POOL\":0,\"URL\":\"stratum+tcp://h:1\"}],\"id\":1}"),
            "{j}"
        );
        let v: Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["STATUS"][0]["Code"], 7);
        let t = r.text();
        assert!(t.starts_with("STATUS=S,When="), "{t}");
        assert!(t.ends_with("|POOL=0,URL=stratum+tcp://h:1|"), "{t}");
        assert!(complete(b"summary"));
        assert!(!complete(b"{\"command\":\"sum"));
        assert!(complete(b"{\"command\":\"summary\"}"));
    }

    #[test]
    fn chip_maps_group_by_eight() {
        let good = crate::stats::ChipStats {
            nonces: 1,
            ..Default::default()
        };
        let bad = crate::stats::ChipStats {
            hardware_errors: 3,
            ..Default::default()
        };
        let mut chips = vec![good.clone(); 9];
        chips[2] = bad;
        assert_eq!(chip_map(&chips), "ooxooooo o");
        assert_eq!(format_diff(65536.0), "65.54K");
    }
}
