//! A real peer's bytes, replayed: SRI's own translator_sv2 0.6.0 talking to the server
//! session (fixtures/sv2/sri-translator-0.6.0.json, recorded by examples/record_peer.rs).
//! With the recording's key, seed and clock the session answers the handshake byte for
//! byte as it did, so the translator's encrypted frames decrypt again and every share it
//! sent is checked again.

use hashforge_sv2::fuzzing::recording;
use hashforge_sv2::{ChannelKind, Sv2ServerEvent, Sv2ServerSession};
use serde_json::Value;

fn recording() -> (u32, u64, Vec<Vec<u8>>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/sv2/sri-translator-0.6.0.json"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let chunks = v["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| hex::decode(c.as_str().unwrap()).unwrap())
        .collect();
    (
        v["now"].as_u64().unwrap() as u32,
        v["shares"].as_u64().unwrap(),
        chunks,
    )
}

/// Replays the chunks (or, with `bytewise`, every byte on its own) and returns the events.
fn replay(bytewise: bool) -> (Vec<Sv2ServerEvent>, usize) {
    let (now, _, chunks) = recording();
    let mut session = Sv2ServerSession::new(
        recording::server_config(),
        &recording::authority(),
        now,
        recording::SEED,
    )
    .unwrap();
    let (mut events, mut accepted) = (Vec::new(), 0);
    let pieces: Vec<Vec<u8>> = if bytewise {
        chunks.concat().into_iter().map(|b| vec![b]).collect()
    } else {
        chunks
    };
    for piece in pieces {
        for e in session
            .handle_bytes(&piece)
            .expect("the translator's bytes read")
        {
            events.push(e.clone());
            if recording::react(&mut session, e).is_some() {
                accepted += 1;
            }
        }
        session.transmit_into(&mut Vec::new());
    }
    (events, accepted)
}

#[test]
fn sri_translator_session_replays_and_every_share_checks() {
    let (_, shares, _) = recording();
    let (events, accepted) = replay(false);
    let Sv2ServerEvent::SetUp { vendor, .. } = &events[0] else {
        panic!("{:?}", events[0])
    };
    assert_eq!(vendor, "SRI");
    let Sv2ServerEvent::OpenChannel(open) = &events[1] else {
        panic!("{:?}", events[1])
    };
    assert_eq!(open.user, "sri.tproxy.miner1");
    assert_eq!(
        open.kind,
        ChannelKind::Extended {
            min_extranonce_size: 4
        }
    );
    // Every share the translator forwarded passed the same checks again: none refused.
    assert_eq!(accepted as u64, shares);
    assert!(shares > 0);
    assert!(!events
        .iter()
        .any(|e| matches!(e, Sv2ServerEvent::Rejected { .. })));
    // The translator rolls 8 extranonce bytes (its 4 and its miner's 4) after our prefix.
    for e in &events {
        if let Sv2ServerEvent::Share { candidate, .. } = e {
            assert_eq!(candidate.extranonce1, recording::PREFIX);
            assert_eq!(candidate.submit.extranonce2.len(), 8);
            assert!(candidate.check.meets_share_target || candidate.check.meets_network_target);
        }
    }
    assert!(matches!(
        events.last(),
        Some(Sv2ServerEvent::ChannelClosed { channel_id: 1 })
    ));
}

#[test]
fn the_same_bytes_one_at_a_time_read_the_same() {
    let (a, n) = replay(false);
    let (b, m) = replay(true);
    assert_eq!(n, m);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}
