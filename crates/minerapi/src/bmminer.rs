//! Stock Antminer firmware's cgminer API (bmminer), both sides: the sections rendered from a
//! [`MinerStatus`], and a reading of them back into one. This is a contract with every
//! fleet tool (pyasic, asic-rs, Foreman ...): the field names, the types (`GHS 5s` a
//! string, `GHS av` a number), `STATS[1]`'s 1-based `chain_acnN` / `chain_acsN` /
//! `chain_rateN` / `temp2_N` keys, the key order. The golden replies in `tests/golden/`
//! hold it still.
//!
//! Unknown values are left out, never sent as zero: a chain with no temperature reading has
//! no `temp2_N`; a chain has as many `chain_acsN` characters as chips answered, `o` for a
//! good chip and `x` for a bad or silent one.
//!
//! hashforge's own keys in `STATS[1]`, which stock firmware never sends and its readers skip
//! as unknown: [`POWER_LIMIT_KEY`] (`hashforge_power_limit_w`, the power target in force in
//! W, a number) and [`SLEEPING_KEY`] (`hashforge_sleeping`, `true` or `false`), each only
//! when the status knows it, right after `chain_power`.

use hashforge_core::{Celsius, HashRate};
use serde_json::Value;

use crate::cgminer::{
    code, count, ghs, ghs_text, number, section, text, DecodeError, Obj, Reply, Stamp,
};
use crate::status::{
    ChainState, ChainStatus, ChipHealth, Identity, Make, MinerStatus, PoolState, PoolStatus, Rates,
    Shares,
};

/// bmminer's version, as stock firmware reports it in `VERSION` and `STATS[0]`.
pub const BMMINER_VERSION: &str = "2.0.0";
const API_VERSION: &str = "3.1";

/// The command a reader sends to read everything, joined as fleet tools join it.
pub const READ_ALL: &str = "version+summary+stats+pools";

/// `STATS[1]` key (hashforge only): the power target in force, in W, a number.
pub const POWER_LIMIT_KEY: &str = "hashforge_power_limit_w";
/// `STATS[1]` key (hashforge only): whether the machine sleeps, `true` or `false`.
pub const SLEEPING_KEY: &str = "hashforge_sleeping";

/// Answers a read command from `status`; a command this firmware does not have gets
/// cgminer's `Invalid command`.
pub fn read_command(cmd: &str, status: &MinerStatus) -> Reply {
    let at = stamp(status);
    match cmd {
        "version" => Reply::ok(
            at,
            code::VERSION,
            "BMMiner versions",
            "VERSION",
            vec![version_item(status)],
        ),
        "summary" => summary(status),
        "pools" => pools(status),
        "devs" => devs(status),
        "stats" => stats(status),
        "devdetails" => devdetails(status),
        "config" => config(status),
        _ => Reply::error(at, code::INVALID_COMMAND, "Invalid command"),
    }
}

/// The `When` and `Description` of every reply.
pub fn stamp(status: &MinerStatus) -> Stamp<'_> {
    Stamp {
        when: status.when,
        description: &status.identity.firmware,
    }
}

/// `Antminer S21 Pro`: what `VERSION[0].Type` says.
pub fn type_name(identity: &Identity) -> String {
    format!("{} {}", identity.make, identity.model)
}

pub(crate) fn mhs(r: HashRate) -> f64 {
    (r.as_mhs() * 1000.0).round() / 1000.0
}
pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
pub(crate) fn pct(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        round2(part / whole * 100.0)
    } else {
        0.0
    }
}
/// Megahashes behind `diff1` difficulty-1 shares.
pub(crate) fn total_mh(diff1: f64) -> f64 {
    HashRate::from_diff1_shares(diff1, 1.0).as_mhs()
}

