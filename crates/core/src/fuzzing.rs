//! Entry points for fuzzers (`fuzz/` at the workspace root runs them under libFuzzer).
//! Each takes arbitrary bytes, drives the parsers that see bytes from outside, and checks
//! the invariants that must hold whatever came in. A panic here is a bug.

use crate::{
    parse_hash_hex, parse_prevhash_hex, parse_u32_be_hex, rolled_version, CoinbaseSpec,
    CompactTarget, Difficulty, Header, JobParts, Target, VersionMask,
};

/// Splits `data` into fields and runs `mining.notify` parsing, header assembly, compact
/// target decoding, difficulty conversions and coinbase layout on them.
///
/// The first byte picks how the rest becomes strings: bit 0 clear takes the `|`-separated
/// fields as (lossy UTF-8) text, so the parsers see malformed hex; bit 0 set hex-encodes
/// each field (upper case if bit 1 is set), so parsing succeeds often and assembly runs.
pub fn fuzz_job_parts_and_compact(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    numbers(rest);

    let fields: Vec<String> = rest
        .split(|&b| b == b'|')
        .map(|f| match (mode & 1, mode & 2) {
            (0, _) => String::from_utf8_lossy(f).into_owned(),
            (_, 0) => hex::encode(f),
            _ => hex::encode_upper(f),
        })
        .collect();
    let field = |i: usize| fields.get(i).map(String::as_str).unwrap_or("");

    let branch: Vec<&str> = field(3).split(',').filter(|s| !s.is_empty()).collect();
    let job = JobParts::from_notify_hex(
        field(0),
        field(1),
        field(2),
        &branch,
        field(4),
        field(5),
        field(6),
    );
    let _ = parse_prevhash_hex(field(0))
        .map(|p| assert_eq!(crate::StratumPrevHash::from_internal(&p.to_internal()), p));
    let _ = parse_hash_hex(field(3));
    let ntime = parse_u32_be_hex(field(9)).unwrap_or(0);
    let nonce = parse_u32_be_hex(field(10)).unwrap_or(0);
    let mask = VersionMask(parse_u32_be_hex(field(12)).unwrap_or(VersionMask::BIP320.0));
    let (en1, en2) = (
        crate::parse_hex_bytes(field(7)),
        crate::parse_hex_bytes(field(8)),
    );

    if let (Ok(job), Ok(en1), Ok(en2)) = (job, en1, en2) {
        let coinbase = job.coinbase(&en1, &en2);
        assert_eq!(
            coinbase.len(),
            job.coinb1.len() + en1.len() + en2.len() + job.coinb2.len()
        );
        let version = parse_u32_be_hex(field(11))
            .ok()
            .and_then(|bits| rolled_version(job.version, bits, mask).ok())
            .unwrap_or(job.version);
        let header = job.header(&en1, &en2, ntime, nonce, version);
        assert_eq!(header.prev_blockhash, job.prevhash.to_internal());
        assert_eq!(header.bits, job.nbits);
        check_header(&header);
    }

    if let Ok(header) = Header::from_hex(field(0)) {
        check_header(&header);
    }
    if let Ok(bytes) = <&[u8; 80]>::try_from(rest.get(..80).unwrap_or_default()) {
        check_header(&Header::from_bytes(bytes));
    }

    coinbase(rest, field(2));
}

fn check_header(header: &Header) {
    assert_eq!(Header::from_bytes(&header.to_bytes()), *header);
    assert_eq!(Header::from_hex(&header.to_hex()), Ok(*header));
    let meets = header.meets_own_bits();
    if let Ok(target) = header.target() {
        assert_eq!(meets, target.is_met_by(&header.hash_bytes()));
    } else {
        assert!(!meets);
    }
    assert!(header.share_difficulty().as_f64() > 0.0);
}

fn word<const N: usize>(data: &[u8], at: usize) -> Option<[u8; N]> {
    data.get(at..at + N).and_then(|s| s.try_into().ok())
}

