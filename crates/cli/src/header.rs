//! `hashforge header <80-byte hex>`: decode a block header and explain every field, its
//! hash and its proof of work.

use std::fmt::Write as _;

use hashforge_core::{Header, VersionMask};

/// Decodes a header given as 160 hex digits (surrounding whitespace ignored) and returns
/// the report to print, or a message saying what is wrong with the input.
pub fn run(hex: &str) -> Result<String, String> {
    let header = Header::from_hex(hex.trim()).map_err(|e| {
        format!(
            "not a block header: {e}. Pass the 80-byte serialised header as hex, as \
             `bitcoin-cli getblockheader <hash> false` prints it"
        )
    })?;
    Ok(describe(&header))
}

fn describe(header: &Header) -> String {
    let mask = VersionMask::BIP320;
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "{label:<18}{value}");
    };
    line("block hash", header.block_hash().to_string());
    line(
        "version",
        format!("{:#010x} ({})", header.version, header.version as i32),
    );
    line(
        "  BIP 320 bits",
        format!(
            "{:#010x} under mask {:#010x}, base version {:#010x}",
            header.version & mask.0,
            mask.0,
            header.version & !mask.0
        ),
    );
    line("prev block", header.prev_blockhash_hex());
    line("merkle root", header.merkle_root_hex());
    line(
        "time",
        format!("{} ({})", header.time, iso8601_utc(header.time)),
    );
    line("bits", format!("{:#010x}", header.bits.0));
    match header.target() {
        Ok(target) => {
            line("target", target.to_string());
            line(
                "bits difficulty",
                format_difficulty(target.difficulty().as_f64()),
            );
        }
        Err(e) => {
            line("target", format!("none: {e}"));
            line("bits difficulty", "n/a".to_string());
        }
    }
    line(
        "nonce",
        format!("{:#010x} ({})", header.nonce, header.nonce),
    );
    line(
        "share difficulty",
        format_difficulty(header.share_difficulty().as_f64()),
    );
    let verdict = match header.target() {
        Ok(_) if header.meets_own_bits() => "yes",
        Ok(_) => "no: the hash is above the target",
        Err(_) => "no: the bits encode no valid target",
    };
    line("meets own bits", verdict.to_string());
    out
}

/// Difficulties span from regtest's ~4.7e-10 to mainnet's ~1e14: fixed point with two
/// decimals from 1 up, scientific notation below.
fn format_difficulty(d: f64) -> String {
    if d >= 1.0 {
        format!("{d:.2}")
    } else {
        format!("{d:.6e}")
    }
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`, using the days-to-civil-date algorithm from
/// Howard Hinnant's "chrono-compatible low-level date algorithms" (proleptic Gregorian).
fn iso8601_utc(unix: u32) -> String {
    let secs = u64::from(unix);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (hour, minute, second) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Shift the epoch to 0000-03-01 so leap days fall at the end of each year.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENESIS: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";
    const BLOCK_840000: &str = "00e05f2aab948491071265ad552351d0ad625745668da54b0172010000000000000000004f89a5d73bd4d4887f25981fe81892ccafda10c27f52d6f3dd28183a7c411b03b7072366194203177d9863ea";

    fn field<'a>(report: &'a str, label: &str) -> &'a str {
        report
            .lines()
            .find(|l| l.len() > 18 && l[..18].trim_end() == label)
            .map(|l| &l[18..])
            .unwrap_or_else(|| panic!("no {label} line in\n{report}"))
    }

    #[test]
    fn block_840000_report() {
        let report = run(BLOCK_840000).unwrap();
        assert_eq!(
            field(&report, "block hash"),
            "0000000000000000000320283a032748cef8227873ff4872689bf23f1cda83a5"
        );
        assert_eq!(field(&report, "version"), "0x2a5fe000 (710926336)");
        assert_eq!(
            field(&report, "  BIP 320 bits"),
            "0x0a5fe000 under mask 0x1fffe000, base version 0x20000000"
        );
        assert_eq!(
            field(&report, "prev block"),
            "0000000000000000000172014ba58d66455762add0512355ad651207918494ab"
        );
        assert_eq!(
            field(&report, "merkle root"),
            "031b417c3a1828ddf3d6527fc210daafcc9218e81f98257f88d4d43bd7a5894f"
        );
        assert_eq!(field(&report, "time"), "1713571767 (2024-04-20T00:09:27Z)");
        assert_eq!(field(&report, "bits"), "0x17034219");
        assert_eq!(
            field(&report, "target"),
            "0000000000000000000342190000000000000000000000000000000000000000"
        );
        assert_eq!(field(&report, "bits difficulty"), "86388558925171.02");
        assert_eq!(field(&report, "nonce"), "0xea63987d (3932395645)");
        assert_eq!(field(&report, "meets own bits"), "yes");
        let share: f64 = field(&report, "share difficulty").parse().unwrap();
        assert!(share >= 86_388_558_925_171.02);
    }

    #[test]
    fn genesis_report_and_whitespace() {
        let report = run(&format!("  {GENESIS}\n")).unwrap();
        assert_eq!(field(&report, "time"), "1231006505 (2009-01-03T18:15:05Z)");
        assert_eq!(field(&report, "bits difficulty"), "1.00");
        assert_eq!(field(&report, "version"), "0x00000001 (1)");
    }

    #[test]
    fn bad_input_says_what_is_wrong() {
        let err = run(&GENESIS[..158]).unwrap_err();
        assert!(
            err.contains("expected 160 hex digits (80 bytes), got 158"),
            "{err}"
        );
        let mut bad = GENESIS.to_string();
        bad.replace_range(0..1, "x");
        let err = run(&bad).unwrap_err();
        assert!(err.contains("invalid hex digit 'x' at position 0"), "{err}");
        assert!(run("").unwrap_err().contains("got 0"));
    }

    #[test]
    fn a_header_with_invalid_bits_is_explained() {
        // Genesis with nBits 0x04923456 (negative, per Bitcoin Core).
        let hex = format!("{}56349204{}", &GENESIS[..144], &GENESIS[152..]);
        let report = run(&hex).unwrap();
        assert_eq!(
            field(&report, "target"),
            "none: compact bits 0x04923456 encode a negative target"
        );
        assert_eq!(field(&report, "bits difficulty"), "n/a");
        assert_eq!(
            field(&report, "meets own bits"),
            "no: the bits encode no valid target"
        );
    }

    #[test]
    fn a_header_that_misses_its_target_says_so() {
        // Genesis with its nonce changed.
        let hex = format!("{}00000000", &GENESIS[..152]);
        let report = run(&hex).unwrap();
        assert_eq!(
            field(&report, "meets own bits"),
            "no: the hash is above the target"
        );
    }

    #[test]
    fn dates_without_a_date_crate() {
        assert_eq!(iso8601_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601_utc(1_709_164_800), "2024-02-29T00:00:00Z");
        assert_eq!(iso8601_utc(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(iso8601_utc(u32::MAX), "2106-02-07T06:28:15Z");
    }

    #[test]
    fn regtest_difficulty_is_readable() {
        assert_eq!(format_difficulty(4.656542373906925e-10), "4.656542e-10");
    }
}
