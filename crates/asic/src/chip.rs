//! What differs between the BM13xx chips this crate speaks to: ids, core counts, default
//! clocks, job-id rotation and how a nonce reply names its job and core.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// A BM13xx chip family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChipFamily {
    /// Antminer S19 XP.
    Bm1366,
    /// Antminer S21, T21.
    Bm1368,
    /// Antminer S21 Pro, Bitaxe Gamma.
    Bm1370,
    /// Antminer S17 / T17 generation; host-computed midstates (AsicBoost).
    Bm1397,
}

/// A chip name that is no family this crate knows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown chip `{0}`; expected one of bm1366, bm1368, bm1370, bm1397")]
pub struct UnknownChip(pub String);

impl ChipFamily {
    pub const ALL: [ChipFamily; 4] = [
        ChipFamily::Bm1366,
        ChipFamily::Bm1368,
        ChipFamily::Bm1370,
        ChipFamily::Bm1397,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ChipFamily::Bm1366 => "bm1366",
            ChipFamily::Bm1368 => "bm1368",
            ChipFamily::Bm1370 => "bm1370",
            ChipFamily::Bm1397 => "bm1397",
        }
    }

    /// The id a chip reports in bytes 0..2 of register 0x00 (`0x1370` is sent `13 70`).
    pub fn chip_id(self) -> u16 {
        match self {
            ChipFamily::Bm1366 => 0x1366,
            ChipFamily::Bm1368 => 0x1368,
            ChipFamily::Bm1370 => 0x1370,
            ChipFamily::Bm1397 => 0x1397,
        }
    }

    pub fn from_chip_id(id: u16) -> Option<ChipFamily> {
        ChipFamily::ALL.into_iter().find(|f| f.chip_id() == id)
    }

    /// Small cores: about one nonce per small core per clock.
    pub fn small_cores(self) -> u32 {
        match self {
            ChipFamily::Bm1366 => 894,
            ChipFamily::Bm1368 => 1276,
            ChipFamily::Bm1370 => 2040,
            ChipFamily::Bm1397 => 672,
        }
    }

    /// Default hash clock in MHz.
    pub fn default_mhz(self) -> f64 {
        match self {
            ChipFamily::Bm1366 => 485.0,
            ChipFamily::Bm1368 => 490.0,
            ChipFamily::Bm1370 => 525.0,
            ChipFamily::Bm1397 => 425.0,
        }
    }

    /// Expected hash rate in H/s at `mhz`: frequency x small cores.
    pub fn expected_hs(self, mhz: f64) -> f64 {
        mhz * 1e6 * f64::from(self.small_cores())
    }

    /// The PLL feedback-divider range the chip accepts.
    pub fn fb_div_range(self) -> (u8, u8) {
        match self {
            ChipFamily::Bm1370 => (160, 239),
            _ => (144, 235),
        }
    }

    /// Whether jobs carry the whole header (BM1366/68/70) or midstates (BM1397).
    pub fn takes_full_header(self) -> bool {
        self != ChipFamily::Bm1397
    }

    /// Whether the chain driver can mine with this family. BM1397 takes midstate jobs,
    /// which the frame codec encodes but the driver does not send yet (nor does the
    /// emulator hash them).
    pub fn check_drivable(self) -> Result<(), String> {
        if self.takes_full_header() {
            Ok(())
        } else {
            Err(format!(
                "{} chains take midstate jobs, which hashforge's chain driver does not send yet; BM1366, BM1368 and BM1370 work",
                self.name()
            ))
        }
    }

    /// Length in bytes of every chip-to-host frame, preamble and CRC included.
    pub fn reply_len(self) -> usize {
        if self == ChipFamily::Bm1397 {
            9
        } else {
            11
        }
    }

    /// How firmwares step the job id from one job to the next (mod 128).
    pub fn job_id_step(self) -> u8 {
        match self {
            ChipFamily::Bm1366 => 8,
            ChipFamily::Bm1368 | ChipFamily::Bm1370 => 24,
            ChipFamily::Bm1397 => 4,
        }
    }

    /// The job id after `id`.
    pub fn next_job_id(self, id: u8) -> u8 {
        (id.wrapping_add(self.job_id_step())) % 128
    }

    /// Splits the job/core byte of a nonce reply into (job id, small core or midstate).
    pub fn split_job_byte(self, byte: u8) -> (u8, u8) {
        match self {
            ChipFamily::Bm1366 => (byte & 0xF8, byte & 0x07),
            ChipFamily::Bm1368 | ChipFamily::Bm1370 => ((byte & 0xF0) >> 1, byte & 0x0F),
            ChipFamily::Bm1397 => (byte & 0xFC, byte & 0x03),
        }
    }

    /// The job/core byte a chip sends for `job_id` (as the host sent it) and `small_core`.
    pub fn job_byte(self, job_id: u8, small_core: u8) -> u8 {
        match self {
            ChipFamily::Bm1366 => (job_id & 0xF8) | (small_core & 0x07),
            ChipFamily::Bm1368 | ChipFamily::Bm1370 => ((job_id << 1) & 0xF0) | (small_core & 0x0F),
            ChipFamily::Bm1397 => (job_id & 0xFC) | (small_core & 0x03),
        }
    }
}

