//! Entry points for fuzzers (`fuzz/` at the workspace root runs them under libFuzzer; a
//! proptest feeds them random bytes). A panic here is a bug.

use crate::chip::ChipFamily;
use crate::driver::{ChainConfig, ChainDriver};
use crate::emulator::BoardEmulator;
use crate::frame::{CommandDecoder, ReplyDecoder};
use crate::profile::MachineProfile;

/// Feeds `data` to both frame decoders of every family, to the chain driver and to an
/// emulated board, in chunks whose size the first byte picks. Checks that every decoded
/// frame re-encodes to bytes that decode to the same frame, and that the decoders never
/// hold more than a bounded number of bytes.
pub fn fuzz_frames(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(mode % 97) + 1;

    let mut commands = CommandDecoder::new();
    for part in rest.chunks(chunk) {
        commands.push(part);
        while let Some(cmd) = commands.next_command() {
            let mut again = CommandDecoder::new();
            again.push(&cmd.to_bytes());
            assert_eq!(again.next_command().as_ref(), Some(&cmd));
        }
    }
    let s = commands.stats();
    assert!(s.garbage_bytes <= rest.len() as u64);

    for family in ChipFamily::ALL {
        let mut replies = ReplyDecoder::new(family);
        for part in rest.chunks(chunk) {
            replies.push(part);
            while let Some(r) = replies.next_reply() {
                let mut again = ReplyDecoder::new(family);
                again.push(&r.to_bytes(family));
                assert_eq!(again.next_reply(), Some(r));
            }
            assert!(replies.buffered() <= 64 * 1024 + family.reply_len());
        }

        // The driver after a bring-up of a few chips: replies of every kind land in it.
        let mut driver = ChainDriver::new(ChainConfig::new(family, 4));
        driver.start_enumeration();
        driver.receive(&rest[..rest.len().min(chunk)]);
        let _ = driver.address_and_configure();
        driver.send_job(&[mode; 80]);
        for part in rest.chunks(chunk) {
            driver.receive(part);
            while driver.poll_event().is_some() {}
        }
        let mut out = Vec::new();
        driver.poll_transmit(&mut out);
    }

    // The emulator takes host bytes.
    let profile = MachineProfile::ALL[usize::from(mode) % MachineProfile::ALL.len()];
    let mut board = BoardEmulator::new(profile, 0, &[]);
    let mut out = Vec::new();
    for part in rest.chunks(chunk) {
        board.receive(part);
        board.take_output(&mut out);
    }
    board.tick(0.1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Command, Dest};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            fuzz_frames(&data);
        }

        #[test]
        fn random_bytes_around_real_frames_never_panic(
            pre in proptest::collection::vec(any::<u8>(), 0..40),
            post in proptest::collection::vec(any::<u8>(), 0..40),
            mode in any::<u8>(),
        ) {
            let mut data = vec![mode];
            data.extend(pre);
            Command::ReadRegister { dest: Dest::All, register: 0 }.encode(&mut data);
            Command::ChainInactive.encode(&mut data);
            data.extend(post);
            fuzz_frames(&data);
        }
    }
}
