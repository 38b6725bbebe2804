//! Whatsminer's cgminer API (btminer, TCP 4028, API V2: firmware dated before 2024-11), both
//! sides: the replies rendered from a [`MinerStatus`], and a reading of them back into one.
//!
//! Two shapes live on the one port. cgminer's own commands (`summary`, `devs`, `pools`,
//! `devdetails`, `version`) answer in the usual envelope (`STATUS` array, a section,
//! `"id":1`) with Whatsminer's fields: rates in MH/s as numbers (`MHS 1m`, `HS RT`), `Power`,
//! `Factory GHS`, `Fan Speed In`/`Out`, one `DEVS` entry per board with `Slot`, `Effective
//! Chips`, `Chip Temp Avg` and `PCB SN`, and `Driver: bitmicro` in `DEVDETAILS`, which is how
//! fleet tools recognise the make. btminer's own commands (`get_version`, `get_miner_info`,
//! `get_psu`, `get_error_code`, `status`) answer `{"STATUS":"S","When":..,"Code":131,
//! "Msg":{..},"Description":""}`: `STATUS` a string, `Msg` an object. They cannot be joined
//! with `+`. Commands that change the miner need a token derived from the admin password;
//! this firmware's API has writing switched off, and says so in btminer's shape.
//!
//! Which version a reader speaks is decided by `get_version`'s `fw_ver`: pyasic 0.79 and
//! asic-rs 0.8.6 read a firmware dated before 2024-11 through this API (V2) and a newer one
//! through the V3 API on port 4433, which this module does not speak.
//!
//! What a board knows that the neutral status does not (per-chip maps, a minimum and mean
//! chip temperature) is not invented: `Effective Chips` counts the chips that work, and the
//! three chip temperatures carry the one reading the status keeps (its hottest chip).

use hashforge_core::{Celsius, HashRate};
use serde_json::Value;

use crate::bmminer::{f, mhs, pct, pool_items, read_pools, round2, shares_in, total_mh, u};
use crate::cgminer::{code, ghs, section, text, DecodeError, Obj, Reply, Request, Stamp};
use crate::status::{ChainState, ChainStatus, ChipHealth, Identity, Make, MinerStatus, Rates};

/// The cgminer Whatsminer's firmware builds on, named in every cgminer reply's `Description`.
pub const CGMINER_DESCRIPTION: &str = "cgminer 4.9.2";
/// btminer's API version (`get_version`'s `api_ver`).
pub const API_VERSION: &str = "2.0.5";
/// The control board (`get_version`'s `platform`).
pub const PLATFORM: &str = "H616";
/// btminer's code for a command of its own that went well.
pub const CODE_OK: u32 = 131;

/// What a reader sends: cgminer's reads joined, then btminer's own one by one.
pub const READ_JOINED: &str = "summary+devs+pools+devdetails";
pub const READ_OWN: [&str; 2] = ["get_version", "get_miner_info"];

/// btminer's own read commands.
pub const OWN_READS: [&str; 5] = [
    "get_version",
    "get_miner_info",
    "get_psu",
    "get_error_code",
    "status",
];

/// btminer's commands that change the miner (Whatsminer API V2), and the token handshake
/// they start with; all need the admin password's token.
pub const WRITES: [&str; 30] = [
    "get_token",
    "open_write_api",
    "update_pools",
    "restart_btminer",
    "power_off",
    "power_on",
    "manage_led",
    "set_led",
    "set_low_power",
    "set_high_power",
    "set_normal_power",
    "update_firmware",
    "reboot",
    "factory_reset",
    "update_pwd",
    "net_config",
    "set_target_freq",
    "enable_btminer_fast_boot",
    "disable_btminer_fast_boot",
    "enable_web_pools",
    "disable_web_pools",
    "set_hostname",
    "set_power_pct",
    "pre_power_on",
    "set_temp_offset",
    "adjust_power_limit",
    "adjust_upfreq_speed",
    "set_poweroff_cool",
    "set_fan_zero_speed",
    "set_zone",
];

/// One command's answer: cgminer's envelope, or btminer's own.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Cgminer(Reply),
    Own(Own),
}

/// btminer's own reply: `{"STATUS":"S","When":..,"Code":131,"Msg":{..},"Description":""}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Own {
    /// `S` or `E`.
    pub kind: &'static str,
    pub when: u64,
    pub code: u32,
    pub msg: Msg,
}

