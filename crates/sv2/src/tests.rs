//! The two sessions talking to each other (and to a hand-driven peer) through bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use binary_sv2::{Str0255, U256};
use common_messages_sv2::{Protocol, SetupConnection, MESSAGE_TYPE_SETUP_CONNECTION};
use hashforge_core::{CompactTarget, Difficulty, Header};
use hashforge_stratum::{check_header, ClientEvent, ErrorCode, Job, RejectReason, Share};
use mining_sv2::*;

use crate::fuzzing::sample_job;
use crate::wire::{Frame, Wire};
use crate::*;

const NOW: u32 = 1_750_000_000;

fn authority() -> AuthorityKeypair {
    AuthorityKeypair::from_entropy([9; 32]).unwrap()
}

fn pool() -> Sv2ServerSession {
    Sv2ServerSession::new(Sv2ServerConfig::default(), &authority(), NOW, [1; 32]).unwrap()
}

/// Moves bytes both ways until neither side has anything to say; returns what each side
/// reported.
fn exchange(
    server: &mut Sv2ServerSession,
    client: &mut Sv2ClientSession,
) -> (Vec<Sv2ServerEvent>, Vec<ClientEvent>) {
    let (mut server_events, mut client_events) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let mut bytes = Vec::new();
        client.transmit_into(&mut bytes);
        let quiet = bytes.is_empty();
        server_events.extend(server.handle_bytes(&bytes).unwrap());
        let mut back = Vec::new();
        server.transmit_into(&mut back);
        if quiet && back.is_empty() {
            break;
        }
        client_events.extend(client.handle_bytes(&back, NOW).unwrap());
    }
    (server_events, client_events)
}

/// The pool's side of opening every requested channel and sending it a job.
fn open_all(server: &mut Sv2ServerSession, events: &[Sv2ServerEvent], difficulty: f64) -> u32 {
    let mut channel = 0;
    for e in events {
        if let Sv2ServerEvent::OpenChannel(r) = e {
            channel = server
                .open_channel(r.request_id, vec![0xaa, 0xbb, 0xcc, 0xdd], difficulty)
                .unwrap();
            server.notify(channel, sample_job("7", true)).unwrap();
        }
    }
    channel
}

fn find_share(job: &Job) -> Share {
    let en2 = vec![0x42; job.extranonce2_size];
    let version = job.parts.version | 0x0000_e000;
    for nonce in 0..10_000u32 {
        let header: Header = job.header(&en2, job.parts.ntime, nonce, version);
        if check_header(header, job.difficulty.to_target()).meets_share_target {
            return Share {
                job_id: job.job_id.clone(),
                extranonce2: en2,
                ntime: job.parts.ntime,
                nonce,
                version,
            };
        }
    }
    panic!("no share in 10,000 nonces at difficulty {}", job.difficulty);
}

fn only_job(events: &[ClientEvent]) -> Arc<Job> {
    events
        .iter()
        .rev()
        .find_map(|e| match e {
            ClientEvent::Job(j) => Some(Arc::clone(j)),
            _ => None,
        })
        .expect("a job")
}

