//! What every server session does before its protocol's own messages: a frame of an
//! extension is refused, nothing but SetupConnection comes first, and SetupConnection is
//! answered (success, or the error sent before the connection closes).

use binary_sv2::Str0255;
use common_messages_sv2::{
    Protocol, SetupConnection, SetupConnectionError, SetupConnectionSuccess,
    ERROR_CODE_SETUP_CONNECTION_PROTOCOL_VERSION_MISMATCH,
    ERROR_CODE_SETUP_CONNECTION_UNSUPPORTED_PROTOCOL, MESSAGE_TYPE_SETUP_CONNECTION,
    MESSAGE_TYPE_SETUP_CONNECTION_ERROR, MESSAGE_TYPE_SETUP_CONNECTION_SUCCESS,
};

use crate::wire::{Frame, Wire};
use crate::{decode, Sv2Error, PROTOCOL_VERSION};

/// A frame a server session reads.
pub(crate) enum Incoming<'a> {
    /// The SetupConnection the session waits for first.
    Setup(SetupConnection<'a>),
    /// One of the protocol's own messages: its type and payload.
    Message(u8, &'a mut [u8]),
}

/// The message a `role` does not take.
pub(crate) fn unexpected(frame: &Frame, role: &'static str) -> Sv2Error {
    Sv2Error::UnexpectedMessage {
        msg_type: frame.msg_type,
        extension: frame.extension,
        role,
    }
}

/// Sorts a frame: extensions are not served, and before setup only SetupConnection is
/// (`what` names the protocol's messages in the error).
pub(crate) fn incoming<'a>(
    frame: &'a mut Frame,
    set_up: bool,
    role: &'static str,
    what: &'static str,
) -> Result<Incoming<'a>, Sv2Error> {
    if frame.extension != 0 {
        return Err(unexpected(frame, role));
    }
    if set_up {
        return Ok(Incoming::Message(frame.msg_type, &mut frame.payload[..]));
    }
    if frame.msg_type != MESSAGE_TYPE_SETUP_CONNECTION {
        return Err(Sv2Error::NotSetUp(what));
    }
    decode("SetupConnection", &mut frame.payload[..]).map(Incoming::Setup)
}

/// Answers a SetupConnection: success if it is for `protocol` at our version and `refusal`
/// (SetupConnection.Error's flags and code) is none; else the error is sent and the
/// session must close (`SetupRefused`).
pub(crate) fn answer_setup(
    wire: &mut Wire,
    m: &SetupConnection,
    protocol: Protocol,
    refusal: Option<(u32, &'static str)>,
) -> Result<(), Sv2Error> {
    let refusal = if m.protocol != protocol {
        Some((0, ERROR_CODE_SETUP_CONNECTION_UNSUPPORTED_PROTOCOL))
    } else if m.min_version > PROTOCOL_VERSION || m.max_version < PROTOCOL_VERSION {
        Some((0, ERROR_CODE_SETUP_CONNECTION_PROTOCOL_VERSION_MISMATCH))
    } else {
        refusal
    };
    if let Some((flags, code)) = refusal {
        let reply = SetupConnectionError {
            flags,
            error_code: Str0255::try_from(code).map_err(|e| Sv2Error::Malformed {
                name: "error code",
                reason: e.to_string(),
            })?,
        };
        wire.send(
            "SetupConnectionError",
            reply,
            MESSAGE_TYPE_SETUP_CONNECTION_ERROR,
            false,
        )?;
        return Err(Sv2Error::SetupRefused(code.to_string()));
    }
    wire.send(
        "SetupConnectionSuccess",
        SetupConnectionSuccess {
            used_version: PROTOCOL_VERSION,
            // Neither REQUIRES_FIXED_VERSION nor REQUIRES_EXTENDED_CHANNELS; the other
            // protocols define none.
            flags: 0,
        },
        MESSAGE_TYPE_SETUP_CONNECTION_SUCCESS,
        false,
    )
}