/// An own reply's `Msg`: fields in the firmware's order, or a sentence for an error.
#[derive(Clone, Debug, PartialEq)]
pub enum Msg {
    Fields(Obj),
    Text(&'static str),
}

impl Own {
    pub fn json(&self) -> String {
        let msg = match &self.msg {
            Msg::Fields(o) => o.json(),
            Msg::Text(t) => Value::from(*t).to_string(),
        };
        format!(
            "{{\"STATUS\":\"{}\",\"When\":{},\"Code\":{},\"Msg\":{msg},\"Description\":\"\"}}",
            self.kind, self.when, self.code
        )
    }
}

impl Answer {
    pub fn json(&self) -> String {
        match self {
            Answer::Cgminer(r) => r.json(),
            Answer::Own(o) => o.json(),
        }
    }
}

fn own(when: u64, fields: Obj) -> Answer {
    Answer::Own(Own {
        kind: "S",
        when,
        code: CODE_OK,
        msg: Msg::Fields(fields),
    })
}

/// btminer's answer to a command it does not know.
pub fn invalid(when: u64) -> Answer {
    Answer::Own(Own {
        kind: "E",
        when,
        code: code::INVALID_COMMAND,
        msg: Msg::Text("invalid cmd"),
    })
}

/// btminer's answer to a write while its API takes none (the message pyasic looks for).
pub fn refused(when: u64) -> Answer {
    Answer::Own(Own {
        kind: "E",
        when,
        code: code::ACCESS_DENIED,
        msg: Msg::Text("can't access write cmd"),
    })
}

fn stamp(s: &MinerStatus) -> Stamp<'static> {
    Stamp {
        when: s.when,
        description: CGMINER_DESCRIPTION,
    }
}

/// Whether `cmd` changes the miner (btminer's writes, cgminer's).
pub fn is_write(cmd: &str) -> bool {
    WRITES.contains(&cmd)
        || cmd.starts_with("set_")
        || crate::cgminer::Write::COMMANDS.contains(&cmd)
}

/// Answers a whole request the way btminer does: reads from `status`, writes refused, a
/// joined request answered as one object keyed by command (btminer's own commands cannot be
/// joined). The bytes to send, without the trailing NUL.
pub fn respond(req: &Request, status: &MinerStatus) -> String {
    let joined = req.commands.len() > 1;
    let answers: Vec<Answer> = req
        .commands
        .iter()
        .map(|c| {
            if is_write(c) {
                refused(status.when)
            } else if joined && OWN_READS.contains(&c.as_str()) {
                invalid(status.when)
            } else {
                read_command(c, status)
            }
        })
        .collect();
    match answers.as_slice() {
        [one] if !joined => one.json(),
        _ => {
            let parts: Vec<String> = req
                .commands
                .iter()
                .zip(&answers)
                .map(|(c, a)| format!("{}:[{}]", Value::from(c.as_str()), a.json()))
                .collect();
            format!("{{{},\"id\":1}}", parts.join(","))
        }
    }
}

/// Answers one read command from `status`.
pub fn read_command(cmd: &str, s: &MinerStatus) -> Answer {
    let at = stamp(s);
    match cmd {
        "summary" => Answer::Cgminer(Reply::ok(
            at,
            code::SUMMARY,
            "Summary",
            "SUMMARY",
            vec![summary_item(s)],
        )),
        "devs" | "edevs" => {
            let items: Vec<Obj> = s.chains.iter().map(|c| dev_item(s, c)).collect();
            Answer::Cgminer(Reply::ok(
                at,
                code::DEVS,
                format!("{} ASC(s)", items.len()),
                "DEVS",
                items,
            ))
        }
        "pools" => {
            let items = pool_items(s);
            Answer::Cgminer(Reply::ok(
                at,
                code::POOLS,
                format!("{} Pool(s)", items.len()),
                "POOLS",
                items,
            ))
        }
        "devdetails" => {
            let items = s
                .chains
                .iter()
                .map(|c| {
                    Obj::default()
                        .with("DEVDETAILS", c.index)
                        .with("Name", "SM")
                        .with("ID", c.index)
                        .with("Driver", "bitmicro")
                        .with("Kernel", "")
                        .with("Model", model_code(&s.identity.model))
                })
                .collect();
            Answer::Cgminer(Reply::ok(
                at,
                code::DEVDETAILS,
                "Device Details",
                "DEVDETAILS",
                items,
            ))
        }
        "version" => Answer::Cgminer(Reply::ok(
            at,
            code::VERSION,
            "CGMiner versions",
            "VERSION",
            vec![Obj::default().with("CGMiner", "4.9.2").with("API", "3.7")],
        )),
        "get_version" => own(
            s.when,
            Obj::default()
                .with("api_ver", API_VERSION)
                .with("fw_ver", s.identity.firmware.clone())
                .with("platform", PLATFORM),
        ),
        "get_miner_info" => {
            let mut m = Obj::default();
            if let Some(mac) = &s.identity.mac {
                m.push("mac", mac.to_ascii_uppercase());
            }
            m.push("ledstat", "auto");
            if let Some(h) = &s.identity.hostname {
                m.push("hostname", h.clone());
            }
            if let Some(sn) = &s.identity.serial {
                m.push("minersn", sn.clone());
            }
            own(s.when, m)
        }
        // Nothing is known of the power supply: its fields say what btminer says for none.
        "get_psu" => own(
            s.when,
            Obj::default()
                .with("name", "")
                .with("hw_version", "")
                .with("sw_version", "")
                .with("model", ""),
        ),
        "get_error_code" => own(
            s.when,
            Obj::default().with("error_code", Value::Array(Vec::new())),
        ),
        "status" => {
            let off = !s.chains.iter().any(|c| c.state == ChainState::Running);
            own(
                s.when,
                Obj::default()
                    .with("mineroff", if off { "true" } else { "false" })
                    .with("mineroff_reason", "")
                    .with("mineroff_time", "")
                    .with("FirmwareVersion", s.identity.firmware.clone()),
            )
        }
        _ => invalid(s.when),
    }
}