#[test]
fn extended_channel_mines_a_share_both_sides_agree_on() {
    let mut server = pool();
    let config = Sv2ClientConfig::new("alice.rig1", authority().public());
    let mut client = Sv2ClientSession::new(config, NOW, [2; 32]).unwrap();
    let (events, _) = exchange(&mut server, &mut client);
    assert!(matches!(events[0], Sv2ServerEvent::SetUp { .. }));
    let Sv2ServerEvent::OpenChannel(request) = &events[1] else {
        panic!("{events:?}")
    };
    assert_eq!(request.user, "alice.rig1");
    assert_eq!(
        request.kind,
        ChannelKind::Extended {
            min_extranonce_size: 4
        }
    );
    let channel = open_all(&mut server, &events, 1e-9);
    let (_, client_events) = exchange(&mut server, &mut client);
    assert!(client_events.contains(&ClientEvent::Authorized {
        ok: true,
        error: None
    }));
    let job = only_job(&client_events);
    assert!(job.clean_jobs, "a job on a new tip is clean");
    assert_eq!(job.extranonce1, vec![0xaa, 0xbb, 0xcc, 0xdd]);
    assert_eq!(job.extranonce2_size, 8);
    assert_eq!(job.version_mask, 0x1fff_e000);
    assert_eq!(job.parts, sample_job("7", true).parts);
    assert!((job.difficulty.as_f64() / 1e-9 - 1.0).abs() < 1e-9);

    let share = find_share(&job);
    client.submit(share.clone(), Instant::now()).unwrap();
    let (events, _) = exchange(&mut server, &mut client);
    let Some(Sv2ServerEvent::Share { key, candidate }) = events.into_iter().next() else {
        panic!("no share")
    };
    assert_eq!(key.channel_id, channel);
    // The pool rebuilt the header the miner hashed, with the rolled version.
    let header = job.header(&share.extranonce2, share.ntime, share.nonce, share.version);
    assert_eq!(candidate.check.header, header);
    assert_eq!(candidate.worker, "alice.rig1");
    assert_eq!(candidate.job.job_id, "7");
    assert_eq!(
        candidate.coinbase(),
        job.parts.coinbase(&job.extranonce1, &share.extranonce2)
    );
    server.accept(key, candidate.credited_difficulty()).unwrap();
    let (_, client_events) = exchange(&mut server, &mut client);
    assert!(matches!(
        client_events[..],
        [ClientEvent::ShareAccepted { .. }]
    ));

    // The same share again is a duplicate, answered with SV2's code and read back as V1's.
    client.submit(share, Instant::now()).unwrap();
    let (events, client_events) = exchange(&mut server, &mut client);
    assert!(matches!(
        &events[..],
        [Sv2ServerEvent::Rejected {
            reason: RejectReason::Duplicate,
            ..
        }]
    ));
    let [ClientEvent::ShareRejected { error, .. }] = &client_events[..] else {
        panic!("{client_events:?}")
    };
    assert_eq!(error.code, ErrorCode::Duplicate as i64);
    assert_eq!(error.message, "duplicate-share");
}

#[test]
fn a_new_target_reissues_the_work_and_old_jobs_keep_their_difficulty() {
    let mut server = pool();
    let config = Sv2ClientConfig::new("w", authority().public());
    let mut client = Sv2ClientSession::new(config, NOW, [2; 32]).unwrap();
    let (events, _) = exchange(&mut server, &mut client);
    let channel = open_all(&mut server, &events, 1e-9);
    let (_, first) = exchange(&mut server, &mut client);
    let old = only_job(&first);
    server.set_difficulty(channel, 4e-9).unwrap();
    let (_, events) = exchange(&mut server, &mut client);
    assert!(events.iter().any(
        |e| matches!(e, ClientEvent::DifficultyChanged(d) if (d.as_f64() / 4e-9 - 1.0).abs() < 1e-9)
    ));
    let new = only_job(&events);
    assert_ne!(new.job_id, old.job_id);
    assert!(!new.clean_jobs);
    assert!((new.difficulty.as_f64() / 4e-9 - 1.0).abs() < 1e-9);
    // A share on the old job is still judged at the old difficulty.
    client.submit(find_share(&old), Instant::now()).unwrap();
    let (events, _) = exchange(&mut server, &mut client);
    let Some(Sv2ServerEvent::Share { candidate, .. }) = events.first() else {
        panic!("{events:?}")
    };
    assert!((candidate.job_difficulty / 1e-9 - 1.0).abs() < 1e-9);
}

#[test]
fn a_pool_with_another_key_is_refused() {
    let mut server = pool();
    let other = AuthorityKeypair::from_entropy([8; 32]).unwrap();
    let config = Sv2ClientConfig::new("w", other.public());
    let mut client = Sv2ClientSession::new(config, NOW, [2; 32]).unwrap();
    let mut bytes = Vec::new();
    client.transmit_into(&mut bytes);
    server.handle_bytes(&bytes).unwrap();
    let mut back = Vec::new();
    server.transmit_into(&mut back);
    assert_eq!(
        client.handle_bytes(&back, NOW).unwrap_err(),
        Sv2Error::WrongKey
    );
    // And the session stays failed.
    assert_eq!(client.handle_bytes(&[], NOW).unwrap_err(), Sv2Error::Closed);
}

#[test]
fn an_expired_certificate_is_refused() {
    let mut server = pool();
    let config = Sv2ClientConfig::new("w", authority().public());
    let mut client = Sv2ClientSession::new(config, NOW, [2; 32]).unwrap();
    let mut bytes = Vec::new();
    client.transmit_into(&mut bytes);
    server.handle_bytes(&bytes).unwrap();
    let mut back = Vec::new();
    server.transmit_into(&mut back);
    let later = NOW + 2 * 3600;
    assert_eq!(
        client.handle_bytes(&back, later).unwrap_err(),
        Sv2Error::WrongKey
    );
}

