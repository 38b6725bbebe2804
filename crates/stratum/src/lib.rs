//! Stratum V1, byte for byte, for both the miner and the pool: typed messages
//! ([`message`]), line framing ([`LineBuffer`]), sans-I/O sessions ([`ClientSession`],
//! [`ServerSession`]) and the share checker both sides use ([`check_share`]).
//!
//! No sockets here: a session takes lines (and, on the client, the time) in and hands lines
//! and events out; the miner and the pool wrap them in their own tokio tasks.
//!
//! A miner:
//!
//! ```
//! use hashforge_stratum::{ClientConfig, ClientSession};
//! let mut client = ClientSession::new(ClientConfig::new("bc1q...worker", "x"));
//! while let Some(line) = client.poll_transmit() { /* write line + "\n" to the pool */ }
//! let events = client.handle_line(r#"{"id":2,"result":[[["mining.notify","1"]],"ea46046b",8],"error":null}"#);
//! assert!(matches!(events[0], hashforge_stratum::ClientEvent::Subscribed { .. }));
//! ```
//!
//! A pool:
//!
//! ```
//! use hashforge_stratum::{ServerConfig, ServerEvent, ServerSession};
//! let mut server = ServerSession::new(ServerConfig::new(vec![0xea, 0x46, 0x04, 0x6b]));
//! server.handle_line(r#"{"id":1,"method":"mining.subscribe","params":["cpuminer/2.5.1"]}"#);
//! if let Some(ServerEvent::AuthorizeRequest { id, user, .. }) = server.handle_line(r#"{"id":2,"method":"mining.authorize","params":["w","x"]}"#) { server.authorize(id, &user, true) }
//! assert_eq!(server.poll_transmit().unwrap(), r#"{"id":1,"result":[[["mining.set_difficulty","ea46046b"],["mining.notify","ea46046b"]],"ea46046b",8],"error":null}"#);
//! ```
#![forbid(unsafe_code)]

mod check;
mod client;
mod framing;
pub mod fuzzing;
pub mod message;
mod server;

pub use check::{check_header, check_share, ShareCheck};
pub use client::{ClientConfig, ClientEvent, ClientSession, Job, Share, SubmitError, SubmitId};
pub use framing::{FrameError, LineBuffer, MAX_LINE};
pub use message::{ErrorCode, Id, StratumError};
pub use server::{
    RejectReason, ServerConfig, ServerEvent, ServerJob, ServerSession, ShareCandidate,
    MAX_NTIME_AHEAD,
};