/// `M60S VK10` as `DEVDETAILS` writes it: `M60S_VK10`.
pub fn model_code(model: &str) -> String {
    model.trim().replace(' ', "_")
}

fn hottest_chip(s: &MinerStatus) -> Option<f64> {
    s.chains
        .iter()
        .filter_map(|c| c.chip_temp.map(|t| t.0))
        .reduce(f64::max)
}

fn summary_item(s: &MinerStatus) -> Obj {
    let minutes = (s.uptime_secs as f64 / 60.0).max(1.0 / 60.0);
    let sh = &s.shares;
    let mut o = Obj::default()
        .with("Elapsed", s.uptime_secs)
        .with("MHS av", mhs(s.hashrate.average.unwrap_or_default()))
        .with("MHS 5s", mhs(s.hashrate.last_5s));
    if let Some(r) = s.hashrate.last_1m {
        o.push("MHS 1m", mhs(r));
    }
    if let Some(r) = s.hashrate.last_15m {
        o.push("MHS 15m", mhs(r));
    }
    o.push("HS RT", mhs(s.hashrate.last_5s));
    o.push("Accepted", sh.accepted);
    o.push("Rejected", sh.rejected);
    o.push("Total MH", total_mh(s.diff1_work));
    let boards: Vec<f64> = s
        .chains
        .iter()
        .filter_map(|c| c.board_temp.map(|t| t.0))
        .collect();
    if !boards.is_empty() {
        o.push(
            "Temperature",
            round2(boards.iter().sum::<f64>() / boards.len() as f64),
        );
    }
    let freqs: Vec<f64> = s.chains.iter().filter_map(|c| c.frequency_mhz).collect();
    if !freqs.is_empty() {
        o.push(
            "freq_avg",
            (freqs.iter().sum::<f64>() / freqs.len() as f64).round() as u64,
        );
    }
    for (i, name) in ["Fan Speed In", "Fan Speed Out"].into_iter().enumerate() {
        if let Some(rpm) = s.fans_rpm.get(i) {
            o.push(name, *rpm);
        }
    }
    if let Some(w) = s.power_w {
        o.push("Power", w.round() as u64);
    }
    let total = sh.difficulty_total();
    o.push("Pool Rejected%", pct(sh.rejected_difficulty, total));
    o.push("Pool Stale%", pct(sh.stale_difficulty, total));
    o.push("Last getwork", s.when);
    o.push("Uptime", s.uptime_secs);
    o.push("Hardware Errors", s.hardware_errors);
    o.push("Utility", round2(sh.accepted as f64 / minutes));
    o.push("Best Share", s.best_share);
    if let Some(ideal) = s.ideal {
        o.push("Factory GHS", ghs(ideal).round() as u64);
    }
    if let Some(t) = hottest_chip(s) {
        o.push("Chip Temp Max", t);
    }
    if let Some(mac) = &s.identity.mac {
        o.push("MAC", mac.to_ascii_uppercase());
    }
    // Quoted, as the firmware writes it (pyasic strips the quotes).
    o.push("Firmware Version", format!("'{}'", s.identity.firmware));
    o
}

fn dev_status(c: &ChainStatus) -> &'static str {
    match c.state {
        ChainState::Running => "Alive",
        ChainState::Starting => "Initialising",
        ChainState::Failed(_) => "Dead",
    }
}

