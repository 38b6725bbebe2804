//! Register addresses and the codecs of the registers a host writes: PLL, ticket mask,
//! version mask, baud divider. Values are the 4 data bytes as they travel on the wire.

use crate::chip::ChipFamily;

/// Register addresses.
pub mod addr {
    /// Chip id, core count and address (read on enumeration).
    pub const CHIP_ID: u8 = 0x00;
    /// PLL0: the hash clock.
    pub const PLL0: u8 = 0x08;
    /// Hash counting number: how the nonce range is split across chips and cores.
    pub const HASH_COUNTING: u8 = 0x10;
    /// Ticket mask: the chip's own share difficulty.
    pub const TICKET_MASK: u8 = 0x14;
    /// Misc control (BM1397 baud divider, bits 8..=12).
    pub const MISC_CONTROL: u8 = 0x18;
    /// Fast UART configuration (BM1366/68/70).
    pub const FAST_UART: u8 = 0x28;
    /// Core register control.
    pub const CORE_CONTROL: u8 = 0x3C;
    /// Error count.
    pub const ERROR_COUNT: u8 = 0x4C;
    /// Analog mux: selects the temperature diode.
    pub const ANALOG_MUX: u8 = 0x54;
    /// IO drive strength.
    pub const IO_DRIVE: u8 = 0x58;
    /// Per-domain hash counters 0x88..=0x8B and their total at 0x8C.
    pub const DOMAIN_HASH_COUNT: u8 = 0x88;
    pub const TOTAL_HASH_COUNT: u8 = 0x8C;
    /// Version-rolling mask.
    pub const VERSION_MASK: u8 = 0xA4;
    /// **Emulator only.** No real chip has it: hashforge's emulated chips read it as the
    /// number of extra powers of two below difficulty 1 their ticket reaches
    /// (value `k` = difficulty 2^-k, `k` at most [`super::MAX_EMULATOR_TICKET_SHIFT`]),
    /// so that a CPU-speed board finds shares at all. The driver writes it only to chains
    /// it knows to be emulated.
    pub const EMULATOR_TICKET_SHIFT: u8 = 0xFE;
}

/// The deepest emulator-only ticket: difficulty 2^-24 (one share per 256 hashes).
pub const MAX_EMULATOR_TICKET_SHIFT: u32 = 24;

/// Why a register value could not be built or read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RegisterError {
    #[error("no PLL setting of {family} reaches {mhz} MHz (range about 50-1200 MHz)")]
    Frequency { family: ChipFamily, mhz: f64 },
    #[error("PLL value {0:02x?} has a zero divider")]
    ZeroDivider([u8; 4]),
    #[error("ticket mask {0:02x?} is not a run of low one bits")]
    TicketMask([u8; 4]),
    #[error("baud rate {0} is out of the divider's range")]
    Baud(u32),
}

/// The PLL0 setting: f = 25 MHz x fb_div / (refdiv x postdiv1 x postdiv2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pll {
    pub fb_div: u8,
    pub refdiv: u8,
    pub postdiv1: u8,
    pub postdiv2: u8,
}

impl Pll {
    /// The reference clock every chip runs from, in MHz.
    pub const REFERENCE_MHZ: f64 = 25.0;

    pub fn vco_mhz(&self) -> f64 {
        Self::REFERENCE_MHZ * f64::from(self.fb_div) / f64::from(self.refdiv)
    }

    pub fn frequency_mhz(&self) -> f64 {
        self.vco_mhz() / f64::from(self.postdiv1) / f64::from(self.postdiv2)
    }

    /// The setting nearest `mhz` within the family's feedback-divider range (postdiv1 >=
    /// postdiv2, both 1..=7, refdiv 1 or 2); ties go to the lower VCO.
    pub fn for_frequency(family: ChipFamily, mhz: f64) -> Result<Pll, RegisterError> {
        let (lo, hi) = family.fb_div_range();
        let mut best: Option<(f64, Pll)> = None;
        for refdiv in 1..=2u8 {
            for postdiv1 in 1..=7u8 {
                for postdiv2 in 1..=postdiv1 {
                    let div = f64::from(refdiv) * f64::from(postdiv1) * f64::from(postdiv2);
                    let fb = (mhz * div / Self::REFERENCE_MHZ).round();
                    if fb < f64::from(lo) || fb > f64::from(hi) {
                        continue;
                    }
                    let pll = Pll {
                        fb_div: fb as u8,
                        refdiv,
                        postdiv1,
                        postdiv2,
                    };
                    let err = (pll.frequency_mhz() - mhz).abs();
                    let better = match best {
                        None => true,
                        Some((e, b)) => {
                            err < e - 1e-9 || (err <= e + 1e-9 && pll.vco_mhz() < b.vco_mhz())
                        }
                    };
                    if better {
                        best = Some((err, pll));
                    }
                }
            }
        }
        match best {
            Some((err, pll)) if err <= 6.25 => Ok(pll),
            _ => Err(RegisterError::Frequency { family, mhz }),
        }
    }