/// A miner driven by hand, for standard channels and bad input.
struct RawMiner {
    wire: Wire,
}

impl RawMiner {
    fn connect(server: &mut Sv2ServerSession) -> RawMiner {
        let mut wire = Wire::initiator(authority().public(), NOW, [5; 32]).unwrap();
        let mut bytes = Vec::new();
        wire.transmit_into(&mut bytes);
        assert!(server.handle_bytes(&bytes).unwrap().is_empty());
        let mut back = Vec::new();
        server.transmit_into(&mut back);
        wire.push(&back);
        assert!(wire.frames().unwrap().is_empty());
        assert!(wire.is_established());
        RawMiner { wire }
    }

    fn flush(
        &mut self,
        server: &mut Sv2ServerSession,
    ) -> Result<(Vec<Sv2ServerEvent>, Vec<Frame>), Sv2Error> {
        let mut bytes = Vec::new();
        self.wire.transmit_into(&mut bytes);
        let events = server.handle_bytes(&bytes)?;
        let mut back = Vec::new();
        server.transmit_into(&mut back);
        self.wire.push(&back);
        Ok((events, self.wire.frames().unwrap()))
    }

    fn setup(&mut self, server: &mut Sv2ServerSession) {
        let setup = SetupConnection {
            protocol: Protocol::MiningProtocol,
            min_version: 2,
            max_version: 2,
            flags: 0b001,
            endpoint_host: Str0255::try_from("127.0.0.1").unwrap(),
            endpoint_port: 3336,
            vendor: Str0255::try_from("test").unwrap(),
            hardware_version: Str0255::try_from("").unwrap(),
            firmware: Str0255::try_from("").unwrap(),
            device_id: Str0255::try_from("d1").unwrap(),
        };
        self.wire
            .send(
                "SetupConnection",
                setup,
                MESSAGE_TYPE_SETUP_CONNECTION,
                false,
            )
            .unwrap();
        let (events, frames) = self.flush(server).unwrap();
        assert!(
            matches!(&events[..], [Sv2ServerEvent::SetUp { device_id, .. }] if device_id == "d1")
        );
        assert_eq!(frames[0].msg_type, 0x01);
    }
}

#[test]
fn standard_channel_gets_a_merkle_root_and_its_shares_check() {
    let mut server = pool();
    let mut miner = RawMiner::connect(&mut server);
    miner.setup(&mut server);
    let max_target = [0xff; 32];
    miner
        .wire
        .send(
            "OpenStandardMiningChannel",
            OpenStandardMiningChannel {
                request_id: 3,
                user_identity: Str0255::try_from("bob").unwrap(),
                nominal_hash_rate: 1e9,
                max_target: U256::from(&max_target),
            },
            MESSAGE_TYPE_OPEN_STANDARD_MINING_CHANNEL,
            false,
        )
        .unwrap();
    let (events, _) = miner.flush(&mut server).unwrap();
    let Sv2ServerEvent::OpenChannel(r) = &events[0] else {
        panic!()
    };
    assert_eq!(r.kind, ChannelKind::Standard);
    let extranonce = vec![1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0];
    let channel = server.open_channel(3, extranonce.clone(), 1e-9).unwrap();
    let job = sample_job("9", true);
    server.notify(channel, Arc::clone(&job)).unwrap();
    let (_, mut frames) = miner.flush(&mut server).unwrap();
    let types: Vec<u8> = frames.iter().map(|f| f.msg_type).collect();
    assert_eq!(types, [0x11, 0x15, 0x20]);
    let success: OpenStandardMiningChannelSuccess =
        crate::decode("success", &mut frames[0].payload).unwrap();
    assert_eq!(success.extranonce_prefix.as_bytes(), &extranonce[..]);
    let new_job: NewMiningJob = crate::decode("job", &mut frames[1].payload).unwrap();
    assert!(
        new_job.min_ntime.clone().into_inner().is_none(),
        "a future job"
    );
    assert_eq!(
        new_job.merkle_root.to_array(),
        job.parts.merkle_root(&extranonce, &[])
    );
    let job_id = new_job.job_id;
    let prev: SetNewPrevHash = crate::decode("prev", &mut frames[2].payload).unwrap();
    assert_eq!(prev.job_id, job_id);
    assert_eq!(prev.nbits, 0x207f_ffff);

    // Mine it as a header-only device would.
    let target = Difficulty::new(1e-9).unwrap().to_target();
    let (nonce, _) = (0..10_000u32)
        .map(|n| {
            let h = job.parts.header(&extranonce, &[], NOW, n, 0x2000_0000);
            (n, check_header(h, target))
        })
        .find(|(_, c)| c.meets_share_target)
        .unwrap();
    let submit = |miner: &mut RawMiner, channel_id: u32, seq: u32| {
        miner
            .wire
            .send(
                "SubmitSharesStandard",
                SubmitSharesStandard {
                    channel_id,
                    sequence_number: seq,
                    job_id,
                    nonce,
                    ntime: NOW,
                    version: 0x2000_0000,
                },
                MESSAGE_TYPE_SUBMIT_SHARES_STANDARD,
                true,
            )
            .unwrap();
    };
    submit(&mut miner, channel, 1);
    let (events, _) = miner.flush(&mut server).unwrap();
    let Some(Sv2ServerEvent::Share { key, candidate }) = events.first() else {
        panic!("{events:?}")
    };
    assert_eq!(key.sequence_number, 1);
    assert_eq!(candidate.extranonce1, extranonce);
    assert!(candidate.submit.extranonce2.is_empty());
    assert_eq!(candidate.job.parts.nbits, CompactTarget(0x207f_ffff));

    // A channel that does not exist closes the connection.
    submit(&mut miner, channel + 40, 2);
    assert_eq!(
        miner.flush(&mut server).unwrap_err(),
        Sv2Error::UnknownChannel(channel + 40)
    );
}

