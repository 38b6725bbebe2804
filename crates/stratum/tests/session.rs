//! A whole session, client and server sessions talking to each other, and every way a
//! share can be refused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hashforge_core::{CompactTarget, Difficulty, JobParts, StratumPrevHash};
use hashforge_sha256d::{Scanner, Work};
use hashforge_stratum::{
    ClientConfig, ClientEvent, ClientSession, Job, RejectReason, ServerConfig, ServerEvent,
    ServerJob, ServerSession, Share,
};
use serde_json::Value;

const EN1: [u8; 4] = [0xde, 0xad, 0xbe, 0xef];

fn parts(nbits: u32, ntime: u32) -> JobParts {
    JobParts {
        prevhash: StratumPrevHash([0x11; 32]),
        coinb1: hex::decode("01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff2003a08601").unwrap(),
        coinb2: hex::decode("ffffffff0100f2052a010000001976a914000000000000000000000000000000000000000088ac00000000").unwrap(),
        merkle_branch: vec![[0x22; 32], [0x33; 32]],
        version: 0x2000_0000,
        nbits: CompactTarget(nbits),
        ntime,
    }
}

/// Everything the server says goes to the client and the other way round, until quiet.
/// Returns the client's events and the server's events the pool had to act on.
fn pump(
    client: &mut ClientSession,
    server: &mut ServerSession,
) -> (Vec<ClientEvent>, Vec<ServerEvent>) {
    let (mut ce, mut se) = (Vec::new(), Vec::new());
    loop {
        let mut moved = false;
        while let Some(line) = client.poll_transmit() {
            moved = true;
            if let Some(ev) = server.handle_line(&line) {
                match &ev {
                    ServerEvent::AuthorizeRequest { id, user, .. } => {
                        server.authorize(id.clone(), user, user.starts_with("good"))
                    }
                    ServerEvent::Share(share) => server.accept(share.id.clone()),
                    _ => {}
                }
                se.push(ev);
            }
        }
        while let Some(line) = server.poll_transmit() {
            moved = true;
            ce.extend(client.handle_line(&line));
        }
        if !moved {
            return (ce, se);
        }
    }
}

/// Finds nonces of `job` (version rolled when negotiated) that meet its difficulty.
fn find_shares(job: &Job, count: usize) -> Vec<Share> {
    let en2 = vec![0u8; job.extranonce2_size];
    let header = job.header(&en2, job.parts.ntime, 0, job.parts.version);
    let target = job.difficulty.to_target();
    let mut work = Work::new(header.to_bytes(), target)
        .with_nonces(0, 1 << 20)
        .unwrap();
    if job.version_mask != 0 {
        work = work.with_versions(job.version_mask, 1, 16).unwrap();
    }
    let hits = Scanner::detect().scan(&work);
    assert!(hits.len() >= count, "found only {} shares", hits.len());
    hits.iter()
        .take(count)
        .map(|h| Share {
            job_id: job.job_id.clone(),
            extranonce2: en2.clone(),
            ntime: job.parts.ntime,
            nonce: h.nonce,
            version: h.version,
        })
        .collect()
}

fn handshake(
    user: &str,
) -> (
    ClientSession,
    ServerSession,
    Vec<ClientEvent>,
    Vec<ServerEvent>,
) {
    let mut client = ClientSession::new(ClientConfig::new(user, "x"));
    let mut config = ServerConfig::new(EN1.to_vec());
    config.start_difficulty = 1e-6;
    let mut server = ServerSession::new(config);
    let (ce, se) = pump(&mut client, &mut server);
    (client, server, ce, se)
}

fn last_job(events: &[ClientEvent]) -> Arc<Job> {
    events
        .iter()
        .rev()
        .find_map(|e| {
            if let ClientEvent::Job(j) = e {
                Some(Arc::clone(j))
            } else {
                None
            }
        })
        .expect("a job")
}

#[test]
fn handshake_negotiates_version_rolling_and_authorizes() {
    let (client, server, ce, se) = handshake("good.worker");
    assert_eq!(
        ce[0],
        ClientEvent::Configured {
            version_mask: Some(0x1fffe000)
        }
    );
    assert_eq!(
        ce[1],
        ClientEvent::Subscribed {
            extranonce1: EN1.to_vec(),
            extranonce2_size: 8
        }
    );
    assert_eq!(
        ce[2],
        ClientEvent::Authorized {
            ok: true,
            error: None
        }
    );
    assert!(client.is_ready());
    assert!(matches!(
        se[0],
        ServerEvent::Configured {
            version_mask: Some(0x1fffe000),
            ..
        }
    ));
    assert!(
        matches!(&se[1], ServerEvent::Subscribed { agent: Some(a) } if a.starts_with("hashforge/"))
    );
    assert_eq!(server.workers(), ["good.worker"]);
}

