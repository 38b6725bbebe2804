//! What a fleet tool reads from a running miner with an emulated S21 Pro, through the
//! `minerapi` crate's own client side: every chain's state and chips, a chip that goes
//! silent named by board and position, and the stock web CGI behind digest auth.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use hashforge_miner::{DeviceSpec, Miner};
use hashforge_minerapi::cgminer::{decode_reply, Request};
use hashforge_minerapi::digest::{authorization, ANTMINER_REALM};
use hashforge_minerapi::{bmminer, ChainState, ChipHealth, MinerStatus};
use serde_json::Value;
use support::{api, TestPool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "let-me-write";
const PASSWORD: &str = "not-root";

async fn read(addr: SocketAddr) -> MinerStatus {
    let req = Request::new(bmminer::READ_ALL, "");
    let reply = api(addr, &String::from_utf8(req.encode()).unwrap()).await;
    let v = decode_reply(reply.as_bytes()).expect("a reply");
    bmminer::read(&v, Some(65)).expect("a bmminer reading")
}

/// One HTTP request; (status line, headers, body).
async fn http(
    addr: SocketAddr,
    path: &str,
    auth: Option<&str>,
) -> (String, Vec<(String, String)>, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or("").to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_chip_is_named_by_board_and_position_and_the_web_cgi_needs_the_password() {
    let pool = TestPool::start(0, 1.0 / 256.0).await;
    let mut config = support::miner_config(&[(&pool.url(), "w")]);
    config.devices = vec![DeviceSpec::Emulated {
        profile: "s21pro".into(),
    }];
    config.api.write_token = Some(TOKEN.into());
    config.http.web_password = Some(PASSWORD.into());
    let miner = Miner::start(config).await.expect("miner starts");
    let api_addr = miner.api_addr().unwrap();
    let http_addr = miner.http_addr().unwrap();

    // Every board comes up with all its chips, and says so.
    let mut last = None;
    for _ in 0..600 {
        let s = read(api_addr).await;
        if s.chains
            .iter()
            .all(|c| c.state == ChainState::Running && c.chips_found() == 65)
            && s.hashrate.last_5s.as_hs() > 0.0
        {
            last = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = last.expect("three boards of 65 chips, hashing, within a minute");
    assert_eq!(s.identity.model, "S21 Pro");
    assert_eq!(s.chains.len(), 3);
    assert!(
        s.chains.iter().all(|c| c.bad_positions().is_empty()),
        "{:?}",
        s.chains
    );
    assert!(
        s.chains.iter().all(|c| c.board_temp.is_none()),
        "no PCB sensor is emulated"
    );

    // A chip goes silent on every board; the reading names it, and only it.
    let fault = format!(
        "{{\"command\":\"fault\",\"parameter\":\"0,silent-chip:30\",\"token\":\"{TOKEN}\"}}"
    );
    let answer = api(api_addr, &fault).await;
    assert!(answer.contains("\"Code\":300"), "{answer}");
    let mut named = None;
    for _ in 0..900 {
        let s = read(api_addr).await;
        if s.chains.iter().all(|c| c.bad_positions() == [30]) {
            named = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = named.expect("chip 30 marked on every board within 90 s");
    assert_eq!(
        s.chains[0].chips[30],
        ChipHealth::Bad,
        "a silent chip reads as `x`"
    );
    assert_eq!(
        s.chains[0].chips_found(),
        65,
        "it still answered enumeration"
    );

    // Without the token, the same command is refused.
    let refused = api(
        api_addr,
        r#"{"command":"fault","parameter":"0,silent-chip:3"}"#,
    )
    .await;
    assert!(refused.contains("\"Code\":45"), "{refused}");

    // The web CGI: a challenge with stock's realm, then the page for the right password.
    let page = "/cgi-bin/get_system_info.cgi";
    let (status, headers, _) = http(http_addr, page, None).await;
    assert!(status.contains("401"), "{status}");
    let challenge = headers
        .iter()
        .find(|(k, _)| k == "www-authenticate")
        .map(|(_, v)| v.clone())
        .expect("a digest challenge");
    assert!(
        challenge.contains(&format!("realm=\"{ANTMINER_REALM}\"")),
        "{challenge}"
    );
    let good = authorization(&challenge, "GET", page, "root", PASSWORD, "c1", 1).unwrap();
    let (status, _, body) = http(http_addr, page, Some(&good)).await;
    assert!(status.contains("200"), "{status}: {body}");
    let info: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["minertype"], "Antminer S21 Pro");
    let wrong = authorization(&challenge, "GET", page, "root", "root", "c2", 1).unwrap();
    let (status, _, _) = http(http_addr, page, Some(&wrong)).await;
    assert!(
        status.contains("401"),
        "the maker's default password is not this miner's"
    );
    // The status page and the JSON are read-only: open, as the CGI is not.
    assert!(http(http_addr, "/", None).await.0.contains("200"));
    assert!(http(http_addr, "/api/summary", None)
        .await
        .0
        .contains("200"));
    miner.stop().await;
    let _ = pool;
}
