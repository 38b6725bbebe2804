//! Block templates and where they come from.

use std::future::Future;
use std::pin::Pin;

use bitcoin::hashes::Hash;
use bitcoin::{consensus, Block, BlockHash, Network, ScriptBuf, Transaction};
use hashforge_core::{CompactTarget, Difficulty};
use serde_json::Value;

/// A future that a template source returns (boxed so sources fit behind one trait object).
pub type SourceFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, SourceError>> + Send + 'a>>;

/// What went wrong talking to a template source.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("cannot reach bitcoind at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error(
        "bitcoind refused the RPC credentials (check --rpc-user/--rpc-password or --rpc-cookie)"
    )]
    Unauthorized,
    #[error("bitcoind is still syncing (initial block download); the pool waits for it")]
    Syncing,
    #[error("bitcoind answered {method} with error {code}: {message}")]
    Rpc {
        method: String,
        code: i64,
        message: String,
    },
    #[error("malformed reply to {method}: {reason}")]
    Malformed { method: String, reason: String },
    /// A submitted block was refused, with Bitcoin Core's reason string (`high-hash`, ...).
    #[error("block rejected: {0}")]
    Rejected(String),
    #[error("chain storage: {0}")]
    Storage(String),
}

/// Everything needed to build a block on the current tip.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    pub height: u32,
    pub prev_hash: BlockHash,
    pub version: u32,
    pub bits: CompactTarget,
    /// The time to put in the header (`curtime`).
    pub time: u32,
    /// The earliest time a block on this tip may carry (median time past + 1).
    pub min_time: u32,
    /// Subsidy plus fees, satoshis.
    pub coinbase_value: u64,
    /// Transactions in template order (after the coinbase).
    pub transactions: Vec<Transaction>,
    /// Their txids, internal byte order.
    pub txids: Vec<[u8; 32]>,
    /// The BIP 141 commitment output, when the template has one.
    pub witness_commitment: Option<ScriptBuf>,
}

fn malformed(reason: impl Into<String>) -> SourceError {
    SourceError::Malformed {
        method: "getblocktemplate".into(),
        reason: reason.into(),
    }
}

impl Template {
    /// The network difficulty of the block being mined (its nBits); `None` for an nBits that
    /// decodes to no target.
    pub fn network_difficulty(&self) -> Option<Difficulty> {
        self.bits.to_target().ok().map(|t| t.difficulty())
    }

    /// Reads a `getblocktemplate` reply (its `result` object).
    pub fn from_gbt(v: &Value) -> Result<Template, SourceError> {
        let u32_of = |k: &str| -> Result<u32, SourceError> {
            v[k].as_u64()
                .and_then(|x| u32::try_from(x).ok())
                .ok_or_else(|| malformed(format!("`{k}` missing or out of range")))
        };
        let prev: BlockHash = v["previousblockhash"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| malformed("`previousblockhash` missing"))?;
        let bits = v["bits"]
            .as_str()
            .and_then(|s| u32::from_str_radix(s, 16).ok())
            .ok_or_else(|| malformed("`bits` missing"))?;
        let mut transactions = Vec::new();
        let mut txids = Vec::new();
        for (i, t) in v["transactions"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let raw = t["data"]
                .as_str()
                .and_then(|h| hex::decode(h).ok())
                .ok_or_else(|| malformed(format!("transaction {i}: `data` missing")))?;
            let tx: Transaction = consensus::deserialize(&raw)
                .map_err(|e| malformed(format!("transaction {i}: {e}")))?;
            txids.push(tx.compute_txid().to_byte_array());
            transactions.push(tx);
        }
        let witness_commitment = match v["default_witness_commitment"].as_str() {
            Some(h) => {
                Some(ScriptBuf::from_bytes(hex::decode(h).map_err(|e| {
                    malformed(format!("default_witness_commitment: {e}"))
                })?))
            }
            None => None,
        };
        Ok(Template {
            height: u32_of("height")?,
            prev_hash: prev,
            version: u32_of("version")?,
            bits: CompactTarget(bits),
            time: u32_of("curtime")?,
            min_time: u32_of("mintime").unwrap_or(0),
            coinbase_value: v["coinbasevalue"]
                .as_u64()
                .ok_or_else(|| malformed("`coinbasevalue` missing"))?,
            transactions,
            txids,
            witness_commitment,
        })
    }
}

/// Where block templates come from and where blocks go: the operator's bitcoind or the
/// embedded regtest chain.
pub trait TemplateSource: Send + Sync {
    /// Said in logs and the API, so nobody mistakes a regtest chain for mainnet.
    fn describe(&self) -> String;
    fn network(&self) -> Network;
    /// A template on the current tip.
    fn template(&self) -> SourceFuture<'_, Template>;
    /// The current tip (polled to notice new blocks).
    fn best_block(&self) -> SourceFuture<'_, BlockHash>;
    /// Submits a solved block; `Ok` means the node accepted it.
    fn submit_block<'a>(&'a self, block: &'a Block) -> SourceFuture<'a, ()>;
}
