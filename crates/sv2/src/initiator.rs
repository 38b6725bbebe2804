//! The client's side of any SV2 connection, message by message: the caller builds SRI's
//! messages and decodes the frames that come back. What a Job Declarator Client (or a test
//! that plays one) is built on; the miner's mining connection has its own session
//! ([`crate::Sv2ClientSession`]).

use crate::key::AuthorityPublicKey;
use crate::wire::Wire;
use crate::Sv2Error;

/// One encrypted connection to a server whose certificate `authority` signed.
#[derive(Debug)]
pub struct Sv2Initiator {
    wire: Wire,
}

impl Sv2Initiator {
    /// Starts the handshake (its first message waits in [`Sv2Initiator::transmit_into`]);
    /// `now` is Unix seconds (the certificate must be valid then), `seed` 32 random bytes.
    pub fn new(authority: AuthorityPublicKey, now: u32, seed: [u8; 32]) -> Result<Self, Sv2Error> {
        let mut wire = Wire::initiator(authority, now, seed)?;
        // Whatever the protocol: a template's transactions, a declaration, are megabytes.
        wire.set_max_frame(crate::wire::MAX_SV2_FRAME);
        Ok(Sv2Initiator { wire })
    }

    pub fn is_established(&self) -> bool {
        self.wire.is_established()
    }

    /// Appends everything there is to send.
    pub fn transmit_into(&mut self, out: &mut Vec<u8>) {
        self.wire.transmit_into(out);
    }

    /// Encrypts and queues one message (it waits until the handshake is done).
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
        self.wire.send(name, message, msg_type, channel_msg)
    }

    /// Reads bytes from the server: the frames they completed, as (message type, payload)
    /// for [`crate::decode`]. An error means the connection must close.
    pub fn handle_bytes(&mut self, bytes: &[u8]) -> Result<Vec<(u8, Vec<u8>)>, Sv2Error> {
        self.wire.push(bytes);
        let frames = self.wire.frames()?;
        Ok(frames
            .into_iter()
            .map(|f| (f.msg_type, f.payload))
            .collect())
    }
}