#[test]
fn bad_input_is_a_typed_error_never_a_panic() {
    // A message before SetupConnection.
    let mut server = pool();
    let mut miner = RawMiner::connect(&mut server);
    miner.wire.send_raw(0x10, false, &[0; 8]).unwrap();
    assert!(matches!(
        miner.flush(&mut server),
        Err(Sv2Error::NotSetUp(_))
    ));

    // An unknown message type after it.
    let mut server = pool();
    let mut miner = RawMiner::connect(&mut server);
    miner.setup(&mut server);
    miner.wire.send_raw(0x7e, false, &[1, 2, 3]).unwrap();
    assert!(matches!(
        miner.flush(&mut server),
        Err(Sv2Error::UnexpectedMessage { msg_type: 0x7e, .. })
    ));

    // A string whose length byte runs past the frame; and bytes left over after a message.
    let mut server = pool();
    let mut miner = RawMiner::connect(&mut server);
    miner.setup(&mut server);
    miner
        .wire
        .send_raw(0x13, false, &[1, 0, 0, 0, 200, b'a'])
        .unwrap();
    assert!(matches!(
        miner.flush(&mut server),
        Err(Sv2Error::Malformed { .. })
    ));
    let mut server = pool();
    let mut miner = RawMiner::connect(&mut server);
    miner.setup(&mut server);
    let mut close = vec![5, 0, 0, 0, 0];
    close.push(0xee);
    miner.wire.send_raw(0x18, true, &close).unwrap();
    assert!(matches!(
        miner.flush(&mut server),
        Err(Sv2Error::Malformed { .. })
    ));

    // A frame past the size limit.
    let mut server = pool();
    let mut miner = RawMiner::connect(&mut server);
    miner.setup(&mut server);
    miner
        .wire
        .send_raw(0x1b, true, &vec![0; MAX_FRAME + 1])
        .unwrap();
    assert_eq!(
        miner.flush(&mut server).unwrap_err(),
        Sv2Error::FrameTooLong { max: MAX_FRAME }
    );

    // Noise: any 64 bytes are some ephemeral key, but what follows does not decrypt.
    let mut server = pool();
    server.handle_bytes(&[0x5a; 64]).unwrap();
    assert!(matches!(
        server.handle_bytes(&[0x5a; 22]),
        Err(Sv2Error::Decrypt(_))
    ));
    assert_eq!(server.handle_bytes(&[1]).unwrap_err(), Sv2Error::Closed);
}