/// One board. Readers index these by `ASC` and need every key in one go, so a value nobody
/// measured is what btminer writes for none: 0, or "".
fn dev_item(s: &MinerStatus, c: &ChainStatus) -> Obj {
    let chip = c.chip_temp.map_or(0.0, |t| t.0);
    let mut o = Obj::default()
        .with("ASC", c.index)
        .with("Name", "SM")
        .with("ID", c.index)
        .with("Slot", c.index)
        .with("Enabled", "Y")
        .with("Status", dev_status(c))
        .with("Temperature", c.board_temp.map_or(0.0, |t| t.0));
    let freq = c.frequency_mhz.unwrap_or(0.0);
    o.push("Chip Frequency", freq.round() as u64);
    o.push("Frequency", freq);
    o.push(
        "MHS av",
        mhs(c.hashrate.average.unwrap_or(c.hashrate.last_5s)),
    );
    o.push("MHS 5s", mhs(c.hashrate.last_5s));
    o.push(
        "MHS 1m",
        mhs(c.hashrate.last_1m.unwrap_or(c.hashrate.last_5s)),
    );
    o.push("Hardware Errors", c.hardware_errors);
    o.push("Device Elapsed", s.uptime_secs);
    if let Some(ideal) = c.ideal {
        o.push("Factory GHS", ghs(ideal).round() as u64);
    }
    o.push(
        "Effective Chips",
        c.chips.iter().filter(|h| h.is_ok()).count(),
    );
    o.push("PCB SN", c.serial.clone().unwrap_or_default());
    o.push("Chip Temp Min", chip);
    o.push("Chip Temp Max", chip);
    o.push("Chip Temp Avg", chip);
    o
}

/// btminer's own reply to `command` inside a reply keyed by command (as [`READ_OWN`] merged
/// into the joined reply), or on its own: its `Msg` object, or the refusal.
pub fn own_msg<'a>(reply: &'a Value, command: &str) -> Result<&'a Value, DecodeError> {
    let one = match reply.get(command) {
        Some(Value::Array(parts)) => parts.first().unwrap_or(&Value::Null),
        Some(v) => v,
        None => reply,
    };
    let kind = one.get("STATUS").and_then(Value::as_str).unwrap_or("");
    if kind != "S" && kind != "I" {
        return Err(DecodeError::Refused {
            command: command.to_string(),
            code: one.get("Code").and_then(crate::cgminer::count).unwrap_or(0),
            message: one
                .get("Msg")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        });
    }
    one.get("Msg")
        .filter(|m| m.is_object())
        .ok_or_else(|| DecodeError::MissingSection(format!("{command}: Msg")))
}

fn temp(o: &Value, k: &str) -> Option<Celsius> {
    f(o, k).filter(|t| *t > 0.0).map(Celsius)
}

fn mh_rate(o: &Value, k: &str) -> Option<HashRate> {
    f(o, k).map(HashRate::from_mhs)
}

/// The make and model a `DEVDETAILS[0].Model` (`M60S_VK10`) names, if it is a Whatsminer's.
pub fn model_of(devdetails: &[Value]) -> Option<String> {
    let first = devdetails.first()?;
    let driver = first.get("Driver").and_then(Value::as_str).unwrap_or("");
    if !driver.eq_ignore_ascii_case("bitmicro") {
        return None;
    }
    first
        .get("Model")
        .and_then(text)
        .map(|m| m.trim().replace('_', " "))
}

