//! The embedded regtest chain against Bitcoin Core itself: Bitcoin Core's validation engine
//! (libbitcoinkernel, through the `bitcoinkernel` crate) runs a regtest chainstate here.
//!
//! - Every block the pool mined, as `hashforge chain export` prints it, must be valid in Core
//!   and become its tip at the same height with the same hash.
//! - Blocks built to break one consensus rule each (and their valid neighbours at the edge of
//!   each rule) get the same verdict from Core and the embedded chain, and the embedded chain's
//!   reason is the one Core logs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::script::Builder;
use bitcoin::{
    absolute, consensus, Address, Amount, Block, BlockHash, CompactTarget, Network, OutPoint,
    ScriptBuf, Sequence, TxMerkleNode, TxOut, Txid, Witness, WitnessProgram, WitnessVersion,
};
use bitcoinkernel::{ChainType, ChainstateManager, Context, ContextBuilder, Log, Logger};
use hashforge_pool::chain::EmbeddedChain;
use hashforge_pool::jobs::JobFactory;
use hashforge_pool::template::{SourceError, Template};
use hashforge_pool::testing::{exported_blocks, fresh_dir, mine};
use hashforge_pool::{Pool, PoolConfig};

/// libbitcoinkernel logs through one global logger, and each `Core` reads its reasons from
/// it: the tests of this file take turns with Core.
static CORE: Mutex<()> = Mutex::new(());

fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

struct Lines(Arc<Mutex<Vec<String>>>);

impl Log for Lines {
    fn log(&self, message: &str) {
        self.0.lock().unwrap().push(message.trim_end().to_string());
    }
}

/// A regtest Bitcoin Core chainstate in a temporary directory.
struct Core {
    // Dropped in this order: the chainstate before the context it was built on.
    chainman: ChainstateManager,
    _context: Context,
    _logger: Logger,
    log: Arc<Mutex<Vec<String>>>,
    dir: PathBuf,
}

impl Core {
    fn start(dir: &Path) -> Core {
        let log = Arc::new(Mutex::new(Vec::new()));
        let logger = Logger::new(Lines(Arc::clone(&log))).unwrap();
        let context = ContextBuilder::new()
            .chain_type(ChainType::Regtest)
            .build()
            .unwrap();
        let (data, blocks) = (dir.join("data"), dir.join("blocks"));
        let chainman =
            ChainstateManager::builder(&context, data.to_str().unwrap(), blocks.to_str().unwrap())
                .unwrap()
                .block_tree_db_in_memory(true)
                .chainstate_db_in_memory(true)
                .build()
                .unwrap();
        let core = Core {
            chainman,
            _context: context,
            _logger: logger,
            log,
            dir: dir.to_path_buf(),
        };
        // Same genesis, same byte order for hashes.
        let genesis = bitcoin::blockdata::constants::genesis_block(Network::Regtest);
        assert_eq!(core.tip(), (0, genesis.block_hash()));
        core
    }

    /// Core's active tip: height and hash.
    fn tip(&self) -> (i32, BlockHash) {
        let tip = self.chainman.active_chain().tip();
        let hash: [u8; 32] = tip.block_hash().to_owned().into();
        (tip.height(), BlockHash::from_byte_array(hash))
    }

