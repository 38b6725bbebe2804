//! Every message written and read back, and the parsers fed garbage.

use hashforge_core::{CompactTarget, JobParts, StratumPrevHash};
use hashforge_stratum::message::{
    parse_client_line, parse_server_line, Configure, FromClient, FromServer, Id, Notify, Request,
    Response, ServerCall, StratumError, Submit,
};
use hashforge_stratum::{fuzzing, ErrorCode, LineBuffer};
use proptest::prelude::*;
use serde_json::json;

fn id() -> impl Strategy<Value = Id> {
    prop_oneof![
        any::<i64>().prop_map(Id::Num),
        "[a-z0-9]{0,8}".prop_map(Id::Str),
        Just(Id::Null)
    ]
}

fn difficulty() -> impl Strategy<Value = f64> {
    prop_oneof![
        1e-9f64..1e12,
        Just(1.0),
        Just(0.001),
        (1u32..1 << 20).prop_map(f64::from)
    ]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (
            any::<Option<u32>>(),
            proptest::option::of(0u32..32),
            proptest::option::of(difficulty())
        )
            .prop_map(|(m, b, d)| {
                let mut extensions = vec!["version-rolling".to_string()];
                if d.is_some() {
                    extensions.push("minimum-difficulty".into());
                }
                Request::Configure(Configure {
                    extensions,
                    version_rolling_mask: m,
                    version_rolling_min_bit_count: b,
                    minimum_difficulty: d,
                })
            }),
        (
            proptest::option::of("[ -~]{1,20}"),
            proptest::option::of("[0-9a-f]{1,16}")
        )
            .prop_map(|(agent, session)| Request::Subscribe {
                session: session.filter(|_| agent.is_some()),
                agent
            }),
        ("[ -~]{1,40}", "[ -~]{0,10}")
            .prop_map(|(user, password)| Request::Authorize { user, password }),
        (
            "[a-zA-Z0-9.]{1,30}",
            "[0-9a-f]{1,16}",
            bytes(16),
            any::<u32>(),
            any::<u32>(),
            any::<Option<u32>>()
        )
            .prop_map(
                |(worker, job_id, extranonce2, ntime, nonce, version_bits)| {
                    Request::Submit(Submit {
                        worker,
                        job_id,
                        extranonce2,
                        ntime,
                        nonce,
                        version_bits,
                    })
                }
            ),
        difficulty().prop_map(Request::SuggestDifficulty),
        Just(Request::ExtranonceSubscribe),
    ]
}

fn call() -> impl Strategy<Value = ServerCall> {
    let notify = (
        "[0-9a-f]{1,16}",
        any::<[u8; 32]>(),
        bytes(200),
        bytes(200),
        prop::collection::vec(any::<[u8; 32]>(), 0..12),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<bool>(),
    )
        .prop_map(
            |(job_id, prev, coinb1, coinb2, merkle_branch, version, nbits, ntime, clean_jobs)| {
                ServerCall::Notify(Notify {
                    job_id,
                    parts: JobParts {
                        prevhash: StratumPrevHash(prev),
                        coinb1,
                        coinb2,
                        merkle_branch,
                        version,
                        nbits: CompactTarget(nbits),
                        ntime,
                    },
                    clean_jobs,
                })
            },
        );
    prop_oneof![
        notify,
        difficulty().prop_map(ServerCall::SetDifficulty),
        (bytes(8), 0usize..16).prop_map(|(extranonce1, extranonce2_size)| {
            ServerCall::SetExtranonce {
                extranonce1,
                extranonce2_size,
            }
        }),
        any::<u32>().prop_map(ServerCall::SetVersionMask),
        (
            proptest::option::of("[a-z.]{1,20}"),
            proptest::option::of(1u16..),
            proptest::option::of(0u64..3600)
        )
            .prop_map(|(host, port, wait)| {
                // Positional params: a later one only with the earlier ones.
                let port = port.filter(|_| host.is_some());
                let wait_seconds = wait.filter(|_| port.is_some());
                ServerCall::Reconnect {
                    host,
                    port,
                    wait_seconds,
                }
            }),
        "[ -~]{0,40}".prop_map(ServerCall::ShowMessage),
        Just(ServerCall::Ping),
        Just(ServerCall::GetVersion),
    ]
}

