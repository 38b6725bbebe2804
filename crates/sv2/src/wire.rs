//! Bytes in, frames out: the Noise NX handshake and the encrypted SV2 framing, both through
//! SRI's `codec_sv2` (which drives `noise_sv2`). Nothing here is written by hand but the
//! buffering: the codec reads exactly the bytes it asks for, so input waits here until a
//! whole request is available.

use std::time::Duration;

use codec_sv2::{
    Decoded, Decrypted, Handshake, InitiatorSent, MessageFrame, NoiseDecoder, NoiseEncoder,
    Transport, TransportDecryptState, TransportEncryptState,
};
use noise_sv2::{
    Initiator, Responder, ELLSWIFT_ENCODING_SIZE, INITIATOR_EXPECTED_HANDSHAKE_MESSAGE_SIZE,
};
use rand08::rngs::StdRng;
use rand08::SeedableRng;

use crate::key::{AuthorityKeypair, AuthorityPublicKey};
use crate::Sv2Error;

/// The largest frame (payload) either side takes: a NewExtendedMiningJob with both coinbase
/// halves at their 64 KiB limit and a full merkle path, and room to spare. Bytes past it for
/// one frame are a lying length, not a slow peer.
pub const MAX_FRAME: usize = 160 * 1024;

/// The largest frame SV2's 24-bit length allows: what a Job Declarator Server must take, a
/// block's transactions in one ProvideMissingTransactions.Success.
pub const MAX_SV2_FRAME: usize = 0xff_ffff;

/// One decrypted frame.
#[derive(Debug)]
pub struct Frame {
    pub msg_type: u8,
    /// The extension type without the channel bit (0: the core protocol).
    pub extension: u16,
    pub payload: Vec<u8>,
}

enum State {
    /// The responder, waiting for the initiator's ephemeral key.
    Responder(Handshake<Responder>),
    /// The initiator, its first message sent, waiting for the responder's answer.
    InitiatorSent(Handshake<InitiatorSent>),
    Transport {
        encrypt: TransportEncryptState,
        /// Taken while a frame decodes (the codec consumes and returns it).
        decrypt: Option<TransportDecryptState>,
    },
    Failed,
}

/// One side of an encrypted SV2 connection.
pub struct Wire {
    state: State,
    decoder: NoiseDecoder,
    encoder: NoiseEncoder,
    input: Vec<u8>,
    /// Bytes handed to the decoder for the frame being read.
    frame_bytes: usize,
    /// The longest payload taken ([`MAX_FRAME`] unless the session says otherwise).
    max_frame: usize,
    out: Vec<u8>,
    rng: StdRng,
    now: u32,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire")
            .field("established", &self.is_established())
            .finish()
    }
}

fn noise_error(e: codec_sv2::Error) -> Sv2Error {
    match e {
        codec_sv2::Error::NoiseSv2Error(noise_sv2::Error::InvalidCertificate(_)) => {
            Sv2Error::WrongKey
        }
        e => Sv2Error::Handshake(e.to_string()),
    }
}

impl Wire {
    /// The pool's side: a responder whose static key is certified by `authority` for
    /// `cert_validity` from `now` (Unix seconds); `seed` feeds its ephemeral and static keys.
    pub fn responder(
        authority: &AuthorityKeypair,
        cert_validity: Duration,
        now: u32,
        seed: [u8; 32],
    ) -> Result<Wire, Sv2Error> {
        let mut rng = StdRng::from_seed(seed);
        let responder = Responder::from_authority_kp_with_rng(
            &authority.public().0,
            authority.secret_bytes(),
            cert_validity,
            &mut rng,
        )
        .map_err(|e| Sv2Error::Handshake(format!("{e:?}")))?;
        Ok(Wire::new(
            State::Responder(Handshake::responder(responder)),
            rng,
            now,
        ))
    }

