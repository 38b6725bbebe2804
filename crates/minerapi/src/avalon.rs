//! Canaan Avalon's cgminer API (TCP 4028), both sides: the replies rendered from a
//! [`MinerStatus`], and a reading of them back into one.
//!
//! Avalon firmware is cgminer 4.11 with Canaan's driver: `version` names the product
//! (`PROD: "AvalonMiner 1246-90"`, `MODEL: "1246-90"`, `VERSION`, `DNA`, a `MAC` without
//! colons), `devs` has one device for the whole machine (`MHS 1m` is its rate), and
//! `estats` / `stats` pack the machine's state into one string, `STATS[0]["MM ID0"]`, of
//! `KEY[value]` pairs with space-separated lists: `MGHS[..]` (GH/s per board), `MTmax[..]`
//! (hottest chip per board), `MTavg[..]`, `MH[..]` (hardware errors per board), `Fan1[..]`,
//! `GHSmm[..]` (nameplate), `PS[..]` (power supply, output watts fifth), and per board `b`
//! one entry per chip in `PVT_T{b}[..]` (temperature) and `MW{b}[..]` (work it returned).
//! `stats` adds one `POOLn` entry per pool after it.
//!
//! Unknown values are left out where the shape allows. Per chip the status knows health,
//! not counts or readings, so `MW{b}` says 1 for a chip that returns work and 0 for one
//! that does not, and `PVT_T{b}` gives each chip that answered its board's hottest reading
//! (0, the firmware's "no reading", when there is none). A board without chips has no
//! `PVT_T{b}`.

use std::collections::BTreeMap;

use hashforge_core::{Celsius, HashRate};
use serde_json::Value;

use crate::bmminer::{f, mhs, pct, pool_items, read_pools, round2, shares_in, total_mh, u};
use crate::cgminer::{code, ghs, section, text, DecodeError, Obj, Reply, Stamp};
use crate::status::{ChainState, ChainStatus, ChipHealth, Identity, Make, MinerStatus, Rates};

/// The cgminer Avalon firmware builds on.
pub const CGMINER_VERSION: &str = "4.11.1";
pub const DESCRIPTION: &str = "cgminer 4.11.1";

/// The command a reader sends to read everything, joined.
pub const READ_ALL: &str = "version+summary+devs+estats+pools";

fn stamp(s: &MinerStatus) -> Stamp<'static> {
    Stamp {
        when: s.when,
        description: DESCRIPTION,
    }
}

/// Answers a read command from `status`; one this firmware does not have gets cgminer's
/// `Invalid command`.
pub fn read_command(cmd: &str, s: &MinerStatus) -> Reply {
    let at = stamp(s);
    match cmd {
        "version" => Reply::ok(
            at,
            code::VERSION,
            "CGMiner versions",
            "VERSION",
            vec![version_item(s)],
        ),
        "summary" => Reply::ok(
            at,
            code::SUMMARY,
            "Summary",
            "SUMMARY",
            vec![summary_item(s)],
        ),
        "devs" | "edevs" => Reply::ok(at, code::DEVS, "1 ASC(s)", "DEVS", vec![dev_item(s)]),
        "pools" => {
            let items = pool_items(s);
            Reply::ok(
                at,
                code::POOLS,
                format!("{} Pool(s)", items.len()),
                "POOLS",
                items,
            )
        }
        "estats" => Reply::ok(at, code::STATS, "CGMiner stats", "STATS", vec![mm_item(s)]),
        "stats" => {
            let mut items = vec![mm_item(s)];
            for p in &s.pools {
                items.push(
                    Obj::default()
                        .with("STATS", p.index + 1)
                        .with("ID", format!("POOL{}", p.index))
                        .with("Elapsed", s.uptime_secs)
                        .with("Calls", 0)
                        .with("Wait", 0.0)
                        .with("Max", 0.0)
                        .with("Min", 99999999.0)
                        .with("Work Diff", p.difficulty.unwrap_or(0.0)),
                );
            }
            Reply::ok(at, code::STATS, "CGMiner stats", "STATS", items)
        }
        "devdetails" => Reply::ok(
            at,
            code::DEVDETAILS,
            "Device Details",
            "DEVDETAILS",
            vec![Obj::default()
                .with("DEVDETAILS", 0)
                .with("Name", "AVA10")
                .with("ID", 0)
                .with("Driver", "avalon")
                .with("Kernel", "")
                .with("Model", "")
                .with("Device Path", "")],
        ),
        _ => Reply::error(at, code::INVALID_COMMAND, "Invalid command"),
    }
}

