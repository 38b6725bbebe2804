//! The pool as a Stratum V2 Template Provider (`--sv2-tp`): one task per client around an
//! `hashforge_sv2::Sv2TpServerSession`, handing out the pool's own templates (from
//! bitcoind or the embedded regtest chain) over the Template Distribution protocol, and
//! submitting the blocks clients find on them. What SRI's Job Declarator Client takes where
//! it would otherwise need Bitcoin Core's SV2 patch: with it, a miner's JDC can build its
//! jobs from this pool's templates and declare them to this pool's `--sv2-jd`. It takes the
//! same authority key as the SV2 mining endpoint.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::hashes::Hash;
use bitcoin::script::Builder;
use bitcoin::{consensus, Amount, Transaction, TxOut};
use hashforge_core::merkle_branch;
use hashforge_sv2::{
    SubmittedSolution, Sv2Error, Sv2TpServerSession, TemplateOffer, TpServerEvent,
};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::server::submit_pushed_block;
use crate::server_sv2::{unix_now, write_queued};
use crate::template::Template;
use crate::Shared;

/// Templates kept per connection for RequestTransactionData and SubmitSolution.
const KEPT: usize = 16;

/// A template as the Template Distribution protocol carries it.
pub fn offer(template: &Template, template_id: u64, future_template: bool) -> TemplateOffer {
    let outputs: Vec<TxOut> = template
        .witness_commitment
        .iter()
        .map(|script| TxOut {
            value: Amount::ZERO,
            script_pubkey: script.clone(),
        })
        .collect();
    TemplateOffer {
        template_id,
        future_template,
        version: template.version,
        coinbase_tx_version: 2,
        coinbase_prefix: Builder::new()
            .push_int(i64::from(template.height))
            .into_bytes(),
        coinbase_tx_input_sequence: u32::MAX,
        coinbase_tx_value_remaining: template.coinbase_value,
        coinbase_tx_outputs_count: outputs.len() as u32,
        coinbase_tx_outputs: outputs.iter().flat_map(consensus::serialize).collect(),
        coinbase_tx_locktime: 0,
        merkle_path: merkle_branch(&template.txids),
    }
}

struct Conn<'a> {
    shared: &'a Shared,
    session: Sv2TpServerSession,
    /// Templates sent, oldest first.
    sent: VecDeque<(u64, Arc<Template>)>,
    next_id: u64,
}

impl Conn<'_> {
    /// Sends the pool's current template if it is not the last one sent: a new previous
    /// block hash as a future template and the SetNewPrevHash that activates it.
    fn send_current(&mut self) -> Result<(), Sv2Error> {
        let Some(template) = self.shared.jobs.template() else {
            return Ok(());
        };
        let last = self.sent.back().map(|(_, t)| Arc::clone(t));
        if last.as_ref().is_some_and(|t| Arc::ptr_eq(t, &template)) {
            return Ok(());
        }
        let new_tip = last.is_none_or(|t| t.prev_hash != template.prev_hash);
        let id = self.next_id;
        self.next_id += 1;
        self.session.new_template(&offer(&template, id, new_tip))?;
        if new_tip {
            let target = template
                .bits
                .to_target()
                .map(|t| t.to_le_bytes())
                .unwrap_or([0xff; 32]);
            self.session.set_new_prev_hash(
                id,
                template.prev_hash.to_byte_array(),
                template.time,
                template.bits.0,
                target,
            )?;
        }
        if self.sent.len() >= KEPT {
            self.sent.pop_front();
        }
        self.sent.push_back((id, template));
        Ok(())
    }

    fn kept(&self, template_id: u64) -> Option<Arc<Template>> {
        self.sent
            .iter()
            .find(|(id, _)| *id == template_id)
            .map(|(_, t)| Arc::clone(t))
    }

    fn transaction_data(&mut self, template_id: u64) -> Result<(), Sv2Error> {
        match self.kept(template_id) {
            Some(t) => {
                let txs: Vec<Vec<u8>> = t.transactions.iter().map(consensus::serialize).collect();
                self.session.transaction_data(template_id, &[], &txs)
            }
            None => self
                .session
                .transaction_data_error(template_id, template_id < self.next_id),
        }
    }

    async fn solution(&mut self, s: SubmittedSolution) {
        let Some(template) = self.kept(s.template_id) else {
            tracing::info!(
                template_id = s.template_id,
                "SubmitSolution for a template not kept: ignored"
            );
            return;
        };
        let coinbase: Transaction = match consensus::deserialize(&s.coinbase_tx) {
            Ok(tx) => tx,
            Err(e) => {
                tracing::warn!("SubmitSolution with a coinbase that does not parse: {e}");
                return;
            }
        };
        let header = bitcoin::block::Header {
            version: bitcoin::block::Version::from_consensus(s.version as i32),
            prev_blockhash: template.prev_hash,
            merkle_root: bitcoin::TxMerkleNode::all_zeros(),
            time: s.header_timestamp,
            bits: bitcoin::CompactTarget::from_consensus(template.bits.0),
            nonce: s.header_nonce,
        };
        let block = match crate::declare::solved_block(header, coinbase, &template.transactions) {
            Ok(b) => b,
            Err(why) => {
                tracing::warn!("SubmitSolution refused: {why}");
                return;
            }
        };
        let from = "submitted by a template client";
        submit_pushed_block(self.shared, &block, template.height, from).await;
    }
}