    /// `[vdo_scale, fb_div, refdiv, ((postdiv1 - 1) << 4) | (postdiv2 - 1)]`; vdo_scale is
    /// 0x50 when the VCO runs at 2400 MHz or more, else 0x40.
    pub fn to_bytes(&self) -> [u8; 4] {
        let vdo = if self.vco_mhz() >= 2400.0 { 0x50 } else { 0x40 };
        [
            vdo,
            self.fb_div,
            self.refdiv,
            ((self.postdiv1 - 1) << 4) | ((self.postdiv2 - 1) & 0x0F),
        ]
    }

    pub fn from_bytes(b: [u8; 4]) -> Result<Pll, RegisterError> {
        let pll = Pll {
            fb_div: b[1],
            refdiv: b[2],
            postdiv1: (b[3] >> 4) + 1,
            postdiv2: (b[3] & 0x0F) + 1,
        };
        if pll.fb_div == 0 || pll.refdiv == 0 {
            return Err(RegisterError::ZeroDivider(b));
        }
        Ok(pll)
    }
}

/// The frequencies of a ramp from `from` to `to` MHz in steps of 6.25 MHz (the last step
/// lands exactly on `to`); firmwares write one every 100 ms.
pub fn frequency_ramp(from: f64, to: f64) -> Vec<f64> {
    const STEP: f64 = 6.25;
    let mut out = Vec::new();
    if !(from.is_finite() && to.is_finite()) {
        return out;
    }
    let dir = if to >= from { 1.0 } else { -1.0 };
    let mut f = from;
    while (to - f) * dir > STEP {
        f += STEP * dir;
        out.push(f);
    }
    out.push(to);
    out
}

/// The ticket mask for a share difficulty: 2^floor(log2 d) - 1, big-endian, each byte
/// bit-reversed. Difficulties below 1 (no real chip reports them) give the mask of 1.
pub fn ticket_mask_bytes(difficulty: u64) -> [u8; 4] {
    let d = difficulty.max(1);
    let pow = 63 - d.leading_zeros();
    let mask = if pow >= 32 {
        u32::MAX
    } else {
        ((1u64 << pow) - 1) as u32
    };
    mask.to_be_bytes().map(u8::reverse_bits)
}

/// The difficulty a ticket mask stands for (a power of two).
pub fn ticket_mask_difficulty(bytes: [u8; 4]) -> Result<u64, RegisterError> {
    let mask = u32::from_be_bytes(bytes.map(u8::reverse_bits));
    if mask.wrapping_add(1) & mask != 0 {
        return Err(RegisterError::TicketMask(bytes));
    }
    Ok(u64::from(mask) + 1)
}

/// The version-mask register: `90 00` then `mask >> 13` as two big-endian bytes.
pub fn version_mask_bytes(mask: u32) -> [u8; 4] {
    let m = (mask >> 13) as u16;
    let [hi, lo] = m.to_be_bytes();
    [0x90, 0x00, hi, lo]
}

/// The rolling mask a version-mask register value enables.
pub fn version_mask_of(bytes: [u8; 4]) -> u32 {
    u32::from(u16::from_be_bytes([bytes[2], bytes[3]])) << 13
}

/// Baud = 25 MHz / ((divider + 1) x 8).
pub fn baud_of_divider(divider: u8) -> u32 {
    25_000_000 / ((u32::from(divider) + 1) * 8)
}

/// The divider whose baud rate is nearest `baud` (5 bits: 0..=31).
pub fn divider_for_baud(baud: u32) -> Result<u8, RegisterError> {
    if baud == 0 {
        return Err(RegisterError::Baud(baud));
    }
    let d = (25_000_000.0 / (8.0 * f64::from(baud)) - 1.0).round();
    if !(0.0..=31.0).contains(&d) {
        return Err(RegisterError::Baud(baud));
    }
    Ok(d as u8)
}

/// Misc control (0x18) with the baud divider in bits 8..=12 (the value firmwares write,
/// `00 00 7A 31` for divider 26, with its divider replaced).
pub fn misc_control_bytes(divider: u8) -> [u8; 4] {
    [0x00, 0x00, 0x60 | (divider & 0x1F), 0x31]
}

pub fn misc_control_divider(bytes: [u8; 4]) -> u8 {
    bytes[2] & 0x1F
}

