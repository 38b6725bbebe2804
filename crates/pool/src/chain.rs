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
use bitcoin::{consensus, Block, BlockHash, Network, Target};
use hashforge_core::{witness_commitment_script, CompactTarget};
use tokio::sync::watch;

use crate::template::{SourceError, SourceFuture, Template, TemplateSource};

/// Regtest's proof-of-work limit as nBits; regtest never retargets.
pub const REGTEST_BITS: u32 = 0x207f_ffff;
/// Regtest halves the subsidy every 150 blocks.
const HALVING_INTERVAL: u32 = 150;
/// Bitcoin Core refuses blocks more than two hours ahead of its clock.
const MAX_FUTURE_SECS: u32 = 2 * 60 * 60;
const FILE_NAME: &str = "regtest-chain.hex";

/// The block subsidy at `height` on regtest, satoshis.
pub fn subsidy(height: u32) -> u64 {
    let halvings = height / HALVING_INTERVAL;
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

    /// Checks `block` as the next block, with Bitcoin Core's reason strings.
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
        if h.prev_blockhash != self.tip().block_hash() {
            return Err(reject("prev-blk-not-found"));
        }
        if h.bits.to_consensus() != REGTEST_BITS {
            return Err(reject("bad-diffbits"));
        }
        h.validate_pow(Target::from_compact(h.bits))
            .map_err(|_| reject("high-hash"))?;
        if h.time <= self.median_time_past() {
            return Err(reject("time-too-old"));
        }
        if h.time > now.saturating_add(MAX_FUTURE_SECS) {
            return Err(reject("time-too-new"));
        }
        // BIP 34, 65, 66 are active from height 1 on regtest.
        if h.version.to_consensus() < 4 {
            return Err(reject("bad-version"));
        }
        let Some(coinbase) = block.txdata.first().filter(|t| t.is_coinbase()) else {
            return Err(reject("bad-cb-missing"));
        };
        if block.txdata.len() > 1 {
            return Err(reject("embedded-chain-takes-coinbase-only-blocks"));
        }
        let script_len = coinbase.input[0].script_sig.len();
        if !(2..=100).contains(&script_len) {
            return Err(reject("bad-cb-length"));
        }
        if !block.check_merkle_root() {
            return Err(reject("bad-txnmrklroot"));
        }
        if !block.check_witness_commitment() {
            return Err(reject("bad-witness-merkle-match"));
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
        let value: u64 = coinbase.output.iter().map(|o| o.value.to_sat()).sum();
        if value > subsidy(height) {
            return Err(reject("bad-cb-amount"));
        }
        if block.weight().to_wu() > 4_000_000 {
            return Err(reject("bad-blk-weight"));
        }
        Ok(())
    }
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
            coinbase_value: subsidy(height),
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
