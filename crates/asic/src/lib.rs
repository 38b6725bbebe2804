//! BM13xx chips: the serial protocol, a chain driver, a hash-board emulator and the board
//! test of a factory or repair bench.
#![forbid(unsafe_code)]

pub mod chip;
pub mod crc;
pub mod frame;
pub mod registers;

pub use chip::{ChipFamily, NonceOrigin};
pub use frame::{
    Command, CommandDecoder, Dest, FullJob, LinkStats, MidstateJob, Reply, ReplyDecoder,
};
