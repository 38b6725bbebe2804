//! Stratum V2 job declaration end to end on loopback: a Job Declarator Client played
//! message by message on SRI's message types (the flow of SRI's `jd_client`: a token,
//! a declared job, the transactions the pool asks for, SetCustomMiningJob on a mining
//! connection that asked for work selection) against the pool's Job Declarator Server, with
//! real shares and real regtest blocks built from the declared coinbase.

use std::net::SocketAddr;
use std::time::Duration;

use bitcoin::blockdata::constants::genesis_block;
use bitcoin::hashes::Hash;
use bitcoin::script::Builder;
use bitcoin::{
    absolute, consensus, transaction, Amount, Network, OutPoint, ScriptBuf, Sequence, Transaction,
    TxIn, TxOut, Txid, Witness,
};
use hashforge_core::{
    witness_commitment_script, CompactTarget, Difficulty, JobParts, StratumPrevHash,
};
use hashforge_pool::testing::{exported_blocks, fresh_dir, http_get, scan_job, Sv2Peer};
use hashforge_pool::{Pool, PoolConfig};
use hashforge_sha256d::Scanner;
use hashforge_stratum::Job;
use hashforge_sv2::decode;
use hashforge_sv2::sri::binary_sv2::{Seq0255, Seq064K, Str0255, B0255, B032, B064K, U256};
use hashforge_sv2::sri::common_messages_sv2::*;
use hashforge_sv2::sri::job_declaration_sv2::*;
use hashforge_sv2::sri::mining_sv2::*;

const WAIT: Duration = Duration::from_secs(10);
const TAG: &[u8] = b"/my-own-template/";

fn config(dir: &std::path::Path) -> PoolConfig {
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut c = PoolConfig {
        stratum: local,
        sv2: Some(local),
        sv2_jd: Some(local),
        http: Some(local),
        data_dir: dir.to_path_buf(),
        start_difficulty: 1e-6,
        ..PoolConfig::default()
    };
    c.vardiff.min = 1e-7;
    c
}

fn text(s: &'static str) -> Str0255<'static> {
    Str0255::try_from(s).unwrap()
}

/// SRI's message types borrow their fields; a test's few messages may keep theirs.
fn leak(bytes: Vec<u8>) -> &'static [u8] {
    Box::leak(bytes.into_boxed_slice())
}

fn u256(hash: [u8; 32]) -> U256<'static> {
    U256::from(&*Box::leak(Box::new(hash)))
}

fn setup(protocol: Protocol, flags: u32) -> SetupConnection<'static> {
    SetupConnection {
        protocol,
        min_version: 2,
        max_version: 2,
        flags,
        endpoint_host: text("127.0.0.1"),
        endpoint_port: 0,
        vendor: text("jd-test"),
        hardware_version: text(""),
        firmware: text("0"),
        device_id: text(""),
    }
}

/// The next frame of one of the `wanted` types, skipping SetTarget; any other frame (a job
/// of the pool's own, say) fails the test.
async fn expect(peer: &mut Sv2Peer, wanted: &[u8]) -> (u8, Vec<u8>) {
    loop {
        let (t, payload) = peer.recv(WAIT).await.expect("an answer in time");
        if wanted.contains(&t) {
            return (t, payload);
        }
        assert_eq!(
            t, MESSAGE_TYPE_SET_TARGET,
            "unexpected message type 0x{t:02x}"
        );
    }
}

/// What the Job Declarator Server answered a declaration (or its transactions).
#[derive(Debug, PartialEq)]
enum Declared {
    /// DeclareMiningJob.Success: the token that names the job.
    Token(Vec<u8>),
    /// DeclareMiningJob.Error's code.
    Refused(String),
    /// ProvideMissingTransactions: the positions asked for.
    Asked(Vec<u16>),
}

impl Declared {
    fn token(self) -> Vec<u8> {
        match self {
            Declared::Token(token) => token,
            other => panic!("not accepted: {other:?}"),
        }
    }
}

