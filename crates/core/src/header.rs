//! The 80-byte block header.

use bitcoin::hashes::{sha256d, Hash};

use crate::compact::{CompactError, CompactTarget};
use crate::difficulty::Difficulty;
use crate::hexutil::{self, HexError};
use crate::target::Target;

/// A block header with named fields. Its serialisation is 80 bytes:
///
/// | bytes  | field            | stored as                                    |
/// |--------|------------------|----------------------------------------------|
/// | 0..4   | `version`        | little-endian `u32`                          |
/// | 4..36  | `prev_blockhash` | 32 bytes, internal byte order                |
/// | 36..68 | `merkle_root`    | 32 bytes, internal byte order                |
/// | 68..72 | `time`           | little-endian `u32`, Unix seconds            |
/// | 72..76 | `bits`           | little-endian `u32` (compact target)         |
/// | 76..80 | `nonce`          | little-endian `u32`                          |
///
/// "Internal byte order" is the order SHA-256d outputs; block explorers and Bitcoin Core
/// display hashes byte-reversed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Header {
    /// nVersion. Consensus reads it as a signed `i32`; mining treats it as a bit field
    /// (BIP 9 signalling, BIP 320 rolled bits), so it is kept here as the raw `u32`.
    pub version: u32,
    /// The previous block's hash, internal byte order (display order reversed).
    pub prev_blockhash: [u8; 32],
    /// The merkle root of the block's txids, internal byte order (display order reversed).
    pub merkle_root: [u8; 32],
    /// Block time, Unix seconds.
    pub time: u32,
    /// The compact target the block's hash must meet (nBits).
    pub bits: CompactTarget,
    /// The nonce.
    pub nonce: u32,
}

impl Header {
    /// Serialised size in bytes.
    pub const SIZE: usize = 80;

    /// Reads the 80-byte serialisation (layout in the type's documentation).
    pub fn from_bytes(bytes: &[u8; 80]) -> Header {
        let u32_at = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let mut prev_blockhash = [0u8; 32];
        prev_blockhash.copy_from_slice(&bytes[4..36]);
        let mut merkle_root = [0u8; 32];
        merkle_root.copy_from_slice(&bytes[36..68]);
        Header {
            version: u32_at(0),
            prev_blockhash,
            merkle_root,
            time: u32_at(68),
            bits: CompactTarget(u32_at(72)),
            nonce: u32_at(76),
        }
    }

    /// The 80-byte serialisation (layout in the type's documentation).
    pub fn to_bytes(&self) -> [u8; 80] {
        let mut out = [0u8; 80];
        out[0..4].copy_from_slice(&self.version.to_le_bytes());
        out[4..36].copy_from_slice(&self.prev_blockhash);
        out[36..68].copy_from_slice(&self.merkle_root);
        out[68..72].copy_from_slice(&self.time.to_le_bytes());
        out[72..76].copy_from_slice(&self.bits.0.to_le_bytes());
        out[76..80].copy_from_slice(&self.nonce.to_le_bytes());
        out
    }

    /// Parses the serialisation written as 160 hex digits, in byte order (the form
    /// `getblockheader <hash> false` prints).
    pub fn from_hex(s: &str) -> Result<Header, HexError> {
        hexutil::decode_array::<80>(s).map(|bytes| Header::from_bytes(&bytes))
    }

    /// The serialisation as 160 lower-case hex digits, in byte order.
    pub fn to_hex(&self) -> String {
        hexutil::encode(&self.to_bytes())
    }

    /// SHA-256d of the serialisation, in internal byte order: the bytes a target compares
    /// as a little-endian number.
    pub fn hash_bytes(&self) -> [u8; 32] {
        sha256d::Hash::hash(&self.to_bytes()).to_byte_array()
    }

    /// The block hash. Its `Display` is the usual display order (byte-reversed, leading
    /// zeros first); [`Header::hash_bytes`] gives the internal order.
    pub fn block_hash(&self) -> bitcoin::BlockHash {
        bitcoin::BlockHash::from_byte_array(self.hash_bytes())
    }

    /// The previous block's hash in display order (reversed hex), as explorers show it.
    pub fn prev_blockhash_hex(&self) -> String {
        hexutil::encode_reversed(&self.prev_blockhash)
    }

    /// The merkle root in display order (reversed hex), as explorers show it.
    pub fn merkle_root_hex(&self) -> String {
        hexutil::encode_reversed(&self.merkle_root)
    }

