//! pyasic (the fleet library, from PyPI) reads a running `hashforge mine` as it reads a stock
//! Antminer: it recognises the miner from the cgminer API on port 4028 and reads its hash
//! rate, boards, fans and pools.
//!
//! Needs `python3` with `pyasic` (`.ci/run` installs it). Outside CI (no `CI` variable) the
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

fn pyasic_available() -> bool {
    Command::new("python3")
        .args(["-c", "import pyasic"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// pyasic only looks at port 4028: find a loopback address where it is free.
fn api_address() -> SocketAddr {
    (1..=20u8)
        .map(|last| SocketAddr::from((Ipv4Addr::new(127, 0, 0, last), 4028)))
        .find(|a| TcpListener::bind(a).is_ok())
        .expect("port 4028 is taken on 127.0.0.1-20")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyasic_reads_a_running_miner_like_an_antminer() {
    if !pyasic_available() {
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