/// Serves one Template Distribution client until it leaves, misbehaves, or the pool stops.
pub(crate) async fn serve(
    shared: &Shared,
    mut stream: TcpStream,
    mut shutdown: watch::Receiver<bool>,
) -> String {
    let cfg = &shared.config;
    let Some(authority) = shared.sv2_authority.as_ref() else {
        return "no SV2 key".into();
    };
    let session = match Sv2TpServerSession::new(
        authority,
        hashforge_sv2::CERT_VALIDITY,
        unix_now(),
        hashforge_sv2::random_seed(),
    ) {
        Ok(s) => s,
        Err(e) => return format!("cannot start the handshake: {e}"),
    };
    let mut conn = Conn {
        shared,
        session,
        sent: VecDeque::new(),
        next_id: 1,
    };
    let mut jobs = shared.generation.subscribe();
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::new();
    let handshake_deadline = Instant::now() + cfg.handshake_timeout;
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let why = 'serve: loop {
        let queued = |out: &mut Vec<u8>| conn.session.transmit_into(out);
        if write_queued(&mut stream, &mut out, queued).await.is_err() {
            break 'serve "write failed".to_string();
        }
        tokio::select! {
            read = stream.read(&mut buf) => {
                let n = match read {
                    Ok(0) => break 'serve "closed by the client".into(),
                    Ok(n) => n,
                    Err(e) => break 'serve format!("read: {e}"),
                };
                let events = match conn.session.handle_bytes(&buf[..n]) {
                    Ok(events) => events,
                    Err(e) => {
                        let queued = |out: &mut Vec<u8>| conn.session.transmit_into(out);
                        let _ = write_queued(&mut stream, &mut out, queued).await;
                        break 'serve format!("{e}");
                    }
                };
                for event in events {
                    let result = match event {
                        TpServerEvent::SetUp { vendor, .. } => {
                            tracing::debug!(%vendor, "template client set up");
                            jobs.borrow_and_update();
                            conn.send_current()
                        }
                        TpServerEvent::CoinbaseOutputConstraints { max_additional_size, .. } => {
                            tracing::debug!(max_additional_size, "template client's coinbase constraints");
                            Ok(())
                        }
                        TpServerEvent::RequestTransactionData { template_id } => {
                            conn.transaction_data(template_id)
                        }
                        TpServerEvent::Solution(s) => {
                            conn.solution(s).await;
                            Ok(())
                        }
                    };
                    if let Err(e) = result {
                        break 'serve e.to_string();
                    }
                }
            }
            changed = jobs.changed(), if conn.session.is_set_up() => {
                if changed.is_err() {
                    break 'serve "pool stopping".into();
                }
                jobs.borrow_and_update();
                if let Err(e) = conn.send_current() {
                    break 'serve e.to_string();
                }
            }
            _ = tick.tick() => {
                if !conn.session.is_set_up() && Instant::now() > handshake_deadline {
                    break 'serve "no Noise handshake and SetupConnection in time".into();
                }
            }
            _ = shutdown.changed() => break 'serve "pool stopping".into(),
        }
    };
    why
}
