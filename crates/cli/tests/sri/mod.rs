//! What the runs against the Stratum Reference Implementation's own binaries share: a
//! `hashforge pool` started as a process with its authority key read off its banner, and
//! children killed however the test ends.

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

/// Starts `hashforge pool` with `args` on the embedded regtest chain in `data_dir`; returns
/// its authority key (base58), read off its banner. Its logs go on being read, so it never
/// writes into a full or closed pipe.
pub fn start_pool(children: &mut Children, args: &[&str], data_dir: &Path) -> String {
    let mut pool = hashforge(&["pool"])
        .args(args)
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
