//! Jobs: a template, a coinbase paying someone, split for Stratum; and the block a solved
//! share makes of it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bitcoin::hashes::Hash;
use bitcoin::{Amount, Block, ScriptBuf, Transaction, TxOut};
use hashforge_core::{assemble_block, merkle_branch, CoinbaseSpec, JobParts, StratumPrevHash};
use hashforge_stratum::{ServerJob, ShareCandidate};

use crate::template::Template;

/// Why a job or a block could not be built.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("coinbase: {0}")]
    Coinbase(#[from] hashforge_core::CoinbaseError),
    #[error("block: {0}")]
    Block(#[from] hashforge_core::BlockError),
}

/// A job as the pool keeps it: what was sent, and what is needed to turn a winning share
/// into a block.
#[derive(Debug)]
pub struct PoolJob {
    pub server_job: Arc<ServerJob>,
    /// The block being mined; for a job a miner declared, the pool's template with the
    /// miner's transactions in place of its own.
    pub template: Arc<Template>,
    pub coinbase: JobCoinbase,
}

/// Whose coinbase a job carries.
#[derive(Clone, Debug)]
pub enum JobCoinbase {
    /// The pool's own.
    Ours(CoinbaseSpec),
    /// One a miner declared through the Job Declaration protocol: the transaction with
    /// `script_prefix` alone as its scriptSig (the extranonce follows it), and its witness.
    Declared {
        transaction: Transaction,
        script_prefix: Vec<u8>,
    },
}

impl PoolJob {
    /// The same work under a new job id (sent after a difficulty change so that it applies
    /// at once), never clean.
    pub fn renamed(&self, job_id: String) -> PoolJob {
        PoolJob {
            server_job: Arc::new(ServerJob::new(job_id, self.server_job.parts.clone(), false)),
            template: Arc::clone(&self.template),
            coinbase: self.coinbase.clone(),
        }
    }

    /// The block a share that meets the network target makes.
    pub fn block(&self, share: &ShareCandidate) -> Result<Block, JobError> {
        let mut extranonce = share.extranonce1.clone();
        extranonce.extend_from_slice(&share.submit.extranonce2);
        let coinbase = self.coinbase.transaction(&extranonce)?;
        Ok(assemble_block(
            &share.check.header,
            coinbase,
            self.template.transactions.clone(),
        )?)
    }
}

impl JobCoinbase {
    /// The coinbase with this (whole) extranonce.
    pub fn transaction(&self, extranonce: &[u8]) -> Result<Transaction, JobError> {
        Ok(match self {
            JobCoinbase::Ours(spec) => spec.transaction(extranonce)?,
            JobCoinbase::Declared {
                transaction,
                script_prefix,
            } => {
                let mut tx = transaction.clone();
                let mut script = script_prefix.clone();
                script.extend_from_slice(extranonce);
                tx.input[0].script_sig = ScriptBuf::from_bytes(script);
                tx
            }
        })
    }
}

/// Builds jobs for one template generation, one per payout script (one in pool mode, one per
/// miner address in solo mode), caching them.
pub struct JobFactory {
    tag: Vec<u8>,
    extranonce_size: usize,
    next_id: AtomicU64,
    current: Mutex<Generation>,
}

struct Generation {
    template: Option<Arc<Template>>,
    clean: bool,
    /// Clean generations (new tips) so far.
    tips: u64,
    jobs: HashMap<ScriptBuf, Arc<PoolJob>>,
}

impl JobFactory {
    pub fn new(tag: Vec<u8>, extranonce_size: usize) -> JobFactory {
        JobFactory {
            tag,
            extranonce_size,
            next_id: AtomicU64::new(1),
            current: Mutex::new(Generation {
                template: None,
                clean: true,
                tips: 0,
                jobs: HashMap::new(),
            }),
        }
    }

    /// A fresh job id, unique for the pool's lifetime.
    pub fn next_job_id(&self) -> String {
        format!("{:x}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generation> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a new generation, `clean` when it is on a new tip; returns the number of new
    /// tips so far (what tells a connection whether its jobs went stale).
    pub fn set_template(&self, template: Arc<Template>, clean: bool) -> u64 {
        let mut g = self.lock();
        g.tips += u64::from(clean);
        g.template = Some(template);
        g.clean = clean;
        g.jobs.clear();
        g.tips
    }

    pub fn template(&self) -> Option<Arc<Template>> {
        self.lock().template.clone()
    }

    /// The current job paying `payout`.
    pub fn job_for(&self, payout: &ScriptBuf) -> Result<Option<Arc<PoolJob>>, JobError> {
        let mut g = self.lock();
        let Some(template) = g.template.clone() else {
            return Ok(None);
        };
        if let Some(job) = g.jobs.get(payout) {
            return Ok(Some(Arc::clone(job)));
        }
        let job = Arc::new(self.build(template, payout.clone(), self.next_job_id(), g.clean)?);
        g.jobs.insert(payout.clone(), Arc::clone(&job));
        Ok(Some(job))
    }

    /// A job on `template` paying its whole coinbase value to `payout`.
    pub fn build(
        &self,
        template: Arc<Template>,
        payout: ScriptBuf,
        job_id: String,
        clean: bool,
    ) -> Result<PoolJob, JobError> {
        let coinbase = CoinbaseSpec {
            extranonce_size: self.extranonce_size,
            tag: self.tag.clone(),
            witness_commitment: template.witness_commitment.clone(),
            ..CoinbaseSpec::new(
                template.height,
                vec![TxOut {
                    value: Amount::from_sat(template.coinbase_value),
                    script_pubkey: payout,
                }],
            )
        };
        let split = coinbase.stratum_split()?;
        let parts = JobParts {
            prevhash: StratumPrevHash::from_internal(&template.prev_hash.to_byte_array()),
            coinb1: split.coinb1,
            coinb2: split.coinb2,
            merkle_branch: merkle_branch(&template.txids),
            version: template.version,
            nbits: template.bits,
            ntime: template.time,
        };
        Ok(PoolJob {
            server_job: Arc::new(ServerJob::new(job_id, parts, clean)),
            template,
            coinbase: JobCoinbase::Ours(coinbase),
        })
    }
}
