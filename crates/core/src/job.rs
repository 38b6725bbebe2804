//! Stratum V1 job assembly: from the fields of a `mining.notify`, an extranonce and a
//! nonce to the 80-byte header. Types and hex parsing only; the JSON belongs to the
//! Stratum crate.

use bitcoin::hashes::{sha256d, Hash};

use crate::compact::CompactTarget;
use crate::header::Header;
use crate::hexutil::{self, HexError};
use crate::merkle::merkle_root_from_branch;

/// A previous-block hash in the form `mining.notify` carries it: the 32 bytes of the
/// internal byte order with each 4-byte word byte-reversed (equivalently, the display-order
/// hash with the order of its eight 4-byte words reversed). The bytes here are the notify
/// hex string decoded in string order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct StratumPrevHash(pub [u8; 32]);

impl StratumPrevHash {
    /// From the hash in internal byte order (as in a header).
    pub fn from_internal(internal: &[u8; 32]) -> StratumPrevHash {
        StratumPrevHash(swap_words(internal))
    }

    /// The hash in internal byte order, as a header stores it.
    pub fn to_internal(&self) -> [u8; 32] {
        swap_words(&self.0)
    }

    /// The 64 hex digits `mining.notify` sends.
    pub fn to_hex(&self) -> String {
        hexutil::encode(&self.0)
    }
}

fn swap_words(bytes: &[u8; 32]) -> [u8; 32] {
    let mut out = *bytes;
    for word in out.chunks_exact_mut(4) {
        word.reverse();
    }
    out
}

/// Parses 8 hex digits as the big-endian rendering of a `u32`, as Stratum writes version,
/// nbits, ntime, nonce and version bits (`"20000000"`). Upper case is accepted; any other
/// length is refused.
pub fn parse_u32_be_hex(s: &str) -> Result<u32, HexError> {
    hexutil::decode_array::<4>(s).map(u32::from_be_bytes)
}

/// Parses the 64-digit `prevhash` of a `mining.notify`.
pub fn parse_prevhash_hex(s: &str) -> Result<StratumPrevHash, HexError> {
    hexutil::decode_array::<32>(s).map(StratumPrevHash)
}

/// Parses a 64-digit hash sent in internal byte order (a merkle branch entry): the bytes
/// are taken in string order, not reversed.
pub fn parse_hash_hex(s: &str) -> Result<[u8; 32], HexError> {
    hexutil::decode_array::<32>(s)
}

/// Parses a variable-length hex field (coinb1, coinb2, an extranonce) into bytes in string
/// order.
pub fn parse_hex_bytes(s: &str) -> Result<Vec<u8>, HexError> {
    hexutil::decode_vec(s)
}

/// A `mining.notify` field, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyField {
    /// `prevhash`.
    PrevHash,
    /// `coinb1`.
    Coinb1,
    /// `coinb2`.
    Coinb2,
    /// Entry `n` (from 0) of `merkle_branch`.
    MerkleBranch(usize),
    /// `version`.
    Version,
    /// `nbits`.
    NBits,
    /// `ntime`.
    NTime,
}

impl std::fmt::Display for NotifyField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotifyField::PrevHash => f.write_str("prevhash"),
            NotifyField::Coinb1 => f.write_str("coinb1"),
            NotifyField::Coinb2 => f.write_str("coinb2"),
            NotifyField::MerkleBranch(i) => write!(f, "merkle_branch[{i}]"),
            NotifyField::Version => f.write_str("version"),
            NotifyField::NBits => f.write_str("nbits"),
            NotifyField::NTime => f.write_str("ntime"),
        }
    }
}

/// A `mining.notify` field that is not the hex it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mining.notify {field}: {source}")]
pub struct NotifyFieldError {
    /// Which field.
    pub field: NotifyField,
    /// What is wrong with it.
    #[source]
    pub source: HexError,
}

/// What a `mining.notify` gives a miner to build headers from (job id and clean-jobs flag
/// are the Stratum crate's business).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct JobParts {
    /// The previous block hash, word-swapped as sent.
    pub prevhash: StratumPrevHash,
    /// The coinbase (non-witness serialisation) up to the extranonce.
    pub coinb1: Vec<u8>,
    /// The coinbase (non-witness serialisation) after the extranonce.
    pub coinb2: Vec<u8>,
    /// The hashes beside the coinbase's path to the merkle root, bottom up, each in
    /// internal byte order.
    pub merkle_branch: Vec<[u8; 32]>,
    /// The job's header version (before any version rolling).
    pub version: u32,
    /// The header's compact target.
    pub nbits: CompactTarget,
    /// The job's header time, Unix seconds.
    pub ntime: u32,
}

impl JobParts {
    /// Parses the hex fields of a `mining.notify` (params 1 to 7, in wire order).
    pub fn from_notify_hex<S: AsRef<str>>(
        prevhash: &str,
        coinb1: &str,
        coinb2: &str,
        merkle_branch: &[S],
        version: &str,
        nbits: &str,
        ntime: &str,
    ) -> Result<JobParts, NotifyFieldError> {
        let at = |field| move |source| NotifyFieldError { field, source };
        Ok(JobParts {
            prevhash: parse_prevhash_hex(prevhash).map_err(at(NotifyField::PrevHash))?,
            coinb1: parse_hex_bytes(coinb1).map_err(at(NotifyField::Coinb1))?,
            coinb2: parse_hex_bytes(coinb2).map_err(at(NotifyField::Coinb2))?,
            merkle_branch: merkle_branch
                .iter()
                .enumerate()
                .map(|(i, h)| parse_hash_hex(h.as_ref()).map_err(at(NotifyField::MerkleBranch(i))))
                .collect::<Result<_, _>>()?,
            version: parse_u32_be_hex(version).map_err(at(NotifyField::Version))?,
            nbits: CompactTarget(parse_u32_be_hex(nbits).map_err(at(NotifyField::NBits))?),
            ntime: parse_u32_be_hex(ntime).map_err(at(NotifyField::NTime))?,
        })
    }

