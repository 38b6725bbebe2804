//! ESP-Miner's (AxeOS, the Bitaxe firmware) REST API on port 80, both sides: the page and
//! the JSON rendered from a [`MinerStatus`], and a reading of `/api/system/info` back.
//! Fleet tools recognise it by "AxeOS" in the page at `/`; pyasic fails on a reply that
//! lacks keys such as `autofanspeed`, so every key ESP-Miner sends is sent.

use hashforge_core::{Celsius, HashRate};
use serde_json::{json, Value};

use crate::cgminer::{count, ghs, number, text};
use crate::status::{
    ChainState, ChainStatus, ChipHealth, Identity, Make, MinerStatus, PoolState, PoolStatus, Rates,
    Shares,
};

/// The page at `/`: what a fleet tool's probe looks for.
pub const INDEX_HTML: &str = "<!doctype html><html><head><title>AxeOS</title></head><body><app-root>AxeOS</app-root></body></html>";

/// The chip a Bitaxe model carries.
pub fn asic_model(model: &str) -> &'static str {
    match model.to_ascii_lowercase().as_str() {
        "supra" => "BM1368",
        "ultra" => "BM1366",
        "max" => "BM1397",
        _ => "BM1370",
    }
}

fn host_port(url: &str) -> (String, u16) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    match rest.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().unwrap_or(0)),
        None => (rest.to_string(), 0),
    }
}

/// `/api/system/info`.
pub fn system_info(s: &MinerStatus) -> Value {
    let chain = s.chains.first();
    let chip_temp = chain.and_then(|c| c.chip_temp).map(|t| t.0);
    let board_temp = chain.and_then(|c| c.board_temp).map(|t| t.0);
    let pool = |i: usize| s.pools.get(i);
    let (url, port) = pool(0).map_or((String::new(), 0), |p| host_port(&p.url));
    let (fb_url, fb_port) = pool(1).map_or((String::new(), 0), |p| host_port(&p.url));
    let fallback = pool(1).is_some_and(|p| p.active);
    json!({
        "power": s.power_w,
        "voltage": 5000.0,
        "current": s.power_w.map(|w| w / 5.0 * 1000.0),
        "temp": chip_temp,
        "vrTemp": board_temp,
        "maxPower": 40,
        "nominalVoltage": 5,
        "hashRate": ghs(s.hashrate.last_5s),
        "expectedHashrate": s.ideal.map(ghs),
        "bestDiff": crate::bmminer::format_diff(s.best_share),
        "bestSessionDiff": crate::bmminer::format_diff(s.best_share),
        "stratumDiff": pool(0).and_then(|p| p.difficulty).unwrap_or(0.0),
        "isUsingFallbackStratum": u8::from(fallback),
        "freeHeap": 180_000,
        "coreVoltage": 1150,
        "coreVoltageActual": 1150,
        "frequency": chain.and_then(|c| c.frequency_mhz).unwrap_or(525.0),
        "ssid": "",
        "macAddr": s.identity.mac.clone().unwrap_or_default().to_ascii_uppercase(),
        "hostname": s.identity.hostname.clone().unwrap_or_default(),
        "wifiStatus": "Connected!",
        "sharesAccepted": s.shares.accepted,
        "sharesRejected": s.shares.rejected,
        "uptimeSeconds": s.uptime_secs,
        "asicCount": chain.map_or(0, ChainStatus::chips_found),
        "smallCoreCount": 2040,
        "ASICModel": asic_model(&s.identity.model),
        "stratumURL": url,
        "stratumPort": port,
        "stratumUser": pool(0).map(|p| p.user.clone()).unwrap_or_default(),
        "fallbackStratumURL": fb_url,
        "fallbackStratumPort": fb_port,
        "fallbackStratumUser": pool(1).map(|p| p.user.clone()).unwrap_or_default(),
        "version": s.identity.firmware,
        "idfVersion": "v5.4",
        "boardVersion": "601",
        "runningPartition": "factory",
        "flipscreen": 1,
        "overheat_mode": 0,
        "invertscreen": 0,
        "invertfanpolarity": 1,
        "autofanspeed": 1,
        "fanspeed": 100,
        "fanrpm": s.fans_rpm.first().copied().unwrap_or(0),
    })
}