/// `02:48:46:00:00:05` as Avalon writes it: `024846000005`.
fn bare_mac(mac: &str) -> String {
    mac.chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_ascii_lowercase()
}

fn version_item(s: &MinerStatus) -> Obj {
    let mut o = Obj::default()
        .with("CGMiner", CGMINER_VERSION)
        .with("API", "3.7")
        .with("PROD", format!("AvalonMiner {}", s.identity.model))
        .with("MODEL", s.identity.model.clone())
        .with("HWTYPE", "MM3v2_X3")
        .with("SWTYPE", "MM310")
        .with("VERSION", s.identity.firmware.clone());
    if let Some(dna) = &s.identity.serial {
        o.push("DNA", dna.clone());
    }
    if let Some(mac) = &s.identity.mac {
        o.push("MAC", bare_mac(mac));
    }
    o.push("UPAPI", "2");
    o
}

fn summary_item(s: &MinerStatus) -> Obj {
    let minutes = (s.uptime_secs as f64 / 60.0).max(1.0 / 60.0);
    let sh = &s.shares;
    let total = sh.difficulty_total();
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
    o.push("Found Blocks", s.found_blocks);
    o.push("Getworks", s.pools.iter().map(|p| p.jobs).sum::<u64>());
    o.push("Accepted", sh.accepted);
    o.push("Rejected", sh.rejected);
    o.push("Hardware Errors", s.hardware_errors);
    o.push("Utility", round2(sh.accepted as f64 / minutes));
    o.push("Stale", sh.stale);
    o.push(
        "Get Failures",
        s.pools.iter().map(|p| p.get_failures).sum::<u64>(),
    );
    o.push("Remote Failures", sh.lost);
    o.push("Total MH", total_mh(s.diff1_work));
    o.push("Work Utility", round2(s.diff1_work / minutes));
    o.push("Difficulty Accepted", sh.accepted_difficulty);
    o.push("Difficulty Rejected", sh.rejected_difficulty);
    o.push("Difficulty Stale", sh.stale_difficulty);
    o.push("Best Share", s.best_share);
    o.push("Pool Rejected%", pct(sh.rejected_difficulty, total));
    o.push("Pool Stale%", pct(sh.stale_difficulty, total));
    o.push("Last getwork", s.when);
    o
}

fn dev_item(s: &MinerStatus) -> Obj {
    let sh = &s.shares;
    let mut o = Obj::default()
        .with("ASC", 0)
        .with("Name", "AVA10")
        .with("ID", 0)
        .with("Enabled", "Y")
        .with(
            "Status",
            if s.chains.iter().any(|c| c.state == ChainState::Running) {
                "Alive"
            } else {
                "Dead"
            },
        )
        .with("MHS av", mhs(s.hashrate.average.unwrap_or_default()))
        .with("MHS 5s", mhs(s.hashrate.last_5s));
    if let Some(r) = s.hashrate.last_1m {
        o.push("MHS 1m", mhs(r));
    }
    if let Some(r) = s.hashrate.last_15m {
        o.push("MHS 15m", mhs(r));
    }
    o.push("Accepted", sh.accepted);
    o.push("Rejected", sh.rejected);
    o.push("Hardware Errors", s.hardware_errors);
    o.push("Total MH", total_mh(s.diff1_work));
    o.push("Diff1 Work", s.diff1_work);
    o.push("Difficulty Accepted", sh.accepted_difficulty);
    o.push("Difficulty Rejected", sh.rejected_difficulty);
    o.push("Device Elapsed", s.uptime_secs);
    o
}

