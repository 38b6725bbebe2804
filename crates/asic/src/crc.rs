//! The two checksums of the BM13xx link: CRC5 on commands and replies, CRC16 on jobs.

/// CRC5 with polynomial x^5 + x^2 + 1 (0x05), initial value 0x1F, bits taken most
/// significant first, no reflection, no final XOR. Covers a command from its header byte
/// through its payload, and a reply from its first byte after the preamble through the
/// byte before the CRC byte.
pub fn crc5(data: &[u8]) -> u8 {
    let mut crc: u8 = 0x1F;
    for &byte in data {
        crc = CRC5_TABLE[usize::from((crc << 3) ^ byte)];
    }
    crc
}

/// The CRC5 of a reply: over its body (after the preamble) and then the top 3 bits of its
/// last byte (bit 7 is the job flag), so that the CRC5 over the whole reply, last byte
/// included, comes out as 0. Returns the 5 bits that go in the low bits of the last byte.
pub fn crc5_reply(body: &[u8], flags: u8) -> u8 {
    (5..8)
        .rev()
        .fold(crc5(body), |crc, bit| crc5_step(crc, (flags >> bit) & 1))
}

/// The CRC5 register after one more input bit (0 or 1).
fn crc5_step(crc: u8, bit: u8) -> u8 {
    let feedback = bit ^ ((crc >> 4) & 1);
    let shifted = (crc << 1) & 0x1F;
    if feedback == 1 {
        shifted ^ 0x05
    } else {
        shifted
    }
}

/// One byte's worth of the bitwise CRC5, tabulated: `TABLE[(crc << 3) ^ byte]` steps the
/// 5-bit register through 8 input bits (the register's bits line up with the byte's top 5).
const CRC5_TABLE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        // Register bits sit in the top 5 bits of an 8-bit shifter; XOR with input is
        // already folded into the index.
        let mut reg = i as u8;
        let mut bit = 0;
        while bit < 8 {
            reg = if reg & 0x80 != 0 {
                (reg << 1) ^ (0x05 << 3)
            } else {
                reg << 1
            };
            bit += 1;
        }
        table[i] = reg >> 3;
        i += 1;
    }
    table
};

/// The straightforward bit-at-a-time CRC5 the table is checked against.
#[cfg(test)]
fn crc5_bitwise(data: &[u8]) -> u8 {
    data.iter().fold(0x1F, |crc, &byte| {
        (0..8)
            .rev()
            .fold(crc, |crc, bit| crc5_step(crc, (byte >> bit) & 1))
    })
}

/// CRC-16/CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF, no reflection, no final
/// XOR. Jobs carry it big-endian after the payload.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &byte in data {
        crc = (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ byte)];
    }
    crc
}

const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc5_matches_frames_captured_from_real_chains() {
        // Read register 0 from all chips, chain inactive, set address 0 and 4.
        assert_eq!(crc5(&[0x52, 0x05, 0x00, 0x00]), 0x0A);
        assert_eq!(crc5(&[0x53, 0x05, 0x00, 0x00]), 0x03);
        assert_eq!(crc5(&[0x40, 0x05, 0x00, 0x00]), 0x1C);
        assert_eq!(crc5(&[0x40, 0x05, 0x04, 0x00]), 0x03);
        // Write the ticket mask and the version mask to all chips.
        assert_eq!(crc5(&[0x51, 0x09, 0x00, 0x14, 0, 0, 0, 0]), 0x1C);
        assert_eq!(
            crc5(&[0x51, 0x09, 0x00, 0xA4, 0x90, 0x00, 0xFF, 0xFF]),
            0x1C
        );
        // A BM1370 chip-id reply and a BM1397 one (CRC in the low 5 bits of the last
        // byte); the CRC over a whole reply is 0.
        assert_eq!(crc5_reply(&[0x13, 0x70, 0, 0, 0, 0, 0, 0], 0), 0x10);
        assert_eq!(crc5_reply(&[0x13, 0x97, 0x18, 0, 0, 0], 0), 0x06);
        assert_eq!(crc5(&[0x13, 0x97, 0x18, 0, 0, 0, 0x06]), 0);
        // A BM1370 nonce reply: last byte 0x91 = job flag 0x80 | CRC5 0x11.
        let nonce_reply = [0x18, 0x00, 0xA6, 0x40, 0x02, 0x99, 0x22, 0xF9];
        assert_eq!(crc5_reply(&nonce_reply, 0x80), 0x11);
        assert_eq!(crc5(&[&nonce_reply[..], &[0x91]].concat()), 0);
    }

    #[test]
    fn crc16_is_ccitt_false() {
        assert_eq!(crc16(b"123456789"), 0x29B1);
        assert_eq!(crc16(&[]), 0xFFFF);
    }

    proptest! {
        #[test]
        fn crc5_table_agrees_with_the_bitwise_definition(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            prop_assert_eq!(crc5(&data), crc5_bitwise(&data));
        }
    }
}
