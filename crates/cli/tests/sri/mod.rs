//! What the runs against the Stratum Reference Implementation's own binaries share: a
//! `hashforge pool` started as a process with its authority key read off its banner, and
//! children killed however the test ends.
// Each test binary that includes this uses some of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Children killed when the test ends, however it ends.
pub struct Children(pub Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn hashforge(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hashforge"));
    c.args(args).stdin(Stdio::null());
    c
}

/// Share difficulties easy enough that CPU miners sharing two cores with the pool and SRI's
/// binaries send some within the minute.
pub const EASY_SHARES: [&str; 4] = [
    "--start-difficulty",
    "0.0001",
    "--min-difficulty",
    "0.000001",
];

/// Starts `hashforge pool` on the embedded regtest chain in `data_dir`, each `(flag, port)` of
/// `listen` as `flag 127.0.0.1:port`, then `extra`; returns its authority key (base58), read
/// off its banner. Its logs go on being read, so it never writes into a full or closed pipe.
pub fn start_pool(
    children: &mut Children,
    listen: &[(&str, u16)],
    extra: &[&str],
    data_dir: &Path,
) -> String {
    let mut pool = hashforge(&["pool"]);
    for (flag, port) in listen {
        pool.arg(flag).arg(format!("127.0.0.1:{port}"));
    }
    let mut pool = pool
        .args(extra)
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hashforge pool starts");
    let out = pool.stderr.take().unwrap();
    children.0.push(pool);
    let mut lines = BufReader::new(out).lines();
    let mut key = None;
    for line in lines.by_ref() {
        let line = line.expect("the pool's banner");
        if let Some(rest) = line.trim().strip_prefix("authority_pubkey ") {
            key = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
    }
    let key = key.expect("the pool prints its authority_pubkey");
    std::thread::spawn(move || lines.for_each(drop));
    key
}

/// A JSON document from the pool's HTTP API (null if unreadable: the pool may not be up yet).
pub fn api_json(
    runtime: &tokio::runtime::Runtime,
    api: std::net::SocketAddr,
    path: &str,
) -> serde_json::Value {
    let text = runtime.block_on(hashforge_pool::testing::http_get(api, path));
    serde_json::from_str(&text).unwrap_or_default()
}

/// Waits (30 s at most) for a child to listen on `port`; the failure quotes its log.
pub fn wait_for_port(port: u16, what: &str, log: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not open its port: {}",
            tail(log, 30)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The last lines of a log file, for a failure's message.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<&str> = text.lines().rev().take(n).collect();
    lines.reverse();
    lines.join("\n")
}

/// Starts one of SRI's binaries with its TOML `config`, its output into `log`, and waits for
/// it to listen on `port`.
pub fn start_sri(
    children: &mut Children,
    binary: &str,
    config: &Path,
    log: &Path,
    port: u16,
    what: &str,
) {
    let out = std::fs::File::create(log).unwrap();
    children.0.push(
        Command::new(binary)
            .arg("-c")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("{what} does not start: {e}")),
    );
    wait_for_port(port, what, log);
}

/// Starts `hashforge mine` on `pool` as `user` on one CPU thread; its log (at info) goes to
/// `log`, if given.
pub fn start_miner(children: &mut Children, pool: &str, user: &str, log: Option<&Path>) {
    let err = match log {
        Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
        None => Stdio::null(),
    };
    children.0.push(
        hashforge(&[
            "mine", "--pool", pool, "--user", user, "--device", "cpu:1", "--no-api",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("hashforge mine starts"),
    );
}

/// Blocks of the embedded chain in `data_dir` whose coinbase carries `signature`.
pub fn signed_blocks(data_dir: &Path, signature: &str) -> usize {
    hashforge_pool::testing::exported_blocks(data_dir)
        .iter()
        .filter(|b| {
            b.txdata[0].input[0]
                .script_sig
                .as_bytes()
                .windows(signature.len())
                .any(|w| w == signature.as_bytes())
        })
        .count()
}
