//! The stock Antminer web CGI (port 80, HTTP digest auth as user `root`, realm
//! [`crate::digest::ANTMINER_REALM`]), both sides: the JSON each `/cgi-bin/*.cgi` answers,
//! rendered from a [`MinerStatus`], and a reading of `get_system_info` and `stats` back.
//! asic-rs builds an Antminer only from these pages, and reads the MAC, hostname, serial
//! and each board's serial from them; pyasic reads them too.

use hashforge_core::Celsius;
use serde_json::{json, Value};

use crate::bmminer::{chip_map, type_name};
use crate::cgminer::{count, ghs, text};
use crate::status::{ChainState, Identity, MinerStatus, PoolState};

/// The user stock firmware's web server knows.
pub const USER: &str = "root";

/// The pages a reader asks for, and the ones this module renders.
pub const PAGES: [&str; 7] = [
    "get_system_info",
    "summary",
    "stats",
    "pools",
    "get_miner_conf",
    "get_blink_status",
    "miner_type",
];

/// The page name of a request path: `/cgi-bin/stats.cgi?x=1` -> `stats`.
/// `set_miner_conf.cgi`'s answer when the configuration was taken, as stock firmware gives it.
pub const SET_CONF_OK: &str = r#"{"stats":"success","code":"M000","msg":"OK!"}"#;

/// `set_miner_conf.cgi`'s answer to a configuration it does not take.
pub fn set_conf_refused(why: &str) -> String {
    json!({ "stats": "error", "code": "M001", "msg": why }).to_string()
}

/// The `miner-mode` a `set_miner_conf.cgi` body asks for (0 normal, 1 sleep: what pyasic
/// and fleet consoles send to curtail; stock firmware writes it as a number or a string),
/// or why the body is not one.
pub fn miner_mode(body: &[u8]) -> Result<u64, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the configuration is not JSON: {e}"))?;
    let m = v
        .get("miner-mode")
        .ok_or("the configuration names no miner-mode")?;
    match m.as_u64().or_else(|| m.as_str()?.trim().parse().ok()) {
        Some(mode @ (0 | 1)) => Ok(mode),
        Some(mode) => Err(format!(
            "miner-mode {mode} is not taken here: 0 (normal) or 1 (sleep)"
        )),
        None => Err(format!("miner-mode {m} is not a number")),
    }
}

pub fn page_of(path: &str) -> Option<&str> {
    let path = path.split('?').next()?;
    path.strip_prefix("/cgi-bin/")?.strip_suffix(".cgi")
}

/// The JSON body of `page`, or `None` for a page stock firmware would answer 404 to.
pub fn render(page: &str, s: &MinerStatus) -> Option<Value> {
    Some(match page {
        "get_system_info" => system_info(s),
        "summary" => summary(s),
        "stats" => stats(s),
        "pools" => pools(s),
        "get_miner_conf" => miner_conf(s),
        "get_blink_status" => json!({ "blink": false }),
        "miner_type" => json!({ "miner_type": type_name(&s.identity) }),
        _ => return None,
    })
}

fn header(s: &MinerStatus, msg: &str) -> (Value, Value) {
    (
        json!({ "STATUS": "S", "when": s.when, "Msg": msg, "api_version": "1.0.0" }),
        json!({
            "miner_version": s.identity.firmware,
            "CompileTime": s.identity.firmware,
            "type": type_name(&s.identity),
        }),
    )
}

fn system_info(s: &MinerStatus) -> Value {
    let id = &s.identity;
    let mut v = json!({
        "minertype": type_name(id),
        "nettype": "DHCP",
        "netdevice": "eth0",
        "system_mode": "GNU/Linux",
        "system_filesystem_version": id.firmware,
        "firmware_type": "Release",
    });
    // Unknown values stay out rather than going out empty.
    if let Some(mac) = &id.mac {
        v["macaddr"] = Value::from(mac.to_ascii_uppercase());
    }
    if let Some(h) = &id.hostname {
        v["hostname"] = Value::from(h.as_str());
    }
    if let Some(sn) = &id.serial {
        v["serinum"] = Value::from(sn.as_str());
    }
    v
}

