//! pyasic and asic-rs (through `pyasic-rs`, its PyPI build) read simulated miners as their
//! makes: a stock Antminer S21 Pro, an S21 Pro running hashforge, a Bitaxe Gamma, a
//! Whatsminer M60S and an Avalon A1246, all from `hashforge fleet simulate` on the ports
//! fleet tools know (4028 and 80).
//!
//! Needs python3 with pyasic and pyasic_rs, and ports 4028 and 80 free on loopback (`.ci/run`
//! sees to both). Outside CI the test skips with a notice when they are not.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const SCRIPT: &str = r#"
import asyncio, json, sys
import pyasic
from pyasic import settings
from pyasic_rs import MinerFactory

settings.update("default_antminer_web_password", "farm")

async def main(ips):
    out = {}
    for ip in ips:
        factory = MinerFactory().with_firmware_discovery_auth("AntMiner Stock", "root", "farm")
        m = await factory.get_miner(ip)
        a = None
        if m is not None:
            d = (await m.get_data()).model_dump()
            a = {"make": d["device_info"]["make"], "model": d["device_info"]["model"],
                 "hashrate": d["hashrate"]["value"] if d["hashrate"] else None,
                 "chips": [b["working_chips"] for b in d["hashboards"]], "mac": d["mac"],
                 "fans": len(d["fans"])}
        pm = await pyasic.get_miner(ip)
        p = None
        if pm is not None:
            pd = await pm.get_data()
            p = {"make": str(pd.make), "model": str(pd.model),
                 "hashrate": float(pd.hashrate) if pd.hashrate is not None else None,
                 "chips": [b.chips for b in pd.hashboards], "mac": pd.mac,
                 "fans": len(pd.fans), "pools": len(pd.pools)}
        out[ip] = {"asic_rs": a, "pyasic": p}
    print(json.dumps(out))

asyncio.run(main(sys.argv[1:]))
"#;

/// Starts `hashforge fleet simulate` with `args`, reads `ips` with both tools, stops it.
/// `None` (with a notice) where the test cannot run outside CI.
fn read_with_tools(args: &[&str], ips: &[&str]) -> Option<Value> {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    let mut sim = Command::new(env!("CARGO_BIN_EXE_hashforge"))
        .args(["fleet", "simulate"])
        .args(args)
        .args(["--faults-per-hour", "0", "--boot-secs", "0", "--seed", "1"])
        .args(["--web-password", "farm"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the simulator");
    // It either listens or says why it cannot (ports taken: a miner running here).
    std::thread::sleep(Duration::from_secs(2));
    if let Ok(Some(_)) = sim.try_wait() {
        let out = sim.wait_with_output().unwrap();
        let why = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!ci, "the simulator did not start: {why}");
        eprintln!("SKIPPED: {why}");
        return None;
    }
    let started = Instant::now();
    let out = Command::new("python3")
        .args(["-c", SCRIPT])
        .args(ips)
        .output()
        .expect("run python3");
    let _ = sim.kill();
    let _ = sim.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(120));
    let v: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("no JSON ({e}): {stdout}"));
    eprintln!("fleet tools read: {v}");
    Some(v)
}