fn refused(code: &str) -> Declared {
    Declared::Refused(code.into())
}

async fn jd_answer(jd: &mut Sv2Peer) -> Declared {
    let wanted = [
        MESSAGE_TYPE_DECLARE_MINING_JOB_SUCCESS,
        MESSAGE_TYPE_DECLARE_MINING_JOB_ERROR,
        MESSAGE_TYPE_PROVIDE_MISSING_TRANSACTIONS,
    ];
    let (t, mut p) = expect(jd, &wanted).await;
    match t {
        MESSAGE_TYPE_DECLARE_MINING_JOB_SUCCESS => {
            let m: DeclareMiningJobSuccess = decode("declared", &mut p).unwrap();
            Declared::Token(m.new_mining_job_token.as_bytes().to_vec())
        }
        MESSAGE_TYPE_DECLARE_MINING_JOB_ERROR => {
            let m: DeclareMiningJobError = decode("refused", &mut p).unwrap();
            Declared::Refused(String::from_utf8_lossy(m.error_code.as_bytes()).into_owned())
        }
        _ => {
            let m: ProvideMissingTransactions = decode("asked", &mut p).unwrap();
            Declared::Asked(m.unknown_tx_position_list.into_inner())
        }
    }
}

/// Declares a job; the JDS's answer.
async fn declare(jd: &mut Sv2Peer, m: DeclareMiningJob<'static>) -> Declared {
    jd.send(
        "DeclareMiningJob",
        m,
        MESSAGE_TYPE_DECLARE_MINING_JOB,
        false,
    )
    .await
    .unwrap();
    jd_answer(jd).await
}

/// Sends the transactions a declaration was asked for; the JDS's answer.
async fn provide(jd: &mut Sv2Peer, request_id: u32, txs: &[Transaction]) -> Declared {
    let list = txs
        .iter()
        .map(|t| leak(consensus::serialize(t)).try_into().unwrap())
        .collect();
    let m = ProvideMissingTransactionsSuccess {
        request_id,
        transaction_list: Seq064K::new(list).unwrap(),
    };
    let t = MESSAGE_TYPE_PROVIDE_MISSING_TRANSACTIONS_SUCCESS;
    jd.send("ProvideMissingTransactionsSuccess", m, t, false)
        .await
        .unwrap();
    jd_answer(jd).await
}

/// A token for the test's miner, and the coinbase outputs the JDS wants.
async fn allocate(jd: &mut Sv2Peer, request_id: u32) -> (Vec<u8>, Vec<TxOut>) {
    let m = AllocateMiningJobToken {
        user_identifier: text("jdminer.rig1"),
        request_id,
    };
    let t = MESSAGE_TYPE_ALLOCATE_MINING_JOB_TOKEN;
    jd.send("AllocateMiningJobToken", m, t, false)
        .await
        .unwrap();
    let (_, mut p) = expect(jd, &[MESSAGE_TYPE_ALLOCATE_MINING_JOB_TOKEN_SUCCESS]).await;
    let m: AllocateMiningJobTokenSuccess = decode("allocated", &mut p).unwrap();
    let outputs = consensus::deserialize(m.coinbase_outputs.as_bytes()).unwrap();
    (m.mining_job_token.as_bytes().to_vec(), outputs)
}

/// Asks the pool to mine a custom job: its job id, or SetCustomMiningJob.Error's code.
async fn set_custom(mining: &mut Sv2Peer, m: SetCustomMiningJob<'static>) -> Result<u32, String> {
    let t = MESSAGE_TYPE_SET_CUSTOM_MINING_JOB;
    mining.send("SetCustomMiningJob", m, t, true).await.unwrap();
    let wanted = [
        MESSAGE_TYPE_SET_CUSTOM_MINING_JOB_SUCCESS,
        MESSAGE_TYPE_SET_CUSTOM_MINING_JOB_ERROR,
    ];
    let (t, mut p) = expect(mining, &wanted).await;
    if t == MESSAGE_TYPE_SET_CUSTOM_MINING_JOB_SUCCESS {
        let m: SetCustomMiningJobSuccess = decode("accepted", &mut p).unwrap();
        return Ok(m.job_id);
    }
    let m: SetCustomMiningJobError = decode("refused", &mut p).unwrap();
    Err(String::from_utf8_lossy(m.error_code.as_bytes()).into_owned())
}