fn summary(s: &MinerStatus) -> Value {
    let (status, info) = header(s, "summary");
    let item = |kind: &str, ok: bool, msg: &str| json!({ "type": kind, "status": if ok { "s" } else { "e" }, "code": 0, "msg": msg });
    let hashing = s.hashrate.last_5s.as_hs() > 0.0;
    let pool_ok = s
        .pools
        .iter()
        .any(|p| p.active && p.state == PoolState::Alive);
    let fans_ok = s.fans_rpm.iter().all(|r| *r > 0);
    let failed: Vec<String> = s
        .chains
        .iter()
        .filter_map(|c| match &c.state {
            ChainState::Failed(why) => Some(format!("chain {}: {why}", c.index)),
            ChainState::Running | ChainState::Starting => None,
        })
        .collect();
    json!({
        "STATUS": status,
        "INFO": info,
        "SUMMARY": [{
            "elapsed": s.uptime_secs,
            "rate_5s": ghs(s.hashrate.last_5s),
            "rate_avg": ghs(s.hashrate.average.unwrap_or_default()),
            "rate_ideal": s.ideal.map(ghs),
            "rate_unit": "GH/s",
            "hw_all": s.hardware_errors,
            "bestshare": s.best_share,
            "status": [
                item("rate", hashing, if hashing { "" } else { "not hashing" }),
                item("network", pool_ok, if pool_ok { "" } else { "no pool alive" }),
                item("fans", fans_ok, if fans_ok { "" } else { "a fan is stopped" }),
                item("temp", failed.is_empty(), &failed.join("; ")),
            ],
        }],
    })
}

fn stats(s: &MinerStatus) -> Value {
    let (status, info) = header(s, "stats");
    let chains: Vec<Value> = s
        .chains
        .iter()
        .map(|c| {
            let mut v = json!({
                "index": c.index,
                "rate_real": ghs(c.hashrate.last_5s),
                "asic_num": c.chips_found(),
                "asic": chip_map(&c.chips),
                "hw": c.hardware_errors,
            });
            if let Some(i) = c.ideal {
                v["rate_ideal"] = Value::from(ghs(i));
            }
            if let Some(f) = c.frequency_mhz {
                v["freq_avg"] = Value::from(f.round());
            }
            // Stock boards have four sensors of each kind and write 0 for one that has no
            // reading: the shape has no way to leave a value out, and every reader drops
            // the zeros. The miner's one reading fills all four.
            let four = |t: Option<Celsius>| {
                let r = t.map_or(0.0, |t| t.0.round());
                json!([r, r, r, r])
            };
            v["temp_pcb"] = four(c.board_temp);
            v["temp_chip"] = four(c.chip_temp);
            // Likewise an unknown board serial is stock's empty string.
            v["sn"] = Value::from(c.serial.clone().unwrap_or_default());
            v
        })
        .collect();
    json!({
        "STATUS": status,
        "INFO": info,
        "STATS": [{
            "elapsed": s.uptime_secs,
            "rate_5s": ghs(s.hashrate.last_5s),
            "rate_avg": ghs(s.hashrate.average.unwrap_or_default()),
            "rate_ideal": s.ideal.map(ghs),
            "rate_unit": "GH/s",
            "chain_num": s.chains.len(),
            "fan_num": s.fans_rpm.len(),
            "fan": s.fans_rpm,
            "chain": chains,
        }],
    })
}

