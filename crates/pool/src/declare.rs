//! Job declaration: blocks whose transactions the miner chose.
//!
//! The pool's Job Declarator Server (`--sv2-jd`, [`crate::server_jd`]) gives a miner's Job
//! Declarator Client a token and the output its coinbase must pay (the pool's payout, or
//! in solo mode the miner's address); the client declares a job under it (its coinbase and
//! its transactions' wtxids), sends the transactions the pool does not know, and gets a new
//! token for the job the pool accepted. Its mining connection then mines that job through
//! SetCustomMiningJob ([`custom_job`]), and a share there counts as any other; a block is
//! built from the declared transactions and submitted by the pool, as its own blocks are.
//!
//! What the pool checks of a declared job: the token is one it gave and not yet used; the
//! coinbase is one coinbase transaction for the height being mined (BIP 34) whose every
//! satoshi goes to the payout output and which pays it at least the block subsidy; every
//! transaction it names is sent in full and hashes to its wtxid; the block's witness
//! commitment matches them. What it does not check: whether the transactions are valid
//! (their inputs exist, their fees add up). The pool keeps no mempool or UTXO set, so the
//! node that takes the block does that; with the embedded regtest chain, which takes only
//! coinbase-only blocks, a declared job with transactions makes blocks it refuses.
//!
//! Full-template mode only: a token not followed by a DeclareMiningJob (coinbase-only mode)
//! is refused on the mining connection.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitcoin::consensus::{self, Decodable};
use bitcoin::hashes::Hash;
use bitcoin::script::Builder;
use bitcoin::{Block, BlockHash, Network, ScriptBuf, Transaction, TxOut, Weight};
use hashforge_core::{merkle_branch, CompactTarget, JobParts, StratumPrevHash};
use hashforge_stratum::ServerJob;
use hashforge_sv2::codes::{custom_job as scmj, declare};
use hashforge_sv2::{CustomJobRequest, Declaration, Solution};

use crate::jobs::{JobCoinbase, PoolJob};
use crate::template::Template;

/// How long an allocated token may wait for its declaration, and a declared job for its
/// SetCustomMiningJob.
const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Tokens and declared jobs kept, at most each (the oldest go first).
const MAX_TOKENS: usize = 100_000;
/// Transactions remembered from declarations (so the next declaration need not send them
/// again), at most.
const MAX_KNOWN: usize = 50_000;
/// A coinbase scriptSig is 2 to 100 bytes (consensus).
const MAX_SCRIPT_SIG: usize = 100;

/// Why a declared or custom job was refused: the protocol's error code and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub why: String,
}

fn refuse<T>(code: &'static str, why: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal {
        code,
        why: why.into(),
    })
}

/// A job the pool accepted from a miner's Job Declarator Client.
#[derive(Debug)]
pub struct DeclaredJob {
    pub user: String,
    /// The script the coinbase pays.
    pub payout: ScriptBuf,
    /// The header version declared.
    pub version: u32,
    pub height: u32,
    /// The declared coinbase with its extranonce zeroed (BIP 141 fields kept).
    pub coinbase: Transaction,
    /// Its scriptSig's bytes before the extranonce.
    pub script_prefix: Vec<u8>,
    /// The extranonce's length (the mining channel's prefix and the miner's part).
    pub extranonce_len: usize,
    pub transactions: Vec<Transaction>,
    /// Their txids (internal order), for the merkle path.
    pub txids: Vec<[u8; 32]>,
}

/// A declaration the pool has checked as far as it can without transactions it lacks.
#[derive(Debug)]
pub struct Checked {
    pub user: String,
    pub payout: ScriptBuf,
    pub declaration: Declaration,
    pub height: u32,
    pub coinbase: Transaction,
    pub script_prefix: Vec<u8>,
    pub extranonce_len: usize,
    /// The transactions in wtxid-list order: `None` where the pool must ask for one.
    pub transactions: Vec<Option<Transaction>>,
}