/// Fast UART (0x28) value that BM1366/68/70 firmwares write for 1 Mbaud.
pub const FAST_UART_1MBAUD: [u8; 4] = [0x11, 0x30, 0x02, 0x00];
pub const FAST_BAUD_BM136X: u32 = 1_000_000;

/// The chip-id register (0x00) value: id (2 bytes), core byte, address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChipIdValue {
    pub chip_id: u16,
    pub core_byte: u8,
    pub address: u8,
}

impl ChipIdValue {
    pub fn to_bytes(&self) -> [u8; 4] {
        let [a, b] = self.chip_id.to_be_bytes();
        [a, b, self.core_byte, self.address]
    }
    pub fn from_bytes(b: [u8; 4]) -> ChipIdValue {
        ChipIdValue {
            chip_id: u16::from_be_bytes([b[0], b[1]]),
            core_byte: b[2],
            address: b[3],
        }
    }
}

/// Temperature as the emulator reports it through the analog-mux register (0x54): the
/// low 16 bits in hundredths of a degree Celsius. (Real boards read the diode through
/// the board's sensor; this is the emulator's documented stand-in.)
pub fn temperature_bytes(celsius: f64) -> [u8; 4] {
    let c = (celsius * 100.0).round().clamp(0.0, 65535.0) as u16;
    let [a, b] = c.to_be_bytes();
    [0, 0, a, b]
}

pub fn temperature_of(bytes: [u8; 4]) -> f64 {
    f64::from(u16::from_be_bytes([bytes[2], bytes[3]])) / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ticket_masks_match_the_facts() {
        assert_eq!(ticket_mask_bytes(256), [0x00, 0x00, 0x00, 0xFF]);
        assert_eq!(ticket_mask_bytes(512), [0x00, 0x00, 0x80, 0xFF]);
        assert_eq!(ticket_mask_bytes(600), [0x00, 0x00, 0x80, 0xFF]);
        assert_eq!(ticket_mask_bytes(1), [0, 0, 0, 0]);
        assert_eq!(ticket_mask_difficulty([0x00, 0x00, 0x80, 0xFF]), Ok(512));
        assert!(ticket_mask_difficulty([0x00, 0x01, 0x00, 0xFF]).is_err());
    }

    #[test]
    fn version_mask_matches_the_facts() {
        assert_eq!(version_mask_bytes(0x1fffe000), [0x90, 0x00, 0xFF, 0xFF]);
        assert_eq!(version_mask_of([0x90, 0x00, 0xFF, 0xFF]), 0x1fffe000);
    }

    #[test]
    fn baud_divider_formula() {
        assert_eq!(baud_of_divider(26), 115_740);
        assert_eq!(divider_for_baud(115_200), Ok(26));
        assert_eq!(baud_of_divider(0), 3_125_000);
        assert_eq!(misc_control_bytes(26), [0x00, 0x00, 0x7A, 0x31]);
    }

    #[test]
    fn pll_reaches_default_clocks_within_the_fb_div_range() {
        for f in ChipFamily::ALL {
            let pll = Pll::for_frequency(f, f.default_mhz()).unwrap();
            assert!(
                (pll.frequency_mhz() - f.default_mhz()).abs() < 1.0,
                "{f}: {pll:?}"
            );
            let (lo, hi) = f.fb_div_range();
            assert!((lo..=hi).contains(&pll.fb_div));
            assert_eq!(Pll::from_bytes(pll.to_bytes()), Ok(pll));
        }
        assert!(Pll::for_frequency(ChipFamily::Bm1370, 10.0).is_err());
    }

    #[test]
    fn ramp_steps_by_6_25_mhz_and_lands_on_target() {
        let r = frequency_ramp(50.0, 75.0);
        assert_eq!(r, [56.25, 62.5, 68.75, 75.0]);
        assert_eq!(frequency_ramp(525.0, 500.0).last(), Some(&500.0));
    }

    proptest! {
        #[test]
        fn ticket_mask_round_trips_powers_of_two(p in 0u32..32) {
            prop_assert_eq!(ticket_mask_difficulty(ticket_mask_bytes(1 << p)), Ok(1u64 << p));
        }

        #[test]
        fn pll_setting_is_within_a_step_of_the_request(mhz in 100.0f64..800.0) {
            let pll = Pll::for_frequency(ChipFamily::Bm1370, mhz).unwrap();
            prop_assert!((pll.frequency_mhz() - mhz).abs() <= 6.25);
            prop_assert_eq!(Pll::from_bytes(pll.to_bytes()), Ok(pll));
        }
    }
}
