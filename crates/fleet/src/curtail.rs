//! Curtailment: a power target, sleep or wake for a group of machines, by hand or on a
//! price signal; protected machines are left alone.
//!
//! hashforge miners take it through their cgminer API's privileged `powertarget`, `sleep`
//! and `wake` (with the console's `--api-token`); stock Antminers sleep and wake through
//! their web CGI's `set_miner_conf.cgi` (`miner-mode` 1 or 0 in the configuration
//! `get_miner_conf.cgi` gave, as pyasic sends it); stock firmware takes no power target
//! there. Each machine is read back until it confirms (hashforge: its reading's
//! `sleeping` / power limit and watts; stock: `bitmain-work-mode`), so a run records the
//! group's power before and after and when each machine confirmed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashforge_minerapi::cgminer::Request;
use hashforge_minerapi::MinerStatus;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::{self, Contract, MinerPorts, ReadError};
use crate::http::Digest;
use crate::poll::Collector;

/// What a run asks of each machine.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Action {
    Sleep,
    Wake,
    /// Hold the machine's power at or under this many watts.
    PowerTarget {
        watts: u32,
    },
    /// Back to the nameplate (no power target).
    ClearTarget,
}

impl Action {
    /// `sleep`, `wake`, `clear`, or a power target in watts (`2500`, `2500W`).
    pub fn parse(text: &str) -> Result<Action, String> {
        let t = text.trim().to_ascii_lowercase();
        match t.as_str() {
            "sleep" => Ok(Action::Sleep),
            "wake" => Ok(Action::Wake),
            "clear" | "none" => Ok(Action::ClearTarget),
            _ => {
                let n = t.strip_suffix('w').unwrap_or(&t).trim();
                match n.parse::<u32>() {
                    Ok(w) if (1..=100_000).contains(&w) => Ok(Action::PowerTarget { watts: w }),
                    _ => Err(format!(
                        "`{}`: sleep, wake, clear, or a power target in watts (1 to 100000)",
                        text.escape_debug()
                    )),
                }
            }
        }
    }

    pub fn label(self) -> String {
        match self {
            Action::Sleep => "sleep".into(),
            Action::Wake => "wake".into(),
            Action::PowerTarget { watts } => format!("power target {watts} W"),
            Action::ClearTarget => "clear the power target".into(),
        }
    }

    /// The hashforge miner's cgminer command and parameter.
    fn command(self) -> (&'static str, String) {
        match self {
            Action::Sleep => ("sleep", String::new()),
            Action::Wake => ("wake", String::new()),
            Action::PowerTarget { watts } => ("powertarget", watts.to_string()),
            Action::ClearTarget => ("powertarget", "none".into()),
        }
    }

    /// Whether a hashforge miner's reading shows the action done.
    pub fn done_by(self, s: &MinerStatus) -> bool {
        match self {
            Action::Sleep => s.sleeping == Some(true),
            Action::Wake => s.sleeping == Some(false),
            Action::PowerTarget { watts } => {
                let w = f64::from(watts);
                s.power_limit_w.is_some_and(|l| (l - w).abs() < 0.5)
                    && s.power_w.is_some_and(|p| p <= w * 1.01)
            }
            Action::ClearTarget => s.power_limit_w.is_none(),
        }
    }
}

/// Which machines a run touches: every online machine the console polls, narrowed by
/// site, model and text; `protect` (serials or addresses) are never touched.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub site: Option<String>,
    /// The model exactly as the miners report it (`S21 Pro`), any case.
    pub model: Option<String>,
    /// In the address, serial, model or hostname.
    pub text: Option<String>,
    #[serde(default)]
    pub protect: Vec<String>,
}

/// How one machine's part of a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done, and its reading says so.
    Confirmed,
    /// Accepted, but its reading did not show it in time.
    Unconfirmed,
    /// The machine (or the console's missing token or password) said no.
    Refused,
    /// No answer.
    Unreachable,
    /// Its firmware takes no such command from us.
    Unsupported,
    /// Listed as protected: left alone.
    Protected,
}

#[derive(Clone, Debug, Serialize)]
pub struct MachineResult {
    pub ip: IpAddr,
    pub site: String,
    pub serial: Option<String>,
    pub model: String,
    /// How the command went: `cgminer API` (hashforge) or `web CGI` (stock Antminer).
    pub via: &'static str,
    pub outcome: Outcome,
    pub detail: String,
    pub power_before_w: Option<f64>,
    pub power_after_w: Option<f64>,
    /// When it confirmed, milliseconds after the run started.
    pub confirmed_ms: Option<u64>,
}