impl Checked {
    /// Positions in the wtxid list the client must send in full.
    pub fn missing(&self) -> Vec<u16> {
        (0..self.transactions.len())
            .filter(|i| self.transactions[*i].is_none())
            .map(|i| i as u16)
            .collect()
    }

    /// Fills in the transactions asked for (in the order of [`Checked::missing`]); each
    /// must hash to its declared wtxid.
    pub fn provide(&mut self, sent: &[Vec<u8>]) -> Result<(), Refusal> {
        let missing = self.missing();
        if sent.len() != missing.len() {
            return refuse(
                declare::MISSING_TXS,
                format!("{} transactions for {} asked", sent.len(), missing.len()),
            );
        }
        for (position, bytes) in missing.into_iter().zip(sent) {
            let i = usize::from(position);
            let tx: Transaction = match consensus::deserialize(bytes) {
                Ok(tx) => tx,
                Err(e) => {
                    return refuse(
                        declare::INVALID_JOB,
                        format!("transaction {i} does not parse: {e}"),
                    )
                }
            };
            let wtxid = tx.compute_wtxid().to_byte_array();
            if wtxid != self.declaration.wtxids[i] {
                return refuse(
                    declare::INVALID_JOB,
                    format!("transaction {i} is not the one its wtxid names"),
                );
            }
            self.transactions[i] = Some(tx);
        }
        Ok(())
    }

    /// The job, once every transaction is in: its block's weight and witness commitment
    /// checked.
    pub fn complete(self) -> Result<DeclaredJob, Refusal> {
        let transactions: Vec<Transaction> = match self.transactions.into_iter().collect() {
            Some(t) => t,
            None => return refuse(declare::MISSING_TXS, "transactions still missing"),
        };
        let mut block = Block {
            header: bitcoin::block::Header {
                version: bitcoin::block::Version::from_consensus(self.declaration.version as i32),
                prev_blockhash: BlockHash::all_zeros(),
                merkle_root: bitcoin::TxMerkleNode::all_zeros(),
                time: 0,
                bits: bitcoin::CompactTarget::from_consensus(0),
                nonce: 0,
            },
            txdata: Vec::with_capacity(transactions.len() + 1),
        };
        block.txdata.push(self.coinbase.clone());
        block.txdata.extend(transactions);
        if block.weight() > Weight::MAX_BLOCK {
            return refuse(
                declare::INVALID_JOB,
                "the block is heavier than 4M weight units",
            );
        }
        if !block.check_witness_commitment() {
            return refuse(
                declare::INVALID_COINBASE_TX,
                "the coinbase's witness commitment does not match the transactions",
            );
        }
        let mut txdata = block.txdata;
        let coinbase = txdata.remove(0);
        let txids = txdata
            .iter()
            .map(|t| t.compute_txid().to_byte_array())
            .collect();
        Ok(DeclaredJob {
            user: self.user,
            payout: self.payout,
            version: self.declaration.version,
            height: self.height,
            coinbase,
            script_prefix: self.script_prefix,
            extranonce_len: self.extranonce_len,
            transactions: txdata,
            txids,
        })
    }
}

