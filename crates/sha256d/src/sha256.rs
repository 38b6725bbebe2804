//! Scalar SHA-256: the round constants, one compression, and the hashes the rest of the
//! crate (and its callers) use as the reference.

/// The SHA-256 initial state.
pub(crate) const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// The SHA-256 round constants.
pub(crate) const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

#[inline(always)]
pub(crate) fn big_s0(x: u32) -> u32 {
    x.rotate_right(2) ^ x.rotate_right(13) ^ x.rotate_right(22)
}
#[inline(always)]
pub(crate) fn big_s1(x: u32) -> u32 {
    x.rotate_right(6) ^ x.rotate_right(11) ^ x.rotate_right(25)
}
#[inline(always)]
pub(crate) fn small_s0(x: u32) -> u32 {
    x.rotate_right(7) ^ x.rotate_right(18) ^ (x >> 3)
}
#[inline(always)]
pub(crate) fn small_s1(x: u32) -> u32 {
    x.rotate_right(17) ^ x.rotate_right(19) ^ (x >> 10)
}
#[inline(always)]
pub(crate) fn ch(e: u32, f: u32, g: u32) -> u32 {
    g ^ (e & (f ^ g))
}
#[inline(always)]
pub(crate) fn maj(a: u32, b: u32, c: u32) -> u32 {
    (a & b) | (c & (a | b))
}

/// One SHA-256 round on `s = [a, b, c, d, e, f, g, h]` with `kw = K[i] + W[i]`.
#[inline(always)]
pub(crate) fn round(s: &mut [u32; 8], kw: u32) {
    let [a, b, c, d, e, f, g, h] = *s;
    let t1 = h
        .wrapping_add(big_s1(e))
        .wrapping_add(ch(e, f, g))
        .wrapping_add(kw);
    let t2 = big_s0(a).wrapping_add(maj(a, b, c));
    *s = [t1.wrapping_add(t2), a, b, c, d.wrapping_add(t1), e, f, g];
}

/// Expands the 16 message words of a block into the 64 words of its schedule.
#[inline(always)]
pub(crate) fn schedule(block: &[u32; 16]) -> [u32; 64] {
    let mut w = [0u32; 64];
    w[..16].copy_from_slice(block);
    for i in 16..64 {
        w[i] = small_s1(w[i - 2])
            .wrapping_add(w[i - 7])
            .wrapping_add(small_s0(w[i - 15]))
            .wrapping_add(w[i - 16]);
    }
    w
}

/// One SHA-256 compression of a block given as 16 big-endian words.
pub(crate) fn compress(state: &[u32; 8], block: &[u32; 16]) -> [u32; 8] {
    let w = schedule(block);
    let mut s = *state;
    for i in 0..64 {
        round(&mut s, K[i].wrapping_add(w[i]));
    }
    let mut out = *state;
    for (o, x) in out.iter_mut().zip(s) {
        *o = o.wrapping_add(x);
    }
    out
}

/// The 16 big-endian words of a 64-byte block.
pub(crate) fn words(block: &[u8]) -> [u32; 16] {
    let mut w = [0u32; 16];
    for (i, word) in w.iter_mut().enumerate() {
        *word = u32::from_be_bytes([
            block[4 * i],
            block[4 * i + 1],
            block[4 * i + 2],
            block[4 * i + 3],
        ]);
    }
    w
}

/// The SHA-256 state after the first 64 bytes of a block header (the "midstate").
pub fn midstate(header: &[u8; 80]) -> [u32; 8] {
    compress(&IV, &words(&header[..64]))
}

/// The second compression's message when its input is a 32-byte hash: the hash words,
/// then the padding of a 256-bit message.
#[inline(always)]
pub(crate) fn second_block(h: &[u32; 8]) -> [u32; 16] {
    let mut b = [0u32; 16];
    b[..8].copy_from_slice(h);
    b[8] = 0x8000_0000;
    b[15] = 256;
    b
}

/// SHA-256d of an 80-byte block header, in internal byte order (the order in which it is
/// compared with a target as a little-endian number; reverse it for display).
pub fn sha256d_header(header: &[u8; 80]) -> [u8; 32] {
    sha256d_header_from_midstate(&midstate(header), header)
}

/// SHA-256d of a header whose midstate is already known (only bytes 64..80 are read).
pub fn sha256d_header_from_midstate(mid: &[u32; 8], header: &[u8; 80]) -> [u8; 32] {
    let mut tail = [0u32; 16];
    tail[..4].copy_from_slice(&words_of(&header[64..80]));
    tail[4] = 0x8000_0000;
    tail[15] = 640;
    let h1 = compress(mid, &tail);
    state_bytes(&compress(&IV, &second_block(&h1)))
}

pub(crate) fn words_of(b: &[u8]) -> [u32; 4] {
    [0, 1, 2, 3].map(|i| u32::from_be_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]))
}

/// The 32 bytes of a SHA-256 state (each word big-endian).
pub(crate) fn state_bytes(s: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, w) in s.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_header_hashes_to_the_genesis_block_hash() {
        let hex = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";
        let bytes: Vec<u8> = (0..80)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let mut hash = sha256d_header(&bytes.try_into().unwrap());
        hash.reverse();
        let shown: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            shown,
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
        );
    }
}