fn numbers(data: &[u8]) {
    if let Some(bits) = word::<4>(data, 0).map(u32::from_le_bytes) {
        if let Ok(target) = CompactTarget(bits).to_target() {
            let normalised = target.to_compact_lossy();
            assert_eq!(normalised.to_target(), Ok(target));
            let d = target.difficulty();
            assert!(d.as_f64().is_finite() && d.as_f64() > 0.0);
            let _ = Target::from_difficulty(d);
        }
    }
    if let Some(raw) = word::<8>(data, 0).map(u64::from_le_bytes) {
        if let Ok(d) = Difficulty::new(f64::from_bits(raw)) {
            let t = Target::from_difficulty(d);
            assert!(t.to_le_bytes() != [0; 32]);
            let _ = t.difficulty();
        }
    }
    if let Some(hash) = word::<32>(data, 0) {
        let d = Difficulty::of_hash(&hash);
        assert!(d.as_f64().is_finite() && d.as_f64() > 0.0);
    }
}

fn coinbase(data: &[u8], tag_field: &str) {
    let Some(head) = word::<5>(data, 0) else {
        return;
    };
    let height = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let mut spec = CoinbaseSpec::new(
        height,
        vec![bitcoin::TxOut {
            value: bitcoin::Amount::from_sat(u64::from(height)),
            script_pubkey: bitcoin::ScriptBuf::from_bytes(vec![0x51]),
        }],
    );
    spec.extranonce_size = usize::from(head[4] % 128);
    spec.tag = tag_field.as_bytes().to_vec();
    if let Ok(split) = spec.stratum_split() {
        let extranonce = vec![0xa5; spec.extranonce_size];
        let tx = spec
            .transaction(&extranonce)
            .expect("laid out once, so it lays out again");
        let joined = [split.coinb1.as_slice(), &extranonce, &split.coinb2].concat();
        assert_eq!(joined, bitcoin::consensus::serialize(&tx));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_well_formed_job_reaches_header_assembly() {
        // Hex mode: every field is hex-encoded bytes.
        let mut data = vec![1u8];
        let fields: [&[u8]; 13] = [
            &[0x11; 32],
            &[1, 2, 3],
            &[4, 5],
            &[0x22; 32],
            &[0x20, 0, 0, 0],
            &[0x20, 0x7f, 0xff, 0xff],
            &[0x6b, 4, 0x46, 0xe9],
            &[0xea, 0x46, 0x04, 0x6b],
            &[0; 8],
            &[0x6b, 4, 0x46, 0xe9],
            &[0xef, 0x74, 0xd0, 0x01],
            &[0, 0, 0x20, 0],
            &[0x1f, 0xff, 0xe0, 0],
        ];
        data.extend(fields.join(&b'|'));
        fuzz_job_parts_and_compact(&data);
        data[0] = 3;
        fuzz_job_parts_and_compact(&data);
        data[0] = 0;
        fuzz_job_parts_and_compact(&data);
    }

    #[test]
    fn edge_inputs() {
        fuzz_job_parts_and_compact(&[]);
        fuzz_job_parts_and_compact(&[0]);
        fuzz_job_parts_and_compact(&[1, b'|', b'|', b'|']);
        fuzz_job_parts_and_compact(&[0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xef, 0x7f]);
        fuzz_job_parts_and_compact(&[0, 0xff, 0xff, 0x7f, 0x20, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            fuzz_job_parts_and_compact(&data);
        }

        #[test]
        fn never_panics_on_hex_heavy_input(
            mode in any::<u8>(),
            fields in proptest::collection::vec("[0-9a-fA-F,]{0,80}", 0..14),
        ) {
            let mut data = vec![mode & !1];
            data.extend(fields.join("|").into_bytes());
            fuzz_job_parts_and_compact(&data);
        }
    }
}
