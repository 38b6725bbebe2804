//! pyasic (the fleet library, from PyPI) reads a running `hashforge mine` as it reads a stock
//! Antminer: it recognises the miner from the cgminer API on port 4028 and reads its hash
//! rate, boards, fans and pools.
//!
//! The second test has asic-rs and pyasic read an emulated S21 Pro through the stock web
//! CGI, with the operator's web password.
//!
//! Needs `python3` with `pyasic` and `pyasic_rs` (`.ci/run` installs them) and, for the
//! second, port 80 on loopback. Outside CI (no `CI` variable) the
//! test skips with a notice when pyasic is missing; under CI it fails.

#[path = "../../miner/tests/support/mod.rs"]
mod support;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{wait_for, TestPool};

const SCRIPT: &str = r#"
import asyncio, json, sys
import pyasic
from pyasic import get_miner

async def main(ip):
    miner = await get_miner(ip)
    if miner is None:
        print(json.dumps({"error": "pyasic did not recognise the miner"}))
        return
    d = await miner.get_data()
    num = lambda x: None if x is None else float(x)
    print(json.dumps({
        "pyasic": pyasic.__version__ if hasattr(pyasic, "__version__") else "",
        "class": type(miner).__name__,
        "make": str(d.make),
        "model": str(d.model),
        "hashrate": num(d.hashrate),
        "expected_hashrate": num(d.expected_hashrate),
        "uptime": d.uptime,
        "boards": [{"slot": b.slot, "chips": b.chips, "hashrate": num(b.hashrate),
                    "temp": b.temp, "chip_temp": b.chip_temp, "missing": b.missing}
                   for b in d.hashboards],
        "fans": [f.speed for f in d.fans],
        "pools": [{"url": str(p.url), "user": p.user, "accepted": p.accepted,
                   "rejected": p.rejected, "active": p.active, "alive": p.alive}
                  for p in d.pools],
    }))

asyncio.run(main(sys.argv[1]))
"#;

