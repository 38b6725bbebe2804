//! A Template Provider's side of one Template Distribution connection, sans I/O: the pool
//! hands its templates to a client that builds its own jobs from them (SRI's Job Declarator
//! Client, which otherwise needs Bitcoin Core's SV2 patch or IPC interface).
//!
//! The session does the protocol (the handshake, SetupConnection for template
//! distribution, each message decoded exactly); the pool decides what to send (NewTemplate,
//! SetNewPrevHash, the transaction data asked for) and what a SubmitSolution makes.

use std::time::Duration;

use binary_sv2::{Seq0255, Seq064K, Str0255, B016M, B0255, B064K, U256};
use common_messages_sv2::{Protocol, SetupConnection};
use template_distribution_sv2::*;

use crate::key::AuthorityKeypair;
use crate::setup::{self, Incoming};
use crate::wire::{Frame, Wire};
use crate::{decode, text, Sv2Error};

/// A template as NewTemplate carries it. Hashes in internal byte order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateOffer {
    pub template_id: u64,
    /// For a previous block hash not sent yet: SetNewPrevHash activates it.
    pub future_template: bool,
    pub version: u32,
    pub coinbase_tx_version: u32,
    /// The coinbase scriptSig's first bytes (the BIP 34 height).
    pub coinbase_prefix: Vec<u8>,
    pub coinbase_tx_input_sequence: u32,
    /// Satoshis the client's outputs may take.
    pub coinbase_tx_value_remaining: u64,
    /// Outputs the coinbase must end with (the witness commitment), consensus-serialized
    /// one after another, without a count.
    pub coinbase_tx_outputs: Vec<u8>,
    pub coinbase_tx_outputs_count: u32,
    pub coinbase_tx_locktime: u32,
    pub merkle_path: Vec<[u8; 32]>,
}

/// A block a client found on one of the templates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubmittedSolution {
    pub template_id: u64,
    pub version: u32,
    pub header_timestamp: u32,
    pub header_nonce: u32,
    /// The whole coinbase transaction, serialized.
    pub coinbase_tx: Vec<u8>,
}

/// What the client's bytes meant, for the pool to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TpServerEvent {
    SetUp {
        vendor: String,
        firmware: String,
    },
    /// How much room the client's own coinbase outputs need.
    CoinbaseOutputConstraints {
        max_additional_size: u32,
        max_additional_sigops: u16,
    },
    /// Answer with [`Sv2TpServerSession::transaction_data`] or
    /// [`Sv2TpServerSession::transaction_data_error`].
    RequestTransactionData {
        template_id: u64,
    },
    Solution(SubmittedSolution),
}

fn malformed(name: &'static str, reason: impl std::fmt::Display) -> Sv2Error {
    Sv2Error::Malformed {
        name,
        reason: reason.to_string(),
    }
}

/// One Template Distribution connection's state.
#[derive(Debug)]
pub struct Sv2TpServerSession {
    wire: Wire,
    set_up: bool,
}

impl Sv2TpServerSession {
    /// A connection's session; `now` is Unix seconds (the certificate starts then) and
    /// `seed` 32 random bytes for the Noise keys.
    pub fn new(
        authority: &AuthorityKeypair,
        cert_validity: Duration,
        now: u32,
        seed: [u8; 32],
    ) -> Result<Sv2TpServerSession, Sv2Error> {
        Ok(Sv2TpServerSession {
            wire: Wire::responder(authority, cert_validity, now, seed)?,
            set_up: false,
        })
    }

    /// Appends everything there is to send.
    pub fn transmit_into(&mut self, out: &mut Vec<u8>) {
        self.wire.transmit_into(out);
    }

    pub fn is_set_up(&self) -> bool {
        self.set_up
    }

    /// Reads bytes from the client. An error means the connection must close (after
    /// sending what [`Sv2TpServerSession::transmit_into`] still has).
    pub fn handle_bytes(&mut self, bytes: &[u8]) -> Result<Vec<TpServerEvent>, Sv2Error> {
        self.wire.push(bytes);
        let frames = self.wire.frames()?;
        let mut events = Vec::new();
        for frame in frames {
            events.push(self.handle_frame(frame)?);
        }
        Ok(events)
    }

    fn handle_frame(&mut self, mut frame: Frame) -> Result<TpServerEvent, Sv2Error> {
        const ROLE: &str = "template provider";
        let unexpected = setup::unexpected(&frame, ROLE);
        let (msg_type, payload) = match setup::incoming(
            &mut frame,
            self.set_up,
            ROLE,
            "a template distribution message",
        )? {
            Incoming::Setup(m) => return self.setup(m),
            Incoming::Message(t, payload) => (t, payload),
        };
        match msg_type {
            MESSAGE_TYPE_COINBASE_OUTPUT_CONSTRAINTS => {
                let m: CoinbaseOutputConstraints = decode("CoinbaseOutputConstraints", payload)?;
                Ok(TpServerEvent::CoinbaseOutputConstraints {
                    max_additional_size: m.coinbase_output_max_additional_size,
                    max_additional_sigops: m.coinbase_output_max_additional_sigops,
                })
            }
            MESSAGE_TYPE_REQUEST_TRANSACTION_DATA => {
                let m: RequestTransactionData = decode("RequestTransactionData", payload)?;
                Ok(TpServerEvent::RequestTransactionData {
                    template_id: m.template_id,
                })
            }
            MESSAGE_TYPE_SUBMIT_SOLUTION => {
                let m: SubmitSolution = decode("SubmitSolution", payload)?;
                Ok(TpServerEvent::Solution(SubmittedSolution {
                    template_id: m.template_id,
                    version: m.version,
                    header_timestamp: m.header_timestamp,
                    header_nonce: m.header_nonce,
                    coinbase_tx: m.coinbase_tx.as_bytes().to_vec(),
                }))
            }
            _ => Err(unexpected),
        }
    }