fn list<T: std::fmt::Display>(values: impl IntoIterator<Item = T>) -> String {
    values
        .into_iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A temperature as the firmware writes it: whole degrees, 0 for none.
fn degrees(t: Option<Celsius>) -> i64 {
    t.map_or(0, |t| t.0.round() as i64)
}

/// The `MM ID0` string, in the firmware's key order, with what the status knows.
pub fn mm_id0(s: &MinerStatus) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut kv = |k: &str, v: String| parts.push(format!("{k}[{v}]"));
    kv(
        "Ver",
        format!("{}-{}", s.identity.model, s.identity.firmware),
    );
    if let Some(dna) = &s.identity.serial {
        kv("DNA", dna.clone());
    }
    let hashing = s
        .chains
        .iter()
        .filter(|c| c.state == ChainState::Running)
        .count();
    kv(
        "SYSTEMSTATU",
        format!("Work: In Work, Hash Board: {hashing} "),
    );
    kv("Elapsed", s.uptime_secs.to_string());
    kv("MH", list(s.chains.iter().map(|c| c.hardware_errors)));
    kv("HW", s.hardware_errors.to_string());
    let chip_temps: Vec<f64> = s
        .chains
        .iter()
        .filter_map(|c| c.chip_temp.map(|t| t.0))
        .collect();
    if !chip_temps.is_empty() {
        let max = chip_temps.iter().copied().fold(f64::MIN, f64::max);
        let avg = chip_temps.iter().sum::<f64>() / chip_temps.len() as f64;
        kv("TMax", (max.round() as i64).to_string());
        kv("TAvg", (avg.round() as i64).to_string());
    }
    for (i, rpm) in s.fans_rpm.iter().enumerate() {
        kv(&format!("Fan{}", i + 1), rpm.to_string());
    }
    if let Some(w) = s.power_w {
        // The supply's output watts are its fifth value; the others are not known here.
        kv("PS", format!("0 0 0 0 {} 0 0", w.round() as i64));
        kv("WALLPOWER", (w.round() as i64).to_string());
    }
    kv("GHSspd", format!("{:.2}", ghs(s.hashrate.last_5s)));
    if let Some(ideal) = s.ideal {
        kv("GHSmm", format!("{:.2}", ghs(ideal)));
    }
    if let Some(avg) = s.hashrate.average {
        kv("GHSavg", format!("{:.2}", ghs(avg)));
    }
    let freqs: Vec<f64> = s.chains.iter().filter_map(|c| c.frequency_mhz).collect();
    if !freqs.is_empty() {
        kv(
            "Freq",
            format!("{:.2}", freqs.iter().sum::<f64>() / freqs.len() as f64),
        );
    }
    kv("Led", "0".into());
    kv(
        "MGHS",
        list(
            s.chains
                .iter()
                .map(|c| format!("{:.2}", ghs(c.hashrate.last_5s))),
        ),
    );
    kv("MTmax", list(s.chains.iter().map(|c| degrees(c.chip_temp))));
    kv(
        "MTavg",
        list(s.chains.iter().map(|c| degrees(c.board_temp))),
    );
    for c in s.chains.iter().filter(|c| !c.chips.is_empty()) {
        let t = degrees(c.chip_temp);
        kv(
            &format!("PVT_T{}", c.index),
            list(c.chips.iter().map(|_| t)),
        );
    }
    for c in s.chains.iter().filter(|c| !c.chips.is_empty()) {
        kv(
            &format!("MW{}", c.index),
            list(c.chips.iter().map(|h| u8::from(h.is_ok()))),
        );
    }
    parts.join(" ")
}

fn mm_item(s: &MinerStatus) -> Obj {
    Obj::default()
        .with("STATS", 0)
        .with("ID", "AVA100")
        .with("Elapsed", s.uptime_secs)
        .with("Calls", 0)
        .with("Wait", 0.0)
        .with("Max", 0.0)
        .with("Min", 99999999.0)
        .with("MM ID0", mm_id0(s))
        .with("MM Count", 1)
        .with("Smart Speed", 1)
        .with("Voltage Level Offset", 0)
        .with("Nonce Mask", 25)
}