/// A declared coinbase, put back together around a zeroed extranonce: the transaction,
/// its scriptSig's bytes before the extranonce, and the extranonce's length.
pub fn parse_coinbase(
    prefix: &[u8],
    suffix: &[u8],
) -> Result<(Transaction, Vec<u8>, usize), Refusal> {
    let bad = |why: &str| refuse(declare::INVALID_COINBASE_TX, format!("the coinbase: {why}"));
    // version (4), [marker 0, flag 1], input count (1), prevout (36), scriptSig length (1:
    // at most 100 bytes).
    let segwit = prefix.get(4..6) == Some(&[0, 1][..]);
    let inputs_at = if segwit { 6 } else { 4 };
    let script_at = inputs_at + 1 + 36 + 1;
    if prefix.len() < script_at {
        return bad("its prefix ends before the scriptSig");
    }
    if prefix[inputs_at] != 1 {
        return refuse(
            declare::INVALID_COINBASE_TX_INPUT,
            "a coinbase has exactly one input",
        );
    }
    let script_len = usize::from(prefix[script_at - 1]);
    let script_prefix = prefix[script_at..].to_vec();
    if !(2..=MAX_SCRIPT_SIG).contains(&script_len) || script_prefix.len() > script_len {
        return bad("its scriptSig length is not 2 to 100 bytes around the extranonce");
    }
    let extranonce_len = script_len - script_prefix.len();
    if extranonce_len > 32 {
        return bad("an extranonce longer than 32 bytes");
    }
    let mut bytes = Vec::with_capacity(prefix.len() + extranonce_len + suffix.len());
    bytes.extend_from_slice(prefix);
    bytes.resize(prefix.len() + extranonce_len, 0);
    bytes.extend_from_slice(suffix);
    let mut reader = &bytes[..];
    let tx = match Transaction::consensus_decode(&mut reader) {
        Ok(tx) => tx,
        Err(e) => return bad(&e.to_string()),
    };
    if !reader.is_empty() {
        return bad("bytes after the transaction");
    }
    if !tx.is_coinbase() {
        return refuse(
            declare::INVALID_COINBASE_TX_INPUT,
            "its input spends an output: not a coinbase",
        );
    }
    Ok((tx, script_prefix, extranonce_len))
}

/// Checks a declared coinbase pays the pool: a scriptSig that starts with the height (BIP
/// 34), every satoshi to `payout`, at least the subsidy.
pub fn check_payout(
    coinbase: &Transaction,
    height: u32,
    payout: &ScriptBuf,
    subsidy: u64,
) -> Result<(), Refusal> {
    let bip34 = Builder::new().push_int(i64::from(height)).into_script();
    if !coinbase.input[0]
        .script_sig
        .as_bytes()
        .starts_with(bip34.as_bytes())
    {
        return refuse(
            declare::STALE_CHAIN_TIP,
            format!("the coinbase is not for height {height}, the block being mined"),
        );
    }
    let mut paid = 0u64;
    for out in &coinbase.output {
        if out.script_pubkey == *payout {
            paid = paid.saturating_add(out.value.to_sat());
        } else if out.value.to_sat() > 0 {
            return refuse(
                declare::INVALID_COINBASE_TX,
                "an output other than the pool's payout carries value",
            );
        }
    }
    if paid < subsidy {
        return refuse(
            declare::INVALID_COINBASE_TX,
            format!("the pool's payout gets {paid} sat, less than the {subsidy} sat subsidy"),
        );
    }
    Ok(())
}

struct Allocated {
    user: String,
    payout: ScriptBuf,
}

/// Values by token that expire after [`TOKEN_LIFETIME`], [`MAX_TOKENS`] at most (the
/// oldest go first), in insertion order so that expiring is cheap.
struct Aging<V> {
    map: HashMap<Vec<u8>, (V, Instant)>,
    order: VecDeque<(Vec<u8>, Instant)>,
}