    /// The target `bits` encodes, or why it encodes none (Bitcoin Core's rules).
    pub fn target(&self) -> Result<Target, CompactError> {
        self.bits.to_target()
    }

    /// Whether the header's hash meets the target of its own `bits`: the proof-of-work
    /// check, without the chain's limit on how easy `bits` may be. False when `bits` is
    /// negative, overflowing or zero.
    pub fn meets_own_bits(&self) -> bool {
        self.target().is_ok_and(|t| t.is_met_by(&self.hash_bytes()))
    }

    /// The share difficulty of this header's hash.
    pub fn share_difficulty(&self) -> Difficulty {
        Difficulty::of_hash(&self.hash_bytes())
    }
}

impl From<bitcoin::block::Header> for Header {
    fn from(h: bitcoin::block::Header) -> Self {
        Header {
            version: h.version.to_consensus() as u32,
            prev_blockhash: h.prev_blockhash.to_byte_array(),
            merkle_root: h.merkle_root.to_byte_array(),
            time: h.time,
            bits: CompactTarget(h.bits.to_consensus()),
            nonce: h.nonce,
        }
    }
}

impl From<Header> for bitcoin::block::Header {
    fn from(h: Header) -> Self {
        bitcoin::block::Header {
            version: bitcoin::block::Version::from_consensus(h.version as i32),
            prev_blockhash: bitcoin::BlockHash::from_byte_array(h.prev_blockhash),
            merkle_root: bitcoin::TxMerkleNode::from_byte_array(h.merkle_root),
            time: h.time,
            bits: bitcoin::CompactTarget::from_consensus(h.bits.0),
            nonce: h.nonce,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GENESIS: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";

    fn header_strategy() -> impl Strategy<Value = Header> {
        (
            any::<u32>(),
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
        )
            .prop_map(
                |(version, prev_blockhash, merkle_root, time, bits, nonce)| Header {
                    version,
                    prev_blockhash,
                    merkle_root,
                    time,
                    bits: CompactTarget(bits),
                    nonce,
                },
            )
    }

    #[test]
    fn genesis_fields_and_hash() {
        let h = Header::from_hex(GENESIS).unwrap();
        assert_eq!(h.version, 1);
        assert_eq!(h.prev_blockhash, [0; 32]);
        assert_eq!(
            h.merkle_root_hex(),
            "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
        );
        assert_eq!(h.time, 1_231_006_505);
        assert_eq!(h.bits, CompactTarget(0x1d00_ffff));
        assert_eq!(h.nonce, 2_083_236_893);
        assert_eq!(
            h.block_hash().to_string(),
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
        );
        assert!(h.meets_own_bits());
        assert_eq!(h.to_hex(), GENESIS);
    }

    #[test]
    fn a_header_that_misses_or_has_invalid_bits_does_not_meet_them() {
        let mut h = Header::from_hex(GENESIS).unwrap();
        h.nonce ^= 1;
        assert!(!h.meets_own_bits());
        let mut h = Header::from_hex(GENESIS).unwrap();
        h.bits = CompactTarget(0x0492_3456);
        assert!(!h.meets_own_bits());
        assert_eq!(h.target(), Err(CompactError::Negative(0x0492_3456)));
    }

    #[test]
    fn from_hex_errors_are_typed() {
        assert_eq!(
            Header::from_hex(&GENESIS[..158]),
            Err(HexError::WrongLength {
                expected_bytes: 80,
                got_digits: 158
            })
        );
        let mut bad = GENESIS.to_string();
        bad.replace_range(10..11, "z");
        assert_eq!(
            Header::from_hex(&bad),
            Err(HexError::InvalidDigit { index: 10, ch: 'z' })
        );
        assert!(Header::from_hex(&GENESIS.to_uppercase()).is_ok());
    }

    proptest! {
        #[test]
        fn bytes_round_trip(bytes in proptest::collection::vec(any::<u8>(), 80)) {
            let bytes: [u8; 80] = bytes.try_into().unwrap();
            prop_assert_eq!(Header::from_bytes(&bytes).to_bytes(), bytes);
        }

        #[test]
        fn agrees_with_rust_bitcoin(h in header_strategy()) {
            let theirs: bitcoin::block::Header = h.into();
            prop_assert_eq!(bitcoin::consensus::serialize(&theirs), h.to_bytes().to_vec());
            prop_assert_eq!(theirs.block_hash(), h.block_hash());
            prop_assert_eq!(Header::from(theirs), h);
            prop_assert_eq!(Header::from_hex(&h.to_hex()), Ok(h));
        }
    }
}
