//! What a scan is asked to cover, and what it finds.

use hashforge_core::Target;

/// A scan: one header template, a range of rolled versions and a range of nonces, and the
/// target a hash must meet to be reported.
///
/// The rolled version of index `k` is the header's version with the bits of `version_mask`
/// replaced by the bits of `k`, deposited into the mask from its lowest set bit up (BIP 320's
/// mask 0x1fffe000 turns index 1 into bit 13). Index 0 clears the masked bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Work {
    header: [u8; 80],
    version_mask: u32,
    version_start: u32,
    version_count: u64,
    nonce_start: u32,
    nonce_count: u64,
    target: Target,
}

/// A (version, nonce) whose SHA-256d meets the work's target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hit {
    /// The header's full nVersion with the rolled bits applied.
    pub version: u32,
    /// The nonce, as the header stores it (little-endian at bytes 76..80).
    pub nonce: u32,
    /// SHA-256d of the header, internal byte order (reverse it for display).
    pub hash: [u8; 32],
}

/// Why a [`Work`] could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WorkError {
    #[error("nonce range {start}+{count} runs past 2^32")]
    NonceRange { start: u32, count: u64 },
    #[error(
        "version range {start}+{count} runs past the {space} versions the mask {mask:#010x} allows"
    )]
    VersionRange {
        start: u32,
        count: u64,
        mask: u32,
        space: u64,
    },
    #[error("an empty range has nothing to scan")]
    Empty,
}

impl Work {
    /// All 2^32 nonces of `header` as it is (no version rolling), against `target`.
    pub fn new(header: [u8; 80], target: Target) -> Work {
        Work {
            header,
            version_mask: 0,
            version_start: 0,
            version_count: 1,
            nonce_start: 0,
            nonce_count: 1 << 32,
            target,
        }
    }

    /// Restricts the scan to `count` nonces from `start`.
    pub fn with_nonces(mut self, start: u32, count: u64) -> Result<Work, WorkError> {
        if count == 0 {
            return Err(WorkError::Empty);
        }
        if u64::from(start) + count > 1 << 32 {
            return Err(WorkError::NonceRange { start, count });
        }
        self.nonce_start = start;
        self.nonce_count = count;
        Ok(self)
    }

    /// Rolls the bits of `mask` over the version indices `start..start + count`.
    pub fn with_versions(mut self, mask: u32, start: u32, count: u64) -> Result<Work, WorkError> {
        if count == 0 {
            return Err(WorkError::Empty);
        }
        let space = 1u64 << mask.count_ones();
        if u64::from(start) + count > space {
            return Err(WorkError::VersionRange {
                start,
                count,
                mask,
                space,
            });
        }
        self.version_mask = mask;
        self.version_start = start;
        self.version_count = count;
        Ok(self)
    }

    pub fn header(&self) -> &[u8; 80] {
        &self.header
    }
    pub fn target(&self) -> Target {
        self.target
    }
    pub fn version_mask(&self) -> u32 {
        self.version_mask
    }
    pub fn version_start(&self) -> u32 {
        self.version_start
    }
    pub fn version_count(&self) -> u64 {
        self.version_count
    }
    pub fn nonce_start(&self) -> u32 {
        self.nonce_start
    }
    pub fn nonce_count(&self) -> u64 {
        self.nonce_count
    }
    /// How many headers the scan hashes.
    pub fn hashes(&self) -> u64 {
        self.version_count.saturating_mul(self.nonce_count)
    }

    /// The header's nVersion as stored (bytes 0..4, little-endian).
    pub fn base_version(&self) -> u32 {
        u32::from_le_bytes(self.header[0..4].try_into().expect("4 bytes"))
    }

    /// The nVersion of rolled-version index `k`.
    pub fn rolled_version(&self, k: u32) -> u32 {
        (self.base_version() & !self.version_mask) | deposit(k, self.version_mask)
    }

    /// The header with a given version and nonce filled in.
    pub fn header_with(&self, version: u32, nonce: u32) -> [u8; 80] {
        let mut h = self.header;
        h[0..4].copy_from_slice(&version.to_le_bytes());
        h[76..80].copy_from_slice(&nonce.to_le_bytes());
        h
    }

    /// A sub-range of this scan; the caller keeps it inside the original ranges.
    pub(crate) fn piece(
        &self,
        version_start: u32,
        version_count: u64,
        nonce_start: u32,
        nonce_count: u64,
    ) -> Work {
        Work {
            version_start,
            version_count,
            nonce_start,
            nonce_count,
            ..self.clone()
        }
    }

    /// Splits the scan into `parts` scans that never overlap and together cover it. The
    /// version range is split when it has at least `lanes` versions per part (so that
    /// version-lane kernels stay full), otherwise the nonce range.
    pub fn split(&self, parts: usize, lanes: usize) -> Vec<Work> {
        let parts = parts.max(1) as u64;
        let by_versions = self.version_count >= parts * lanes as u64;
        let (start, count) = if by_versions {
            (u64::from(self.version_start), self.version_count)
        } else {
            (u64::from(self.nonce_start), self.nonce_count)
        };
        let parts = parts.min(count);
        let mut out = Vec::with_capacity(parts as usize);
        let mut from = start;
        for i in 0..parts {
            let len = count / parts + u64::from(i < count % parts);
            let mut w = self.clone();
            if by_versions {
                w.version_start = from as u32;
                w.version_count = len;
            } else {
                w.nonce_start = from as u32;
                w.nonce_count = len;
            }
            out.push(w);
            from += len;
        }
        out
    }
}

/// Deposits the low bits of `bits` into the set bits of `mask`, lowest first (BMI2's PDEP).
pub fn deposit(mut bits: u32, mask: u32) -> u32 {
    let mut out = 0;
    let mut m = mask;
    while m != 0 && bits != 0 {
        let low = m & m.wrapping_neg();
        if bits & 1 == 1 {
            out |= low;
        }
        bits >>= 1;
        m &= m - 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deposit_spreads_index_bits_into_the_bip320_mask() {
        assert_eq!(deposit(1, 0x1fffe000), 0x2000);
        assert_eq!(deposit(0xffff, 0x1fffe000), 0x1fffe000);
        assert_eq!(deposit(0b101, 0b1010_0100), 0b1000_0100);
        assert_eq!(deposit(7, 0), 0);
    }

    #[test]
    fn split_parts_never_overlap_and_cover_the_whole_range() {
        let w = Work::new([0; 80], Target::MAX)
            .with_nonces(10, 1001)
            .unwrap();
        let parts = w.split(7, 16);
        assert_eq!(parts.len(), 7);
        let mut next = 10u64;
        for p in &parts {
            assert_eq!(u64::from(p.nonce_start()), next);
            next += p.nonce_count();
        }
        assert_eq!(next, 1011);

        let v = Work::new([0; 80], Target::MAX)
            .with_versions(0x1fffe000, 0, 65536)
            .unwrap();
        let parts = v.split(2, 16);
        assert_eq!(parts[0].version_count() + parts[1].version_count(), 65536);
        assert_eq!(parts[1].version_start(), 32768);
        assert!(parts.iter().all(|p| p.nonce_count() == 1 << 32));
    }

    #[test]
    fn ranges_past_the_end_are_refused() {
        let w = Work::new([0; 80], Target::MAX);
        assert!(w.clone().with_nonces(u32::MAX, 2).is_err());
        assert!(w.clone().with_nonces(u32::MAX, 1).is_ok());
        assert!(w.clone().with_versions(0xff, 200, 57).is_err());
        assert!(w.with_nonces(0, 0).is_err());
    }
}
