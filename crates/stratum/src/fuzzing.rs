//! Entry points for the `fuzz/` targets (and proptests that feed them random bytes).

use std::time::{Duration, Instant};

use crate::{ClientConfig, ClientSession, LineBuffer, ServerConfig, ServerEvent, ServerSession};

/// A server session reading arbitrary client bytes: must never panic, and must answer or
/// ignore every line.
pub fn server_reads(bytes: &[u8]) {
    let mut framing = LineBuffer::default();
    let mut session = ServerSession::new(ServerConfig::new(vec![1, 2, 3, 4]));
    // Drained the way the pool drains it.
    let mut out = Vec::new();
    framing.push(bytes);
    while let Some(line) = framing.next_line() {
        let Ok(line) = line else { continue };
        match session.handle_line(&line) {
            Some(ServerEvent::AuthorizeRequest { id, user, .. }) => {
                session.authorize(id, &user, true)
            }
            Some(ServerEvent::Share(share)) => session.accept(share.id),
            _ => {}
        }
        out.clear();
        session.transmit_into(&mut out);
    }
}

/// A client session reading arbitrary server bytes.
pub fn client_reads(bytes: &[u8]) {
    let mut framing = LineBuffer::default();
    let mut session = ClientSession::new(ClientConfig::new("w", "x"));
    let now = Instant::now();
    framing.push(bytes);
    while let Some(line) = framing.next_line() {
        let Ok(line) = line else { continue };
        session.handle_line(&line);
        while session.poll_transmit().is_some() {}
    }
    session.handle_timeout(now + Duration::from_secs(3600));
}