#[test]
fn bytes_may_arrive_one_at_a_time() {
    let mut server = pool();
    let config = Sv2ClientConfig::new("w", authority().public());
    let mut client = Sv2ClientSession::new(config, NOW, [2; 32]).unwrap();
    let mut events = Vec::new();
    for _ in 0..10 {
        let mut bytes = Vec::new();
        client.transmit_into(&mut bytes);
        for b in &bytes {
            events.extend(server.handle_bytes(std::slice::from_ref(b)).unwrap());
        }
        let mut back = Vec::new();
        server.transmit_into(&mut back);
        for b in &back {
            client.handle_bytes(std::slice::from_ref(b), NOW).unwrap();
        }
    }
    assert!(events
        .iter()
        .any(|e| matches!(e, Sv2ServerEvent::OpenChannel(_))));
}

#[test]
fn unanswered_shares_time_out() {
    let mut server = pool();
    let config = Sv2ClientConfig::new("w", authority().public());
    let mut client = Sv2ClientSession::new(config, NOW, [2; 32]).unwrap();
    let (events, _) = exchange(&mut server, &mut client);
    open_all(&mut server, &events, 1e-9);
    let (_, events) = exchange(&mut server, &mut client);
    let job = only_job(&events);
    let t0 = Instant::now();
    client.submit(find_share(&job), t0).unwrap();
    assert_eq!(client.next_timeout(), Some(t0 + Duration::from_secs(30)));
    let out = client.handle_timeout(t0 + Duration::from_secs(31));
    assert!(matches!(out[..], [ClientEvent::ShareTimedOut { .. }]));
}

#[test]
fn fuzz_entry_points_take_random_bytes() {
    use proptest::prelude::*;
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    });
    runner
        .run(&proptest::collection::vec(any::<u8>(), 0..600), |bytes| {
            crate::fuzzing::server_reads(&bytes);
            crate::fuzzing::jd_server_reads(&bytes);
            crate::fuzzing::tp_server_reads(&bytes);
            crate::fuzzing::client_reads(&bytes);
            Ok(())
        })
        .unwrap();
}

#[test]
fn the_target_sent_never_exceeds_the_miners_max_target() {
    let mut server = pool();
    let mut miner = RawMiner::connect(&mut server);
    miner.setup(&mut server);
    // SRI's translator asks for no easier than its weakest miner can take (this is what
    // translator_sv2 0.6.0 sent for 5 MH/s at 60 shares a minute).
    let max = Difficulty::new(0.0047).unwrap().to_target();
    let max_bytes = max.to_le_bytes();
    miner
        .wire
        .send(
            "OpenExtendedMiningChannel",
            OpenExtendedMiningChannel {
                request_id: 1,
                user_identity: Str0255::try_from("proxy").unwrap(),
                nominal_hash_rate: 5e6,
                max_target: U256::from(&max_bytes),
                min_extranonce_size: 4,
            },
            MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL,
            false,
        )
        .unwrap();
    miner.flush(&mut server).unwrap();
    let channel = server.open_channel(1, vec![1, 2, 3, 4], 1e-9).unwrap();
    server.set_difficulty(channel, 2e-9).unwrap();
    let (_, mut frames) = miner.flush(&mut server).unwrap();
    let success: OpenExtendedMiningChannelSuccess =
        crate::decode("success", &mut frames[0].payload).unwrap();
    assert_eq!(success.target.to_array(), max_bytes);
    let set: SetTarget = crate::decode("set target", &mut frames[1].payload).unwrap();
    assert_eq!(set.maximum_target.to_array(), max_bytes);
}

/// A Job Declarator Client played on a bare wire against the pool's JDS session.
struct RawJdc {
    wire: Wire,
}

impl RawJdc {
    fn connect(server: &mut Sv2JdServerSession) -> RawJdc {
        let mut wire = Wire::initiator(authority().public(), NOW, [7; 32]).unwrap();
        let mut bytes = Vec::new();
        wire.transmit_into(&mut bytes);
        assert!(server.handle_bytes(&bytes).unwrap().is_empty());
        let mut back = Vec::new();
        server.transmit_into(&mut back);
        wire.push(&back);
        assert!(wire.frames().unwrap().is_empty());
        RawJdc { wire }
    }