    /// The coinbase transaction in non-witness serialisation:
    /// `coinb1 || extranonce1 || extranonce2 || coinb2`.
    pub fn coinbase(&self, extranonce1: &[u8], extranonce2: &[u8]) -> Vec<u8> {
        let mut tx = Vec::with_capacity(
            self.coinb1.len() + extranonce1.len() + extranonce2.len() + self.coinb2.len(),
        );
        tx.extend_from_slice(&self.coinb1);
        tx.extend_from_slice(extranonce1);
        tx.extend_from_slice(extranonce2);
        tx.extend_from_slice(&self.coinb2);
        tx
    }

    /// The merkle root (internal byte order) for this extranonce: the coinbase's txid
    /// folded with the branch.
    pub fn merkle_root(&self, extranonce1: &[u8], extranonce2: &[u8]) -> [u8; 32] {
        let coinbase = self.coinbase(extranonce1, extranonce2);
        let txid = sha256d::Hash::hash(&coinbase).to_byte_array();
        merkle_root_from_branch(txid, &self.merkle_branch)
    }

    /// The header a share was hashed with. `ntime` and `nonce` come from the share;
    /// `version` is the header version, `self.version` unless version rolling is on, then
    /// [`crate::rolled_version`] of the share's version bits.
    pub fn header(
        &self,
        extranonce1: &[u8],
        extranonce2: &[u8],
        ntime: u32,
        nonce: u32,
        version: u32,
    ) -> Header {
        self.header_with_merkle_root(
            self.merkle_root(extranonce1, extranonce2),
            ntime,
            nonce,
            version,
        )
    }

    /// The header for an already computed merkle root (internal byte order), for a miner
    /// that scans many nonces per extranonce.
    pub fn header_with_merkle_root(
        &self,
        merkle_root: [u8; 32],
        ntime: u32,
        nonce: u32,
        version: u32,
    ) -> Header {
        Header {
            version,
            prev_blockhash: self.prevhash.to_internal(),
            merkle_root,
            time: ntime,
            bits: self.nbits,
            nonce,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prevhash_words_are_byte_reversed() {
        let mut internal = [0u8; 32];
        for (i, b) in internal.iter_mut().enumerate() {
            *b = i as u8;
        }
        let s = StratumPrevHash::from_internal(&internal);
        assert_eq!(&s.0[..8], &[3, 2, 1, 0, 7, 6, 5, 4]);
        assert_eq!(s.to_internal(), internal);
        assert_eq!(parse_prevhash_hex(&s.to_hex()), Ok(s));
    }

    #[test]
    fn u32_fields_are_big_endian_hex() {
        assert_eq!(parse_u32_be_hex("20000000"), Ok(0x2000_0000));
        assert_eq!(parse_u32_be_hex("1D00FFFF"), Ok(0x1d00_ffff));
        assert_eq!(
            parse_u32_be_hex("2000000"),
            Err(HexError::WrongLength {
                expected_bytes: 4,
                got_digits: 7
            })
        );
        assert_eq!(
            parse_u32_be_hex("0x200000"),
            Err(HexError::InvalidDigit { index: 1, ch: 'x' })
        );
        assert!(parse_u32_be_hex("").is_err());
        assert!(parse_u32_be_hex("200000000").is_err());
    }

    #[test]
    fn notify_errors_name_the_field() {
        let err = JobParts::from_notify_hex(
            &"0".repeat(64),
            "00",
            "0",
            &[] as &[&str],
            "20000000",
            "207fffff",
            "6b0446e9",
        )
        .unwrap_err();
        assert_eq!(err.field, NotifyField::Coinb2);
        assert_eq!(
            err.to_string(),
            "mining.notify coinb2: odd number of hex digits (1): every byte takes two"
        );

        let err = JobParts::from_notify_hex(
            &"0".repeat(64),
            "",
            "",
            &["00".repeat(32), "00".repeat(31)],
            "20000000",
            "207fffff",
            "6b0446e9",
        )
        .unwrap_err();
        assert_eq!(err.field, NotifyField::MerkleBranch(1));
    }

    #[test]
    fn coinbase_is_the_concatenation() {
        let job = JobParts {
            prevhash: StratumPrevHash([0; 32]),
            coinb1: vec![1, 2],
            coinb2: vec![5],
            merkle_branch: vec![],
            version: 0x2000_0000,
            nbits: CompactTarget(0x207f_ffff),
            ntime: 0,
        };
        assert_eq!(job.coinbase(&[3], &[4]), vec![1, 2, 3, 4, 5]);
        // With no branch the root is the coinbase's txid.
        let txid = sha256d::Hash::hash(&[1, 2, 3, 4, 5]).to_byte_array();
        assert_eq!(job.merkle_root(&[3], &[4]), txid);
        let h = job.header(&[3], &[4], 7, 9, 0x2000_2000);
        assert_eq!(
            (h.version, h.time, h.nonce, h.merkle_root),
            (0x2000_2000, 7, 9, txid)
        );
    }
}
