//! 256-bit proof-of-work targets.

/// A 256-bit proof-of-work target. A hash meets it when the hash, read as a 256-bit
/// little-endian integer (the byte order SHA-256d outputs, "internal byte order"), is less
/// than or equal to the target.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Target {
    /// Little-endian 64-bit limbs: `limbs[0]` is the least significant.
    limbs: [u64; 4],
}

impl Target {
    /// The easiest possible target: every hash meets it.
    pub const MAX: Target = Target { limbs: [u64::MAX; 4] };
    /// The difficulty-1 target, 0xFFFF x 2^208.
    pub const DIFF1: Target = Target { limbs: [0, 0, 0, 0x0000_0000_FFFF_0000] };

    /// Reads a target from its 32 little-endian bytes.
    pub fn from_le_bytes(bytes: [u8; 32]) -> Target {
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate() {
            *limb = u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        }
        Target { limbs }
    }

    /// The target's 32 little-endian bytes.
    pub fn to_le_bytes(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, limb) in self.limbs.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&limb.to_le_bytes());
        }
        out
    }

    /// Whether `hash` (32 bytes in internal byte order, as SHA-256d outputs them) meets
    /// this target.
    pub fn is_met_by(&self, hash: &[u8; 32]) -> bool {
        Target::from_le_bytes(*hash) <= *self
    }

    /// The most significant 32 bits of the target, which a nonce scanner compares against
    /// the top word of each hash before it looks at the rest.
    pub fn top_u32(&self) -> u32 {
        (self.limbs[3] >> 32) as u32
    }
}

impl PartialOrd for Target {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Target {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.limbs.iter().rev().cmp(other.limbs.iter().rev())
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({self})")
    }
}

/// Big-endian hex, the way block explorers and Bitcoin Core display targets.
impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for limb in self.limbs.iter().rev() {
            write!(f, "{limb:016x}")?;
        }
        Ok(())
    }
}
