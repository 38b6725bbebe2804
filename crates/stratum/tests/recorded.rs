//! Real bytes: the recorded cpuminer <-> ckpool session on a regtest node, and mainnet block
//! 840000 written the Stratum way.

use std::sync::Arc;

use hashforge_core::{rolled_version, Header, VersionMask};
use hashforge_stratum::message::{
    parse_client_line, parse_server_line, FromClient, FromServer, Request, ServerCall,
};
use hashforge_stratum::{
    ClientConfig, ClientEvent, ClientSession, ServerConfig, ServerEvent, ServerJob, ServerSession,
};
use serde_json::Value;

fn fixture(name: &str) -> String {
    // The manifest directory at run time (see crates/sha256d/tests/agreement.rs).
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR");
    let path = format!("{dir}/../../fixtures/{name}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

struct Line {
    c2s: bool,
    text: String,
}

fn transcript() -> Vec<Line> {
    fixture("stratum/cpuminer-ckpool-regtest.jsonl")
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            Line {
                c2s: v["dir"] == "c2s",
                text: v["line"].as_str().unwrap().to_string(),
            }
        })
        .collect()
}

fn block_111_header() -> String {
    let v: Value = serde_json::from_str(&fixture("stratum/cpuminer-ckpool-regtest.json")).unwrap();
    v["block_111"]["header_hex"].as_str().unwrap().to_string()
}

#[test]
fn every_recorded_line_parses_and_writes_back_to_the_same_message() {
    for line in transcript() {
        if line.c2s {
            let msg =
                parse_client_line(&line.text).unwrap_or_else(|e| panic!("{}: {e}", line.text));
            if let FromClient::Request { id, request } = msg {
                let again = parse_client_line(&request.to_line(&id)).unwrap();
                assert_eq!(again, FromClient::Request { id, request });
            }
        } else {
            let msg =
                parse_server_line(&line.text).unwrap_or_else(|e| panic!("{}: {e}", line.text));
            if let FromServer::Call { id, call } = msg {
                let again = parse_server_line(&call.to_line(&id)).unwrap();
                assert_eq!(again, FromServer::Call { id, call });
            }
        }
    }
}

#[test]
fn a_client_session_follows_ckpool_and_rebuilds_block_111() {
    let mut config = ClientConfig::new("mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn", "x");
    config.version_rolling_mask = None; // cpuminer did not ask for it
    let mut client = ClientSession::new(config);
    let mut jobs = Vec::new();
    let mut lines = transcript().into_iter();
    // Subscribe (id 1) and authorize (id 2) match cpuminer's ids; its submits (all id 4)
    // are not ours, so stop before them.
    for line in lines.by_ref().take(6) {
        if line.c2s {
            continue;
        }
        for event in client.handle_line(&line.text) {
            match event {
                ClientEvent::Job(j) => jobs.push(j),
                ClientEvent::ProtocolError(e) => panic!("{e}"),
                _ => {}
            }
        }
    }
    assert!(client.is_ready());
    for line in lines.filter(|l| !l.c2s && l.text.contains("mining.notify")) {
        for event in client.handle_line(&line.text) {
            if let ClientEvent::Job(j) = event {
                jobs.push(j);
            }
        }
    }
    let first = &jobs[0];
    assert_eq!(first.job_id, "6b0446e900000000");
    assert_eq!(first.difficulty.as_f64(), 0.001);
    assert_eq!(hex::encode(&first.extranonce1), "ea46046b");
    assert_eq!(first.extranonce2_size, 8);
    // The submit that became block 111: nonce ef74d001, extranonce2 zero, ntime 6b0446e9.
    let header = first.header(&[0; 8], 0x6b0446e9, 0xef74d001, first.parts.version);
    assert_eq!(header.to_hex(), block_111_header());
    let check = hashforge_stratum::check_header(header, hashforge_core::Target::MAX);
    assert!(check.meets_network_target);
    assert!(
        jobs.iter().skip(1).any(|j| j.clean_jobs),
        "the new tip came as a clean job"
    );
}

#[test]
fn a_server_session_accepts_every_share_ckpool_accepted_and_finds_block_111() {
    let mut config = ServerConfig::new(hex::decode("ea46046b").unwrap());
    config.extranonce2_size = 8;
    let mut server = ServerSession::new(config);
    let (mut accepted, mut blocks) = (0, Vec::new());
    for line in transcript() {
        if !line.c2s {
            // Replay the pool's own decisions: its difficulty and its jobs.
            if let Ok(FromServer::Call { call, .. }) = parse_server_line(&line.text) {
                match call {
                    ServerCall::SetDifficulty(d) => server.set_difficulty(d),
                    ServerCall::Notify(n) => {
                        server.notify(Arc::new(ServerJob::new(n.job_id, n.parts, n.clean_jobs)));
                    }
                    _ => {}
                }
            }
            continue;
        }
        match server.handle_line(&line.text) {
            Some(ServerEvent::AuthorizeRequest { id, user, .. }) => {
                server.authorize(id, &user, true)
            }
            Some(ServerEvent::Share(share)) => {
                accepted += 1;
                if share.is_block() {
                    blocks.push(share.check.header.to_hex());
                }
                server.accept(share.id.clone());
            }
            Some(ServerEvent::Subscribed { agent }) => {
                assert_eq!(agent.as_deref(), Some("cpuminer/2.5.1"))
            }
            Some(other) => panic!("{}: {other:?}", line.text),
            None => {}
        }
        while server.poll_transmit().is_some() {}
    }
    let submits = transcript()
        .iter()
        .filter(|l| l.c2s && l.text.contains("mining.submit"))
        .count();
    assert_eq!(accepted, submits);
    assert!(blocks.contains(&block_111_header()));
}

#[test]
fn block_840000_written_the_stratum_way_reads_back_to_its_header() {
    let v: Value = serde_json::from_str(&fixture("mainnet-headers.json")).unwrap();
    let block = v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["height"] == 840000)
        .unwrap();
    let real = Header::from_hex(block["header_hex"].as_str().unwrap()).unwrap();
    // What a pool's notify and a miner's submit would carry for it.
    let prevhash = hashforge_core::StratumPrevHash::from_internal(&real.prev_blockhash).to_hex();
    let notify = format!(
        r#"{{"id":null,"method":"mining.notify","params":["840000","{prevhash}","01","02",[],"20000000","{:08X}","{:08x}",true]}}"#,
        real.bits.to_u32(),
        real.time
    );
    let Ok(FromServer::Call {
        call: ServerCall::Notify(n),
        ..
    }) = parse_server_line(&notify)
    else {
        panic!()
    };
    let submit = format!(
        r#"{{"id":4,"method":"mining.submit","params":["w","840000","00","{:08x}","{:08X}","{:08x}"]}}"#,
        real.time,
        real.nonce,
        real.version & 0x1fffe000
    );
    let Ok(FromClient::Request {
        request: Request::Submit(s),
        ..
    }) = parse_client_line(&submit)
    else {
        panic!()
    };
    let version = rolled_version(
        n.parts.version,
        s.version_bits.unwrap(),
        VersionMask::BIP320,
    )
    .unwrap();
    let rebuilt = n
        .parts
        .header_with_merkle_root(real.merkle_root, s.ntime, s.nonce, version);
    assert_eq!(rebuilt.to_hex(), block["header_hex"].as_str().unwrap());
}
