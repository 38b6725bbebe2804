//! BIP 310 version rolling: which header version bits a miner may change, and the version
//! a share with rolled bits was hashed with.

/// The header version bits a miner may roll (BIP 310 `version-rolling.mask`). Written on
/// the wire as 8 big-endian hex digits (`"1fffe000"`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct VersionMask(pub u32);

impl VersionMask {
    /// BIP 320's general-purpose bits 13 to 28, the mask pools usually allow.
    pub const BIP320: VersionMask = VersionMask(0x1fff_e000);
    /// No rolling.
    pub const NONE: VersionMask = VersionMask(0);

    /// The mask both sides allow (pool mask AND miner mask), as `mining.configure` answers.
    pub fn intersect(self, other: VersionMask) -> VersionMask {
        VersionMask(self.0 & other.0)
    }

    /// How many bits may be rolled.
    pub fn bit_count(self) -> u32 {
        self.0.count_ones()
    }
}

/// A share's version bits set a bit its mask does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("version bits {version_bits:#010x} set bits outside the version-rolling mask {:#010x}", mask.0)]
pub struct VersionBitsOutsideMask {
    /// What the share sent.
    pub version_bits: u32,
    /// The negotiated mask.
    pub mask: VersionMask,
}

/// The header version a share was hashed with: `(job_version & !mask) | (version_bits &
/// mask)`, refusing `version_bits` that set bits outside `mask`.
pub fn rolled_version(
    job_version: u32,
    version_bits: u32,
    mask: VersionMask,
) -> Result<u32, VersionBitsOutsideMask> {
    if version_bits & !mask.0 != 0 {
        return Err(VersionBitsOutsideMask { version_bits, mask });
    }
    Ok((job_version & !mask.0) | (version_bits & mask.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_840000_version_is_a_bip320_roll_of_0x20000000() {
        assert_eq!(
            rolled_version(0x2000_0000, 0x0a5f_e000, VersionMask::BIP320),
            Ok(0x2a5f_e000)
        );
    }

    #[test]
    fn bits_outside_the_mask_are_refused() {
        let err = rolled_version(0x2000_0000, 0x2000_2000, VersionMask::BIP320).unwrap_err();
        assert_eq!(
            err,
            VersionBitsOutsideMask {
                version_bits: 0x2000_2000,
                mask: VersionMask::BIP320
            }
        );
        assert_eq!(
            err.to_string(),
            "version bits 0x20002000 set bits outside the version-rolling mask 0x1fffe000"
        );
        assert!(rolled_version(0x2000_0000, 0x2000, VersionMask::NONE).is_err());
    }

    #[test]
    fn rolled_bits_replace_the_jobs_bits_under_the_mask() {
        // A job version with a bit set under the mask: the share's bits replace it.
        assert_eq!(
            rolled_version(0x2000_4000, 0x0000_2000, VersionMask::BIP320),
            Ok(0x2000_2000)
        );
        assert_eq!(
            rolled_version(0x2000_0000, 0, VersionMask::NONE),
            Ok(0x2000_0000)
        );
    }

    #[test]
    fn masks_intersect() {
        let miner = VersionMask(0xffff_ffff);
        assert_eq!(VersionMask::BIP320.intersect(miner), VersionMask::BIP320);
        assert_eq!(VersionMask::BIP320.bit_count(), 16);
    }
}