/// `KEY[value] KEY[v1 v2]` into its pairs (the later of two equal keys wins); values are
/// kept as text. A key is the run of letters, digits and `_` before a `[`.
pub fn parse_mm(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut key = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c.is_ascii_alphanumeric() || c == '_' {
            key.push(c);
        } else if c == '[' {
            let mut value = String::new();
            let mut closed = false;
            for c in chars.by_ref() {
                if c == ']' {
                    closed = true;
                    break;
                }
                value.push(c);
            }
            if closed && !key.is_empty() && out.len() < 4096 {
                out.insert(std::mem::take(&mut key), value.trim().to_string());
            }
            key.clear();
        } else {
            key.clear();
        }
    }
    out
}

fn numbers(v: Option<&String>) -> Vec<f64> {
    v.map(|s| {
        s.split_whitespace()
            .filter_map(|x| x.trim_end_matches('%').parse::<f64>().ok())
            .filter(|x| x.is_finite())
            .take(4096)
            .collect()
    })
    .unwrap_or_default()
}

fn number(mm: &BTreeMap<String, String>, k: &str) -> Option<f64> {
    numbers(mm.get(k)).first().copied()
}

fn temp(t: Option<f64>) -> Option<Celsius> {
    t.filter(|t| *t > 0.0).map(Celsius)
}

/// `aabbccddeeff` (or with colons) as `aa:bb:cc:dd:ee:ff`.
fn colon_mac(raw: &str) -> Option<String> {
    let hex = bare_mac(raw);
    (hex.len() == 12).then(|| {
        hex.as_bytes()
            .chunks(2)
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect::<Vec<_>>()
            .join(":")
    })
}

/// The product a `VERSION[0]` names, if it is an Avalon: its `MODEL` (`1246-90`) and
/// firmware `VERSION`.
pub fn model_of(version: &Value) -> Option<(String, String)> {
    let prod = version.get("PROD").and_then(text)?;
    if !prod.to_ascii_lowercase().contains("avalon") {
        return None;
    }
    let model = version.get("MODEL").and_then(text).unwrap_or_else(|| {
        prod.trim()
            .trim_start_matches(|c: char| c.is_ascii_alphabetic())
            .trim()
            .to_string()
    });
    let firmware = version
        .get("VERSION")
        .or_else(|| version.get("CGMiner"))
        .and_then(text)
        .unwrap_or_default();
    Some((model.trim().to_string(), firmware))
}