    fn setup(&mut self, m: SetupConnection) -> Result<TpServerEvent, Sv2Error> {
        setup::answer_setup(
            &mut self.wire,
            &m,
            Protocol::TemplateDistributionProtocol,
            None,
        )?;
        self.set_up = true;
        Ok(TpServerEvent::SetUp {
            vendor: text(&m.vendor),
            firmware: text(&m.firmware),
        })
    }

    /// Sends a template.
    pub fn new_template(&mut self, t: &TemplateOffer) -> Result<(), Sv2Error> {
        let path: Vec<U256> = t.merkle_path.iter().map(U256::from).collect();
        self.wire.send(
            "NewTemplate",
            NewTemplate {
                template_id: t.template_id,
                future_template: t.future_template,
                version: t.version,
                coinbase_tx_version: t.coinbase_tx_version,
                coinbase_prefix: B0255::try_from(&t.coinbase_prefix[..])
                    .map_err(|e| malformed("coinbase prefix", e))?,
                coinbase_tx_input_sequence: t.coinbase_tx_input_sequence,
                coinbase_tx_value_remaining: t.coinbase_tx_value_remaining,
                coinbase_tx_outputs_count: t.coinbase_tx_outputs_count,
                coinbase_tx_outputs: B064K::try_from(&t.coinbase_tx_outputs[..])
                    .map_err(|e| malformed("coinbase outputs", e))?,
                coinbase_tx_locktime: t.coinbase_tx_locktime,
                merkle_path: Seq0255::new(path).map_err(|e| malformed("merkle path", e))?,
            },
            MESSAGE_TYPE_NEW_TEMPLATE,
            CHANNEL_BIT_NEW_TEMPLATE,
        )
    }

    /// Activates a future template on a new tip: `target` is the network target,
    /// little-endian.
    pub fn set_new_prev_hash(
        &mut self,
        template_id: u64,
        prev_hash: [u8; 32],
        header_timestamp: u32,
        n_bits: u32,
        target: [u8; 32],
    ) -> Result<(), Sv2Error> {
        self.wire.send(
            "SetNewPrevHash",
            SetNewPrevHash {
                template_id,
                prev_hash: U256::from(&prev_hash),
                header_timestamp,
                n_bits,
                target: U256::from(&target),
            },
            MESSAGE_TYPE_SET_NEW_PREV_HASH,
            CHANNEL_BIT_SET_NEW_PREV_HASH,
        )
    }

    /// A template's transactions (serialized, in block order).
    pub fn transaction_data(
        &mut self,
        template_id: u64,
        excess_data: &[u8],
        transactions: &[Vec<u8>],
    ) -> Result<(), Sv2Error> {
        let list = transactions
            .iter()
            .map(|t| B016M::try_from(&t[..]).map_err(|e| malformed("transaction", e)))
            .collect::<Result<Vec<_>, _>>()?;
        self.wire.send(
            "RequestTransactionDataSuccess",
            RequestTransactionDataSuccess {
                template_id,
                excess_data: B064K::try_from(excess_data)
                    .map_err(|e| malformed("excess data", e))?,
                transaction_list: Seq064K::new(list)
                    .map_err(|e| malformed("transactions", format!("{e:?}")))?,
            },
            MESSAGE_TYPE_REQUEST_TRANSACTION_DATA_SUCCESS,
            CHANNEL_BIT_REQUEST_TRANSACTION_DATA_SUCCESS,
        )
    }

    /// A template this provider no longer has (or never had).
    pub fn transaction_data_error(
        &mut self,
        template_id: u64,
        stale: bool,
    ) -> Result<(), Sv2Error> {
        let code = if stale {
            ERROR_CODE_REQUEST_TRANSACTION_DATA_STALE_TEMPLATE_ID
        } else {
            ERROR_CODE_REQUEST_TRANSACTION_DATA_TEMPLATE_ID_NOT_FOUND
        };
        self.wire.send(
            "RequestTransactionDataError",
            RequestTransactionDataError {
                template_id,
                error_code: Str0255::try_from(code).map_err(|e| malformed("error code", e))?,
            },
            MESSAGE_TYPE_REQUEST_TRANSACTION_DATA_ERROR,
            CHANNEL_BIT_REQUEST_TRANSACTION_DATA_ERROR,
        )
    }
}
