//! The embedded regtest chain: a consensus-checked chain of blocks on the regtest genesis,
//! kept in one file, so that `hashforge pool` mines real blocks with nothing else installed.
//!
//! It is a REGTEST chain. Its blocks are worth nothing; they exist so that demos and tests
//! build blocks Bitcoin Core would accept: `hashforge chain export` prints them (raw hex, one
//! per line, height order) for `bitcoin-cli -regtest submitblock`.
//!
//! Only coinbase-only blocks are accepted: there is no UTXO set to check spends against, and
//! the chain's own templates never carry transactions.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bitcoin::block::Header;
use bitcoin::blockdata::constants::genesis_block;
use bitcoin::blockdata::constants::{MAX_BLOCK_SIGOPS_COST, WITNESS_SCALE_FACTOR};
use bitcoin::hashes::Hash;
use bitcoin::locktime::absolute::LOCK_TIME_THRESHOLD;
use bitcoin::{
    consensus, Amount, Block, BlockHash, Network, Sequence, Target, Transaction, Weight,
};
use hashforge_core::{
    is_witness_commitment, witness_commitment_script, CompactTarget, MAX_COINBASE_SCRIPT_SIG,
};
use tokio::sync::watch;

use crate::template::{SourceError, SourceFuture, Template, TemplateSource};

/// Regtest's proof-of-work limit as nBits; regtest never retargets.
pub const REGTEST_BITS: u32 = 0x207f_ffff;
/// Bitcoin Core refuses blocks more than two hours ahead of its clock.
const MAX_FUTURE_SECS: u32 = 2 * 60 * 60;
const MAX_BLOCK_WEIGHT: u64 = Weight::MAX_BLOCK.to_wu();
const FILE_NAME: &str = "regtest-chain.hex";

/// The block subsidy at `height`, satoshis: regtest halves it every 150 blocks, the other
/// networks every 210,000.
pub fn subsidy(network: Network, height: u32) -> u64 {
    let interval = match network {
        Network::Regtest => 150,
        _ => bitcoin::blockdata::constants::SUBSIDY_HALVING_INTERVAL,
    };
    let halvings = height / interval;
    if halvings >= 64 {
        0
    } else {
        (50 * 100_000_000u64) >> halvings
    }
}

struct State {
    /// Headers by height; 0 is genesis.
    headers: Vec<Header>,
    file: File,
}

/// The chain, its file, and a channel that announces each new tip.
pub struct EmbeddedChain {
    path: PathBuf,
    state: Mutex<State>,
    tip: watch::Sender<BlockHash>,
}

fn now() -> u32 {
    (crate::now_ms() / 1000) as u32
}

fn reject(reason: &str) -> SourceError {
    SourceError::Rejected(reason.to_string())
}

impl State {
    fn tip(&self) -> &Header {
        self.headers.last().expect("genesis is always there")
    }

    /// Median of the last 11 block times (Bitcoin Core's GetMedianTimePast).
    fn median_time_past(&self) -> u32 {
        let mut times: Vec<u32> = self.headers.iter().rev().take(11).map(|h| h.time).collect();
        times.sort_unstable();
        times[times.len() / 2]
    }

