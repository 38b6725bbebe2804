//! `hashforge up` end to end, as a newcomer runs it: a pool on the embedded regtest chain and a
//! miner whose device is an emulated S21 Pro board (BM1370 chips behind the real chain driver,
//! byte for byte) mine real blocks; the numbers both pages show agree, and `hashforge chain
//! export` prints the blocks.
//!
//! The checks are counts and ratios, never timings: how long anything took does not matter,
//! only that the pool credits the work the miner did, vardiff settles near its share rate,
//! few shares go stale, no block storm, and a readable log.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn free_addr() -> String {
    format!("127.0.0.1:{}", hashforge_pool::testing::free_port())
}

/// GET a JSON document over plain HTTP/1.1 on loopback.
fn get_json(addr: &str, path: &str) -> Value {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = text.split_once("\r\n\r\n").expect("an HTTP reply").1;
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// Starts `hashforge up` for `run_secs` on an emulated S21 Pro, every listener on a free
/// loopback port, the pool's, the miner's and the console's pages at `pages`.
fn up(
    dir: &std::path::Path,
    run_secs: u64,
    pages: [&String; 3],
    extra: &[&str],
) -> std::process::Child {
    let _ = std::fs::remove_dir_all(dir);
    let port = |a: String| a.rsplit_once(':').unwrap().1.to_string();
    let [pool_http, miner_http, console] = pages;
    Command::new(env!("CARGO_BIN_EXE_hashforge"))
        .args(["up", "--seconds", &run_secs.to_string()])
        .args(["--device", "emulated:s21pro:0"])
        .args(extra)
        .args(["--stratum", &free_addr(), "--api", &free_addr()])
        .args(["--pool-http", pool_http, "--miner-http", miner_http])
        .args(["--console", console])
        .args([
            "--fleet-cgminer-port",
            &port(free_addr()),
            "--fleet-http-port",
            &port(free_addr()),
        ])
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("hashforge runs")
}

#[test]
fn up_mines_regtest_blocks_and_its_numbers_agree() {
    let dir = std::env::temp_dir().join(format!("hashforge-up-test-{}", std::process::id()));
    let (pool_http, miner_http, console) = (free_addr(), free_addr(), free_addr());
    let run_secs = 50;
    let child = up(
        &dir,
        run_secs,
        [&pool_http, &miner_http, &console],
        &[
            "--fleet",
            "5",
            "--fault",
            "dead-chip:40",
            // The demo's chip that dies while it runs (a minute in by default).
            "--chip-dies-after",
            "12",
        ],
    );
    // Read the numbers late in the run, once vardiff has had its first retarget (15 s).
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(run_secs - 8));
    let pool = get_json(&pool_http, "/api/pool");
    let workers = get_json(&pool_http, "/api/workers");
    let miner = get_json(&miner_http, "/api/summary");
    // The fleet console watches this miner: the chain that found 40 of its 65 chips.
    let fleet_view = get_json(&console, "/api/miners/127.0.0.1");
    // The demo register: this miner matched to its asset by the serial its CGI gives, its
    // dead chips' alert become its repair ticket, the held shipment accruing storage.
    let matched = get_json(&console, "/api/assets/match");
    let timeline = get_json(&console, "/api/assets/HF-UP-0001/events");
    let customs = get_json(&console, "/api/assets/reports/customs");
    let pages = [&pool_http, &miner_http].map(|addr| rendered_text(&format!("http://{addr}/")));
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert!(start.elapsed() < Duration::from_secs(run_secs + 30));
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains(&format!("console http://{console}/")), "{log}");
    assert_eq!(fleet_view["miner"]["online"], true, "{fleet_view}");
    assert_eq!(
        fleet_view["miner"]["boards"][0]["chips_found"], 40,
        "{fleet_view}"
    );
    let alerts = fleet_view["alerts"].as_array().unwrap();
    assert!(
        alerts.iter().any(|a| a["kind"] == "missing_chips"
            && a["evidence"]
                .as_str()
                .unwrap()
                .starts_with("board 0: 40 of 65 chips answer")),
        "the console names the board and where the chain breaks: {fleet_view}"
    );
    assert!(
        alerts
            .iter()
            .any(|a| a["kind"] == "bad_chips" && a["evidence"] == "board 0: chip 30 silent or bad"),
        "the chip that died while it ran: {fleet_view}"
    );
    assert!(
        matched["matched"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["asset"] == "HF-UP-0001" && m["matched_by"] == "serial"),
        "{matched}"
    );
    let last = timeline["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (&last["event"], &last["reason"]),
        (&"failed".into(), &"missing_chips".into()),
        "the first chip alert opened the ticket, once: {timeline}"
    );
    let held = customs["shipments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["shipment"] == "MY-SEA-0107")
        .unwrap_or_else(|| panic!("{customs}"))
        .clone();
    assert_eq!(held["open_units"], 40, "{held}");
    assert!(
        held["storage"].as_f64().unwrap() >= 40.0 * 47.0 * 5.0,
        "{held}"
    );
    assert!(
        held["cost_of_delay"].as_f64().unwrap() > 0.0,
        "at the demo's hashprice: {held}"
    );

    let live = &pool["live"];
    let worker = &workers["live"]["hashforge-up.rig1"];
    let accepted = live["shares_accepted"].as_f64().unwrap();
    assert!(accepted >= 20.0, "{pool}");
    // The pool credits the work the miner did: its estimate rests on n shares, so it is
    // within 4/√n of the truth but for a 1-in-15,000 draw; 20% is the goal beyond ~400.
    let miner_rate = miner["hashrate"]["h_1m"].as_f64().unwrap();
    let pool_rate = worker["hashrate_hs"].as_f64().unwrap();
    let n = worker["hashrate_shares"].as_f64().unwrap();
    let tolerance = (4.0 / n.sqrt()).max(0.2);
    assert!(
        (pool_rate / miner_rate - 1.0).abs() < tolerance,
        "pool {pool_rate} H/s on ~{n:.0} shares vs miner {miner_rate} H/s (1 min)"
    );
    // One worker: the pool's rate is its rate (read a moment apart).
    let pool_total = live["hashrate_hs"].as_f64().unwrap();
    assert!(
        (pool_total / pool_rate - 1.0).abs() < 0.05,
        "{pool_total} vs {pool_rate}"
    );
    // Vardiff settled near its target of 60 shares a minute (it moves in powers of two, so
    // anywhere within 2x either way is settled).
    let difficulty = miner["pools"][0]["difficulty"].as_f64().unwrap();
    let per_minute = miner_rate * 60.0 / (difficulty * 4_294_967_296.0);
    assert!(
        (25.0..=150.0).contains(&per_minute),
        "difficulty {difficulty}: {per_minute} shares a minute"
    );
    // Few stale shares, on either side. On regtest every share is a block and so a clean job:
    // a share a second times the chips' switching window gives ~2-8% in one-minute runs
    // (small counts); before issue #9 stale shares outnumbered accepted ones. The bound
    // leaves room for Poisson luck so the test does not flake.
    let rejected_stale = live["shares_rejected"]["stale"].as_f64().unwrap_or(0.0);
    let never_sent = miner["shares"]["stale"].as_f64().unwrap();
    assert!(
        rejected_stale + never_sent <= 0.1 * accepted + 3.0,
        "{rejected_stale} rejected as stale and {never_sent} never sent, of {accepted} accepted"
    );
    // Every share on regtest is a block; no storm of refused ones.
    let blocks = live["blocks_found"].as_f64().unwrap();
    let refused = live["blocks_rejected"].as_f64().unwrap();
    assert!(
        blocks >= 0.9 * accepted - 2.0,
        "{blocks} blocks, {accepted} shares"
    );
    assert!(refused <= 0.02 * blocks + 2.0, "{refused} blocks refused");
    assert_eq!(
        miner["found_blocks"].as_f64().unwrap(),
        miner["shares"]["accepted"].as_f64().unwrap(),
        "every accepted regtest share is a block"
    );
    // A readable log: a line per block and a status line every 5 s, little else.
    let lines = log.lines().count() as f64;
    let block_lines = log.matches("BLOCK FOUND").count() as f64;
    assert!(
        block_lines >= blocks - 1.0,
        "{block_lines} lines for {blocks} blocks"
    );
    assert!(
        lines <= block_lines + run_secs as f64 / 5.0 + 40.0,
        "{lines} log lines for {block_lines} blocks:\n{log}"
    );

    // The pages as a browser renders them: rates with units, short difficulties, no raw
    // floats anywhere.
    if let [Some(pool_page), Some(miner_page)] = &pages {
        let checks: [(&String, &[&str]); 2] = [
            (
                pool_page,
                &[
                    "MH/s",
                    "shares, ±",
                    "a test chain, where every share is also a block",
                ],
            ),
            (
                miner_page,
                &[
                    "MH/s",
                    "0.0",
                    "every accepted share is a block",
                    // Found at start, and the one that died since.
                    "chain 0 · running with 40 of 65 chips found, 1 failing",
                ],
            ),
        ];
        for (page, want) in checks {
            for w in want {
                assert!(page.contains(w), "{w:?} not on the page:\n{page}");
            }
            assert_no_raw_floats(page);
        }
    }

    let export = Command::new(env!("CARGO_BIN_EXE_hashforge"))
        .args(["chain", "export", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(export.status.success());
    let exported: Vec<bitcoin::Block> = String::from_utf8(export.stdout)
        .unwrap()
        .lines()
        .map(|l| bitcoin::consensus::deserialize(&hex::decode(l).unwrap()).unwrap())
        .collect();
    assert!(
        exported.len() as f64 >= blocks,
        "{} exported",
        exported.len()
    );
    for b in &exported {
        assert!(b.header.validate_pow(b.header.target()).is_ok());
        assert!(b.check_merkle_root() && b.check_witness_commitment());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `up --sv2`: the miner mines over Stratum V2 from its first seconds. The emulated S21 Pro
/// tells the pool what its host CPU hashes, not the 234 TH/s on the machine's nameplate,
/// which started the channel at a difficulty (65,536) no share met for hours.
#[test]
fn up_over_sv2_mines_from_the_start() {
    let dir = std::env::temp_dir().join(format!("hashforge-up-sv2-test-{}", std::process::id()));
    let pool_http = free_addr();
    let run_secs = 30;
    let sv2 = free_addr();
    let child = up(
        &dir,
        run_secs,
        [&pool_http, &free_addr(), &free_addr()],
        &["--fleet", "1", "--sv2", &sv2],
    );
    std::thread::sleep(Duration::from_secs(run_secs - 8));
    let workers = get_json(&pool_http, "/api/workers");
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let worker = &workers["live"]["hashforge-up.rig1"];
    assert_eq!(worker["protocol"], "sv2", "{workers}");
    // A share a second once vardiff settles; the first minute's start is what is tested.
    let accepted = worker["accepted"].as_f64().unwrap_or(0.0);
    assert!(
        accepted >= 5.0,
        "{accepted} shares in {} s: {workers}",
        run_secs - 8
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The text of `url` as headless Chromium (Debian's package) renders it, or `None` when no
/// Chromium is installed outside CI (`.ci/run` installs it; under `CI=true` it must be there).
fn rendered_text(url: &str) -> Option<String> {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(chromium) = chromium else {
        assert!(
            std::env::var("CI").is_err(),
            "CI=true: .ci/run installs chromium for the page checks"
        );
        eprintln!("no chromium: the page checks are skipped");
        return None;
    };
    let profile = std::env::temp_dir().join(format!("hashforge-chromium-{}", std::process::id()));
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stderr(Stdio::null())
        .output()
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(out.status.success(), "chromium failed on {url}");
    let dom = String::from_utf8_lossy(&out.stdout);
    // The text between tags, as a person reads it.
    let mut text = String::new();
    let mut in_tag = false;
    let mut in_style = false;
    for (i, c) in dom.char_indices() {
        match c {
            '<' => {
                in_tag = true;
                in_style = dom[i..].starts_with("<style");
                if dom[i..].starts_with("</style") {
                    in_style = false;
                }
            }
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag && !in_style => text.push(c),
            _ => {}
        }
    }
    Some(text.replace("&amp;", "&"))
}

/// No number on a page carries more than six significant digits (a raw `f64` such as
/// `0.001953125` or `24630434.653437335`), and none is written with an exponent but
/// difficulties below 0.001 (`4.66e-10`).
fn assert_no_raw_floats(text: &str) {
    for word in text.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == 'e' || c == '-')) {
        let word = word.trim_end_matches(['.', '-', 'e']);
        if !word.starts_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        let digits: String = word
            .split('e')
            .next()
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        let significant = digits.trim_start_matches('0');
        assert!(
            significant.len() <= 6 || !word.contains('.'),
            "a raw float on the page: {word} in\n{text}"
        );
        if let Some((_, exp)) = word.split_once('e') {
            assert!(
                exp.starts_with('-') && word.len() <= 9,
                "a raw exponent on the page: {word}"
            );
        }
    }
}