#[test]
fn a_refused_worker_is_told_so() {
    let (client, _, ce, _) = handshake("bad.worker");
    assert!(
        matches!(&ce[2], ClientEvent::Authorized { ok: false, error: Some(e) } if e.code == 24)
    );
    assert!(!client.is_ready());
}

#[test]
fn shares_are_accepted_and_every_refusal_has_its_code() {
    let (mut client, mut server, _, _) = handshake("good.worker");
    server.notify(Arc::new(ServerJob::new(
        "a",
        parts(0x1d00ffff, 1_700_000_000),
        true,
    )));
    let (ce, _) = pump(&mut client, &mut server);
    let job = last_job(&ce);
    assert_eq!(job.difficulty.as_f64(), 1e-6);
    assert_eq!(job.version_mask, 0x1fffe000);
    let shares = find_shares(&job, 2);
    assert_ne!(
        shares[0].version & 0x1fffe000,
        0,
        "the shares roll version bits"
    );

    let now = Instant::now();
    let first = client.submit(shares[0].clone(), now).unwrap();
    let (ce, se) = pump(&mut client, &mut server);
    assert_eq!(
        ce,
        vec![ClientEvent::ShareAccepted {
            id: first,
            share: shares[0].clone()
        }]
    );
    let ServerEvent::Share(candidate) = &se[0] else {
        panic!("{se:?}")
    };
    assert!(!candidate.is_block());
    assert_eq!(candidate.job_difficulty, 1e-6);
    assert_eq!(candidate.check.header.version, shares[0].version);

    // The same share again: duplicate, and its verdict is its own (a new id), not the
    // first one's.
    let again = client.submit(shares[0].clone(), now).unwrap();
    assert_ne!(again, first);
    let (ce, se) = pump(&mut client, &mut server);
    assert!(
        matches!(&ce[0], ClientEvent::ShareRejected { id, error, .. } if error.code == 22 && *id == again)
    );
    assert!(matches!(
        &se[0],
        ServerEvent::Rejected {
            reason: RejectReason::Duplicate,
            ..
        }
    ));

    // A nonce that misses the target: low difficulty.
    let mut low = shares[1].clone();
    low.nonce = low.nonce.wrapping_add(1);
    let check = job.header(&low.extranonce2, low.ntime, low.nonce, low.version);
    assert!(!Difficulty::new(1e-6)
        .unwrap()
        .to_target()
        .is_met_by(&hashforge_sha256d::sha256d_header(&check.to_bytes())));
    client.submit(low, now).unwrap();
    let (ce, _) = pump(&mut client, &mut server);
    assert!(matches!(&ce[0], ClientEvent::ShareRejected { error, .. } if error.code == 23));

    // Hand-written submits for what a well-behaved client never sends.
    let raw = |server: &mut ServerSession, params: &str| -> (Option<ServerEvent>, Value) {
        let ev = server.handle_line(&format!(
            r#"{{"id":77,"method":"mining.submit","params":{params}}}"#
        ));
        let reply: Value = serde_json::from_str(&server.poll_transmit().unwrap()).unwrap();
        assert_eq!(reply["id"], 77);
        (ev, reply)
    };
    let en2 = "0000000000000000";
    let cases = [
        (
            format!(r#"["other.worker","a","{en2}","6553f100","00000000","00002000"]"#),
            24,
            "unauthorized",
        ),
        (
            format!(r#"["good.worker","zz","{en2}","6553f100","00000000","00002000"]"#),
            21,
            "stale",
        ),
        (
            r#"["good.worker","a","0000","6553f100","00000000","00002000"]"#.to_string(),
            20,
            "bad-extranonce2",
        ),
        (
            format!(r#"["good.worker","a","{en2}","6553f100","00000000","e0000000"]"#),
            20,
            "bad-version-bits",
        ),
        (
            format!(r#"["good.worker","a","{en2}","6553f0ff","00000000","00002000"]"#),
            20,
            "bad-ntime",
        ),
        (
            format!(r#"["good.worker","a","{en2}","6554a000","00000000","00002000"]"#),
            20,
            "bad-ntime",
        ),
        (
            format!(r#"["good.worker","a","{en2}","6553f100","0000000g","00002000"]"#),
            20,
            "malformed",
        ),
        (r#"["good.worker","a"]"#.to_string(), 20, "malformed"),
    ];
    for (params, code, name) in cases {
        let (ev, reply) = raw(&mut server, &params);
        assert_eq!(reply["error"][0], code, "{name}: {reply}");
        assert!(reply["error"][1].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(reply["result"], Value::Null);
        assert!(
            matches!(ev, Some(ServerEvent::Rejected { reason, .. }) if reason.name() == name),
            "{name}"
        );
    }
    // Ten refusals, one of them stale, which is not held against the miner.
    assert_eq!(server.reject_streak(), 9);
}

#[test]
fn shares_on_old_jobs_are_judged_at_the_difficulty_those_jobs_carried() {
    let (mut client, mut server, _, _) = handshake("good.worker");
    server.notify(Arc::new(ServerJob::new(
        "old",
        parts(0x1d00ffff, 1_700_000_000),
        true,
    )));
    let (ce, _) = pump(&mut client, &mut server);
    let old = last_job(&ce);
    server.set_difficulty(1000.0);
    server.notify(Arc::new(ServerJob::new(
        "new",
        parts(0x1d00ffff, 1_700_000_030),
        false,
    )));
    let (ce, _) = pump(&mut client, &mut server);
    assert_eq!(
        ce[0],
        ClientEvent::DifficultyChanged(Difficulty::new(1000.0).unwrap())
    );
    assert_eq!(last_job(&ce).difficulty.as_f64(), 1000.0);
    assert_eq!(old.difficulty.as_f64(), 1e-6);

    client
        .submit(find_shares(&old, 1)[0].clone(), Instant::now())
        .unwrap();
    let (ce, _) = pump(&mut client, &mut server);
    assert!(matches!(ce[0], ClientEvent::ShareAccepted { .. }), "{ce:?}");

    // A clean job makes the old one stale.
    server.notify(Arc::new(ServerJob::new(
        "clean",
        parts(0x1d00ffff, 1_700_000_060),
        true,
    )));
    pump(&mut client, &mut server);
    client
        .submit(find_shares(&old, 2)[1].clone(), Instant::now())
        .unwrap();
    let (ce, _) = pump(&mut client, &mut server);
    assert!(
        matches!(&ce[0], ClientEvent::ShareRejected { error, .. } if error.code == 21),
        "{ce:?}"
    );
}

#[test]
fn a_job_on_a_new_tip_goes_out_clean_even_when_built_as_a_refresh() {
    let (mut client, mut server, _, _) = handshake("good.worker");
    assert!(server.notify(Arc::new(ServerJob::new(
        "a",
        parts(0x1d00ffff, 1_700_000_000),
        true,
    ))));
    let (ce, _) = pump(&mut client, &mut server);
    let old = last_job(&ce);
    // The pool moved to a new tip and then refreshed before this connection looked: the
    // refresh is the first job it sees on the new tip.
    let mut moved = parts(0x1d00ffff, 1_700_000_030);
    moved.prevhash = StratumPrevHash([0x44; 32]);
    assert!(server.notify(Arc::new(ServerJob::new("b", moved.clone(), false))));
    let (ce, _) = pump(&mut client, &mut server);
    assert!(last_job(&ce).clean_jobs, "{ce:?}");
    client
        .submit(find_shares(&old, 1)[0].clone(), Instant::now())
        .unwrap();
    let (ce, _) = pump(&mut client, &mut server);
    assert!(
        matches!(&ce[0], ClientEvent::ShareRejected { error, .. } if error.code == 21),
        "{ce:?}"
    );
    // A refresh on the same tip stays a refresh.
    moved.ntime += 30;
    assert!(!server.notify(Arc::new(ServerJob::new("c", moved, false))));
    let (ce, _) = pump(&mut client, &mut server);
    assert!(!last_job(&ce).clean_jobs, "{ce:?}");
}

#[test]
fn a_share_that_meets_the_network_target_is_a_block() {
    let (mut client, mut server, _, _) = handshake("good.worker");
    server.notify(Arc::new(ServerJob::new(
        "r",
        parts(0x207fffff, 1_700_000_000),
        true,
    )));
    let (ce, _) = pump(&mut client, &mut server);
    let job = last_job(&ce);
    let share = find_shares(&job, 1)[0].clone();
    client.submit(share, Instant::now()).unwrap();
    let (_, se) = pump(&mut client, &mut server);
    let ServerEvent::Share(c) = &se[0] else {
        panic!()
    };
    assert_eq!(c.is_block(), c.check.header.meets_own_bits());
}

#[test]
fn not_subscribed_and_unanswered_shares() {
    let mut server = ServerSession::new(ServerConfig::new(EN1.to_vec()));
    let ev = server.handle_line(
        r#"{"id":"x","method":"mining.submit","params":["w","a","00","6553f100","00000000"]}"#,
    );
    assert!(matches!(
        ev,
        Some(ServerEvent::Rejected {
            reason: RejectReason::NotSubscribed,
            ..
        })
    ));
    assert_eq!(
        server.poll_transmit().unwrap(),
        r#"{"id":"x","result":null,"error":[25,"Not subscribed",null]}"#
    );
    server.handle_line(r#"{"id":5,"method":"mining.authorize","params":["w","x"]}"#);
    assert_eq!(
        server.poll_transmit().unwrap(),
        r#"{"id":5,"result":null,"error":[25,"Not subscribed",null]}"#
    );

    let (mut client, mut server, _, _) = handshake("good.worker");
    server.notify(Arc::new(ServerJob::new(
        "a",
        parts(0x1d00ffff, 1_700_000_000),
        true,
    )));
    let (ce, _) = pump(&mut client, &mut server);
    let share = find_shares(&last_job(&ce), 1)[0].clone();
    let now = Instant::now();
    let id = client.submit(share.clone(), now).unwrap();
    assert_eq!(client.shares_in_flight(), 1);
    assert!(client
        .handle_timeout(now + Duration::from_secs(29))
        .is_empty());
    assert_eq!(
        client.handle_timeout(now + Duration::from_secs(31)),
        vec![ClientEvent::ShareTimedOut { id, share }]
    );
    assert_eq!(client.shares_in_flight(), 0);
}

#[test]
fn server_calls_reach_the_client_as_events() {
    let (mut client, mut server, _, _) = handshake("good.worker");
    server.reconnect(Some("pool2.example".into()), Some(3334), Some(5));
    server.show_message("maintenance at noon");
    let (ce, _) = pump(&mut client, &mut server);
    assert_eq!(
        ce[0],
        ClientEvent::Reconnect {
            host: Some("pool2.example".into()),
            port: Some(3334),
            wait_seconds: Some(5)
        }
    );
    assert_eq!(ce[1], ClientEvent::Message("maintenance at noon".into()));

    for (line, expected) in [
        (
            r#"{"id":null,"method":"mining.set_version_mask","params":["00ffe000"]}"#,
            ClientEvent::VersionMaskChanged(0x00ffe000),
        ),
        (
            r#"{"id":null,"method":"mining.set_extranonce","params":["aabbccdd",4]}"#,
            ClientEvent::ExtranonceChanged {
                extranonce1: vec![0xaa, 0xbb, 0xcc, 0xdd],
                extranonce2_size: 4,
            },
        ),
    ] {
        assert_eq!(client.handle_line(line), vec![expected]);
    }
    assert!(client
        .handle_line(r#"{"id":9,"method":"mining.ping","params":[]}"#)
        .is_empty());
    assert_eq!(
        client.poll_transmit().unwrap(),
        r#"{"id":9,"result":"pong","error":null}"#
    );
    // The new extranonce applies from the next job.
    server.notify(Arc::new(ServerJob::new(
        "b",
        parts(0x1d00ffff, 1_700_000_000),
        true,
    )));
    let (ce, _) = pump(&mut client, &mut server);
    let job = last_job(&ce);
    assert_eq!(
        (
            job.extranonce1.as_slice(),
            job.extranonce2_size,
            job.version_mask
        ),
        (&[0xaa, 0xbb, 0xcc, 0xdd][..], 4, 0x00ffe000)
    );
    // Garbage is reported, not fatal.
    assert!(matches!(
        &client.handle_line("{not json")[0],
        ClientEvent::ProtocolError(_)
    ));
    assert!(matches!(
        &client.handle_line(r#"{"id":999,"result":true,"error":null}"#)[0],
        ClientEvent::ProtocolError(_)
    ));
}
