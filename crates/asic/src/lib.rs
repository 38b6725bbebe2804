//! BM13xx chips: the serial protocol, a chain driver, a hash-board emulator and the board
//! test of a factory or repair bench.
#![forbid(unsafe_code)]

pub mod board_test;
pub mod chip;
pub mod crc;
pub mod driver;
pub mod emulator;
pub mod fault;
pub mod frame;
pub mod profile;
pub mod registers;
pub mod shell;

pub use board_test::{BoardReport, BoardTestConfig, ChipReport, Suspect, Verdict};
pub use chip::{ChipFamily, NonceOrigin};
pub use driver::{
    Anomalies, ChainConfig, ChainDriver, ChainEvent, ChipStats, Enumeration, FoundNonce,
};
pub use fault::{Fault, FaultSpecError};
pub use frame::{
    Command, CommandDecoder, Dest, FullJob, LinkStats, MidstateJob, Reply, ReplyDecoder,
};
pub use profile::{EmulatedSpec, MachineProfile};
pub use shell::{BringUp, Chain, ChainError, Link};
