//! What the console's browser tests share: headless Chromium (Debian's package) rendering a
//! page of a console on loopback.

use std::net::SocketAddr;
use std::process::{Command, Stdio};

/// The DOM Chromium builds from `http://{addr}{path}`, or `None` (with a note) when there is
/// no Chromium outside CI; under CI a missing Chromium fails the test.
pub fn chromium_dom(addr: SocketAddr, path: &str) -> Option<String> {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    let found = Command::new("chromium")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(!ci, "chromium is missing; .ci/run installs it");
        eprintln!("SKIPPED: no chromium for the browser check");
        return None;
    }
    let profile = std::env::temp_dir().join(format!(
        "hf-fleet-chromium-{}-{}",
        std::process::id(),
        addr.port()
    ));
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", &format!("http://{addr}{path}")])
        .output()
        .expect("run chromium");
    let _ = std::fs::remove_dir_all(&profile);
    Some(String::from_utf8_lossy(&out.stdout).to_string())
}

/// One HTTP request to a console: (status, body). A body starting with `{` goes as JSON,
/// any other as a form.
#[allow(dead_code)] // Not every test binary that shares this module sends requests.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let kind = if body.starts_with('{') {
        "application/json"
    } else {
        "application/x-www-form-urlencoded"
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(30), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let code = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map_or("", |b| b.1).to_string();
    (code, body)
}