/// cgminer's short difficulty in `POOLS[].Diff`: `65.54K`, or the plain number below 1000.
pub fn format_diff(d: f64) -> String {
    match [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")]
        .into_iter()
        .find(|(s, _)| d >= *s)
    {
        Some((v, u)) => format!("{:.2}{u}", d / v),
        None => format!("{d}"),
    }
}

fn version_item(s: &MinerStatus) -> Obj {
    Obj::default()
        .with("BMMiner", BMMINER_VERSION)
        .with("API", API_VERSION)
        .with("Miner", s.identity.firmware.clone())
        .with("CompileTime", s.identity.firmware.clone())
        .with("Type", type_name(&s.identity))
}

fn summary(s: &MinerStatus) -> Reply {
    let minutes = (s.uptime_secs as f64 / 60.0).max(1.0 / 60.0);
    let sh = &s.shares;
    let diff_total = sh.difficulty_total();
    let mut item = Obj::default()
        .with("Elapsed", s.uptime_secs)
        .with("GHS 5s", ghs_text(s.hashrate.last_5s))
        .with("GHS av", ghs(s.hashrate.average.unwrap_or_default()));
    if let Some(r) = s.hashrate.last_1m {
        item.push("GHS 1m", ghs(r));
    }
    if let Some(r) = s.hashrate.last_15m {
        item.push("GHS 15m", ghs(r));
    }
    item.push("Found Blocks", s.found_blocks);
    item.push("Getworks", s.pools.iter().map(|p| p.jobs).sum::<u64>());
    item.push("Accepted", sh.accepted);
    item.push("Rejected", sh.rejected);
    item.push("Hardware Errors", s.hardware_errors);
    item.push("Utility", round2(sh.accepted as f64 / minutes));
    item.push("Discarded", 0);
    item.push("Stale", sh.stale);
    item.push(
        "Get Failures",
        s.pools.iter().map(|p| p.get_failures).sum::<u64>(),
    );
    item.push("Local Work", 0);
    item.push("Remote Failures", sh.lost);
    item.push("Network Blocks", 0);
    item.push("Total MH", total_mh(s.diff1_work));
    item.push("Work Utility", round2(s.diff1_work / minutes));
    item.push("Difficulty Accepted", sh.accepted_difficulty);
    item.push("Difficulty Rejected", sh.rejected_difficulty);
    item.push("Difficulty Stale", sh.stale_difficulty);
    item.push("Best Share", s.best_share);
    item.push(
        "Device Hardware%",
        pct(
            s.hardware_errors as f64,
            s.hardware_errors as f64 + s.diff1_work,
        ),
    );
    item.push("Device Rejected%", pct(sh.rejected_difficulty, diff_total));
    item.push("Pool Rejected%", pct(sh.rejected_difficulty, diff_total));
    item.push("Pool Stale%", pct(sh.stale_difficulty, diff_total));
    item.push("Last getwork", s.when);
    Reply::ok(stamp(s), code::SUMMARY, "Summary", "SUMMARY", vec![item])
}

fn pool_state(p: &PoolStatus) -> &'static str {
    match p.state {
        PoolState::Alive => "Alive",
        PoolState::Dead => "Dead",
        PoolState::Disabled => "Disabled",
    }
}

fn pools(s: &MinerStatus) -> Reply {
    let items = pool_items(s);
    Reply::ok(
        stamp(s),
        code::POOLS,
        format!("{} Pool(s)", items.len()),
        "POOLS",
        items,
    )
}