/// `/api/system/asic`.
pub fn asic_info(s: &MinerStatus) -> Value {
    json!({
        "ASICModel": asic_model(&s.identity.model),
        "deviceModel": s.identity.model,
        "asicCount": s.chains.first().map_or(0, ChainStatus::chips_found),
        "defaultFrequency": 525,
        "frequencyOptions": [400, 490, 525, 575, 596, 610, 625],
        "defaultVoltage": 1150,
        "voltageOptions": [1000, 1060, 1100, 1150, 1200, 1250],
    })
}

/// What a path answers: (content type, body), or `None` for a 404.
pub fn render(path: &str, s: &MinerStatus) -> Option<(&'static str, String)> {
    match path.split('?').next().unwrap_or("") {
        "/" | "/index.html" => Some(("text/html", INDEX_HTML.to_string())),
        "/api/system/info" => Some(("application/json", system_info(s).to_string())),
        "/api/system/asic" => Some(("application/json", asic_info(s).to_string())),
        _ => None,
    }
}

/// Reads `/api/system/info` into a status. Everything ESP-Miner reports is one board.
pub fn read(v: &Value) -> Option<MinerStatus> {
    let f = |k: &str| v.get(k).and_then(number);
    let u = |k: &str| v.get(k).and_then(count);
    let t = |k: &str| v.get(k).and_then(text).filter(|s| !s.is_empty());
    let asic = t("ASICModel")?;
    let model = match asic.as_str() {
        "BM1368" => "Supra",
        "BM1366" => "Ultra",
        "BM1397" => "Max",
        _ => "Gamma",
    };
    let rate = HashRate::from_ghs(f("hashRate").unwrap_or(0.0));
    let chips = u("asicCount").unwrap_or(0) as usize;
    let temp = |k: &str| f(k).filter(|t| *t > 0.0).map(Celsius);
    let url = |k: &str, p: &str| {
        t(k).map(|h| match u(p) {
            Some(port) if port > 0 => format!("stratum+tcp://{h}:{port}"),
            _ => format!("stratum+tcp://{h}"),
        })
    };
    let fallback = v
        .get("isUsingFallbackStratum")
        .is_some_and(|x| x.as_bool().unwrap_or(false) || number(x).is_some_and(|n| n != 0.0));
    let mut pools = Vec::new();
    for (i, (k, p, user)) in [
        ("stratumURL", "stratumPort", "stratumUser"),
        (
            "fallbackStratumURL",
            "fallbackStratumPort",
            "fallbackStratumUser",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        if let Some(url) = url(k, p) {
            let active = (i == 1) == fallback;
            pools.push(PoolStatus {
                index: i,
                url,
                user: t(user).unwrap_or_default(),
                state: if active {
                    PoolState::Alive
                } else {
                    PoolState::Dead
                },
                active,
                shares: Shares::default(),
                difficulty: None,
                jobs: 0,
                best_share: 0.0,
                last_share_time: 0,
                last_share_difficulty: 0.0,
                get_failures: 0,
                bad_work: 0,
            });
        }
    }
    Some(MinerStatus {
        identity: Identity {
            make: Make::Bitaxe,
            model: model.to_string(),
            firmware: t("version").unwrap_or_default(),
            serial: None,
            mac: t("macAddr").map(|m| m.to_ascii_lowercase()),
            hostname: t("hostname"),
        },
        when: 0,
        uptime_secs: u("uptimeSeconds").unwrap_or(0),
        hashrate: Rates {
            last_5s: rate,
            ..Rates::default()
        },
        ideal: f("expectedHashrate").map(HashRate::from_ghs),
        power_w: f("power"),
        power_limit_w: None,
        sleeping: None,
        shares: Shares {
            accepted: u("sharesAccepted").unwrap_or(0),
            rejected: u("sharesRejected").unwrap_or(0),
            ..Shares::default()
        },
        diff1_work: 0.0,
        hardware_errors: 0,
        best_share: 0.0,
        found_blocks: 0,
        chains: vec![ChainStatus {
            index: 0,
            state: if chips > 0 {
                ChainState::Running
            } else {
                ChainState::Failed("no chips found".into())
            },
            expected_chips: Some(1),
            chips: vec![ChipHealth::Ok; chips],
            hashrate: Rates {
                last_5s: rate,
                ..Rates::default()
            },
            ideal: f("expectedHashrate").map(HashRate::from_ghs),
            hardware_errors: 0,
            board_temp: temp("vrTemp"),
            chip_temp: temp("temp"),
            serial: None,
            frequency_mhz: f("frequency"),
        }],
        fans_rpm: u("fanrpm")
            .map(|r| vec![r.min(u32::MAX as u64) as u32])
            .unwrap_or_default(),
        pools,
        messages: Vec::new(),
    })
}
