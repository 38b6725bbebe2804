//! Strict hex decoding with errors that say what is wrong and where.

/// Why a hex string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    /// The string has the wrong number of digits for the fixed-size value it encodes.
    #[error("expected {} hex digits ({expected_bytes} bytes), got {got_digits}", expected_bytes * 2)]
    WrongLength {
        /// Bytes the value has.
        expected_bytes: usize,
        /// Characters the string has.
        got_digits: usize,
    },
    /// A variable-length string has an odd number of digits, so its last byte is cut in half.
    #[error("odd number of hex digits ({digits}): every byte takes two")]
    OddLength {
        /// Characters the string has.
        digits: usize,
    },
    /// A character that is not `0-9`, `a-f` or `A-F`.
    #[error("invalid hex digit {ch:?} at position {index}")]
    InvalidDigit {
        /// Position of the character, counting characters from 0.
        index: usize,
        /// The offending character.
        ch: char,
    },
}

fn nibble(index: usize, ch: char) -> Result<u8, HexError> {
    ch.to_digit(16)
        .map(|d| d as u8)
        .ok_or(HexError::InvalidDigit { index, ch })
}

fn decode_into(s: &str, out: &mut Vec<u8>) -> Result<(), HexError> {
    let mut high = None;
    for (index, ch) in s.chars().enumerate() {
        let n = nibble(index, ch)?;
        match high.take() {
            None => high = Some(n),
            Some(h) => out.push((h << 4) | n),
        }
    }
    match high {
        None => Ok(()),
        Some(_) => Err(HexError::OddLength {
            digits: s.chars().count(),
        }),
    }
}

/// Decodes any even number of hex digits (upper or lower case) into bytes, in string order.
pub(crate) fn decode_vec(s: &str) -> Result<Vec<u8>, HexError> {
    let mut out = Vec::with_capacity(s.len() / 2);
    decode_into(s, &mut out)?;
    Ok(out)
}

/// Decodes exactly `2 * N` hex digits into `N` bytes, in string order.
pub(crate) fn decode_array<const N: usize>(s: &str) -> Result<[u8; N], HexError> {
    let got_digits = s.chars().count();
    if got_digits != 2 * N {
        return Err(HexError::WrongLength {
            expected_bytes: N,
            got_digits,
        });
    }
    let mut bytes = Vec::with_capacity(N);
    decode_into(s, &mut bytes)?;
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes);
    Ok(out)
}

/// Lower-case hex of `bytes` in the given order.
pub(crate) fn encode(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Lower-case hex of `bytes` reversed: how Bitcoin displays 32-byte hashes.
pub(crate) fn encode_reversed(bytes: &[u8]) -> String {
    let mut v = bytes.to_vec();
    v.reverse();
    hex::encode(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_both_cases() {
        assert_eq!(decode_vec("00fFaB"), Ok(vec![0x00, 0xff, 0xab]));
        assert_eq!(decode_array::<2>("BEEF"), Ok([0xbe, 0xef]));
        assert_eq!(decode_vec(""), Ok(vec![]));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(decode_vec("abc"), Err(HexError::OddLength { digits: 3 }));
        assert_eq!(
            decode_vec("0x12"),
            Err(HexError::InvalidDigit { index: 1, ch: 'x' })
        );
        assert_eq!(
            decode_vec("ab é"),
            Err(HexError::InvalidDigit { index: 2, ch: ' ' })
        );
        let err = decode_array::<80>(&"0".repeat(158)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected 160 hex digits (80 bytes), got 158"
        );
        // Multi-byte characters count as one digit position each.
        assert_eq!(
            decode_array::<1>("éé"),
            Err(HexError::InvalidDigit { index: 0, ch: 'é' })
        );
        assert_eq!(
            decode_array::<1>("é"),
            Err(HexError::WrongLength {
                expected_bytes: 1,
                got_digits: 1
            })
        );
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(decode_vec(&encode(&bytes)), Ok(bytes.clone()));
            prop_assert_eq!(decode_vec(&encode(&bytes).to_uppercase()), Ok(bytes));
        }

        #[test]
        fn never_panics_on_arbitrary_strings(s in ".{0,80}") {
            let _ = decode_vec(&s);
            let _ = decode_array::<4>(&s);
        }
    }
}