fn pools(s: &MinerStatus) -> Value {
    let (status, info) = header(s, "pools");
    let pools: Vec<Value> = s
        .pools
        .iter()
        .map(|p| {
            json!({
                "index": p.index,
                "url": p.url,
                "user": p.user,
                "status": match p.state {
                    PoolState::Alive => "Alive",
                    PoolState::Dead => "Dead",
                    PoolState::Disabled => "Disabled",
                },
                "priority": p.index,
                "getworks": p.jobs,
                "accepted": p.shares.accepted,
                "rejected": p.shares.rejected,
                "stale": p.shares.stale,
                "diffa": p.shares.accepted_difficulty,
                "diffr": p.shares.rejected_difficulty,
                "diffs": p.shares.stale_difficulty,
                "lsdiff": p.last_share_difficulty,
                "lstime": p.last_share_time,
            })
        })
        .collect();
    json!({ "STATUS": status, "INFO": info, "POOLS": pools })
}

/// The configuration page. Pool passwords are not the reader's business: they go out empty.
fn miner_conf(s: &MinerStatus) -> Value {
    let pools: Vec<Value> = s
        .pools
        .iter()
        .map(|p| json!({ "url": p.url, "user": p.user, "pass": "" }))
        .collect();
    let hashing =
        s.sleeping != Some(true) && s.chains.iter().any(|c| c.state == ChainState::Running);
    json!({
        "pools": pools,
        "api-listen": true,
        "api-network": true,
        "bitmain-fan-ctrl": false,
        "bitmain-fan-pwm": "100",
        // 0 normal, 1 sleep: what asic-rs and pyasic read as "mining".
        "bitmain-work-mode": if hashing { "0" } else { "1" },
        "freq-level": "100",
    })
}

/// What `get_system_info` adds to a cgminer reading: MAC (lower case), hostname, serial.
pub fn read_system_info(v: &Value, identity: &mut Identity) {
    identity.mac = v
        .get("macaddr")
        .and_then(text)
        .map(|m| m.trim().to_ascii_lowercase())
        .filter(|m| !m.is_empty());
    identity.hostname = v.get("hostname").and_then(text).filter(|h| !h.is_empty());
    identity.serial = ["serinum", "serial_no"]
        .iter()
        .find_map(|k| v.get(*k).and_then(text))
        .filter(|s| !s.is_empty());
}

/// What `stats.cgi` adds to a cgminer reading: each board's serial, where the firmware
/// reports one, matched by `index`.
pub fn read_board_serials(v: &Value, status: &mut MinerStatus) {
    for (index, sn) in board_serials(v) {
        if let Some(chain) = status.chains.iter_mut().find(|x| x.index == index) {
            chain.serial = Some(sn);
        }
    }
}

/// Each board's serial in `stats.cgi`, by board index, where the firmware reports one.
pub fn board_serials(v: &Value) -> Vec<(usize, String)> {
    let Some(chains) = v
        .get("STATS")
        .and_then(|s| s.get(0))
        .and_then(|s| s.get("chain"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    chains
        .iter()
        .filter_map(|c| {
            let index = c.get("index").and_then(count)?;
            let sn = c.get("sn").and_then(text).filter(|s| !s.is_empty())?;
            Some((usize::try_from(index).ok()?, sn))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn miner_mode_is_read_as_stock_firmware_and_pyasic_write_it() {
        assert_eq!(miner_mode(br#"{"miner-mode":1,"pools":[]}"#), Ok(1));
        assert_eq!(
            miner_mode(br#"{"miner-mode":"0","freq-level":"100"}"#),
            Ok(0)
        );
        for (body, says) in [
            (&b"not json"[..], "not JSON"),
            (br#"{"pools":[]}"#, "no miner-mode"),
            (br#"{"miner-mode":3}"#, "miner-mode 3 is not taken"),
            (br#"{"miner-mode":"sleepy"}"#, "not a number"),
            (br#"{"miner-mode":-1}"#, "not a number"),
        ] {
            let e = miner_mode(body).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
        let refused: Value = serde_json::from_str(&set_conf_refused("no")).unwrap();
        assert_eq!(refused["stats"], "error");
    }
}