/// One curtailment: what was asked of which machines, and how each answered.
#[derive(Clone, Debug, Serialize)]
pub struct Run {
    pub id: u64,
    pub action: Action,
    pub group: Group,
    pub started_unix: u64,
    pub elapsed_secs: f64,
    pub machines: usize,
    pub confirmed: usize,
    pub unconfirmed: usize,
    pub refused: usize,
    pub unreachable: usize,
    pub unsupported: usize,
    pub protected: usize,
    /// The touched machines' power as last read before the run (those that report it).
    pub power_before_w: f64,
    /// The same machines' power as read when each confirmed (or, unconfirmed, last read).
    pub power_after_w: f64,
    /// Milliseconds until the last machine confirmed.
    pub confirmed_within_ms: Option<u64>,
    pub results: Vec<MachineResult>,
}

/// How a run talks to machines.
#[derive(Clone, Debug)]
pub struct Settings {
    /// hashforge miners' `api.write_token`.
    pub api_token: Option<String>,
    /// How long a machine has to show the action done in its reading.
    pub confirm_within: Duration,
    pub concurrency: usize,
    /// One exchange's budget.
    pub timeout: Duration,
}

/// A machine the run will touch, as the inventory had it.
#[derive(Clone, Debug)]
struct Target {
    ip: IpAddr,
    site: String,
    ports: MinerPorts,
    contract: Contract,
    expected: Option<usize>,
    hashforge: bool,
    default_password: bool,
    serial: Option<String>,
    model: String,
    power_w: Option<f64>,
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    hay.to_ascii_lowercase().contains(needle)
}

impl Group {
    fn protects(&self, m: &crate::state::Miner) -> bool {
        self.protect.iter().any(|p| {
            let p = p.trim();
            !p.is_empty() && (m.serial.as_deref() == Some(p) || m.ip.to_string() == p)
        })
    }

    fn takes(&self, m: &crate::state::Miner) -> bool {
        let site = self
            .site
            .as_deref()
            .filter(|s| !s.is_empty())
            .is_none_or(|s| m.site == s);
        let model = self
            .model
            .as_deref()
            .filter(|s| !s.is_empty())
            .is_none_or(|x| m.model.eq_ignore_ascii_case(x.trim()));
        let text = match self
            .text
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => true,
            Some(t) => {
                let t = t.to_ascii_lowercase();
                contains_ci(&m.ip.to_string(), &t)
                    || contains_ci(&m.model, &t)
                    || m.serial.as_deref().is_some_and(|s| contains_ci(s, &t))
                    || m.hostname.as_deref().is_some_and(|s| contains_ci(s, &t))
            }
        };
        site && model && text
    }
}

/// Runs `action` on `group`'s online machines: at most `settings.concurrency` at once,
/// each sent its command and read back until it confirms.
pub async fn run(
    collector: &Arc<Collector>,
    action: Action,
    group: Group,
    settings: &Settings,
) -> Run {
    let start = Instant::now();
    let started_unix = crate::unix_now();
    let mut results = Vec::new();
    let mut targets = Vec::new();
    {
        let inv = collector.inventory();
        for m in inv.miners.iter().filter(|m| m.online && group.takes(m)) {
            if group.protects(m) {
                results.push(MachineResult {
                    ip: m.ip,
                    site: m.site.clone(),
                    serial: m.serial.clone(),
                    model: m.model.clone(),
                    via: "",
                    outcome: Outcome::Protected,
                    detail: "protected: left alone".into(),
                    power_before_w: m.power_w.map(f64::from),
                    power_after_w: m.power_w.map(f64::from),
                    confirmed_ms: None,
                });
                continue;
            }
            targets.push(Target {
                ip: m.ip,
                site: m.site.clone(),
                ports: m.ports,
                contract: m.contract,
                expected: m.expected_chips,
                hashforge: m.firmware.starts_with("hashforge"),
                default_password: m.default_password == Some(true),
                serial: m.serial.clone(),
                model: m.model.clone(),
                power_w: m.power_w.map(f64::from),
            });
        }
    }
    let passwords = collector.config.web_passwords.clone();
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for t in targets {
        let permit = Arc::clone(&permits).acquire_owned().await.expect("open");
        let (settings, passwords) = (settings.clone(), passwords.clone());
        tasks.spawn(async move {
            let _permit = permit;
            one(t, action, &settings, &passwords, start).await
        });
        while let Some(r) = tasks.try_join_next() {
            results.extend(r.ok());
        }
    }
    while let Some(r) = tasks.join_next().await {
        results.extend(r.ok());
    }
    // What the console knows of each machine now: asleep or not (stock machines say it
    // only through their web CGI), so their alerts read a sleeping machine as one.
    {
        let mut inv = collector.inventory_mut();
        for r in results.iter().filter(|r| r.outcome == Outcome::Confirmed) {
            if let Some(i) = inv.position(r.ip) {
                let m = &mut inv.miners[i];
                match action {
                    Action::Sleep => m.sleeping = Some(true),
                    Action::Wake => m.sleeping = Some(false),
                    _ => {}
                }
                if let Some(p) = r.power_after_w {
                    m.power_w = Some(p as f32);
                }
            }
        }
    }
    results.sort_by_key(|r| r.ip);
    let count = |o: Outcome| results.iter().filter(|r| r.outcome == o).count();
    let touched = || {
        results
            .iter()
            .filter(|r| !matches!(r.outcome, Outcome::Protected | Outcome::Unsupported))
    };
    let power_before_w = touched().filter_map(|r| r.power_before_w).sum();
    let power_after_w = touched().filter_map(|r| r.power_after_w).sum();
    let confirmed_within_ms = results.iter().filter_map(|r| r.confirmed_ms).max();
    Run {
        id: 0,
        action,
        group,
        started_unix,
        elapsed_secs: start.elapsed().as_secs_f64(),
        machines: results.len(),
        confirmed: count(Outcome::Confirmed),
        unconfirmed: count(Outcome::Unconfirmed),
        refused: count(Outcome::Refused),
        unreachable: count(Outcome::Unreachable),
        unsupported: count(Outcome::Unsupported),
        protected: count(Outcome::Protected),
        power_before_w,
        power_after_w,
        confirmed_within_ms,
        results,
    }
}