/// The miner's side of one declared job: its coinbase (extranonce zeroed), where the
/// extranonce sits, and the transactions after it.
struct MyJob {
    coinbase: Transaction,
    script_prefix: Vec<u8>,
    extranonce_len: usize,
    transactions: Vec<Transaction>,
}

impl MyJob {
    fn new(
        height: u32,
        payout: &ScriptBuf,
        value: u64,
        txs: Vec<Transaction>,
        extranonce_len: usize,
    ) -> MyJob {
        let script_prefix = Builder::new()
            .push_int(i64::from(height))
            .push_slice(<&bitcoin::script::PushBytes>::try_from(TAG).unwrap())
            .into_script()
            .into_bytes();
        let mut script = script_prefix.clone();
        script.resize(script_prefix.len() + extranonce_len, 0);
        let mut output = vec![TxOut {
            value: Amount::from_sat(value),
            script_pubkey: payout.clone(),
        }];
        let segwit = txs
            .iter()
            .any(|t| t.input.iter().any(|i| !i.witness.is_empty()));
        let mut witness = Witness::new();
        if segwit {
            let wtxids: Vec<[u8; 32]> = txs
                .iter()
                .map(|t| t.compute_wtxid().to_byte_array())
                .collect();
            output.push(TxOut {
                value: Amount::ZERO,
                script_pubkey: witness_commitment_script(&wtxids),
            });
            witness.push([0u8; 32]);
        }
        let coinbase = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::from_bytes(script),
                sequence: Sequence::MAX,
                witness,
            }],
            output,
        };
        MyJob {
            coinbase,
            script_prefix,
            extranonce_len,
            transactions: txs,
        }
    }

    /// The coinbase split around its extranonce: BIP 141 fields kept (DeclareMiningJob)
    /// or stripped (Stratum's coinb1/coinb2).
    fn split(&self, stripped: bool) -> (Vec<u8>, Vec<u8>) {
        let mut tx = self.coinbase.clone();
        if stripped {
            tx.input[0].witness = Witness::new();
        }
        let segwit = !tx.input[0].witness.is_empty();
        let bytes = consensus::serialize(&tx);
        let cut = 4 + if segwit { 2 } else { 0 } + 1 + 36 + 1 + self.script_prefix.len();
        (
            bytes[..cut].to_vec(),
            bytes[cut + self.extranonce_len..].to_vec(),
        )
    }

    fn declare(&self, request_id: u32, token: &[u8]) -> DeclareMiningJob<'static> {
        let (prefix, suffix) = self.split(false);
        let wtxids: Vec<U256<'static>> = self
            .transactions
            .iter()
            .map(|t| u256(t.compute_wtxid().to_byte_array()))
            .collect();
        DeclareMiningJob {
            request_id,
            mining_job_token: B0255::try_from(leak(token.to_vec())).unwrap(),
            version: 0x2000_0000,
            coinbase_tx_prefix: B064K::try_from(leak(prefix)).unwrap(),
            coinbase_tx_suffix: B064K::try_from(leak(suffix)).unwrap(),
            wtxid_list: Seq064K::new(wtxids).unwrap(),
            excess_data: B064K::try_from(leak(Vec::new())).unwrap(),
        }
    }

    fn merkle_path(&self) -> Vec<[u8; 32]> {
        let txids: Vec<[u8; 32]> = self
            .transactions
            .iter()
            .map(|t| t.compute_txid().to_byte_array())
            .collect();
        hashforge_core::merkle_branch(&txids)
    }

    fn set_custom(
        &self,
        channel_id: u32,
        request_id: u32,
        token: &[u8],
        tip: &Tip,
    ) -> SetCustomMiningJob<'static> {
        let outputs = consensus::serialize(&self.coinbase.output);
        let path: Vec<U256<'static>> = self.merkle_path().into_iter().map(u256).collect();
        SetCustomMiningJob {
            channel_id,
            request_id,
            token: B0255::try_from(leak(token.to_vec())).unwrap(),
            version: 0x2000_0000,
            prev_hash: u256(tip.prev_hash),
            min_ntime: tip.time,
            nbits: 0x207f_ffff,
            coinbase_tx_version: 2,
            coinbase_prefix: B0255::try_from(leak(self.script_prefix.clone())).unwrap(),
            coinbase_tx_input_n_sequence: u32::MAX,
            coinbase_tx_outputs: B064K::try_from(leak(outputs)).unwrap(),
            coinbase_tx_locktime: 0,
            merkle_path: Seq0255::new(path).unwrap(),
        }
    }

    /// The job as a miner scans it (Stratum's form).
    fn stratum_job(&self, tip: &Tip, channel: &Channel, difficulty: f64) -> Job {
        let (coinb1, coinb2) = self.split(true);
        Job {
            job_id: "custom".into(),
            parts: JobParts {
                prevhash: StratumPrevHash::from_internal(&tip.prev_hash),
                coinb1,
                coinb2,
                merkle_branch: self.merkle_path(),
                version: 0x2000_0000,
                nbits: CompactTarget(0x207f_ffff),
                ntime: tip.time,
            },
            clean_jobs: true,
            difficulty: Difficulty::new(difficulty).unwrap(),
            extranonce1: channel.prefix.clone(),
            extranonce2_size: channel.extranonce_size,
            version_mask: 0,
        }
    }
}