impl fmt::Display for ChipFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name().to_ascii_uppercase())
    }
}

impl FromStr for ChipFamily {
    type Err = UnknownChip;
    fn from_str(s: &str) -> Result<ChipFamily, UnknownChip> {
        let lower = s.trim().to_ascii_lowercase();
        ChipFamily::ALL
            .into_iter()
            .find(|f| f.name() == lower)
            .ok_or_else(|| UnknownChip(s.to_string()))
    }
}

/// Where a nonce came from, as the chip encodes it in the nonce itself: read as a
/// big-endian number (the header's little-endian nonce with its bytes swapped), bits
/// 25..=31 are the core and bits 17..=24 the chip's address field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NonceOrigin {
    pub core: u8,
    pub address_field: u8,
}

impl NonceOrigin {
    /// Decodes the origin of a nonce given as the header stores it.
    pub fn of(header_nonce: u32) -> NonceOrigin {
        let be = header_nonce.swap_bytes();
        NonceOrigin {
            core: (be >> 25) as u8,
            address_field: ((be >> 17) & 0xFF) as u8,
        }
    }
}

/// The address step firmwares give a chain of `count` chips: `256 / count`, rounded down
/// (3 on a 65-chip S21 Pro board).
pub fn address_interval(count: usize) -> usize {
    (256 / count.max(1)).max(1)
}

/// The addresses firmwares give a chain of `count` chips: `i x address_interval(count)`.
pub fn chip_addresses(count: usize) -> Vec<u8> {
    let step = address_interval(count);
    (0..count.min(256)).map(|i| (i * step) as u8).collect()
}

/// The chip (index into `addresses`, the chain's addresses ascending, as
/// [`chip_addresses`] gives them) whose nonces carry an address field. Each chip owns one
/// address step from its address, as a chip's share of the nonce space is (firmwares read
/// the chip as `field / interval`). When the step does not divide 256 the fields past the
/// last chip's range belong to no chip (195..=255 on 65 chips): a nonce carrying one is
/// no chip's.
pub fn owner_of_field(addresses: &[u8], field: u8) -> Option<usize> {
    let i = match addresses.binary_search(&field) {
        Ok(i) => i,
        Err(0) => return None,
        Err(i) => i - 1,
    };
    let offset = usize::from(field - addresses[i]);
    (offset < address_interval(addresses.len())).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_rotate_as_firmwares_do() {
        let f = ChipFamily::Bm1370;
        let ids: Vec<u8> = std::iter::successors(Some(0u8), |&i| Some(f.next_job_id(i)))
            .take(7)
            .collect();
        assert_eq!(ids, [0, 24, 48, 72, 96, 120, 16]);
        assert_eq!(ChipFamily::Bm1366.next_job_id(120), 0);
        assert_eq!(ChipFamily::Bm1397.next_job_id(124), 0);
    }

    #[test]
    fn job_byte_round_trips_for_every_family() {
        for f in ChipFamily::ALL {
            let mut id = 0;
            for _ in 0..40 {
                for core in 0..4 {
                    assert_eq!(
                        f.split_job_byte(f.job_byte(id, core)),
                        (id, core),
                        "{f} {id}"
                    );
                }
                id = f.next_job_id(id);
            }
        }
    }

    #[test]
    fn a_captured_bm1370_nonce_names_core_12() {
        // Reply `AA 55 18 00 A6 40 02 99 22 F9 91`: nonce bytes 18 00 A6 40.
        let nonce = u32::from_le_bytes([0x18, 0x00, 0xA6, 0x40]);
        assert_eq!(NonceOrigin::of(nonce).core, 12);
        assert_eq!(ChipFamily::Bm1370.split_job_byte(0x99), (0x48, 9));
    }

    #[test]
    fn each_chip_owns_one_address_step_and_the_rest_no_chip() {
        let a = chip_addresses(65);
        assert_eq!((a[1], a[64]), (3, 192));
        let owners: Vec<Option<usize>> = (0..=255).map(|f| owner_of_field(&a, f)).collect();
        for chip in 0..65 {
            let fields = owners.iter().filter(|&&o| o == Some(chip)).count();
            assert_eq!(fields, 3, "chip {chip}");
        }
        assert_eq!(owners[5], Some(1));
        assert_eq!(owners[194], Some(64));
        assert!(owners[195..].iter().all(Option::is_none));
        // A chain whose step divides 256 leaves no field unowned.
        let a = chip_addresses(64);
        assert!((0..=255).all(|f| owner_of_field(&a, f) == Some(usize::from(f) / 4)));
        assert_eq!(chip_addresses(1), [0]);
        assert_eq!(owner_of_field(&[0], 255), Some(0));
        assert_eq!(owner_of_field(&[], 0), None);
    }
}