/// cgminer's `POOLS` entries, the same in every cgminer-based firmware.
pub(crate) fn pool_items(s: &MinerStatus) -> Vec<Obj> {
    s.pools
        .iter()
        .map(|p| {
            let sh = &p.shares;
            let total = sh.difficulty_total();
            let host = p
                .url
                .split_once("://")
                .map_or(p.url.as_str(), |(_, h)| h)
                .to_string();
            Obj::default()
                .with("POOL", p.index)
                .with("URL", p.url.clone())
                .with("Status", pool_state(p))
                .with("Priority", p.index)
                .with("Quota", 1)
                .with("Long Poll", "N")
                .with("Getworks", p.jobs)
                .with("Accepted", sh.accepted)
                .with("Rejected", sh.rejected)
                .with("Discarded", 0)
                .with("Stale", sh.stale)
                .with("Get Failures", p.get_failures)
                // Shares sent without a verdict (cgminer: submits that failed).
                .with("Remote Failures", sh.lost)
                .with("User", p.user.clone())
                .with("Last Share Time", p.last_share_time)
                .with("Diff", p.difficulty.map(format_diff).unwrap_or_default())
                .with("Diff1 Shares", sh.accepted_difficulty)
                .with("Proxy Type", "")
                .with("Proxy", "")
                .with("Difficulty Accepted", sh.accepted_difficulty)
                .with("Difficulty Rejected", sh.rejected_difficulty)
                .with("Difficulty Stale", sh.stale_difficulty)
                .with("Last Share Difficulty", p.last_share_difficulty)
                .with("Has Stratum", true)
                .with("Stratum Active", p.active)
                .with("Stratum URL", if p.active { host } else { String::new() })
                .with("Has GBT", false)
                .with("Best Share", p.best_share)
                .with("Pool Rejected%", pct(sh.rejected_difficulty, total))
                .with("Pool Stale%", pct(sh.stale_difficulty, total))
                .with("Bad Work", p.bad_work)
        })
        .collect()
}

/// cgminer's `Status` for a device: `Alive`, `Initialising`, or `Dead` for a chain that
/// does not hash.
fn chain_status_word(c: &ChainStatus) -> &'static str {
    match c.state {
        ChainState::Running => "Alive",
        ChainState::Starting => "Initialising",
        ChainState::Failed(_) => "Dead",
    }
}

fn devs(s: &MinerStatus) -> Reply {
    let items: Vec<Obj> = s
        .chains
        .iter()
        .map(|c| {
            let mut o = Obj::default()
                .with("ASC", c.index)
                .with("Name", "BTM")
                .with("ID", c.index)
                .with("Enabled", "Y")
                .with("Status", chain_status_word(c));
            if let Some(t) = c.chip_temp {
                o.push("Temperature", t.0);
            }
            o.push("MHS av", mhs(c.hashrate.average.unwrap_or_default()));
            o.push("MHS 5s", mhs(c.hashrate.last_5s));
            if let Some(r) = c.hashrate.last_1m {
                o.push("MHS 1m", mhs(r));
            }
            if let Some(r) = c.hashrate.last_15m {
                o.push("MHS 15m", mhs(r));
            }
            o.push("Hardware Errors", c.hardware_errors);
            o.push("Device Elapsed", s.uptime_secs);
            o
        })
        .collect();
    Reply::ok(
        stamp(s),
        code::DEVS,
        format!("{} ASC(s)", items.len()),
        "DEVS",
        items,
    )
}

fn devdetails(s: &MinerStatus) -> Reply {
    let items: Vec<Obj> = s
        .chains
        .iter()
        .map(|c| {
            Obj::default()
                .with("DEVDETAILS", c.index)
                .with("Name", "BTM")
                .with("ID", c.index)
                .with("Driver", "bitmain")
                .with("Kernel", "")
                .with("Model", type_name(&s.identity))
                .with("Device Path", format!("chain {}", c.index))
                .with("Chips", c.chips_found())
        })
        .collect();
    Reply::ok(
        stamp(s),
        code::DEVDETAILS,
        "Device Details",
        "DEVDETAILS",
        items,
    )
}

fn config(s: &MinerStatus) -> Reply {
    let item = Obj::default()
        .with("ASC Count", s.chains.len())
        .with("PGA Count", 0)
        .with("Pool Count", s.pools.len())
        .with("Strategy", "Failover")
        .with("Log Interval", 5)
        .with("Device Code", "")
        .with("OS", "Linux")
        .with("Failover-Only", true)
        .with("Hotplug", "None");
    Reply::ok(
        stamp(s),
        code::CONFIG,
        "CGMiner config",
        "CONFIG",
        vec![item],
    )
}