struct Tip {
    prev_hash: [u8; 32],
    height: u32,
    time: u32,
}

fn tip(dir: &std::path::Path) -> Tip {
    let blocks = exported_blocks(dir);
    let hash = blocks
        .last()
        .map_or(genesis_block(Network::Regtest).block_hash(), |b| {
            b.block_hash()
        });
    Tip {
        prev_hash: hash.to_byte_array(),
        height: blocks.len() as u32 + 1,
        time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32,
    }
}

struct Channel {
    id: u32,
    prefix: Vec<u8>,
    extranonce_size: usize,
}

/// A transaction no node would take (it spends an output that does not exist) but whose
/// bytes and witness are well formed: what the pool must carry into the block, unjudged.
fn made_up_transaction(n: u8) -> Transaction {
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(Txid::from_byte_array([n; 32]), 0),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[vec![n; 72], vec![2; 33]]),
        }],
        output: vec![TxOut {
            value: Amount::from_sat(1000),
            script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
        }],
    }
}

/// A share on a custom job at difficulty 1e-6 (every one a regtest block), with the
/// extranonce the miner rolled.
fn find_share(job: &MyJob, tip: &Tip, channel: &Channel) -> (hashforge_stratum::Share, Vec<u8>) {
    let scan = job.stratum_job(tip, channel, 1e-6);
    let en2 = vec![7u8; channel.extranonce_size];
    let (share, _) = scan_job(&Scanner::detect(), &scan, &en2, 0, 1 << 26)
        .into_iter()
        .next()
        .expect("a share among 2^26 nonces at difficulty 1e-6");
    (share, en2)
}