/// Sends one cgminer request (with the token) and reads the reply's `STATUS`.
async fn cgminer_write(
    addr: SocketAddr,
    command: &str,
    parameter: &str,
    token: &str,
    timeout: Duration,
) -> Result<Result<String, String>, ReadError> {
    let mut req = Request::new(command, parameter);
    req.token = Some(token.to_owned());
    let v = client::cgminer_request(addr, &req, timeout).await?;
    let status = &v["STATUS"][0];
    let msg = status["Msg"].as_str().unwrap_or("").to_owned();
    // `S` success, `I` information (cgminer's answer to a write that was done).
    Ok(if matches!(status["STATUS"].as_str(), Some("S" | "I")) {
        Ok(msg)
    } else {
        Err(msg)
    })
}

/// Stock Antminer's configuration page, with the first password it takes.
async fn miner_conf(
    digest: &mut Digest,
    addr: SocketAddr,
    passwords: &[String],
    timeout: Duration,
) -> Result<(Value, String), ReadError> {
    let mut last = ReadError::Unauthorized;
    for pw in passwords {
        let path = "/cgi-bin/get_miner_conf.cgi";
        match crate::http::request_in(digest, addr, path, None, Some(pw), timeout).await {
            Ok(r) if r.code == 200 => {
                let v: Value =
                    serde_json::from_slice(&r.body).map_err(|e| ReadError::Shape(e.to_string()))?;
                return Ok((v, pw.clone()));
            }
            Ok(r) => return Err(ReadError::Http(format!("status {}", r.code))),
            Err(e @ ReadError::Unauthorized) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// `bitmain-work-mode` as a number (stock firmware writes it as a string).
fn work_mode(conf: &Value) -> Option<u64> {
    let v = conf.get("bitmain-work-mode")?;
    v.as_u64().or_else(|| v.as_str()?.trim().parse().ok())
}

async fn one(
    t: Target,
    action: Action,
    settings: &Settings,
    passwords: &[String],
    start: Instant,
) -> MachineResult {
    let mut r = MachineResult {
        ip: t.ip,
        site: t.site.clone(),
        serial: t.serial.clone(),
        model: t.model.clone(),
        via: "",
        outcome: Outcome::Unsupported,
        detail: String::new(),
        power_before_w: t.power_w,
        power_after_w: t.power_w,
        confirmed_ms: None,
    };
    let deadline = start + settings.confirm_within;
    let pause = Duration::from_millis(100);
    if t.hashforge && t.contract == Contract::Bmminer {
        r.via = "cgminer API";
        let Some(token) = settings.api_token.as_deref() else {
            r.outcome = Outcome::Refused;
            r.detail = "the console has no --api-token for hashforge miners".into();
            return r;
        };
        let addr = SocketAddr::new(t.ip, t.ports.cgminer);
        let (cmd, param) = action.command();
        match cgminer_write(addr, cmd, &param, token, settings.timeout).await {
            Err(e) => {
                r.outcome = Outcome::Unreachable;
                r.detail = e.to_string();
                return r;
            }
            Ok(Err(msg)) => {
                r.outcome = Outcome::Refused;
                r.detail = msg;
                return r;
            }
            Ok(Ok(msg)) => r.detail = msg,
        }
        r.outcome = Outcome::Unconfirmed;
        loop {
            if let Ok(s) =
                client::read(t.ip, t.contract, t.ports, t.expected, settings.timeout).await
            {
                r.power_after_w = s.power_w.or(r.power_after_w);
                if action.done_by(&s) {
                    r.outcome = Outcome::Confirmed;
                    r.confirmed_ms = Some(start.elapsed().as_millis() as u64);
                    return r;
                }
            }
            if Instant::now() + pause > deadline {
                return r;
            }
            tokio::time::sleep(pause).await;
        }
    }
    if t.contract == Contract::Bmminer {
        r.via = "web CGI";
        let mode = match action {
            Action::Sleep => 1,
            Action::Wake => 0,
            _ => {
                r.detail = "stock Antminer firmware takes sleep and wake only".into();
                return r;
            }
        };
        let addr = SocketAddr::new(t.ip, t.ports.http);
        let mut tried: Vec<String> = Vec::new();
        if t.default_password {
            tried.push(crate::sim::model::MAKER_DEFAULT_PASSWORD.into());
        }
        tried.extend(passwords.iter().cloned());
        let mut digest = Digest::default();
        let (mut conf, pw) = match miner_conf(&mut digest, addr, &tried, settings.timeout).await {
            Ok(c) => c,
            Err(e) => {
                r.outcome = match e {
                    ReadError::Unauthorized => Outcome::Refused,
                    _ => Outcome::Unreachable,
                };
                r.detail = format!("get_miner_conf: {e}");
                return r;
            }
        };
        if let Some(o) = conf.as_object_mut() {
            o.insert("miner-mode".into(), Value::from(mode));
        }
        let body = serde_json::to_vec(&conf).unwrap_or_default();
        match crate::http::request_in(
            &mut digest,
            addr,
            "/cgi-bin/set_miner_conf.cgi",
            Some(&body),
            Some(&pw),
            settings.timeout,
        )
        .await
        {
            Ok(reply) if reply.code == 200 => {
                let v: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
                let ok =
                    v["stats"].as_str() == Some("success") || v["code"].as_str() == Some("M000");
                if !ok {
                    r.outcome = Outcome::Refused;
                    r.detail = format!("set_miner_conf: {}", String::from_utf8_lossy(&reply.body));
                    return r;
                }
                r.detail = "set_miner_conf: OK".into();
            }
            Ok(reply) => {
                r.outcome = Outcome::Refused;
                r.detail = format!("set_miner_conf: status {}", reply.code);
                return r;
            }
            Err(e) => {
                r.outcome = Outcome::Unreachable;
                r.detail = format!("set_miner_conf: {e}");
                return r;
            }
        }
        r.outcome = Outcome::Unconfirmed;
        loop {
            let once = std::slice::from_ref(&pw);
            if let Ok((c, _)) = miner_conf(&mut digest, addr, once, settings.timeout).await {
                if work_mode(&c) == Some(mode) {
                    if let Ok(s) =
                        client::read(t.ip, t.contract, t.ports, t.expected, settings.timeout).await
                    {
                        r.power_after_w = s.power_w.or(r.power_after_w);
                    }
                    r.outcome = Outcome::Confirmed;
                    r.confirmed_ms = Some(start.elapsed().as_millis() as u64);
                    return r;
                }
            }
            if Instant::now() + pause > deadline {
                return r;
            }
            tokio::time::sleep(pause).await;
        }
    }
    r.detail = format!("{} firmware: not supported yet", t.contract.name());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse() {
        assert_eq!(Action::parse("sleep"), Ok(Action::Sleep));
        assert_eq!(Action::parse(" Wake "), Ok(Action::Wake));
        assert_eq!(
            Action::parse("2500W"),
            Ok(Action::PowerTarget { watts: 2500 })
        );
        assert_eq!(
            Action::parse("2500"),
            Ok(Action::PowerTarget { watts: 2500 })
        );
        assert_eq!(Action::parse("clear"), Ok(Action::ClearTarget));
        for bad in ["", "0", "-5", "1e9", "NaN", "2500 kW", "nap"] {
            assert!(Action::parse(bad).is_err(), "{bad}");
        }
    }
}