proptest! {
    #[test]
    fn requests_round_trip(id in id(), request in request()) {
        let line = request.to_line(&id);
        prop_assert_eq!(parse_client_line(&line).unwrap(), FromClient::Request { id, request });
    }

    #[test]
    fn server_calls_round_trip(id in id(), call in call()) {
        let line = call.to_line(&id);
        prop_assert_eq!(parse_server_line(&line).unwrap(), FromServer::Call { id, call });
    }

    #[test]
    fn responses_round_trip(id in id(), ok in any::<bool>(), code in 20i64..26, message in "[ -~]{0,30}") {
        let r = if ok { Response::ok(id, json!(true)) } else { Response::err(id, StratumError { code, message }) };
        prop_assert_eq!(parse_server_line(&r.to_line()).unwrap(), FromServer::Response(r.clone()));
        prop_assert_eq!(parse_client_line(&r.to_line()).unwrap(), FromClient::Response(r));
    }

    #[test]
    fn sessions_survive_arbitrary_bytes(data in bytes(2000)) {
        fuzzing::server_reads(&data);
        fuzzing::client_reads(&data);
    }

    #[test]
    fn sessions_survive_mangled_messages(id in id(), request in request(), call in call(), cut in 0usize..400, flip in any::<u8>()) {
        for line in [request.to_line(&id), call.to_line(&id)] {
            let mut b = line.into_bytes();
            let at = cut % b.len();
            b[at] ^= flip;
            b.push(b'\n');
            fuzzing::server_reads(&b);
            fuzzing::client_reads(&b);
            fuzzing::server_reads(&b[..at]);
        }
    }

    #[test]
    fn framing_yields_the_same_lines_however_the_bytes_are_split(lines in prop::collection::vec("[ -~]{1,50}", 1..10), split in any::<usize>()) {
        let stream: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\n").into_bytes()).collect();
        let at = split % stream.len();
        let mut b = LineBuffer::default();
        b.push(&stream[..at]);
        b.push(&stream[at..]);
        let got: Vec<String> = std::iter::from_fn(|| b.next_line()).map(Result::unwrap).collect();
        let want: Vec<String> = lines.into_iter().filter(|l| !l.trim().is_empty()).collect();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn variants_real_peers_send_are_accepted() {
    for line in [
        // BIP 310 form, then the object alone, the object as params, a numeric mask.
        r#"{"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"1FFFE000","version-rolling.min-bit-count":2}]}"#,
        r#"{"id":1,"method":"mining.configure","params":[{"version-rolling.mask":"1fffe000"}]}"#,
        r#"{"id":1,"method":"mining.configure","params":{"version-rolling.mask":"0x1fffe000"}}"#,
        r#"{"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":536862720}]}"#,
    ] {
        let Ok(FromClient::Request {
            request: Request::Configure(c),
            ..
        }) = parse_client_line(line)
        else {
            panic!("{line}")
        };
        assert!(c.wants("version-rolling"), "{line}");
        assert_eq!(c.version_rolling_mask, Some(0x1fffe000), "{line}");
    }
    for (line, agent, session) in [
        (
            r#"{"id":1,"method":"mining.subscribe","params":[]}"#,
            None,
            None,
        ),
        (
            r#"{"id":"s","method":"mining.subscribe","params":["bmminer/2.0.0",null]}"#,
            Some("bmminer/2.0.0"),
            None,
        ),
        (
            r#"{"id":1,"method":"mining.subscribe","params":["NiceHash/1.0.0","abc","pool.example",3333]}"#,
            Some("NiceHash/1.0.0"),
            Some("abc"),
        ),
    ] {
        let Ok(FromClient::Request {
            request:
                Request::Subscribe {
                    agent: a,
                    session: s,
                },
            ..
        }) = parse_client_line(line)
        else {
            panic!("{line}")
        };
        assert_eq!((a.as_deref(), s.as_deref()), (agent, session), "{line}");
    }
    let Ok(FromClient::Request {
        request: Request::Authorize { password, .. },
        ..
    }) = parse_client_line(r#"{"id":2,"method":"mining.authorize","params":["user"]}"#)
    else {
        panic!()
    };
    assert_eq!(password, "");
    let Ok(FromClient::Request {
        request: Request::Submit(s),
        ..
    }) = parse_client_line(
        r#"{"params":["w","j","DEADBEEF","6553F100","ABCDEF01","2000"],"id":7,"method":"mining.submit"}"#,
    )
    else {
        panic!()
    };
    assert_eq!(
        (s.extranonce2, s.ntime, s.nonce, s.version_bits),
        (
            vec![0xde, 0xad, 0xbe, 0xef],
            0x6553f100,
            0xabcdef01,
            Some(0x2000)
        )
    );
    // Errors as objects, as some pools send them.
    let Ok(FromServer::Response(r)) = parse_server_line(
        r#"{"id":4,"result":null,"error":{"code":23,"message":"Low difficulty"}}"#,
    ) else {
        panic!()
    };
    assert_eq!(
        r.error,
        Some(StratumError {
            code: ErrorCode::LowDifficulty as i64,
            message: "Low difficulty".into()
        })
    );
}

#[test]
fn malformed_messages_are_typed_errors_that_keep_the_id() {
    for (line, has_id) in [
        ("not json", false),
        ("[1,2,3]", false),
        (r#"{"id":[1],"method":"mining.subscribe"}"#, false),
        (r#"{"id":3,"method":"mining.fly","params":[]}"#, true),
        (
            r#"{"id":3,"method":"mining.submit","params":["w","j","00","6553f1","00000000"]}"#,
            true,
        ),
        (
            r#"{"id":3,"method":"mining.suggest_difficulty","params":[-1]}"#,
            true,
        ),
        (r#"{"id":3,"method":"mining.authorize","params":[]}"#, true),
    ] {
        let err = parse_client_line(line).unwrap_err();
        assert_eq!(err.id.is_some(), has_id, "{line}: {err}");
        assert!(!err.to_string().is_empty());
    }
    for line in [
        r#"{"id":null,"method":"mining.notify","params":["j","00","01","02",[],"20000000","207fffff","6553f100",true]}"#,
        r#"{"id":null,"method":"mining.set_difficulty","params":["lots"]}"#,
        r#"{"id":null,"method":"mining.set_difficulty","params":[0]}"#,
        r#"{"id":null,"method":"mining.set_extranonce","params":["zz",4]}"#,
    ] {
        assert!(parse_server_line(line).is_err(), "{line}");
    }
}