/// Mines one share on a custom job and submits it; returns the pool's answer's type.
async fn mine_one(
    mining: &mut Sv2Peer,
    job: &MyJob,
    tip: &Tip,
    channel: &Channel,
    job_id: u32,
    seq: u32,
) -> u8 {
    let (share, en2) = find_share(job, tip, channel);
    mining
        .send(
            "SubmitSharesExtended",
            SubmitSharesExtended {
                channel_id: channel.id,
                sequence_number: seq,
                job_id,
                nonce: share.nonce,
                ntime: share.ntime,
                version: share.version,
                extranonce: B032::try_from(leak(en2)).unwrap(),
            },
            MESSAGE_TYPE_SUBMIT_SHARES_EXTENDED,
            CHANNEL_BIT_SUBMIT_SHARES_EXTENDED,
        )
        .await
        .unwrap();
    expect(
        mining,
        &[
            MESSAGE_TYPE_SUBMIT_SHARES_SUCCESS,
            MESSAGE_TYPE_SUBMIT_SHARES_ERROR,
        ],
    )
    .await
    .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_declares_its_own_block_and_mines_it_on_the_pool() {
    let dir = fresh_dir("pool-test-jd");
    let pool = Pool::start(config(&dir)).await.unwrap();
    let key = pool.sv2_authority().unwrap();

    // The mining connection asks for work selection and opens an extended channel: the
    // pool sends it no job of its own.
    let mut mining = Sv2Peer::connect(pool.sv2_addr().unwrap(), key)
        .await
        .unwrap();
    mining
        .send(
            "SetupConnection",
            setup(Protocol::MiningProtocol, 0b10),
            MESSAGE_TYPE_SETUP_CONNECTION,
            false,
        )
        .await
        .unwrap();
    expect(&mut mining, &[MESSAGE_TYPE_SETUP_CONNECTION_SUCCESS]).await;
    mining
        .send(
            "OpenExtendedMiningChannel",
            OpenExtendedMiningChannel {
                request_id: 1,
                user_identity: text("jdminer.rig1"),
                nominal_hash_rate: 0.0,
                max_target: u256([0xff; 32]),
                // More than the pool's own coinbases leave (8): a miner that chooses its
                // work has the room it asks for (SRI's JDC asks for 11).
                min_extranonce_size: 12,
            },
            MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL,
            false,
        )
        .await
        .unwrap();
    let (_, mut payload) = expect(
        &mut mining,
        &[MESSAGE_TYPE_OPEN_EXTENDED_MINING_CHANNEL_SUCCESS],
    )
    .await;
    let open: OpenExtendedMiningChannelSuccess = decode("open", &mut payload).unwrap();
    let channel = Channel {
        id: open.channel_id,
        prefix: open.extranonce_prefix.as_bytes().to_vec(),
        extranonce_size: usize::from(open.extranonce_size),
    };
    assert_eq!(channel.extranonce_size, 12);
    let extranonce_len = channel.prefix.len() + channel.extranonce_size;

    // The Job Declarator Client: a token and the output to pay.
    let mut jd = Sv2Peer::connect(pool.sv2_jd_addr().unwrap(), key)
        .await
        .unwrap();
    jd.send(
        "SetupConnection",
        setup(Protocol::JobDeclarationProtocol, 1),
        MESSAGE_TYPE_SETUP_CONNECTION,
        false,
    )
    .await
    .unwrap();
    expect(&mut jd, &[MESSAGE_TYPE_SETUP_CONNECTION_SUCCESS]).await;
    let (first_token, outputs) = allocate(&mut jd, 1).await;
    assert_eq!(outputs.len(), 1, "the pool's payout output alone");
    assert_eq!(outputs[0].value, Amount::ZERO);
    let payout = outputs[0].script_pubkey.clone();
    let t = tip(&dir);
    let subsidy = hashforge_pool::chain::subsidy(Network::Regtest, t.height);

    // Refused: a coinbase that pays someone else, and a token the pool never gave.
    let thief_script = ScriptBuf::from_bytes([&[0x00, 0x14][..], &[0x11; 20]].concat());
    assert_ne!(thief_script, payout);
    let thief = MyJob::new(t.height, &thief_script, subsidy, vec![], extranonce_len);
    let answer = declare(&mut jd, thief.declare(2, &first_token)).await;
    assert_eq!(answer, refused("invalid-coinbase-tx"));
    let honest_empty = MyJob::new(t.height, &payout, subsidy, vec![], extranonce_len);
    let answer = declare(&mut jd, honest_empty.declare(3, b"not a token")).await;
    assert_eq!(answer, refused("invalid-mining-job-token"));

    // A job with two transactions the pool has never seen: it asks for both; the wrong
    // bytes are refused, the right ones accepted.
    let txs = vec![made_up_transaction(1), made_up_transaction(2)];
    let with_txs = MyJob::new(t.height, &payout, subsidy, txs.clone(), extranonce_len);
    let answer = declare(&mut jd, with_txs.declare(4, &first_token)).await;
    assert_eq!(answer, Declared::Asked(vec![0, 1]));
    let swapped = [txs[1].clone(), txs[0].clone()];
    let answer = provide(&mut jd, 4, &swapped).await;
    assert_eq!(
        answer,
        refused("invalid-job"),
        "transactions in the wrong places"
    );
    let answer = declare(&mut jd, with_txs.declare(5, &first_token)).await;
    assert_eq!(answer, Declared::Asked(vec![0, 1]));
    let txs_token = provide(&mut jd, 5, &txs).await.token();

    // The same transactions again under a new token: the pool remembers them.
    let (second_token, _) = allocate(&mut jd, 6).await;
    let empty_token = declare(&mut jd, honest_empty.declare(7, &second_token))
        .await
        .token();
    // A used token is gone.
    let answer = declare(&mut jd, honest_empty.declare(8, &second_token)).await;
    assert_eq!(answer, refused("invalid-mining-job-token"));

    // On the mining connection: a token the JDS never accepted, and a merkle path that is
    // not the declared transactions', are refused.
    let scmj = |job: &MyJob, req: u32, token: &[u8]| job.set_custom(channel.id, req, token, &t);
    let answer = set_custom(&mut mining, scmj(&with_txs, 10, &first_token)).await;
    assert_eq!(answer, Err("invalid-mining-job-token".into()));
    let mut wrong_path = scmj(&with_txs, 11, &txs_token);
    wrong_path.merkle_path = Seq0255::new(vec![u256([9; 32])]).unwrap();
    let answer = set_custom(&mut mining, wrong_path).await;
    assert_eq!(answer, Err("invalid-merkle-path".into()));

    // The job with transactions: accepted, mined; its block carries them and goes to the
    // node, which here is the embedded chain, which takes coinbase-only blocks only.
    let job_id = set_custom(&mut mining, scmj(&with_txs, 12, &txs_token))
        .await
        .unwrap();
    assert_eq!(
        mine_one(&mut mining, &with_txs, &t, &channel, job_id, 1).await,
        MESSAGE_TYPE_SUBMIT_SHARES_SUCCESS
    );
    let http = pool.http_addr().unwrap();
    let blocks = http_get(http, "/api/blocks").await;
    assert!(
        blocks.contains("embedded-chain-takes-coinbase-only-blocks"),
        "{blocks}"
    );
    assert_eq!(
        exported_blocks(&dir).len() as u32,
        t.height - 1,
        "the tip did not move"
    );

    // The coinbase-only job: a real block, the miner's coinbase, the pool paid.
    let job_id = set_custom(&mut mining, scmj(&honest_empty, 13, &empty_token))
        .await
        .unwrap();
    assert_eq!(
        mine_one(&mut mining, &honest_empty, &t, &channel, job_id, 2).await,
        MESSAGE_TYPE_SUBMIT_SHARES_SUCCESS
    );
    let chain = exported_blocks(&dir);
    assert_eq!(
        chain.len() as u32,
        t.height,
        "the declared block is the new tip"
    );
    let block = chain.last().unwrap();
    let coinbase = &block.txdata[0];
    assert!(coinbase.input[0]
        .script_sig
        .as_bytes()
        .windows(TAG.len())
        .any(|w| w == TAG));
    assert_eq!(coinbase.output[0].script_pubkey, payout);
    assert_eq!(coinbase.output[0].value.to_sat(), subsidy);

    // The tip moved: a job on the old one is stale.
    let answer = set_custom(&mut mining, scmj(&honest_empty, 14, &empty_token)).await;
    assert_eq!(answer, Err("stale-chain-tip".into()));

    // A block the client pushes to the JDS (PushSolution, on its last declared job) is
    // submitted by the pool too.
    let t2 = tip(&dir);
    let (third_token, _) = allocate(&mut jd, 20).await;
    let subsidy2 = hashforge_pool::chain::subsidy(Network::Regtest, t2.height);
    let next = MyJob::new(t2.height, &payout, subsidy2, vec![], extranonce_len);
    declare(&mut jd, next.declare(21, &third_token))
        .await
        .token();
    let (share, en2) = find_share(&next, &t2, &channel);
    let mut extranonce = channel.prefix.clone();
    extranonce.extend_from_slice(&en2);
    let push = PushSolution {
        extranonce: B032::try_from(leak(extranonce)).unwrap(),
        prev_hash: u256(t2.prev_hash),
        nonce: share.nonce,
        ntime: share.ntime,
        nbits: 0x207f_ffff,
        version: share.version,
    };
    jd.send("PushSolution", push, MESSAGE_TYPE_PUSH_SOLUTION, false)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while exported_blocks(&dir).len() as u32 != t2.height {
        assert!(
            std::time::Instant::now() < deadline,
            "the pushed block was not submitted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let api = http_get(http, "/api/pool").await;
    assert!(api.contains("\"connections_sv2_jd\":1"), "{api}");
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_job_declarator_the_pool_refuses_work_selection() {
    let dir = fresh_dir("pool-test-jd-off");
    let pool = Pool::start(PoolConfig {
        sv2_jd: None,
        ..config(&dir)
    })
    .await
    .unwrap();
    let mut mining = Sv2Peer::connect(pool.sv2_addr().unwrap(), pool.sv2_authority().unwrap())
        .await
        .unwrap();
    mining
        .send(
            "SetupConnection",
            setup(Protocol::MiningProtocol, 0b10),
            MESSAGE_TYPE_SETUP_CONNECTION,
            false,
        )
        .await
        .unwrap();
    let (t, _) = mining.recv(WAIT).await.unwrap();
    assert_eq!(t, MESSAGE_TYPE_SETUP_CONNECTION_ERROR);
    pool.stop().await;
    // And a Job Declarator Server needs the SV2 endpoint.
    let refused = Pool::start(PoolConfig {
        sv2: None,
        ..config(&fresh_dir("pool-test-jd-nosv2"))
    })
    .await;
    assert!(matches!(
        refused,
        Err(hashforge_pool::PoolError::JdWithoutSv2)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_hands_its_templates_to_a_template_client_and_takes_its_block() {
    use hashforge_sv2::sri::template_distribution_sv2 as tdp;
    let dir = fresh_dir("pool-test-tp");
    let pool = Pool::start(PoolConfig {
        sv2_tp: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..config(&dir)
    })
    .await
    .unwrap();
    let key = pool.sv2_authority().unwrap();
    let mut tp = Sv2Peer::connect(pool.sv2_tp_addr().unwrap(), key)
        .await
        .unwrap();
    tp.send(
        "SetupConnection",
        setup(Protocol::TemplateDistributionProtocol, 0),
        MESSAGE_TYPE_SETUP_CONNECTION,
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        tp.recv(WAIT).await.unwrap().0,
        MESSAGE_TYPE_SETUP_CONNECTION_SUCCESS
    );
    tp.send(
        "CoinbaseOutputConstraints",
        tdp::CoinbaseOutputConstraints {
            coinbase_output_max_additional_size: 100,
            coinbase_output_max_additional_sigops: 4,
        },
        tdp::MESSAGE_TYPE_COINBASE_OUTPUT_CONSTRAINTS,
        false,
    )
    .await
    .unwrap();
    // The first template is a future one, activated by the tip at once.
    let (t, mut p) = tp.recv(WAIT).await.unwrap();
    assert_eq!(t, tdp::MESSAGE_TYPE_NEW_TEMPLATE);
    let template: tdp::NewTemplate = decode("template", &mut p).unwrap();
    assert!(template.future_template);
    let (t, mut p) = tp.recv(WAIT).await.unwrap();
    assert_eq!(t, tdp::MESSAGE_TYPE_SET_NEW_PREV_HASH);
    let prev: tdp::SetNewPrevHash = decode("prev", &mut p).unwrap();
    let here = tip(&dir);
    assert_eq!(prev.template_id, template.template_id);
    assert_eq!(prev.prev_hash.to_array(), here.prev_hash);
    assert_eq!(prev.n_bits, 0x207f_ffff);
    let height_push = Builder::new().push_int(i64::from(here.height)).into_bytes();
    assert_eq!(template.coinbase_prefix.as_bytes(), &height_push[..]);
    let value = template.coinbase_tx_value_remaining;
    assert_eq!(
        value,
        hashforge_pool::chain::subsidy(Network::Regtest, here.height)
    );
    tp.send(
        "RequestTransactionData",
        tdp::RequestTransactionData {
            template_id: template.template_id,
        },
        tdp::MESSAGE_TYPE_REQUEST_TRANSACTION_DATA,
        false,
    )
    .await
    .unwrap();
    let (t, mut p) = tp.recv(WAIT).await.unwrap();
    assert_eq!(t, tdp::MESSAGE_TYPE_REQUEST_TRANSACTION_DATA_SUCCESS);
    let data: tdp::RequestTransactionDataSuccess = decode("data", &mut p).unwrap();
    assert_eq!(
        data.transaction_list.into_inner().len(),
        0,
        "the embedded chain's templates are coinbase-only"
    );

    // The client's own coinbase on the template, a solved header, submitted.
    let mine = ScriptBuf::from_bytes(vec![0x51]);
    let job = MyJob::new(here.height, &mine, value, vec![], 8);
    let channel = Channel {
        id: 0,
        prefix: Vec::new(),
        extranonce_size: 8,
    };
    let solved = Tip {
        time: prev.header_timestamp,
        ..here
    };
    let (share, en2) = find_share(&job, &solved, &channel);
    let mut coinbase = job.coinbase.clone();
    let mut script = job.script_prefix.clone();
    script.extend_from_slice(&en2);
    coinbase.input[0].script_sig = ScriptBuf::from_bytes(script);
    tp.send(
        "SubmitSolution",
        tdp::SubmitSolution {
            template_id: template.template_id,
            version: share.version,
            header_timestamp: share.ntime,
            header_nonce: share.nonce,
            coinbase_tx: B064K::try_from(leak(consensus::serialize(&coinbase))).unwrap(),
        },
        tdp::MESSAGE_TYPE_SUBMIT_SOLUTION,
        false,
    )
    .await
    .unwrap();
    // The block is the new tip, and the client is told: a future template and its tip.
    let (t, mut p) = tp.recv(WAIT).await.unwrap();
    assert_eq!(t, tdp::MESSAGE_TYPE_NEW_TEMPLATE);
    let next: tdp::NewTemplate = decode("next", &mut p).unwrap();
    assert!(next.future_template && next.template_id > template.template_id);
    let chain = exported_blocks(&dir);
    assert_eq!(chain.len() as u32, here.height);
    assert_eq!(chain.last().unwrap().txdata[0], coinbase);
    let (t, mut p) = tp.recv(WAIT).await.unwrap();
    assert_eq!(t, tdp::MESSAGE_TYPE_SET_NEW_PREV_HASH);
    let prev: tdp::SetNewPrevHash = decode("prev", &mut p).unwrap();
    assert_eq!(
        prev.prev_hash.to_array(),
        chain.last().unwrap().block_hash().to_byte_array()
    );
    pool.stop().await;
}