    /// Hands `block` to Core: `Ok` if Core found it valid and made it its tip, else what Core
    /// logged while it processed the block (its reason is in there).
    fn submit(&self, block: &Block) -> Result<(), String> {
        self.log.lock().unwrap().clear();
        let raw = consensus::serialize(block);
        let result = self
            .chainman
            .process_block(&bitcoinkernel::Block::new(&raw).unwrap());
        let (height, tip) = self.tip();
        if result.is_new_block() && tip == block.block_hash() {
            return Ok(());
        }
        Err(format!(
            "{result:?}; tip {tip} at height {height}; Core logged:\n{}",
            self.log.lock().unwrap().join("\n")
        ))
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const SHARE_DIFFICULTY: f64 = 1.0 / (1 << 20) as f64;

fn pool_config(dir: &Path, solo: bool) -> PoolConfig {
    let mut c = PoolConfig {
        stratum: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        solo,
        // Every share is a block on regtest (network difficulty 4.7e-10); ~4,000 hashes each.
        start_difficulty: SHARE_DIFFICULTY,
        // New ntime every second between blocks: refreshed (not clean) jobs get mined too.
        refresh: Duration::from_secs(1),
        ..PoolConfig::default()
    };
    c.vardiff.min = SHARE_DIFFICULTY;
    c.vardiff.max = SHARE_DIFFICULTY;
    c
}

/// 100 blocks through a pool on the chain in `dir`, by a real Stratum client as `user`.
async fn mine_100(dir: &Path, solo: bool, user: &str) {
    let pool = Pool::start(pool_config(dir, solo)).await.unwrap();
    let report = mine(pool.stratum_addr(), user, 100, Duration::from_secs(300))
        .await
        .unwrap();
    pool.stop().await;
    assert_eq!(report.accepted.len(), 100, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitcoin_core_accepts_every_block_the_pool_mined_across_the_halving() {
    let dir = fresh_dir("bitcoin-core-mined");
    // Mined through the real pool with a real Stratum client: pool mode paying OP_TRUE, then
    // (restarted on the same chain) solo mode paying a taproot address. Blocks come faster than
    // one a second, so most block times are set by median time past, not by the clock.
    mine_100(&dir, false, "alice.rig1").await;

    let taproot = ScriptBuf::new_witness_program(
        &WitnessProgram::new(WitnessVersion::V1, &[7u8; 32]).unwrap(),
    );
    let address = Address::from_script(&taproot, Network::Regtest).unwrap();
    mine_100(&dir, true, &format!("{address}.laptop")).await;

    let blocks = exported_blocks(&dir);
    assert!(blocks.len() >= 200, "{} blocks", blocks.len());
    let _turn = CORE.lock().unwrap_or_else(|p| p.into_inner());
    let core = Core::start(&dir.join("core"));
    for (i, block) in blocks.iter().enumerate() {
        let height = i as u32 + 1;
        if let Err(core_said) = core.submit(block) {
            panic!(
                "Bitcoin Core refused block {height} ({}) that the embedded chain accepted: \
                 {core_said}\nblock: {}",
                block.block_hash(),
                consensus::encode::serialize_hex(block)
            );
        }
        assert_eq!(core.tip(), (height as i32, block.block_hash()));
        let paid: u64 = block.txdata[0]
            .output
            .iter()
            .map(|o| o.value.to_sat())
            .sum();
        // The whole subsidy; Core's regtest halves it at 150. (Core refuses more, not less.)
        let subsidy = if height < 150 { 50 } else { 25 } * 100_000_000;
        assert_eq!(paid, subsidy, "block {height} pays the whole subsidy");
    }
    // The case that needs care: blocks in quick succession, whose time median time past (not
    // the clock) sets.
    let genesis = bitcoin::blockdata::constants::genesis_block(Network::Regtest);
    let mut times = vec![genesis.header.time];
    let mut at_median_time_past = 0;
    for block in &blocks {
        let mut last: Vec<u32> = times.iter().rev().take(11).copied().collect();
        last.sort_unstable();
        at_median_time_past += usize::from(block.header.time == last[last.len() / 2] + 1);
        times.push(block.header.time);
    }
    assert!(
        at_median_time_past > 0,
        "no block had its time set by median time past"
    );
    eprintln!(
        "Bitcoin Core took all {} blocks the pool mined as its tip; {at_median_time_past} \
         with the earliest time median time past allowed",
        blocks.len()
    );
    assert!(
        blocks
            .iter()
            .any(|b| b.txdata[0].output[0].script_pubkey == taproot),
        "solo blocks pay the miner's address"
    );
    drop(core);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The extranonce every candidate block carries.
const EXTRANONCE: [u8; 12] = [7; 12];

/// A block on the chain's tip as the pool builds it (template, job, coinbase), changed by
/// `edit`, then solved. The merkle root is computed after `edit` unless `edit` set one.
fn candidate(chain: &EmbeddedChain, edit: fn(&mut Block, &Template)) -> Block {
    let template = Arc::new(chain.template_now(unix_now()));
    let job = JobFactory::new(b"/hashforge/".to_vec(), EXTRANONCE.len())
        .build(
            Arc::clone(&template),
            ScriptBuf::from_bytes(vec![0x51]),
            "1".into(),
            true,
        )
        .unwrap();
    let mut block = Block {
        header: Header {
            version: Version::from_consensus(template.version as i32),
            prev_blockhash: template.prev_hash,
            merkle_root: TxMerkleNode::all_zeros(),
            time: template.time,
            bits: CompactTarget::from_consensus(template.bits.0),
            nonce: 0,
        },
        txdata: vec![job.coinbase.transaction(&EXTRANONCE).unwrap()],
    };
    edit(&mut block, &template);
    if block.header.merkle_root == TxMerkleNode::all_zeros() {
        block.header.merkle_root = block.compute_merkle_root().unwrap();
    }
    while block.header.validate_pow(block.header.target()).is_err() {
        block.header.nonce += 1;
    }
    block
}

/// One block to try on both chains: what it does, Core's reason for refusing it (`None`: it
/// is valid), and how it differs from the pool's own block.
struct Case {
    what: &'static str,
    refused_for: Option<&'static str>,
    edit: fn(&mut Block, &Template),
}

fn case(
    what: &'static str,
    refused_for: Option<&'static str>,
    edit: fn(&mut Block, &Template),
) -> Case {
    Case {
        what,
        refused_for,
        edit,
    }
}

fn script_sig(height: u32, rest: &[u8]) -> ScriptBuf {
    let mut bytes = Builder::new().push_int(i64::from(height)).into_bytes();
    bytes.extend_from_slice(rest);
    ScriptBuf::from_bytes(bytes)
}

fn op_true(sat: u64) -> TxOut {
    TxOut {
        value: Amount::from_sat(sat),
        script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
    }
}

fn zero_output(script: Vec<u8>) -> TxOut {
    TxOut {
        value: Amount::ZERO,
        script_pubkey: ScriptBuf::from_bytes(script),
    }
}

fn cases() -> Vec<Case> {
    vec![
        // First, while the height is still at most 16 (BIP 34 writes 1..16 as OP_1..OP_16).
        case(
            "height 1 pushed as a 1-byte number, not OP_1",
            Some("bad-cb-height"),
            |b, t| {
                assert_eq!(t.height, 1);
                let mut s = vec![0x01, 0x01];
                s.extend_from_slice(&[0x0c; 13]);
                b.txdata[0].input[0].script_sig = ScriptBuf::from_bytes(s);
            },
        ),
        case("the pool's own block", None, |_, _| {}),
        case(
            "BIP 34 height one too high",
            Some("bad-cb-height"),
            |b, t| {
                b.txdata[0].input[0].script_sig = script_sig(t.height + 1, &EXTRANONCE);
            },
        ),
        case(
            "coinbase pays one satoshi over the subsidy",
            Some("bad-cb-amount"),
            |b, _| {
                b.txdata[0].output[0].value += Amount::ONE_SAT;
            },
        ),
        case(
            "coinbase pays one satoshi under the subsidy",
            None,
            |b, _| {
                b.txdata[0].output[0].value -= Amount::ONE_SAT;
            },
        ),
        case(
            "time equal to median time past",
            Some("time-too-old"),
            |b, t| {
                b.header.time = t.min_time - 1;
            },
        ),
        case("time one second past median time past", None, |b, t| {
            b.header.time = t.min_time;
        }),
        case(
            "time 2 h 10 min ahead of the clock",
            Some("time-too-new"),
            |b, _| {
                b.header.time = unix_now() + 2 * 60 * 60 + 600;
            },
        ),
        case("version 3 after BIP 65", Some("bad-version"), |b, _| {
            b.header.version = Version::from_consensus(3);
        }),
        case(
            "version with the top bit set (negative)",
            Some("bad-version"),
            |b, _| {
                b.header.version = Version::from_consensus(i32::MIN);
            },
        ),
        case("version 4", None, |b, _| {
            b.header.version = Version::from_consensus(4);
        }),
        case(
            "nBits other than regtest's",
            Some("bad-diffbits"),
            |b, _| {
                b.header.bits = CompactTarget::from_consensus(0x207f_fffe);
            },
        ),
        case(
            "merkle root not the coinbase's",
            Some("bad-txnmrklroot"),
            |b, _| {
                b.header.merkle_root = TxMerkleNode::from_byte_array([1; 32]);
            },
        ),
        case(
            "not a coinbase (prevout not null)",
            Some("bad-cb-missing"),
            |b, _| {
                b.txdata[0].input[0].previous_output = OutPoint {
                    txid: Txid::from_byte_array([1; 32]),
                    vout: 0,
                };
            },
        ),
        case(
            "coinbase scriptSig of 101 bytes",
            Some("bad-cb-length"),
            |b, t| {
                let mut s = script_sig(t.height, &EXTRANONCE).into_bytes();
                s.resize(101, 0);
                b.txdata[0].input[0].script_sig = ScriptBuf::from_bytes(s);
            },
        ),
        case("coinbase scriptSig of 100 bytes", None, |b, t| {
            let mut s = script_sig(t.height, &EXTRANONCE).into_bytes();
            s.resize(100, 0);
            b.txdata[0].input[0].script_sig = ScriptBuf::from_bytes(s);
        }),
        case(
            "witness commitment without the witness reserved value",
            Some("bad-witness-nonce-size"),
            |b, _| b.txdata[0].input[0].witness = Witness::new(),
        ),
        case(
            "witness reserved value of 31 bytes",
            Some("bad-witness-nonce-size"),
            |b, _| b.txdata[0].input[0].witness = Witness::from_slice(&[[0u8; 31]]),
        ),
        case(
            "wrong witness commitment",
            Some("bad-witness-merkle-match"),
            |b, _| {
                let commitment = b.txdata[0].output.last_mut().unwrap();
                let mut script = commitment.script_pubkey.to_bytes();
                script[37] ^= 1;
                commitment.script_pubkey = ScriptBuf::from_bytes(script);
            },
        ),
        case(
            "witness reserved value without a commitment",
            Some("unexpected-witness"),
            |b, _| {
                b.txdata[0].output.pop();
            },
        ),
        case("neither witness nor commitment", None, |b, _| {
            b.txdata[0].output.pop();
            b.txdata[0].input[0].witness = Witness::new();
        }),
        case(
            "coinbase without outputs",
            Some("bad-txns-vout-empty"),
            |b, _| {
                b.txdata[0].output.clear();
                b.txdata[0].input[0].witness = Witness::new();
            },
        ),
        case(
            "an output of -1 satoshi",
            Some("bad-txns-vout-negative"),
            |b, _| {
                b.txdata[0].output.insert(0, op_true(u64::MAX));
            },
        ),
        case(
            "-1 satoshi beside the subsidy + 1 (their u64 sum wraps to the subsidy)",
            Some("bad-txns-vout-negative"),
            |b, t| {
                b.txdata[0].output[0].value = Amount::from_sat(t.coinbase_value + 1);
                b.txdata[0].output.insert(0, op_true(u64::MAX));
            },
        ),
        case(
            "an output over 21 million BTC",
            Some("bad-txns-vout-toolarge"),
            |b, _| {
                b.txdata[0]
                    .output
                    .insert(0, op_true(Amount::MAX_MONEY.to_sat() + 1));
            },
        ),
        case(
            "outputs summing over 21 million BTC",
            Some("bad-txns-txouttotal-toolarge"),
            |b, _| {
                b.txdata[0]
                    .output
                    .insert(0, op_true(Amount::MAX_MONEY.to_sat()))
            },
        ),
        case(
            "coinbase with 20,020 legacy sigops",
            Some("bad-blk-sigops"),
            |b, _| {
                // OP_CHECKMULTISIG counts 20; Core allows 80,000 sigop cost, 4 per legacy sigop.
                b.txdata[0].output.insert(0, zero_output(vec![0xae; 1001]));
            },
        ),
        case("coinbase with 20,000 legacy sigops", None, |b, _| {
            b.txdata[0].output.insert(0, zero_output(vec![0xae; 1000]));
        }),
        case(
            "lock time at this height, sequence not final",
            Some("bad-txns-nonfinal"),
            |b, t| {
                b.txdata[0].lock_time = absolute::LockTime::from_consensus(t.height);
                b.txdata[0].input[0].sequence = Sequence::ZERO;
            },
        ),
        case(
            "lock time one below this height, sequence not final",
            None,
            |b, t| {
                b.txdata[0].lock_time = absolute::LockTime::from_consensus(t.height - 1);
                b.txdata[0].input[0].sequence = Sequence::ZERO;
            },
        ),
        case(
            "lock time at median time past, sequence not final",
            Some("bad-txns-nonfinal"),
            |b, t| {
                b.txdata[0].lock_time = absolute::LockTime::from_consensus(t.min_time - 1);
                b.txdata[0].input[0].sequence = Sequence::ZERO;
            },
        ),
        case(
            "lock time one second before median time past, sequence not final",
            None,
            |b, t| {
                b.txdata[0].lock_time = absolute::LockTime::from_consensus(t.min_time - 2);
                b.txdata[0].input[0].sequence = Sequence::ZERO;
            },
        ),
        case("lock time in the future, sequence final", None, |b, t| {
            b.txdata[0].lock_time = absolute::LockTime::from_consensus(t.height + 100);
        }),
        case(
            "a block over 1 MB without witness data",
            Some("bad-blk-length"),
            |b, _| {
                b.txdata[0]
                    .output
                    .insert(0, zero_output(vec![0x00; 1_000_000]));
            },
        ),
    ]
}

#[test]
fn bitcoin_core_and_the_embedded_chain_agree_on_each_rule() {
    let dir = fresh_dir("bitcoin-core-rules");
    let chain = EmbeddedChain::open(&dir).unwrap();
    let _turn = CORE.lock().unwrap_or_else(|p| p.into_inner());
    let core = Core::start(&dir.join("core"));
    let (mut valid, mut refused) = (0, 0);
    let mut disagreements = Vec::new();
    for case in cases() {
        let block = candidate(&chain, case.edit);
        let ours = chain.accept(&block);
        let theirs = core.submit(&block);
        let what = case.what;
        match (case.refused_for, ours, theirs) {
            (None, Ok(()), Ok(())) => valid += 1,
            (Some(reason), Err(SourceError::Rejected(ours)), Err(core_said))
                if ours.starts_with(reason) && core_said.contains(&ours) =>
            {
                refused += 1
            }
            (_, ours, theirs) => disagreements.push(format!(
                "{what}: the embedded chain said {ours:?}, Bitcoin Core said {theirs:?}\nblock: {}",
                consensus::encode::serialize_hex(&block)
            )),
        }
        let tip = chain.template_now(unix_now()).prev_hash;
        if core.tip() != (chain.height() as i32, tip) {
            disagreements.push(format!("after {what}, the chains went apart"));
            break;
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n\n"));
    eprintln!("Bitcoin Core and the embedded chain: {valid} valid, {refused} refused, alike");
    drop(core);
    let _ = std::fs::remove_dir_all(&dir);
}