    fn send<T: binary_sv2::Serialize + binary_sv2::GetSize>(
        &mut self,
        server: &mut Sv2JdServerSession,
        message: T,
        msg_type: u8,
    ) -> Result<(Vec<JdServerEvent>, Vec<Frame>), Sv2Error> {
        self.wire.send("test", message, msg_type, false).unwrap();
        let mut bytes = Vec::new();
        self.wire.transmit_into(&mut bytes);
        let events = server.handle_bytes(&bytes);
        let mut back = Vec::new();
        server.transmit_into(&mut back);
        self.wire.push(&back);
        let frames = self.wire.frames().unwrap();
        events.map(|e| (e, frames))
    }

    fn flush(&mut self, server: &mut Sv2JdServerSession) -> Vec<Frame> {
        let mut back = Vec::new();
        server.transmit_into(&mut back);
        self.wire.push(&back);
        self.wire.frames().unwrap()
    }
}

fn jds() -> Sv2JdServerSession {
    Sv2JdServerSession::new(&authority(), Duration::from_secs(3600), NOW, [6; 32]).unwrap()
}

fn jd_setup(protocol: Protocol) -> SetupConnection<'static> {
    SetupConnection {
        protocol,
        min_version: 2,
        max_version: 2,
        flags: 1,
        endpoint_host: Str0255::try_from("127.0.0.1").unwrap(),
        endpoint_port: 3337,
        vendor: Str0255::try_from("jdc").unwrap(),
        hardware_version: Str0255::try_from("").unwrap(),
        firmware: Str0255::try_from("").unwrap(),
        device_id: Str0255::try_from("").unwrap(),
    }
}