impl<V> Default for Aging<V> {
    fn default() -> Self {
        Aging {
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<V> Aging<V> {
    /// Drops the oldest entry in the order (from the map too, unless it was replaced or
    /// removed since).
    fn drop_oldest(&mut self) {
        if let Some((key, at)) = self.order.pop_front() {
            if self.map.get(&key).is_some_and(|(_, a)| *a == at) {
                self.map.remove(&key);
            }
        }
    }

    fn insert(&mut self, key: Vec<u8>, value: V, now: Instant) {
        while self
            .order
            .front()
            .is_some_and(|(_, at)| now.duration_since(*at) >= TOKEN_LIFETIME)
            || self.map.len() >= MAX_TOKENS
            || self.order.len() >= 2 * MAX_TOKENS
        {
            self.drop_oldest();
        }
        self.order.push_back((key.clone(), now));
        self.map.insert(key, (value, now));
    }

    fn get(&self, key: &[u8]) -> Option<&V> {
        self.map
            .get(key)
            .filter(|(_, at)| at.elapsed() < TOKEN_LIFETIME)
            .map(|(v, _)| v)
    }

    fn remove(&mut self, key: &[u8]) -> Option<V> {
        let (value, at) = self.map.remove(key)?;
        (at.elapsed() < TOKEN_LIFETIME).then_some(value)
    }
}

#[derive(Default)]
struct State {
    allocated: Aging<Allocated>,
    declared: Aging<Arc<DeclaredJob>>,
    /// Transactions by wtxid: the current template's and the ones declarations sent.
    known: HashMap<[u8; 32], Transaction>,
    /// The template whose transactions `known` holds (its previous block hash).
    known_tip: Option<BlockHash>,
}

/// The tokens, declared jobs and known transactions of the pool's Job Declarator Server,
/// shared by its connections and the mining connections that mine the jobs.
#[derive(Default)]
pub(crate) struct Declarations {
    state: Mutex<State>,
}

fn new_token() -> Vec<u8> {
    hashforge_sv2::random_seed()[..16].to_vec()
}

impl Declarations {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh token for `user`, whose coinbase must pay `payout`.
    pub(crate) fn allocate(&self, user: &str, payout: ScriptBuf) -> Vec<u8> {
        let token = new_token();
        let allocated = Allocated {
            user: user.to_string(),
            payout,
        };
        self.lock()
            .allocated
            .insert(token.clone(), allocated, Instant::now());
        token
    }

    /// Checks a declaration against its token and the template being mined, and finds the
    /// transactions the pool knows.
    pub(crate) fn check(
        &self,
        d: Declaration,
        template: &Template,
        network: Network,
    ) -> Result<Checked, Refusal> {
        let (coinbase, script_prefix, extranonce_len) =
            parse_coinbase(&d.coinbase_prefix, &d.coinbase_suffix)?;
        let mut s = self.lock();
        let Some(a) = s.allocated.get(&d.token) else {
            return refuse(
                declare::INVALID_MINING_JOB_TOKEN,
                "a token this pool did not give, used, or expired",
            );
        };
        let (user, payout) = (a.user.clone(), a.payout.clone());
        let height = template.height;
        check_payout(
            &coinbase,
            height,
            &payout,
            crate::chain::subsidy(network, height),
        )?;
        if s.known_tip != Some(template.prev_hash) {
            s.known.clear();
            s.known_tip = Some(template.prev_hash);
            for tx in &template.transactions {
                s.known
                    .insert(tx.compute_wtxid().to_byte_array(), tx.clone());
            }
        }
        let transactions = d.wtxids.iter().map(|w| s.known.get(w).cloned()).collect();
        Ok(Checked {
            user,
            payout,
            height,
            coinbase,
            script_prefix,
            extranonce_len,
            transactions,
            declaration: d,
        })
    }

    /// Takes a complete job: its allocated token is used up, and the new token that names
    /// it comes back (None: the token was used or expired meanwhile).
    pub(crate) fn accept(&self, token: &[u8], job: Arc<DeclaredJob>) -> Option<Vec<u8>> {
        let mut s = self.lock();
        s.allocated.remove(token)?;
        if s.known.len() + job.transactions.len() > MAX_KNOWN {
            s.known.clear();
            s.known_tip = None;
        }
        for tx in &job.transactions {
            s.known
                .insert(tx.compute_wtxid().to_byte_array(), tx.clone());
        }
        let new = new_token();
        s.declared.insert(new.clone(), job, Instant::now());
        Some(new)
    }

    /// The declared job a token names.
    pub(crate) fn job(&self, token: &[u8]) -> Option<Arc<DeclaredJob>> {
        self.lock().declared.get(token).map(Arc::clone)
    }
}

/// The block a client's PushSolution makes of its declared job: the coinbase with the
/// whole extranonce, the declared transactions, the header it names (which must meet its
/// own nBits).
pub fn solution_block(job: &DeclaredJob, s: &Solution) -> Result<Block, String> {
    if s.extranonce.len() != job.extranonce_len {
        return Err(format!(
            "an extranonce of {} bytes for a coinbase that has {}",
            s.extranonce.len(),
            job.extranonce_len
        ));
    }
    let mut coinbase = job.coinbase.clone();
    let mut script = job.script_prefix.clone();
    script.extend_from_slice(&s.extranonce);
    coinbase.input[0].script_sig = ScriptBuf::from_bytes(script);
    let header = bitcoin::block::Header {
        version: bitcoin::block::Version::from_consensus(s.version as i32),
        prev_blockhash: BlockHash::from_byte_array(s.prev_hash),
        merkle_root: bitcoin::TxMerkleNode::all_zeros(),
        time: s.ntime,
        bits: bitcoin::CompactTarget::from_consensus(s.nbits),
        nonce: s.nonce,
    };
    solved_block(header, coinbase, &job.transactions)
}

/// The block a solution makes: `header` (its merkle root filled in here) over the coinbase
/// and the other transactions; it must meet its own nBits.
pub fn solved_block(
    header: bitcoin::block::Header,
    coinbase: Transaction,
    transactions: &[Transaction],
) -> Result<Block, String> {
    let mut txdata = Vec::with_capacity(transactions.len() + 1);
    txdata.push(coinbase);
    txdata.extend(transactions.iter().cloned());
    let mut block = Block { header, txdata };
    block.header.merkle_root = block
        .compute_merkle_root()
        .ok_or("a block without transactions")?;
    let target = block.header.target();
    block
        .header
        .validate_pow(target)
        .map_err(|_| "the header does not meet its nBits".to_string())?;
    Ok(block)
}

/// The job a SetCustomMiningJob asks for, checked against the declared job its token names
/// and the template being mined, built as the pool's own jobs are (so its shares and its
/// block go the same way). `clean`: the channel's earlier jobs are stale (a new tip).
pub fn custom_job(
    r: &CustomJobRequest,
    declared: &DeclaredJob,
    template: &Template,
    job_id: String,
    clean: bool,
    now: u32,
) -> Result<PoolJob, Refusal> {
    if r.prev_hash != template.prev_hash.to_byte_array() || declared.height != template.height {
        return refuse(scmj::STALE_CHAIN_TIP, "not on the tip being mined");
    }
    if r.nbits != template.bits.0 {
        return refuse(
            scmj::INVALID_NBITS,
            "not the nBits of the block being mined",
        );
    }
    if r.min_ntime < template.min_time || r.min_ntime > now.saturating_add(2 * 60 * 60) {
        return refuse(
            scmj::INVALID_MIN_NTIME,
            "before median time past or over two hours ahead",
        );
    }
    if r.version != declared.version {
        return refuse(scmj::INVALID_VERSION, "not the version declared");
    }
    let cb = &declared.coinbase;
    if r.coinbase_tx_version as i32 != cb.version.0 {
        return refuse(
            scmj::INVALID_COINBASE_TX_VERSION,
            "not the coinbase version declared",
        );
    }
    if r.coinbase_prefix != declared.script_prefix
        || r.extranonce_prefix.len() + r.extranonce_size != declared.extranonce_len
    {
        return refuse(
            scmj::INVALID_COINBASE_PREFIX,
            "not the scriptSig declared, or an extranonce of another size than the channel's",
        );
    }
    if r.coinbase_tx_input_n_sequence != cb.input[0].sequence.0 {
        return refuse(
            scmj::INVALID_COINBASE_TX_INPUT_N_SEQUENCE,
            "not the input sequence declared",
        );
    }
    let outputs: Option<Vec<TxOut>> = consensus::deserialize(&r.coinbase_tx_outputs).ok();
    if outputs.as_ref() != Some(&cb.output) {
        return refuse(
            scmj::INVALID_COINBASE_TX_OUTPUTS,
            "not the outputs declared",
        );
    }
    if r.coinbase_tx_locktime != cb.lock_time.to_consensus_u32() {
        return refuse(
            scmj::INVALID_COINBASE_TX_LOCKTIME,
            "not the lock time declared",
        );
    }
    if r.merkle_path != merkle_branch(&declared.txids) {
        return refuse(
            scmj::INVALID_MERKLE_PATH,
            "not the merkle path of the transactions declared",
        );
    }
    // Stratum's split: the coinbase without its witness, cut around the extranonce (the
    // channel's prefix is extranonce1, the miner's part extranonce2).
    let mut stripped = cb.clone();
    stripped.input[0].witness = bitcoin::Witness::new();
    let bytes = consensus::serialize(&stripped);
    let cut = 4 + 1 + 36 + 1 + declared.script_prefix.len();
    let parts = JobParts {
        prevhash: StratumPrevHash::from_internal(&r.prev_hash),
        coinb1: bytes[..cut].to_vec(),
        coinb2: bytes[cut + declared.extranonce_len..].to_vec(),
        merkle_branch: r.merkle_path.clone(),
        version: r.version,
        nbits: CompactTarget(r.nbits),
        ntime: r.min_ntime,
    };
    let value = cb.output.iter().map(|o| o.value.to_sat()).sum();
    Ok(PoolJob {
        server_job: Arc::new(ServerJob::new(job_id, parts, clean)),
        template: Arc::new(Template {
            height: template.height,
            prev_hash: template.prev_hash,
            version: r.version,
            bits: template.bits,
            time: r.min_ntime,
            min_time: template.min_time,
            coinbase_value: value,
            transactions: declared.transactions.clone(),
            txids: declared.txids.clone(),
            witness_commitment: None,
        }),
        coinbase: JobCoinbase::Declared {
            transaction: cb.clone(),
            script_prefix: declared.script_prefix.clone(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::{absolute, transaction, Amount, OutPoint, Sequence, TxIn, Witness};

    fn coinbase(height: u32, witness: bool, outputs: Vec<TxOut>) -> Transaction {
        let mut script = Builder::new().push_int(i64::from(height)).into_bytes();
        script.extend_from_slice(&[0xee; 8]);
        Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::from_bytes(script),
                sequence: Sequence::MAX,
                witness: if witness {
                    Witness::from_slice(&[[0u8; 32]])
                } else {
                    Witness::new()
                },
            }],
            output: outputs,
        }
    }

    fn pay(script: &ScriptBuf, sat: u64) -> TxOut {
        TxOut {
            value: Amount::from_sat(sat),
            script_pubkey: script.clone(),
        }
    }

    /// Splits a coinbase around its last 8 scriptSig bytes, as a client declares it.
    fn split(tx: &Transaction) -> (Vec<u8>, Vec<u8>) {
        let bytes = consensus::serialize(tx);
        let script = tx.input[0].script_sig.as_bytes();
        let segwit = !tx.input[0].witness.is_empty();
        let at = 4 + if segwit { 2 } else { 0 } + 1 + 36 + 1 + script.len() - 8;
        (bytes[..at].to_vec(), bytes[at + 8..].to_vec())
    }

    #[test]
    fn a_declared_coinbase_reads_back_with_or_without_bip141_fields() {
        let payout = ScriptBuf::from_bytes(vec![0x51]);
        for witness in [false, true] {
            let tx = coinbase(300, witness, vec![pay(&payout, 100)]);
            let (prefix, suffix) = split(&tx);
            let (back, script_prefix, extranonce_len) = parse_coinbase(&prefix, &suffix).unwrap();
            assert_eq!(extranonce_len, 8);
            assert_eq!(script_prefix, Builder::new().push_int(300).into_bytes());
            let mut zeroed = tx.clone();
            let mut script = script_prefix.clone();
            script.extend_from_slice(&[0; 8]);
            zeroed.input[0].script_sig = ScriptBuf::from_bytes(script);
            assert_eq!(back, zeroed);
        }
    }

    #[test]
    fn bad_declared_coinbases_are_refused_with_their_reason() {
        let payout = ScriptBuf::from_bytes(vec![0x51]);
        let tx = coinbase(300, true, vec![pay(&payout, 100)]);
        let (prefix, suffix) = split(&tx);
        let code = |p: &[u8], s: &[u8]| parse_coinbase(p, s).unwrap_err().code;
        assert_eq!(code(&prefix[..20], &suffix), declare::INVALID_COINBASE_TX);
        let mut extra = suffix.clone();
        extra.push(0);
        assert_eq!(code(&prefix, &extra), declare::INVALID_COINBASE_TX);
        assert_eq!(
            code(&prefix, &suffix[..suffix.len() - 1]),
            declare::INVALID_COINBASE_TX
        );
        let mut two_inputs = prefix.clone();
        two_inputs[6] = 2;
        assert_eq!(
            code(&two_inputs, &suffix),
            declare::INVALID_COINBASE_TX_INPUT
        );
        let mut spends = prefix.clone();
        spends[7] = 1; // the prevout's txid is no longer null
        assert_eq!(code(&spends, &suffix), declare::INVALID_COINBASE_TX_INPUT);
        let mut long = prefix.clone();
        long[6 + 1 + 36] = 101;
        assert_eq!(code(&long, &suffix), declare::INVALID_COINBASE_TX);
    }

    #[test]
    fn tokens_expire_oldest_first_within_their_bound() {
        let mut aging: Aging<u32> = Aging::default();
        let t0 = Instant::now();
        for i in 0..=MAX_TOKENS as u32 {
            aging.insert(i.to_le_bytes().to_vec(), i, t0);
        }
        assert_eq!(aging.map.len(), MAX_TOKENS);
        assert_eq!(
            aging.get(&0u32.to_le_bytes()),
            None,
            "the oldest went first"
        );
        assert_eq!(aging.get(&1u32.to_le_bytes()), Some(&1));
        assert_eq!(aging.remove(&1u32.to_le_bytes()), Some(1));
        assert_eq!(aging.remove(&1u32.to_le_bytes()), None, "used once");
        // Past their lifetime, all go at the next insert.
        aging.insert(vec![9], 9, t0 + TOKEN_LIFETIME + Duration::from_secs(1));
        assert_eq!(aging.map.len(), 1);
        assert!(aging.order.len() <= 2);
    }

    #[test]
    fn a_declared_coinbase_must_pay_the_pool_for_this_height() {
        let payout = ScriptBuf::from_bytes(vec![0x51]);
        let other = ScriptBuf::from_bytes(vec![0x52]);
        let ok = coinbase(300, false, vec![pay(&payout, 100), pay(&other, 0)]);
        assert_eq!(check_payout(&ok, 300, &payout, 100), Ok(()));
        let code =
            |tx: &Transaction, height| check_payout(tx, height, &payout, 100).unwrap_err().code;
        assert_eq!(code(&ok, 301), declare::STALE_CHAIN_TIP);
        let short = coinbase(300, false, vec![pay(&payout, 99)]);
        assert_eq!(code(&short, 300), declare::INVALID_COINBASE_TX);
        let shared = coinbase(300, false, vec![pay(&payout, 100), pay(&other, 1)]);
        assert_eq!(code(&shared, 300), declare::INVALID_COINBASE_TX);
    }
}