    /// Checks `block` as the next block, with Bitcoin Core's reason strings and in Core's
    /// order (`ProcessNewBlock`: `CheckBlock`, then `AcceptBlock`'s header and contextual
    /// checks, then `ConnectBlock`), so a block that breaks several rules gets Core's reason.
    fn check(&self, block: &Block, now: u32) -> Result<(), SourceError> {
        let height = self.headers.len() as u32;
        let h = &block.header;
        if self
            .headers
            .iter()
            .any(|x| x.block_hash() == block.block_hash())
        {
            return Err(reject("duplicate"));
        }

        // CheckBlock: the block on its own.
        let target = Target::from_compact(h.bits);
        if target > Target::MAX_ATTAINABLE_REGTEST || h.validate_pow(target).is_err() {
            return Err(reject("high-hash"));
        }
        if !block.check_merkle_root() {
            return Err(reject("bad-txnmrklroot"));
        }
        // Weight is 3 x stripped size + total size.
        let weight = block.weight().to_wu();
        let stripped_size = (weight - block.total_size() as u64) / 3;
        if block.txdata.is_empty()
            || (block.txdata.len() * WITNESS_SCALE_FACTOR) as u64 > MAX_BLOCK_WEIGHT
            || stripped_size * WITNESS_SCALE_FACTOR as u64 > MAX_BLOCK_WEIGHT
        {
            return Err(reject("bad-blk-length"));
        }
        let Some(coinbase) = block.txdata.first().filter(|t| t.is_coinbase()) else {
            return Err(reject("bad-cb-missing"));
        };
        let value = check_coinbase(coinbase)?;
        let sigops: usize = block.txdata.iter().map(legacy_sigops).sum();
        if (sigops * WITNESS_SCALE_FACTOR) as i64 > MAX_BLOCK_SIGOPS_COST {
            return Err(reject("bad-blk-sigops"));
        }
        if block.txdata.len() > 1 {
            return Err(reject("embedded-chain-takes-coinbase-only-blocks"));
        }

        // The header on its parent.
        if h.prev_blockhash != self.tip().block_hash() {
            return Err(reject("prev-blk-not-found"));
        }
        if h.bits.to_consensus() != REGTEST_BITS {
            return Err(reject("bad-diffbits"));
        }
        let median_time_past = self.median_time_past();
        if h.time <= median_time_past {
            return Err(reject("time-too-old"));
        }
        if h.time > now.saturating_add(MAX_FUTURE_SECS) {
            return Err(reject("time-too-new"));
        }
        // BIP 34, 65, 66 are active from height 1 on regtest. nVersion is signed.
        let version = h.version.to_consensus();
        if version < 4 {
            return Err(reject(&format!("bad-version(0x{version:08x})")));
        }

        // ContextualCheckBlock: the block at its height (BIP 113, 34, 141).
        if !is_final(coinbase, height, median_time_past) {
            return Err(reject("bad-txns-nonfinal"));
        }
        // Bitcoin Core: the scriptSig starts with `CScript() << nHeight` (OP_1..OP_16 for
        // heights 1 to 16, which the bitcoin crate's bip34_block_height does not read).
        let expected = bitcoin::script::Builder::new()
            .push_int(i64::from(height))
            .into_script();
        if !coinbase.input[0]
            .script_sig
            .as_bytes()
            .starts_with(expected.as_bytes())
        {
            return Err(reject("bad-cb-height"));
        }
        check_witness(block)?;
        if weight > MAX_BLOCK_WEIGHT {
            return Err(reject("bad-blk-weight"));
        }

        // ConnectBlock: no fees without transactions, so the subsidy is the limit.
        if value > subsidy(Network::Regtest, height) {
            return Err(reject("bad-cb-amount"));
        }
        Ok(())
    }
}

/// Bitcoin Core's CheckTransaction for a coinbase; the value it pays.
fn check_coinbase(coinbase: &Transaction) -> Result<u64, SourceError> {
    if coinbase.output.is_empty() {
        return Err(reject("bad-txns-vout-empty"));
    }
    let max_money = Amount::MAX_MONEY.to_sat();
    let mut total = 0u64;
    for output in &coinbase.output {
        let value = output.value.to_sat();
        // Core reads amounts as signed 64-bit numbers.
        if value > i64::MAX as u64 {
            return Err(reject("bad-txns-vout-negative"));
        }
        if value > max_money {
            return Err(reject("bad-txns-vout-toolarge"));
        }
        // Both at most MAX_MONEY: no overflow.
        total += value;
        if total > max_money {
            return Err(reject("bad-txns-txouttotal-toolarge"));
        }
    }
    if !(2..=MAX_COINBASE_SCRIPT_SIG).contains(&coinbase.input[0].script_sig.len()) {
        return Err(reject("bad-cb-length"));
    }
    Ok(total)
}

/// Signature operations as Bitcoin Core's GetLegacySigOpCount counts them (in scriptSigs and
/// scriptPubKeys, OP_CHECKMULTISIG as 20).
fn legacy_sigops(tx: &Transaction) -> usize {
    let inputs = tx.input.iter().map(|i| i.script_sig.count_sigops_legacy());
    let outputs = tx
        .output
        .iter()
        .map(|o| o.script_pubkey.count_sigops_legacy());
    inputs.chain(outputs).sum()
}

/// Bitcoin Core's IsFinalTx in a block at `height`, with BIP 113's cutoff for time lock
/// times: the median time past of the block's parent.
fn is_final(tx: &Transaction, height: u32, median_time_past: u32) -> bool {
    let lock_time = tx.lock_time.to_consensus_u32();
    let cutoff = if lock_time < LOCK_TIME_THRESHOLD {
        height
    } else {
        median_time_past
    };
    lock_time == 0 || lock_time < cutoff || tx.input.iter().all(|i| i.sequence == Sequence::MAX)
}

/// BIP 141 as Bitcoin Core checks it (CheckWitnessMalleation): with a commitment (the last
/// coinbase output that looks like one), the coinbase witness is one 32-byte reserved value
/// and the commitment matches; without one, no transaction carries witness data.
fn check_witness(block: &Block) -> Result<(), SourceError> {
    let coinbase = &block.txdata[0];
    let commitment = coinbase
        .output
        .iter()
        .rev()
        .map(|o| o.script_pubkey.as_bytes())
        .find(|s| is_witness_commitment(s));
    let Some(commitment) = commitment else {
        if block
            .txdata
            .iter()
            .any(|tx| tx.input.iter().any(|i| !i.witness.is_empty()))
        {
            return Err(reject("unexpected-witness"));
        }
        return Ok(());
    };
    let witness = &coinbase.input[0].witness;
    let reserved = match witness.nth(0) {
        Some(value) if witness.len() == 1 && value.len() == 32 => value,
        _ => return Err(reject("bad-witness-nonce-size")),
    };
    let matches = block.witness_root().is_some_and(|root| {
        Block::compute_witness_commitment(&root, reserved).as_byte_array()[..] == commitment[6..38]
    });
    if !matches {
        return Err(reject("bad-witness-merkle-match"));
    }
    Ok(())
}