#[test]
fn the_job_declarator_server_answers_only_what_was_asked() {
    use job_declaration_sv2::*;
    // A mining SetupConnection on the JDS is refused, with the reason sent first.
    let mut server = jds();
    let mut jdc = RawJdc::connect(&mut server);
    jdc.wire
        .send(
            "setup",
            jd_setup(Protocol::MiningProtocol),
            MESSAGE_TYPE_SETUP_CONNECTION,
            false,
        )
        .unwrap();
    let mut bytes = Vec::new();
    jdc.wire.transmit_into(&mut bytes);
    let refused = server.handle_bytes(&bytes);
    assert!(matches!(refused, Err(Sv2Error::SetupRefused(_))));
    assert_eq!(
        jdc.flush(&mut server)[0].msg_type,
        common_messages_sv2::MESSAGE_TYPE_SETUP_CONNECTION_ERROR
    );

    let mut server = jds();
    let mut jdc = RawJdc::connect(&mut server);
    let (events, frames) = jdc
        .send(
            &mut server,
            jd_setup(Protocol::JobDeclarationProtocol),
            MESSAGE_TYPE_SETUP_CONNECTION,
        )
        .unwrap();
    assert!(matches!(
        &events[..],
        [JdServerEvent::SetUp {
            declare_tx_data: true,
            ..
        }]
    ));
    assert_eq!(frames[0].msg_type, 0x01);
    let allocate = AllocateMiningJobToken {
        user_identifier: Str0255::try_from("u").unwrap(),
        request_id: 7,
    };
    let (events, _) = jdc
        .send(
            &mut server,
            allocate,
            MESSAGE_TYPE_ALLOCATE_MINING_JOB_TOKEN,
        )
        .unwrap();
    assert_eq!(
        events,
        [JdServerEvent::AllocateToken {
            request_id: 7,
            user: "u".into()
        }]
    );
    server.allocated(7, &[1; 16], &[0]).unwrap();
    let mut frames = jdc.flush(&mut server);
    let success: AllocateMiningJobTokenSuccess = decode("success", &mut frames[0].payload).unwrap();
    assert_eq!(success.mining_job_token.as_bytes(), &[1; 16]);
    assert!(
        server.allocated(7, &[1; 16], &[0]).is_err(),
        "answered once"
    );

    let wtxids = vec![U256::from(&[3u8; 32]), U256::from(&[4u8; 32])];
    let declare = DeclareMiningJob {
        request_id: 8,
        mining_job_token: binary_sv2::B0255::try_from(&[1u8; 16][..]).unwrap(),
        version: 0x2000_0000,
        coinbase_tx_prefix: binary_sv2::B064K::try_from(&[1u8, 2][..]).unwrap(),
        coinbase_tx_suffix: binary_sv2::B064K::try_from(&[3u8][..]).unwrap(),
        wtxid_list: binary_sv2::Seq064K::new(wtxids).unwrap(),
        excess_data: binary_sv2::B064K::try_from(&[][..]).unwrap(),
    };
    let (events, _) = jdc
        .send(
            &mut server,
            declare.clone(),
            MESSAGE_TYPE_DECLARE_MINING_JOB,
        )
        .unwrap();
    let [JdServerEvent::Declare(d)] = &events[..] else {
        panic!("{events:?}");
    };
    assert_eq!(d.wtxids, vec![[3; 32], [4; 32]]);
    assert_eq!(
        (d.coinbase_prefix.as_slice(), d.coinbase_suffix.as_slice()),
        (&[1, 2][..], &[3][..])
    );
    // A mainnet-sized declaration (6,000 transactions: 192 KB of wtxids) is one frame.
    let hashes: Vec<[u8; 32]> = (0..6000u32)
        .map(|i| {
            let mut w = [0u8; 32];
            w[..4].copy_from_slice(&i.to_le_bytes());
            w
        })
        .collect();
    let many: Vec<U256> = hashes.iter().map(U256::from).collect();
    let big = DeclareMiningJob {
        request_id: 80,
        wtxid_list: binary_sv2::Seq064K::new(many).unwrap(),
        ..declare.clone()
    };
    let (events, _) = jdc
        .send(&mut server, big, MESSAGE_TYPE_DECLARE_MINING_JOB)
        .unwrap();
    assert!(matches!(&events[..], [JdServerEvent::Declare(d)] if d.wtxids.len() == 6000));
    // The same request id again while it waits is a protocol error.
    assert!(jdc
        .send(&mut server, declare, MESSAGE_TYPE_DECLARE_MINING_JOB)
        .is_err());

    // Transactions: only for a declaration asked about, and as many as asked.
    let mut server = jds();
    let mut jdc = RawJdc::connect(&mut server);
    jdc.send(
        &mut server,
        jd_setup(Protocol::JobDeclarationProtocol),
        MESSAGE_TYPE_SETUP_CONNECTION,
    )
    .unwrap();
    let two = |request_id| ProvideMissingTransactionsSuccess {
        request_id,
        transaction_list: binary_sv2::Seq064K::new(vec![
            binary_sv2::B016M::try_from(&[1u8][..]).unwrap(),
            binary_sv2::B016M::try_from(&[2u8][..]).unwrap(),
        ])
        .unwrap(),
    };
    assert!(jdc
        .send(
            &mut server,
            two(9),
            MESSAGE_TYPE_PROVIDE_MISSING_TRANSACTIONS_SUCCESS
        )
        .is_err());

    let mut server = jds();
    let mut jdc = RawJdc::connect(&mut server);
    jdc.send(
        &mut server,
        jd_setup(Protocol::JobDeclarationProtocol),
        MESSAGE_TYPE_SETUP_CONNECTION,
    )
    .unwrap();
    let declare = DeclareMiningJob {
        request_id: 9,
        mining_job_token: binary_sv2::B0255::try_from(&[1u8; 16][..]).unwrap(),
        version: 0x2000_0000,
        coinbase_tx_prefix: binary_sv2::B064K::try_from(&[1u8][..]).unwrap(),
        coinbase_tx_suffix: binary_sv2::B064K::try_from(&[3u8][..]).unwrap(),
        wtxid_list: binary_sv2::Seq064K::new(vec![U256::from(&[3u8; 32])]).unwrap(),
        excess_data: binary_sv2::B064K::try_from(&[][..]).unwrap(),
    };
    jdc.send(&mut server, declare, MESSAGE_TYPE_DECLARE_MINING_JOB)
        .unwrap();
    server.ask_transactions(9, &[0]).unwrap();
    let mut frames = jdc.flush(&mut server);
    let asked: ProvideMissingTransactions = decode("asked", &mut frames[0].payload).unwrap();
    assert_eq!(asked.unknown_tx_position_list.into_inner(), vec![0]);
    let wrong = jdc.send(
        &mut server,
        two(9),
        MESSAGE_TYPE_PROVIDE_MISSING_TRANSACTIONS_SUCCESS,
    );
    assert!(
        matches!(&wrong, Err(Sv2Error::Malformed { reason, .. }) if reason == "2 transactions for 1 asked"),
        "{wrong:?}"
    );

    // A mining message is not the JDS's.
    let mut server = jds();
    let mut jdc = RawJdc::connect(&mut server);
    jdc.send(
        &mut server,
        jd_setup(Protocol::JobDeclarationProtocol),
        MESSAGE_TYPE_SETUP_CONNECTION,
    )
    .unwrap();
    let close = CloseChannel {
        channel_id: 1,
        reason_code: Str0255::try_from("x").unwrap(),
    };
    assert!(matches!(
        jdc.send(&mut server, close, MESSAGE_TYPE_CLOSE_CHANNEL),
        Err(Sv2Error::UnexpectedMessage { .. })
    ));
}