/// cgminer's chip map: `o` per good chip, `x` per bad or silent one, a space every 8.
pub fn chip_map(chips: &[ChipHealth]) -> String {
    let mut s = String::new();
    for (i, c) in chips.iter().enumerate() {
        if i > 0 && i % 8 == 0 {
            s.push(' ');
        }
        s.push(if c.is_ok() { 'o' } else { 'x' });
    }
    s
}

/// Stock `stats`: STATS[0] says what firmware this is; STATS[1] has the chains with
/// 1-based keys (`chain_acn1`, `chain_rate1` in GH/s as a string, `temp2_1` ...).
fn stats(s: &MinerStatus) -> Reply {
    let mut o = Obj::default()
        .with("STATS", 0)
        .with("ID", "BTM_SOC0")
        .with("Elapsed", s.uptime_secs)
        .with("Calls", 0)
        .with("Wait", 0.0)
        .with("Max", 0.0)
        .with("Min", 99999999.0)
        .with("GHS 5s", ghs_text(s.hashrate.last_5s))
        .with("GHS av", ghs(s.hashrate.average.unwrap_or_default()));
    o.push("miner_count", s.chains.len());
    let freqs: Vec<f64> = s.chains.iter().filter_map(|c| c.frequency_mhz).collect();
    if !freqs.is_empty() {
        o.push(
            "frequency",
            round2(freqs.iter().sum::<f64>() / freqs.len() as f64),
        );
    }
    o.push("fan_num", s.fans_rpm.len());
    for (i, f) in s.fans_rpm.iter().enumerate() {
        o.push(format!("fan{}", i + 1), *f);
    }
    let boards: Vec<(usize, Celsius)> = s
        .chains
        .iter()
        .filter_map(|c| c.board_temp.map(|t| (c.index, t)))
        .collect();
    o.push("temp_num", boards.len());
    for (n, t) in &boards {
        o.push(format!("temp{}", n + 1), t.0);
    }
    for c in &s.chains {
        if let Some(t) = c.chip_temp {
            o.push(format!("temp2_{}", c.index + 1), t.0);
        }
    }
    if let Some(hot) = s.hottest() {
        o.push("temp_max", hot.0);
    }
    if let Some(w) = s.power_w {
        o.push("chain_power", format!("{w:.0} W"));
    }
    if let Some(w) = s.power_limit_w {
        o.push(POWER_LIMIT_KEY, w);
    }
    if let Some(sleeping) = s.sleeping {
        o.push(SLEEPING_KEY, sleeping);
    }
    o.push(
        "Device Hardware%",
        pct(
            s.hardware_errors as f64,
            s.hardware_errors as f64 + s.diff1_work,
        ),
    );
    o.push("no_matching_work", s.hardware_errors);
    for c in &s.chains {
        let k = c.index + 1;
        if let Some(f) = c.frequency_mhz {
            o.push(format!("freq{k}"), f.round() as u64);
        }
        o.push(format!("chain_acn{k}"), c.chips_found());
        o.push(format!("chain_acs{k}"), chip_map(&c.chips));
        o.push(format!("chain_hw{k}"), c.hardware_errors);
        o.push(format!("chain_rate{k}"), ghs_text(c.hashrate.last_5s));
        if let Some(ideal) = c.ideal {
            o.push(format!("chain_rateideal{k}"), ghs(ideal));
        }
        if let Some(t) = c.board_temp {
            o.push(format!("temp_pcb{k}"), format!("{:.0}", t.0.round()));
        }
        if let Some(t) = c.chip_temp {
            o.push(format!("temp_chip{k}"), format!("{:.0}", t.0.round()));
        }
    }
    if let Some(ideal) = s.ideal {
        o.push("total_rateideal", ghs(ideal));
    }
    o.push("total_acn", s.chips_found());
    o.push("total_rate", ghs(s.hashrate.last_5s));
    o.push("rate_unit", "GH");
    let head = Obj::default()
        .with("BMMiner", BMMINER_VERSION)
        .with("Miner", s.identity.firmware.clone())
        .with("CompileTime", s.identity.firmware.clone())
        .with("Type", type_name(&s.identity));
    Reply::ok(
        stamp(s),
        code::STATS,
        "BMMiner stats",
        "STATS",
        vec![head, o],
    )
}

