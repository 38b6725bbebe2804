//! Address ranges an operator writes: `10.0.0.0/16`, `10.0.1.5-40`, `10.0.1.5-10.0.2.9`,
//! one address, or several of these separated by commas or spaces. A mistake gets a message
//! that says which part and why.

use std::net::Ipv4Addr;

/// The most addresses one scan takes: a /12, far past any farm.
pub const MAX_ADDRESSES: u64 = 1 << 20;

/// Why a range could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("address range `{part}`: {why}")]
pub struct RangeError {
    pub part: String,
    pub why: String,
}

/// A set of IPv4 addresses, in the order written (duplicates removed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ranges {
    spans: Vec<(u32, u32)>,
}

impl Ranges {
    /// Every address, in order.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        let mut seen: Vec<(u32, u32)> = Vec::new();
        self.spans.iter().flat_map(move |&(a, b)| {
            let fresh: Vec<u32> = (a..=b)
                .filter(|x| !seen.iter().any(|(s, e)| s <= x && x <= e))
                .collect();
            seen.push((a, b));
            fresh.into_iter().map(Ipv4Addr::from)
        })
    }

    pub fn len(&self) -> u64 {
        self.addresses().count() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Reads `10.0.0.0/16, 10.1.0.5-40 10.2.0.1`.
    pub fn parse(text: &str) -> Result<Ranges, RangeError> {
        Ranges::parse_all([text])
    }

    /// Reads several texts (one per `--scan` flag) as one set.
    pub fn parse_all<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<Ranges, RangeError> {
        let mut spans = Vec::new();
        let mut total: u64 = 0;
        for text in texts {
            for part in text.split([',', ' ', '\t', '\n']).filter(|p| !p.is_empty()) {
                let span = span(part)?;
                total += u64::from(span.1 - span.0) + 1;
                if total > MAX_ADDRESSES {
                    return Err(err(
                        part,
                        &format!("more than {MAX_ADDRESSES} addresses in all; scan a farm's subnets, not the internet"),
                    ));
                }
                spans.push(span);
            }
        }
        if spans.is_empty() {
            return Err(err("", "no address given (e.g. 10.0.0.0/16, 10.0.1.5-40)"));
        }
        Ok(Ranges { spans })
    }
}

fn err(part: &str, why: &str) -> RangeError {
    RangeError {
        part: part.to_string(),
        why: why.to_string(),
    }
}

fn addr(part: &str, s: &str) -> Result<u32, RangeError> {
    s.parse::<Ipv4Addr>()
        .map(u32::from)
        .map_err(|_| err(part, &format!("`{s}` is not an IPv4 address")))
}

fn span(part: &str) -> Result<(u32, u32), RangeError> {
    if let Some((base, bits)) = part.split_once('/') {
        let base = addr(part, base)?;
        let bits: u32 = bits
            .parse()
            .ok()
            .filter(|b| *b <= 32)
            .ok_or_else(|| err(part, "the prefix length must be 0 to 32"))?;
        let mask = if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits)
        };
        if base & !mask != 0 {
            return Err(err(
                part,
                &format!(
                    "host bits are set; the network is {}/{bits}",
                    Ipv4Addr::from(base & mask)
                ),
            ));
        }
        return Ok((base, base | !mask));
    }
    if let Some((first, last)) = part.split_once('-') {
        let a = addr(part, first)?;
        let b = if last.contains('.') {
            addr(part, last)?
        } else {
            let n: u8 = last
                .parse()
                .map_err(|_| err(part, &format!("`{last}` is not a last octet (0-255)")))?;
            (a & 0xFFFF_FF00) | u32::from(n)
        };
        if b < a {
            return Err(err(part, "the range ends before it starts"));
        }
        return Ok((a, b));
    }
    let a = addr(part, part)?;
    Ok((a, a))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn any_text_is_a_range_or_a_message(text in ".{0,40}") {
            crate::fuzzing::ranges(text.as_bytes());
        }

        #[test]
        fn any_bytes_are_a_reply_or_an_error(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            crate::fuzzing::http_reply(&bytes);
        }
    }

    #[test]
    fn forms_and_mistakes() {
        let r = Ranges::parse("10.0.0.0/30, 10.0.1.5-7 10.0.2.9").unwrap();
        let all: Vec<String> = r.addresses().map(|a| a.to_string()).collect();
        assert_eq!(
            all,
            [
                "10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.1.5", "10.0.1.6", "10.0.1.7",
                "10.0.2.9"
            ]
        );
        assert_eq!(Ranges::parse("127.16.0.0/15").unwrap().len(), 131_072);
        assert_eq!(Ranges::parse("10.0.0.1-10.0.1.0").unwrap().len(), 256);
        assert_eq!(Ranges::parse("10.0.0.1, 10.0.0.0/31").unwrap().len(), 2);
        let e = Ranges::parse("10.0.0.1/16").unwrap_err();
        assert!(e.to_string().contains("10.0.0.0/16"), "{e}");
        assert!(Ranges::parse("10.0.0.9-3").is_err());
        assert!(Ranges::parse("10.0.0/24")
            .unwrap_err()
            .to_string()
            .contains("10.0.0"));
        assert!(Ranges::parse("10.0.0.0/33").is_err());
        assert!(Ranges::parse("0.0.0.0/0").is_err());
        assert!(Ranges::parse(" ").is_err());
    }
}