    /// The miner's side: an initiator that accepts only a certificate signed by `authority`.
    /// Its first handshake message is queued at once.
    pub fn initiator(
        authority: AuthorityPublicKey,
        now: u32,
        seed: [u8; 32],
    ) -> Result<Wire, Sv2Error> {
        let mut rng = StdRng::from_seed(seed);
        let initiator = Initiator::from_raw_k_with_rng(authority.0, &mut rng)
            .map_err(|e| Sv2Error::Handshake(format!("authority key: {e:?}")))?;
        let (first, sent) = Handshake::initiator(initiator)
            .step_0()
            .map_err(noise_error)?;
        let mut wire = Wire::new(State::InitiatorSent(sent), rng, now);
        let first = wire.encoder.encode_handshake(first);
        wire.out.extend_from_slice(&first);
        Ok(wire)
    }

    fn new(state: State, rng: StdRng, now: u32) -> Wire {
        Wire {
            state,
            decoder: NoiseDecoder::new(),
            encoder: NoiseEncoder::new(),
            input: Vec::new(),
            frame_bytes: 0,
            max_frame: MAX_FRAME,
            out: Vec::new(),
            rng,
            now,
        }
    }

    /// Takes payloads up to `max` bytes (at most SV2's [`MAX_SV2_FRAME`]).
    pub fn set_max_frame(&mut self, max: usize) {
        self.max_frame = max.min(MAX_SV2_FRAME);
    }

    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Transport { .. })
    }

    /// The current time (Unix seconds) for the certificate's validity window.
    pub fn set_now(&mut self, now: u32) {
        self.now = now;
    }

    /// Appends what there is to send.
    pub fn transmit_into(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.out);
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
    }

    /// Gives the decoder the bytes it asks for, if there are that many; returns whether it
    /// got them.
    fn feed(&mut self, pos: &mut usize) -> Result<bool, Sv2Error> {
        let want = self.decoder.writable_len();
        if want == 0 {
            return Err(Sv2Error::Handshake("the codec asked for no bytes".into()));
        }
        if self.input.len() - *pos < want {
            return Ok(false);
        }
        self.frame_bytes += want;
        // The encrypted frame: the payload, its header and a MAC per 64 KiB chunk.
        if self.frame_bytes > self.max_frame + 64 * 1024 {
            return Err(Sv2Error::FrameTooLong {
                max: self.max_frame,
            });
        }
        self.decoder
            .writable()
            .copy_from_slice(&self.input[*pos..*pos + want]);
        *pos += want;
        Ok(true)
    }

    /// Runs the handshake as far as the input allows, then decodes every whole frame. An
    /// error leaves the wire failed: the connection must close.
    pub fn frames(&mut self) -> Result<Vec<Frame>, Sv2Error> {
        let mut pos = 0;
        let result = self.frames_from(&mut pos);
        self.input.drain(..pos.min(self.input.len()));
        if result.is_err() {
            self.state = State::Failed;
            self.input.clear();
        }
        result
    }

    fn frames_from(&mut self, pos: &mut usize) -> Result<Vec<Frame>, Sv2Error> {
        let mut frames = Vec::new();
        loop {
            match std::mem::replace(&mut self.state, State::Failed) {
                State::Failed => return Err(Sv2Error::Closed),
                State::Responder(hs) => {
                    let Some(message) = self.handshake_message::<Responder>(pos)? else {
                        self.state = State::Responder(hs);
                        return Ok(frames);
                    };
                    let re: [u8; ELLSWIFT_ENCODING_SIZE] = message
                        .try_into()
                        .map_err(|_| Sv2Error::Handshake("short handshake message".into()))?;
                    let (reply, transport) = hs
                        .step_1_with_now_rng(re, self.now, &mut self.rng)
                        .map_err(noise_error)?;
                    let reply = self.encoder.encode_handshake(reply);
                    self.out.extend_from_slice(&reply);
                    self.established(transport);
                }
                State::InitiatorSent(hs) => {
                    let Some(message) = self.handshake_message::<InitiatorSent>(pos)? else {
                        self.state = State::InitiatorSent(hs);
                        return Ok(frames);
                    };
                    let reply: [u8; INITIATOR_EXPECTED_HANDSHAKE_MESSAGE_SIZE] = message
                        .try_into()
                        .map_err(|_| Sv2Error::Handshake("short handshake message".into()))?;
                    let transport = hs.step_2_with_now(reply, self.now).map_err(noise_error)?;
                    self.established(transport);
                }
                State::Transport { encrypt, decrypt } => {
                    let Some(mut decrypt) = decrypt else {
                        return Err(Sv2Error::Closed);
                    };
                    loop {
                        match self
                            .decoder
                            .next_transport_frame(decrypt)
                            .map_err(|e| Sv2Error::Decrypt(e.to_string()))?
                        {
                            Decrypted::Frame(mut frame, state) => {
                                decrypt = state;
                                self.frame_bytes = 0;
                                let header = frame.header();
                                if header.payload_length() > self.max_frame {
                                    return Err(Sv2Error::FrameTooLong {
                                        max: self.max_frame,
                                    });
                                }
                                frames.push(Frame {
                                    msg_type: header.msg_type(),
                                    extension: header.ext_type_without_channel_msg(),
                                    payload: frame.payload().to_vec(),
                                });
                            }
                            Decrypted::Incomplete(_, state) => {
                                decrypt = state;
                                if !self.feed(pos)? {
                                    self.state = State::Transport {
                                        encrypt,
                                        decrypt: Some(decrypt),
                                    };
                                    return Ok(frames);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn handshake_message<R: codec_sv2::ExpectsHandshakeMessage>(
        &mut self,
        pos: &mut usize,
    ) -> Result<Option<Vec<u8>>, Sv2Error> {
        loop {
            match self
                .decoder
                .next_handshake_frame::<R>()
                .map_err(noise_error)?
            {
                Decoded::Frame(message) => {
                    self.frame_bytes = 0;
                    return Ok(Some(message.payload().to_vec()));
                }
                Decoded::Incomplete(_) => {
                    if !self.feed(pos)? {
                        return Ok(None);
                    }
                }
            }
        }
    }

    fn established(&mut self, transport: Transport) {
        let (encrypt, decrypt) = transport.split();
        self.state = State::Transport {
            encrypt,
            decrypt: Some(decrypt),
        };
    }

    /// Encrypts and queues a frame of any type and payload, as a hostile peer would: for the
    /// fuzz targets, which play the other side of a real handshake. The header is the
    /// framing's six bytes (extension type with the channel bit, message type, 24-bit
    /// length, all little-endian), parsed back by `framing_sv2`.
    pub fn send_raw(
        &mut self,
        msg_type: u8,
        channel_msg: bool,
        payload: &[u8],
    ) -> Result<(), Sv2Error> {
        let State::Transport { encrypt, .. } = &mut self.state else {
            return Err(Sv2Error::Closed);
        };
        let len = payload.len().min(0xff_ffff);
        let extension: u16 = if channel_msg { 0x8000 } else { 0 };
        let mut bytes = Vec::with_capacity(6 + len);
        bytes.extend_from_slice(&extension.to_le_bytes());
        bytes.push(msg_type);
        bytes.extend_from_slice(&(len as u32).to_le_bytes()[..3]);
        bytes.extend_from_slice(&payload[..len]);
        let frame = codec_sv2::SerializedFrame::from_bytes(bytes)
            .map_err(|e| Sv2Error::Encode("raw frame", format!("{e:?}")))?;
        let bytes = self
            .encoder
            .encode_transport(frame, encrypt)
            .map_err(|e| Sv2Error::Encode("raw frame", e.to_string()))?;
        self.out.extend_from_slice(&bytes);
        Ok(())
    }

    /// Encrypts and queues one message.
    pub fn send<T>(
        &mut self,
        name: &'static str,
        message: T,
        msg_type: u8,
        channel_msg: bool,
    ) -> Result<(), Sv2Error>
    where
        T: binary_sv2::Serialize + binary_sv2::GetSize,
    {
        let State::Transport { encrypt, .. } = &mut self.state else {
            return Err(Sv2Error::Closed);
        };
        let frame = MessageFrame::from_message(message, msg_type, 0, channel_msg)
            .map_err(|e| Sv2Error::Encode(name, format!("{e:?}")))?;
        let bytes = self
            .encoder
            .encode_transport(frame, encrypt)
            .map_err(|e| Sv2Error::Encode(name, e.to_string()))?;
        self.out.extend_from_slice(&bytes);
        Ok(())
    }
}
