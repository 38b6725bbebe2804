//! The share checker both sides use: rebuild the header a share claims, hash it, and
//! compare with the share and network targets.

use hashforge_core::{Difficulty, Header, JobParts, Target};

/// What a share turned out to be.
#[derive(Clone, Debug, PartialEq)]
pub struct ShareCheck {
    /// The header the share was hashed with.
    pub header: Header,
    /// SHA-256d of the header, internal byte order. Two submissions are the same share
    /// exactly when their hashes are equal, so this is also the duplicate-detection key.
    pub hash: [u8; 32],
    /// The share difficulty of the hash (difficulty-1 target / hash).
    pub difficulty: Difficulty,
    /// Whether the hash meets the share target the job was sent under.
    pub meets_share_target: bool,
    /// Whether the hash meets the job's nBits: a block.
    pub meets_network_target: bool,
}

/// Rebuilds and hashes the header of a share on `parts` and judges it against
/// `share_target` and the job's own nBits (an nBits that decodes to no valid target meets
/// nothing).
pub fn check_share(
    parts: &JobParts,
    extranonce1: &[u8],
    extranonce2: &[u8],
    ntime: u32,
    nonce: u32,
    version: u32,
    share_target: Target,
) -> ShareCheck {
    let header = parts.header(extranonce1, extranonce2, ntime, nonce, version);
    check_header(header, share_target)
}

/// Judges a header already built (a miner that keeps the merkle root per extranonce2).
pub fn check_header(header: Header, share_target: Target) -> ShareCheck {
    let hash = hashforge_sha256d::sha256d_header(&header.to_bytes());
    let meets_network_target = header.bits.to_target().is_ok_and(|t| t.is_met_by(&hash));
    ShareCheck {
        difficulty: Difficulty::of_hash(&hash),
        meets_share_target: share_target.is_met_by(&hash),
        meets_network_target,
        header,
        hash,
    }
}