/// pyasic only looks at port 4028: find a loopback address where it is free.
fn api_address() -> SocketAddr {
    (1..=20u8)
        .map(|last| SocketAddr::from((Ipv4Addr::new(127, 0, 0, last), 4028)))
        .find(|a| TcpListener::bind(a).is_ok())
        .expect("port 4028 is taken on 127.0.0.1-20")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyasic_reads_a_running_miner_like_an_antminer() {
    if !python_has("pyasic") {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
        assert!(
            !ci,
            "pyasic is not importable by python3; .ci/run installs it with pip"
        );
        eprintln!("SKIPPED: pyasic is not installed (python3 -m pip install pyasic==0.79.0)");
        return;
    }
    let pool = TestPool::start(0, 0.002).await;
    let backup = TestPool::start(0, 0.002).await;
    let api = api_address();
    let mut miner = tokio::process::Command::new(env!("CARGO_BIN_EXE_hashforge"))
        .args([
            "mine",
            "--pool",
            &pool.url(),
            "--user",
            "alice",
            "--pool",
            &backup.url(),
            "--user",
            "bob",
        ])
        .args([
            "--device",
            "cpu:1",
            "--api",
            &api.to_string(),
            "--status-every",
            "0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start hashforge mine");
    wait_for("shares from the miner", Duration::from_secs(120), || {
        pool.accepted() >= 2
    })
    .await;
    // A few seconds of nonces so the 5 s rate is not zero.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let out = tokio::process::Command::new("python3")
        .args(["-c", SCRIPT, &api.ip().to_string()])
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("pyasic finishes")
        .expect("run python3");
    let _ = miner.kill().await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pyasic failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("pyasic printed no JSON ({e}): {stdout}"));
    eprintln!("pyasic read: {v}");
    assert_eq!(v["error"], Value::Null, "{v}");
    assert!(v["make"].as_str().unwrap().contains("AntMiner"), "{v}");
    assert!(v["model"].as_str().unwrap().contains("S9"), "{v}");
    assert!(v["hashrate"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["expected_hashrate"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["uptime"].as_u64().unwrap() >= 1, "{v}");
    let boards = v["boards"].as_array().unwrap();
    assert_eq!(boards.len(), 3, "{v}");
    assert_eq!(boards[0]["chips"], 1, "the CPU's one thread is a chip: {v}");
    assert_eq!(boards[0]["missing"], false, "{v}");
    assert!(v["fans"].as_array().is_some(), "{v}");
    let pools = v["pools"].as_array().unwrap();
    assert_eq!(pools.len(), 2, "{v}");
    assert_eq!(pools[0]["user"], "alice");
    assert_eq!(pools[0]["active"], true);
    assert_eq!(pools[0]["alive"], true);
    assert!(pools[0]["accepted"].as_u64().unwrap() >= 1, "{v}");
    assert!(
        pools[0]["url"]
            .as_str()
            .unwrap()
            .contains(&pool.addr.port().to_string()),
        "{v}"
    );
    assert_eq!(pools[1]["user"], "bob");
}

/// asic-rs (through `pyasic-rs`, its own Python build from PyPI: the same Rust code as the
/// `asic-rs` crate, without compiling it here) and pyasic, each told the web password.
const STOCK_SCRIPT: &str = r#"
import asyncio, json, sys
import pyasic
from pyasic import settings
from pyasic_rs import MinerFactory

async def with_asic_rs(ip, pw):
    factory = MinerFactory()
    if pw:
        factory = factory.with_firmware_discovery_auth("AntMiner Stock", "root", pw)
    miner = await factory.get_miner(ip)
    if miner is None:
        return {"found": False}
    d = (await miner.get_data()).model_dump()
    return {
        "found": True,
        "make": d["device_info"]["make"],
        "model": d["device_info"]["model"],
        "firmware": d["device_info"]["firmware"],
        "firmware_version": d["firmware_version"],
        "mac": d["mac"],
        "hashrate_ths": d["hashrate"]["value"] if d["hashrate"] else None,
        "boards": [{"working_chips": b["working_chips"], "expected_chips": b["expected_chips"]}
                   for b in d["hashboards"]],
        "pools": [p["user"] for g in d["pools"] for p in g["pools"]],
    }

async def with_pyasic(ip, pw):
    settings.update("default_antminer_web_password", pw)
    miner = await pyasic.get_miner(ip)
    d = await miner.get_data()
    # Curtailment as pyasic does it: set_miner_conf.cgi with miner-mode 1, then 0.
    stopped = await miner.stop_mining()
    mining_after_stop = await miner.is_mining()
    resumed = await miner.resume_mining()
    mining_after_resume = await miner.is_mining()
    return {
        "model": str(d.model),
        "mac": d.mac,
        "boards": [{"chips": b.chips, "missing": b.missing, "chip_temp": b.chip_temp}
                   for b in d.hashboards],
        "stopped": stopped,
        "mining_after_stop": mining_after_stop,
        "resumed": resumed,
        "mining_after_resume": mining_after_resume,
    }

async def main(ip, pw):
    print(json.dumps({
        "asic_rs": await with_asic_rs(ip, pw),
        "asic_rs_default_password": await with_asic_rs(ip, None),
        "pyasic": await with_pyasic(ip, pw),
    }))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"#;

fn python_has(modules: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A loopback address where both 4028 and 80 are free (fleet tools know no other ports).
fn stock_address() -> Option<Ipv4Addr> {
    (21..=60u8)
        .map(|last| Ipv4Addr::new(127, 0, 0, last))
        .find(|ip| TcpListener::bind((*ip, 4028)).is_ok() && TcpListener::bind((*ip, 80)).is_ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asic_rs_and_pyasic_read_an_emulated_s21_pro_through_the_stock_web_cgi() {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    if !python_has("pyasic, pyasic_rs") {
        assert!(
            !ci,
            "pyasic or pyasic_rs is not importable; .ci/run installs them with pip"
        );
        eprintln!("SKIPPED: python3 -m pip install pyasic==0.79.0 pyasic-rs==0.8.6");
        return;
    }
    let Some(ip) = stock_address() else {
        // Port 80 needs root or net.ipv4.ip_unprivileged_port_start <= 80 (.ci/run sets it).
        assert!(
            !ci,
            "cannot bind port 80 on loopback; .ci/run lowers ip_unprivileged_port_start"
        );
        eprintln!("SKIPPED: cannot bind port 80 on 127.0.0.21-60");
        return;
    };
    let pool = TestPool::start(0, 1.0 / 256.0).await;
    let password = "farm-7-secret";
    let mut miner = tokio::process::Command::new(env!("CARGO_BIN_EXE_hashforge"))
        .args(["mine", "--pool", &pool.url(), "--user", "rack4.pos17"])
        .args(["--device", "emulated:s21pro", "--status-every", "0"])
        .args([
            "--api",
            &format!("{ip}:4028"),
            "--http",
            &format!("{ip}:80"),
        ])
        .args(["--web-password", password])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start hashforge mine");
    wait_for("shares from the miner", Duration::from_secs(120), || {
        pool.accepted() >= 2
    })
    .await;
    let out = tokio::process::Command::new("python3")
        .args(["-c", STOCK_SCRIPT, &ip.to_string(), password])
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("the fleet tools finish")
        .expect("run python3");
    let _ = miner.kill().await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("no JSON ({e}): {stdout}"));
    eprintln!("fleet tools read: {v}");
    let a = &v["asic_rs"];
    assert_eq!(a["found"], true, "{v}");
    assert_eq!(a["make"], "Antminer", "{v}");
    assert_eq!(a["model"], "S21Pro", "{v}");
    assert_eq!(a["firmware"], "AntMiner Stock", "{v}");
    assert!(
        a["firmware_version"]
            .as_str()
            .unwrap()
            .starts_with("hashforge"),
        "{v}"
    );
    let boards = a["boards"].as_array().unwrap();
    assert_eq!(boards.len(), 3, "{v}");
    for b in boards {
        assert_eq!(
            (b["working_chips"].as_u64(), b["expected_chips"].as_u64()),
            (Some(65), Some(65)),
            "{v}"
        );
    }
    assert!(a["hashrate_ths"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(a["pools"][0], "rack4.pos17", "{v}");
    // There is no default password: asic-rs's guess (root/root) gets nothing.
    assert_eq!(v["asic_rs_default_password"]["found"], false, "{v}");
    let p = &v["pyasic"];
    assert_eq!(p["model"], "S21 Pro", "{v}");
    // pyasic's stop_mining and resume_mining put the miner to sleep and wake it, and its
    // is_mining reads each back from get_miner_conf.cgi.
    assert_eq!(
        (
            &p["stopped"],
            &p["mining_after_stop"],
            &p["resumed"],
            &p["mining_after_resume"]
        ),
        (
            &Value::from(true),
            &Value::from(false),
            &Value::from(true),
            &Value::from(true)
        ),
        "{v}"
    );
    let boards = p["boards"].as_array().unwrap();
    assert_eq!(boards.len(), 3, "{v}");
    for b in boards {
        assert_eq!(
            (b["chips"].as_u64(), b["missing"].as_bool()),
            (Some(65), Some(false)),
            "{v}"
        );
    }
    if a["mac"].is_string() || p["mac"].is_string() {
        assert_eq!(
            a["mac"].as_str().map(str::to_ascii_lowercase),
            p["mac"].as_str().map(str::to_ascii_lowercase),
            "both read the same MAC: {v}"
        );
    }
}