/// Splits a `VERSION[0].Type` into make and model: `Antminer S21 Pro` -> (Antminer,
/// `S21 Pro`).
pub fn make_and_model(type_name: &str) -> (Make, String) {
    let t = type_name.trim();
    for (prefix, make) in [
        ("antminer", Make::Antminer),
        ("whatsminer", Make::Whatsminer),
        ("avalonminer", Make::Avalon),
        ("avalon", Make::Avalon),
        ("bitaxe", Make::Bitaxe),
    ] {
        if t.len() >= prefix.len() && t[..prefix.len()].eq_ignore_ascii_case(prefix) {
            return (make, t[prefix.len()..].trim().to_string());
        }
    }
    (Make::Other(String::new()), t.to_string())
}

pub(crate) fn f(o: &Value, k: &str) -> Option<f64> {
    o.get(k).and_then(number)
}
pub(crate) fn u(o: &Value, k: &str) -> Option<u64> {
    o.get(k).and_then(count)
}
/// A yes or no as firmware might write it: `true`, `1`, `"true"`, `"Y"`.
fn flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(_) => match count(v)? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        },
        Value::String(t) => match t.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "y" | "yes" => Some(true),
            "false" | "0" | "n" | "no" => Some(false),
            _ => None,
        },
        _ => None,
    }
}
fn ghs_rate(o: &Value, k: &str) -> Option<HashRate> {
    f(o, k).map(HashRate::from_ghs)
}
fn temp(o: &Value, k: &str) -> Option<Celsius> {
    // Newer firmware writes `temp_pcb1: "40-42-55-57"`: the sensors' mean; 0 is no sensor.
    let v = o.get(k)?;
    let readings: Vec<f64> = match v {
        Value::String(s) => s.split('-').filter_map(|x| x.trim().parse().ok()).collect(),
        _ => number(v).into_iter().collect(),
    };
    let readings: Vec<f64> = readings
        .into_iter()
        .filter(|t| *t > 0.0 && t.is_finite())
        .collect();
    (!readings.is_empty()).then(|| Celsius(readings.iter().sum::<f64>() / readings.len() as f64))
}