#[test]
fn the_miner_takes_jobs_sent_to_its_channels_group() {
    // A pool (SRI's JDC does this) that sends its jobs and tips to the group channel.
    let config = Sv2ClientConfig::new("w", authority().public());
    let mut client = Sv2ClientSession::new(config, NOW, [2; 32]).unwrap();
    let mut pool = Wire::responder(&authority(), Duration::from_secs(3600), NOW, [3; 32]).unwrap();
    let mut bytes = Vec::new();
    client.transmit_into(&mut bytes);
    pool.push(&bytes);
    pool.frames().unwrap();
    let relay = |pool: &mut Wire, client: &mut Sv2ClientSession| {
        let mut bytes = Vec::new();
        pool.transmit_into(&mut bytes);
        let events = client.handle_bytes(&bytes, NOW).unwrap();
        let mut back = Vec::new();
        client.transmit_into(&mut back);
        pool.push(&back);
        pool.frames().unwrap();
        events
    };
    relay(&mut pool, &mut client);
    pool.send(
        "success",
        common_messages_sv2::SetupConnectionSuccess {
            used_version: 2,
            flags: 0,
        },
        common_messages_sv2::MESSAGE_TYPE_SETUP_CONNECTION_SUCCESS,
        false,
    )
    .unwrap();
    relay(&mut pool, &mut client);
    let target = [0xff; 32];
    pool.send(
        "open",
        OpenExtendedMiningChannelSuccess {
            request_id: 1,
            channel_id: 2,
            target: U256::from(&target),
            extranonce_size: 8,
            extranonce_prefix: binary_sv2::B032::try_from(&[1u8, 2, 3, 4][..]).unwrap(),
            group_channel_id: 1,
        },
        MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL_SUCCESS,
        CHANNEL_BIT_OPEN_EXTENDED_MINING_CHANNEL_SUCCESS,
    )
    .unwrap();
    relay(&mut pool, &mut client);
    let job = sample_job("1", true);
    pool.send(
        "job",
        NewExtendedMiningJob {
            channel_id: 1,
            job_id: 5,
            min_ntime: binary_sv2::Sv2Option::new(None),
            version: job.parts.version,
            version_rolling_allowed: true,
            merkle_path: binary_sv2::Seq0255::new(Vec::new()).unwrap(),
            coinbase_tx_prefix: binary_sv2::B064K::try_from(&job.parts.coinb1[..]).unwrap(),
            coinbase_tx_suffix: binary_sv2::B064K::try_from(&job.parts.coinb2[..]).unwrap(),
        },
        MESSAGE_TYPE_NEW_EXTENDED_MINING_JOB,
        CHANNEL_BIT_NEW_EXTENDED_MINING_JOB,
    )
    .unwrap();
    let prev = [0x11; 32];
    pool.send(
        "prev",
        SetNewPrevHash {
            channel_id: 1,
            job_id: 5,
            prev_hash: U256::from(&prev),
            min_ntime: NOW,
            nbits: 0x207f_ffff,
        },
        MESSAGE_TYPE_MINING_SET_NEW_PREV_HASH,
        CHANNEL_BIT_MINING_SET_NEW_PREV_HASH,
    )
    .unwrap();
    let events = relay(&mut pool, &mut client);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ClientEvent::Job(j) if j.job_id == "5")),
        "{events:?}"
    );
    // A channel that is neither its own nor its group is still an error.
    pool.send(
        "target",
        SetTarget {
            channel_id: 9,
            maximum_target: U256::from(&target),
        },
        MESSAGE_TYPE_SET_TARGET,
        CHANNEL_BIT_SET_TARGET,
    )
    .unwrap();
    let mut bytes = Vec::new();
    pool.transmit_into(&mut bytes);
    assert_eq!(
        client.handle_bytes(&bytes, NOW).unwrap_err(),
        Sv2Error::UnknownChannel(9)
    );
}