impl EmbeddedChain {
    /// Opens (or starts) the chain kept in `data_dir`, re-checking every stored block. A torn
    /// last line (the process was killed mid-write) is cut off.
    pub fn open(data_dir: &Path) -> Result<EmbeddedChain, SourceError> {
        let storage =
            |e: std::io::Error| SourceError::Storage(format!("{}: {e}", data_dir.display()));
        std::fs::create_dir_all(data_dir).map_err(storage)?;
        let path = data_dir.join(FILE_NAME);
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(storage)?;
        let genesis = genesis_block(Network::Regtest);
        let mut state = State {
            headers: vec![genesis.header],
            file,
        };
        let mut good_len = 0u64;
        let reader = BufReader::new(File::open(&path).map_err(storage)?);
        for (n, line) in reader.split(b'\n').enumerate() {
            let line = line.map_err(storage)?;
            let block = std::str::from_utf8(&line)
                .ok()
                .and_then(|s| hex::decode(s.trim()).ok())
                .and_then(|b| consensus::deserialize::<Block>(&b).ok());
            let Some(block) = block else {
                tracing::warn!(path = %path.display(), line = n + 1, "cutting off an unreadable block (torn write?)");
                break;
            };
            state.check(&block, u32::MAX).map_err(|e| {
                SourceError::Storage(format!("{} line {}: {e}", path.display(), n + 1))
            })?;
            state.headers.push(block.header);
            good_len += line.len() as u64 + 1;
        }
        state.file.set_len(good_len).map_err(storage)?;
        let tip = state.tip().block_hash();
        Ok(EmbeddedChain {
            path,
            state: Mutex::new(state),
            tip: watch::channel(tip).0,
        })
    }

    /// The height of the tip.
    pub fn height(&self) -> u32 {
        self.lock().headers.len() as u32 - 1
    }

    /// Announces every new tip.
    pub fn subscribe(&self) -> watch::Receiver<BlockHash> {
        self.tip.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks and appends a block (synchronously: the file is synced before this returns).
    pub fn accept(&self, block: &Block) -> Result<(), SourceError> {
        let mut state = self.lock();
        state.check(block, now())?;
        let line = format!("{}\n", consensus::encode::serialize_hex(block));
        let storage =
            |e: std::io::Error| SourceError::Storage(format!("{}: {e}", self.path.display()));
        state.file.write_all(line.as_bytes()).map_err(storage)?;
        state.file.sync_data().map_err(storage)?;
        state.headers.push(block.header);
        let tip = block.block_hash();
        drop(state);
        self.tip.send_replace(tip);
        Ok(())
    }

    /// A template on the tip: coinbase only, with the witness commitment Bitcoin Core's own
    /// miner always adds.
    pub fn template_now(&self, now: u32) -> Template {
        let state = self.lock();
        let height = state.headers.len() as u32;
        let min_time = state.median_time_past() + 1;
        Template {
            height,
            prev_hash: state.tip().block_hash(),
            version: 0x2000_0000,
            bits: CompactTarget(REGTEST_BITS),
            time: now.max(min_time),
            min_time,
            coinbase_value: subsidy(Network::Regtest, height),
            transactions: Vec::new(),
            txids: Vec::new(),
            witness_commitment: Some(witness_commitment_script(&[])),
        }
    }

    /// The stored blocks (genesis excluded), raw hex, one per line, in height order.
    pub fn export(data_dir: &Path) -> Result<String, SourceError> {
        let chain = EmbeddedChain::open(data_dir)?;
        std::fs::read_to_string(&chain.path)
            .map_err(|e| SourceError::Storage(format!("{}: {e}", chain.path.display())))
    }
}

impl TemplateSource for EmbeddedChain {
    fn describe(&self) -> String {
        format!(
            "embedded REGTEST chain in {} (test coins, not mainnet)",
            self.path.display()
        )
    }
    fn network(&self) -> Network {
        Network::Regtest
    }
    fn template(&self) -> SourceFuture<'_, Template> {
        Box::pin(async move { Ok(self.template_now(now())) })
    }
    fn best_block(&self) -> SourceFuture<'_, BlockHash> {
        Box::pin(async move { Ok(self.lock().tip().block_hash()) })
    }
    fn submit_block<'a>(&'a self, block: &'a Block) -> SourceFuture<'a, ()> {
        Box::pin(async move { self.accept(block) })
    }
}