#[test]
fn pyasic_and_asic_rs_read_simulated_miners_as_their_makes() {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    let python_ok = Command::new("python3")
        .args(["-c", "import pyasic, pyasic_rs"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !python_ok {
        assert!(!ci, "pyasic or pyasic_rs is missing; .ci/run installs them");
        eprintln!("SKIPPED: python3 -m pip install pyasic==0.79.0 pyasic-rs==0.8.6");
        return;
    }
    // Seed 1: .1 is a Bitaxe, .3 runs hashforge, .5 is a stock S21 Pro (the simulator's
    // own unit tests hold the seed's fleet still).
    let args = ["--miners", "6", "--base", "127.0.3.1"];
    let mix = ["--mix", "s21pro=1,bitaxe=1,hashforge=1"];
    let Some(v) = read_with_tools(
        &[&args[..], &mix[..]].concat(),
        &["127.0.3.5", "127.0.3.3", "127.0.3.1"],
    ) else {
        return;
    };
    for ip in ["127.0.3.5", "127.0.3.3"] {
        let a = &v[ip]["asic_rs"];
        assert_eq!(
            (a["make"].as_str(), a["model"].as_str()),
            (Some("Antminer"), Some("S21Pro")),
            "{v}"
        );
        assert_eq!(a["chips"], serde_json::json!([65, 65, 65]), "{v}");
        assert!(a["hashrate"].as_f64().unwrap() > 0.0, "{v}");
        let p = &v[ip]["pyasic"];
        assert_eq!(
            (p["make"].as_str(), p["model"].as_str()),
            (Some("AntMiner"), Some("S21 Pro")),
            "{v}"
        );
        assert_eq!(p["chips"], serde_json::json!([65, 65, 65]), "{v}");
        assert_eq!(
            a["mac"].as_str().map(str::to_ascii_lowercase),
            p["mac"].as_str().map(str::to_ascii_lowercase),
            "{v}"
        );
    }
    let a = &v["127.0.3.1"]["asic_rs"];
    assert_eq!(
        (a["make"].as_str(), a["model"].as_str()),
        (Some("Bitaxe"), Some("Gamma")),
        "{v}"
    );
    let p = &v["127.0.3.1"]["pyasic"];
    assert_eq!(
        (p["make"].as_str(), p["model"].as_str()),
        (Some("BitAxe"), Some("Gamma")),
        "{v}"
    );
    assert!(p["hashrate"].as_f64().unwrap() > 0.0, "{v}");

    // Seed 1 again: .1 is a Whatsminer M60S, .3 an Avalon A1246 (held by the simulator's
    // unit tests too). Both tools find them on the cgminer port alone: pyasic by
    // `devdetails`' `bitmicro` driver and `version`'s `PROD`, asic-rs the same way, then
    // btminer's `get_version` (a firmware dated before 2024-11: API V2) and `version`'s
    // `MODEL`.
    let Some(v) = read_with_tools(
        &[
            "--miners",
            "4",
            "--base",
            "127.0.4.1",
            "--mix",
            "m60s=1,avalon=1",
        ],
        &["127.0.4.1", "127.0.4.3"],
    ) else {
        return;
    };
    let expect = [
        // ip, asic-rs make/model, pyasic make/model, chips per board, fans
        (
            "127.0.4.1",
            ("Whatsminer", "M60SVK10"),
            ("WhatsMiner", "M60S VK10"),
            215,
            2,
        ),
        (
            "127.0.4.3",
            ("Avalonminer", "Avalon1246"),
            ("AvalonMiner", "Avalon 1246"),
            120,
            4,
        ),
    ];
    for (ip, (a_make, a_model), (p_make, p_model), chips, fans) in expect {
        let a = &v[ip]["asic_rs"];
        assert_eq!(
            (a["make"].as_str(), a["model"].as_str()),
            (Some(a_make), Some(a_model)),
            "{v}"
        );
        assert!(a["hashrate"].as_f64().unwrap() > 0.0, "{v}");
        assert_eq!(a["chips"], serde_json::json!([chips, chips, chips]), "{v}");
        assert_eq!(a["fans"], fans, "{v}");
        let p = &v[ip]["pyasic"];
        assert_eq!(
            (p["make"].as_str(), p["model"].as_str()),
            (Some(p_make), Some(p_model)),
            "{v}"
        );
        assert!(p["hashrate"].as_f64().unwrap() > 0.0, "{v}");
        assert_eq!(p["chips"], serde_json::json!([chips, chips, chips]), "{v}");
        assert_eq!(p["fans"], fans, "{v}");
        assert_eq!(p["pools"], 2, "{v}");
        assert_eq!(
            a["mac"].as_str().map(str::to_ascii_lowercase),
            p["mac"].as_str().map(str::to_ascii_lowercase),
            "{v}"
        );
    }
}