/// Reads the replies to [`READ_ALL`] (joined, or the four replies merged into one object
/// keyed by command) into a status. `expected_chips` is the model's chips per board, where
/// the reader knows the model; bmminer does not say it.
pub fn read(reply: &Value, expected_chips: Option<usize>) -> Result<MinerStatus, DecodeError> {
    let version = section(reply, "version", "VERSION")?
        .first()
        .ok_or_else(|| DecodeError::MissingSection("VERSION[0]".into()))?;
    let summary = section(reply, "summary", "SUMMARY")?
        .first()
        .ok_or_else(|| DecodeError::MissingSection("SUMMARY[0]".into()))?;
    let stats = section(reply, "stats", "STATS")?;
    let chains_obj = stats
        .iter()
        .find(|o| {
            o.as_object()
                .is_some_and(|m| m.keys().any(|k| k.starts_with("chain_acn")))
        })
        .or_else(|| stats.get(1))
        .ok_or_else(|| DecodeError::MissingSection("STATS[1]".into()))?;
    let pools = section(reply, "pools", "POOLS")?;

    let type_name = version
        .get("Type")
        .and_then(text)
        .or_else(|| stats.first().and_then(|h| h.get("Type")).and_then(text))
        .unwrap_or_default();
    let (make, model) = make_and_model(&type_name);
    let firmware = ["CompileTime", "Miner", "BMMiner"]
        .iter()
        .find_map(|k| version.get(*k).and_then(text))
        .unwrap_or_default();
    let identity = Identity {
        make,
        model,
        firmware,
        serial: None,
        mac: None,
        hostname: None,
    };

    let rate_of = |o: &Value, key: &str, mkey: &str| {
        ghs_rate(o, key).or_else(|| f(o, mkey).map(HashRate::from_mhs))
    };
    let hashrate = Rates {
        last_5s: rate_of(summary, "GHS 5s", "MHS 5s").unwrap_or_default(),
        last_1m: rate_of(summary, "GHS 1m", "MHS 1m"),
        last_15m: rate_of(summary, "GHS 15m", "MHS 15m"),
        average: rate_of(summary, "GHS av", "MHS av"),
    };
    let shares = shares_in(summary);

    // Chains: every N with a `chain_acnN`; slots past `miner_count` that are empty are the
    // firmware's unused ones (an S9 numbers its three chains 6, 7, 8 of 16).
    let keys: Vec<usize> = chains_obj
        .as_object()
        .map(|m| {
            let mut ks: Vec<usize> = m
                .keys()
                .filter_map(|k| k.strip_prefix("chain_acn")?.parse().ok())
                .filter(|n| *n >= 1 && *n <= 64)
                .collect();
            ks.sort_unstable();
            ks
        })
        .unwrap_or_default();
    let miner_count = u(chains_obj, "miner_count").map(|n| n as usize);
    let occupied = |n: &usize| {
        u(chains_obj, &format!("chain_acn{n}")).unwrap_or(0) > 0
            || f(chains_obj, &format!("chain_rate{n}")).unwrap_or(0.0) > 0.0
    };
    let keys: Vec<usize> = match miner_count {
        Some(m) if keys.len() > m => keys.into_iter().filter(occupied).collect(),
        _ => keys,
    };
    let chains = keys
        .iter()
        .enumerate()
        .map(|(index, n)| {
            let found = u(chains_obj, &format!("chain_acn{n}")).unwrap_or(0) as usize;
            let map: Vec<ChipHealth> = chains_obj
                .get(format!("chain_acs{n}"))
                .and_then(Value::as_str)
                .map(|s| {
                    s.chars()
                        .filter(|c| !c.is_whitespace())
                        .map(|c| {
                            if c == 'o' {
                                ChipHealth::Ok
                            } else {
                                ChipHealth::Bad
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            // The map, where it agrees with the count; else the count, all presumed good.
            let chips = if map.len() == found {
                map
            } else {
                vec![ChipHealth::Ok; found]
            };
            let rate = ghs_rate(chains_obj, &format!("chain_rate{n}")).unwrap_or_default();
            let state = if found == 0 && rate.as_hs() <= 0.0 {
                ChainState::Failed("no chips found".into())
            } else {
                ChainState::Running
            };
            ChainStatus {
                index,
                state,
                expected_chips,
                chips,
                hashrate: Rates {
                    last_5s: rate,
                    ..Rates::default()
                },
                ideal: ghs_rate(chains_obj, &format!("chain_rateideal{n}")),
                hardware_errors: u(chains_obj, &format!("chain_hw{n}")).unwrap_or(0),
                board_temp: temp(chains_obj, &format!("temp{n}"))
                    .or_else(|| temp(chains_obj, &format!("temp_pcb{n}"))),
                chip_temp: temp(chains_obj, &format!("temp2_{n}"))
                    .or_else(|| temp(chains_obj, &format!("temp_chip{n}"))),
                serial: None,
                frequency_mhz: f(chains_obj, &format!("freq{n}")),
            }
        })
        .collect();

    let fan_count = u(chains_obj, "fan_num").unwrap_or(0).min(16) as usize;
    let fans_rpm = (1..=fan_count)
        .filter_map(|i| u(chains_obj, &format!("fan{i}")).map(|r| r.min(u32::MAX as u64) as u32))
        .collect();
    let power_w = chains_obj
        .get("chain_power")
        .and_then(Value::as_str)
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .or_else(|| f(chains_obj, "power").or_else(|| f(chains_obj, "Power")))
        .filter(|w| w.is_finite() && *w >= 0.0);
    let power_limit_w = f(chains_obj, POWER_LIMIT_KEY).filter(|w| *w > 0.0);
    let sleeping = chains_obj.get(SLEEPING_KEY).and_then(flag);

    let pools = read_pools(pools);

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
        ideal: ghs_rate(chains_obj, "total_rateideal"),
        power_w,
        power_limit_w,
        sleeping,
        shares,
        diff1_work: f(summary, "Total MH").map_or(0.0, |mh| mh / total_mh(1.0)),
        hardware_errors: u(summary, "Hardware Errors").unwrap_or(0),
        best_share: f(summary, "Best Share").unwrap_or(0.0),
        found_blocks: u(summary, "Found Blocks").unwrap_or(0),
        chains,
        fans_rpm,
        pools,
        messages: Vec::new(),
    })
}

/// cgminer's `POOLS` entries read back (every cgminer-based firmware writes them alike).
pub(crate) fn read_pools(pools: &[Value]) -> Vec<PoolStatus> {
    pools
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let status = p.get("Status").and_then(Value::as_str).unwrap_or("");
            let state = match status {
                "Alive" => PoolState::Alive,
                "Disabled" => PoolState::Disabled,
                _ => PoolState::Dead,
            };
            PoolStatus {
                index: u(p, "POOL").map_or(i, |n| n as usize),
                url: p.get("URL").and_then(text).unwrap_or_default(),
                user: p.get("User").and_then(text).unwrap_or_default(),
                state,
                active: p
                    .get("Stratum Active")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                shares: shares_in(p),
                difficulty: p.get("Diff").and_then(parse_short_diff),
                jobs: u(p, "Getworks").unwrap_or(0),
                best_share: f(p, "Best Share").unwrap_or(0.0),
                last_share_time: u(p, "Last Share Time").unwrap_or(0),
                last_share_difficulty: f(p, "Last Share Difficulty").unwrap_or(0.0),
                get_failures: u(p, "Get Failures").unwrap_or(0),
                bad_work: u(p, "Bad Work").unwrap_or(0),
            }
        })
        .collect()
}

/// The share counts SUMMARY and each POOLS entry carry under the same names.
pub(crate) fn shares_in(o: &Value) -> Shares {
    Shares {
        accepted: u(o, "Accepted").unwrap_or(0),
        rejected: u(o, "Rejected").unwrap_or(0),
        stale: u(o, "Stale").unwrap_or(0),
        lost: u(o, "Remote Failures").unwrap_or(0),
        accepted_difficulty: f(o, "Difficulty Accepted").unwrap_or(0.0),
        rejected_difficulty: f(o, "Difficulty Rejected").unwrap_or(0.0),
        stale_difficulty: f(o, "Difficulty Stale").unwrap_or(0.0),
    }
}

/// `65.54K` back to 65540, a plain number as itself.
fn parse_short_diff(v: &Value) -> Option<f64> {
    if let Some(n) = number(v) {
        return Some(n);
    }
    let s = v.as_str()?.trim();
    let (num, unit) = s.split_at(s.len().checked_sub(1)?);
    let scale = match unit {
        "K" | "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        _ => return None,
    };
    num.parse::<f64>()
        .ok()
        .map(|n| n * scale)
        .filter(|n| n.is_finite())
}