/// Reads the replies to [`READ_JOINED`] with [`READ_OWN`]'s merged in under their command
/// names into a status. btminer's own replies may be missing (the identity then comes from
/// `SUMMARY`). `expected_chips` is the model's chips per board, where the reader knows it.
pub fn read(reply: &Value, expected_chips: Option<usize>) -> Result<MinerStatus, DecodeError> {
    let summary = section(reply, "summary", "SUMMARY")?
        .first()
        .ok_or_else(|| DecodeError::MissingSection("SUMMARY[0]".into()))?;
    let devs = section(reply, "devs", "DEVS")?;
    let pools = section(reply, "pools", "POOLS")?;
    let model = section(reply, "devdetails", "DEVDETAILS")
        .ok()
        .and_then(model_of)
        .unwrap_or_default();
    let version = own_msg(reply, "get_version").ok();
    let info = own_msg(reply, "get_miner_info").ok();
    let firmware = version
        .and_then(|v| v.get("fw_ver"))
        .and_then(text)
        .or_else(|| {
            summary
                .get("Firmware Version")
                .and_then(text)
                .map(|s| s.replace('\'', ""))
        })
        .unwrap_or_default();
    let mac = info
        .and_then(|i| i.get("mac"))
        .or_else(|| summary.get("MAC"))
        .and_then(text)
        .map(|m| m.trim().to_ascii_lowercase())
        .filter(|m| !m.is_empty());
    let identity = Identity {
        make: Make::Whatsminer,
        model,
        firmware,
        serial: info
            .and_then(|i| i.get("minersn"))
            .and_then(text)
            .filter(|s| !s.is_empty()),
        mac,
        hostname: info
            .and_then(|i| i.get("hostname"))
            .and_then(text)
            .filter(|s| !s.is_empty()),
    };

    let mut chains: Vec<ChainStatus> = devs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let index = u(d, "ASC")
                .or_else(|| u(d, "Slot"))
                .map_or(i, |n| n.min(64) as usize);
            let working = u(d, "Effective Chips").unwrap_or(0).min(4096) as usize;
            let rate = mh_rate(d, "MHS 5s")
                .or_else(|| mh_rate(d, "MHS 1m"))
                .unwrap_or_default();
            let dead = d.get("Status").and_then(Value::as_str) == Some("Dead");
            let state = if dead || (working == 0 && rate.as_hs() <= 0.0) {
                ChainState::Failed("no chips found".into())
            } else {
                ChainState::Running
            };
            ChainStatus {
                index,
                state,
                expected_chips,
                chips: vec![ChipHealth::Ok; working],
                hashrate: Rates {
                    last_5s: rate,
                    last_1m: mh_rate(d, "MHS 1m"),
                    last_15m: None,
                    average: mh_rate(d, "MHS av"),
                },
                ideal: f(d, "Factory GHS")
                    .filter(|g| *g > 0.0)
                    .map(HashRate::from_ghs),
                hardware_errors: u(d, "Hardware Errors").unwrap_or(0),
                board_temp: temp(d, "Temperature"),
                chip_temp: temp(d, "Chip Temp Max").or_else(|| temp(d, "Chip Temp Avg")),
                serial: d
                    .get("PCB SN")
                    .and_then(text)
                    .filter(|s| !s.trim().is_empty()),
                frequency_mhz: f(d, "Frequency")
                    .or_else(|| f(d, "Chip Frequency"))
                    .filter(|m| *m > 0.0),
            }
        })
        .collect();
    chains.sort_by_key(|c| c.index);

    let fans_rpm = ["Fan Speed In", "Fan Speed Out"]
        .iter()
        .filter_map(|k| u(summary, k).map(|r| r.min(u64::from(u32::MAX)) as u32))
        .collect();
    let hashrate = Rates {
        last_5s: mh_rate(summary, "MHS 5s")
            .or_else(|| mh_rate(summary, "HS RT"))
            .or_else(|| mh_rate(summary, "MHS 1m"))
            .unwrap_or_default(),
        last_1m: mh_rate(summary, "MHS 1m"),
        last_15m: mh_rate(summary, "MHS 15m"),
        average: mh_rate(summary, "MHS av"),
    };
    let when = section(reply, "summary", "STATUS")
        .ok()
        .and_then(|st| st.first())
        .and_then(|st| u(st, "When"))
        .unwrap_or(0);
    Ok(MinerStatus {
        identity,
        when,
        uptime_secs: u(summary, "Elapsed").unwrap_or(0),
        hashrate,
        ideal: f(summary, "Factory GHS")
            .filter(|g| *g > 0.0)
            .map(HashRate::from_ghs),
        // btminer writes -1 for a power it does not know.
        power_w: f(summary, "Power").filter(|w| *w >= 0.0),
        power_limit_w: None,
        sleeping: None,
        shares: shares_in(summary),
        diff1_work: f(summary, "Total MH").map_or(0.0, |mh| mh / total_mh(1.0)),
        hardware_errors: u(summary, "Hardware Errors").unwrap_or(0),
        best_share: f(summary, "Best Share").unwrap_or(0.0),
        found_blocks: 0,
        chains,
        fans_rpm,
        pools: read_pools(pools),
        messages: Vec::new(),
    })
}

/// Merges the answers to [`READ_JOINED`] and each of [`READ_OWN`] into the one object
/// [`read`] takes.
pub fn merge(mut joined: Value, own: &[(&str, Value)]) -> Value {
    if let Value::Object(m) = &mut joined {
        for (cmd, v) in own {
            m.insert((*cmd).to_string(), v.clone());
        }
    }
    joined
}