/// Reads the replies to [`READ_ALL`] (joined, or merged into one object keyed by command)
/// into a status. `expected_chips` is the model's chips per board, where the reader knows it.
pub fn read(reply: &Value, expected_chips: Option<usize>) -> Result<MinerStatus, DecodeError> {
    let version = section(reply, "version", "VERSION")?
        .first()
        .ok_or_else(|| DecodeError::MissingSection("VERSION[0]".into()))?;
    let summary = section(reply, "summary", "SUMMARY")?
        .first()
        .ok_or_else(|| DecodeError::MissingSection("SUMMARY[0]".into()))?;
    let dev = section(reply, "devs", "DEVS")?.first();
    let stats = section(reply, "estats", "STATS")?;
    let pools = section(reply, "pools", "POOLS")?;
    let mm = stats
        .iter()
        .find_map(|o| o.get("MM ID0").and_then(Value::as_str))
        .map(parse_mm)
        .ok_or_else(|| DecodeError::MissingSection("STATS[0][\"MM ID0\"]".into()))?;

    let (model, firmware) = model_of(version).unwrap_or_default();
    let identity = Identity {
        make: Make::Avalon,
        model,
        firmware,
        serial: version
            .get("DNA")
            .and_then(text)
            .filter(|s| !s.trim().is_empty()),
        mac: version
            .get("MAC")
            .and_then(text)
            .and_then(|m| colon_mac(&m)),
        hostname: None,
    };

    let board_rates = numbers(mm.get("MGHS"));
    let hottest = numbers(mm.get("MTmax"));
    let boards_avg = numbers(mm.get("MTavg"));
    let board_hw = numbers(mm.get("MH"));
    let freq = number(&mm, "Freq");
    let chains = (0..board_rates.len().min(64))
        .map(|b| {
            let temps = numbers(mm.get(&format!("PVT_T{b}")));
            let works = numbers(mm.get(&format!("MW{b}")));
            let chips: Vec<ChipHealth> = (0..temps.len().max(works.len()))
                .map(|i| {
                    if works.get(i).copied().unwrap_or(0.0) > 0.0 {
                        ChipHealth::Ok
                    } else {
                        ChipHealth::Silent
                    }
                })
                .collect();
            let rate = HashRate::from_ghs(board_rates[b].max(0.0));
            let state = if chips.is_empty() && rate.as_hs() <= 0.0 {
                ChainState::Failed("no chips found".into())
            } else {
                ChainState::Running
            };
            ChainStatus {
                index: b,
                state,
                expected_chips,
                chips,
                hashrate: Rates {
                    last_5s: rate,
                    ..Rates::default()
                },
                ideal: None,
                hardware_errors: board_hw.get(b).map_or(0, |h| h.max(0.0) as u64),
                board_temp: temp(boards_avg.get(b).copied()),
                chip_temp: temp(hottest.get(b).copied()),
                serial: None,
                frequency_mhz: freq.filter(|f| *f > 0.0),
            }
        })
        .collect();
    let fans_rpm = (1..=16)
        .map_while(|i| number(&mm, &format!("Fan{i}")))
        .map(|r| r.clamp(0.0, f64::from(u32::MAX)) as u32)
        .collect();
    let power_w = number(&mm, "WALLPOWER")
        .or_else(|| {
            let ps = numbers(mm.get("PS"));
            [4, 5]
                .iter()
                .find_map(|i| ps.get(*i).copied().filter(|w| *w > 0.0))
        })
        .filter(|w| *w >= 0.0);
    let rate_of = |o: &Value, k: &str| f(o, k).map(HashRate::from_mhs);
    let hashrate = Rates {
        last_5s: rate_of(summary, "MHS 5s")
            .or_else(|| dev.and_then(|d| rate_of(d, "MHS 5s")))
            .unwrap_or_default(),
        last_1m: rate_of(summary, "MHS 1m").or_else(|| dev.and_then(|d| rate_of(d, "MHS 1m"))),
        last_15m: rate_of(summary, "MHS 15m"),
        average: rate_of(summary, "MHS av"),
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
        ideal: number(&mm, "GHSmm")
            .filter(|g| *g > 0.0)
            .map(HashRate::from_ghs),
        power_w,
        power_limit_w: None,
        sleeping: None,
        shares: shares_in(summary),
        diff1_work: f(summary, "Total MH").map_or(0.0, |mh| mh / total_mh(1.0)),
        hardware_errors: u(summary, "Hardware Errors").unwrap_or(0),
        best_share: f(summary, "Best Share").unwrap_or(0.0),
        found_blocks: u(summary, "Found Blocks").unwrap_or(0),
        chains,
        fans_rpm,
        pools: read_pools(pools),
        messages: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mm_strings_parse_like_the_readers_do() {
        // From a real A1246's `stats` (asic-rs 0.8.6's fixture `avalon_a_stats.json`).
        let mm = parse_mm("Ver[1246-83-21072802_4ec6bb0_211fc46] SYSTEMSTATU[Work: In Work, Hash Board: 3 ] Fan1[5344] FanR[72%] PS[0 1214 1316 242 3189 1320 3504] MGHS[26907.01 26025.06 26724.56] FACOPTS0[] PVT_T0[ 63  70 ]");
        assert_eq!(mm["Ver"], "1246-83-21072802_4ec6bb0_211fc46");
        assert_eq!(mm["SYSTEMSTATU"], "Work: In Work, Hash Board: 3");
        assert_eq!(numbers(mm.get("MGHS")), vec![26907.01, 26025.06, 26724.56]);
        assert_eq!(numbers(mm.get("PS"))[4], 3189.0);
        assert_eq!(numbers(mm.get("PVT_T0")), vec![63.0, 70.0]);
        assert_eq!(mm["FACOPTS0"], "");
        assert_eq!(number(&mm, "FanR"), Some(72.0));
        assert!(parse_mm("x[unclosed").is_empty());
        assert_eq!(
            colon_mac("123456789012").as_deref(),
            Some("12:34:56:78:90:12")
        );
    }
}
