//! Money and rates as integers: [`Usd`] is a fixed-point amount in millionths of a dollar
//! (so a storage fee times days times units, or a hashprice times GH/s, adds up exactly and
//! is rounded once, to the cent, when shown), [`Ppm`] a rate in parts per million (2.6% is
//! 26,000 ppm; an MPF of 0.3464% is 3,464).

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Neg, Sub};

/// US dollars, in millionths (i64: up to ±9.2 trillion dollars).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(i64);

/// Why a text is not an amount or a rate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadNumber {
    #[error("`{0}` is not a number (write digits with at most one `.`: 1234.56)")]
    Syntax(String),
    #[error("`{0}` has more than {1} decimals")]
    Precision(String, u32),
    #[error("`{0}` is out of range")]
    Range(String),
    #[error("`{0}` is negative")]
    Negative(String),
}

/// A decimal text as an integer in units of 10^-`scale`: `12.5` at scale 2 is 1250.
/// Accepts an optional leading `-`, digits, and one `.`; nothing else (no exponent, no
/// thousands separators, no `NaN`).
pub fn parse_fixed(s: &str, scale: u32) -> Result<i64, BadNumber> {
    let t = s.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return Err(BadNumber::Syntax(s.to_owned()));
    }
    if frac.len() > scale as usize {
        // Trailing zeros past the scale say nothing more.
        if frac[scale as usize..].bytes().any(|b| b != b'0') {
            return Err(BadNumber::Precision(s.to_owned(), scale));
        }
    }
    let range = || BadNumber::Range(s.to_owned());
    let mut n: i64 = 0;
    for b in int.bytes() {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(i64::from(b - b'0')))
            .ok_or_else(range)?;
    }
    for i in 0..scale as usize {
        let digit = frac.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(digit))
            .ok_or_else(range)?;
    }
    Ok(if neg { -n } else { n })
}

impl Usd {
    pub const ZERO: Usd = Usd(0);

    pub fn from_micros(m: i64) -> Usd {
        Usd(m)
    }

    pub fn from_cents(c: i64) -> Usd {
        Usd(c.saturating_mul(10_000))
    }

    pub fn from_dollars(d: i64) -> Usd {
        Usd(d.saturating_mul(1_000_000))
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    /// Rounded to the cent, halves away from zero.
    pub fn cents(self) -> i64 {
        let (q, r) = (self.0 / 10_000, self.0 % 10_000);
        if r >= 5_000 {
            q + 1
        } else if r <= -5_000 {
            q - 1
        } else {
            q
        }
    }

    /// Dollars with two decimals, for JSON (`1234.57`): the cent-rounded amount as a
    /// number (f64 holds every cent exactly up to $90 trillion).
    pub fn dollars(self) -> f64 {
        self.cents() as f64 / 100.0
    }

    /// `1234.56` (up to six decimals; trailing zeros beyond the cents dropped).
    pub fn parse(s: &str) -> Result<Usd, BadNumber> {
        parse_fixed(s, 6).map(Usd)
    }

    /// Like [`Usd::parse`], refusing a negative amount.
    pub fn parse_non_negative(s: &str) -> Result<Usd, BadNumber> {
        let u = Usd::parse(s)?;
        if u.0 < 0 {
            return Err(BadNumber::Negative(s.to_owned()));
        }
        Ok(u)
    }

    /// `self * n / d`, rounded to the nearest micro-dollar, in 128 bits (no overflow for any
    /// amounts this crate multiplies), saturating at i64's range.
    pub fn mul_div(self, n: i128, d: i128) -> Usd {
        if d == 0 {
            return Usd::ZERO;
        }
        Usd(div_round(i128::from(self.0).saturating_mul(n), d)
            .clamp(i64::MIN.into(), i64::MAX.into()) as i64)
    }

    /// `self` times a rate.
    pub fn at(self, rate: Ppm) -> Usd {
        self.mul_div(i128::from(rate.0), 1_000_000)
    }

    pub fn max(self, other: Usd) -> Usd {
        Usd(self.0.max(other.0))
    }

    pub fn min(self, other: Usd) -> Usd {
        Usd(self.0.min(other.0))
    }
}

/// `n / d` rounded half away from zero.
pub fn div_round(n: i128, d: i128) -> i128 {
    let (q, r) = (n / d, n % d);
    if 2 * r.abs() >= d.abs() {
        q + if (n < 0) == (d < 0) { 1 } else { -1 }
    } else {
        q
    }
}

impl Add for Usd {
    type Output = Usd;
    fn add(self, o: Usd) -> Usd {
        Usd(self.0.saturating_add(o.0))
    }
}

impl Sub for Usd {
    type Output = Usd;
    fn sub(self, o: Usd) -> Usd {
        Usd(self.0.saturating_sub(o.0))
    }
}

impl Neg for Usd {
    type Output = Usd;
    fn neg(self) -> Usd {
        Usd(self.0.saturating_neg())
    }
}

impl AddAssign for Usd {
    fn add_assign(&mut self, o: Usd) {
        *self = *self + o;
    }
}

impl Sum for Usd {
    fn sum<I: Iterator<Item = Usd>>(it: I) -> Usd {
        it.fold(Usd::ZERO, Add::add)
    }
}

impl fmt::Display for Usd {
    /// `$1,234,567.89`, `-$12.00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.cents();
        let sign = if c < 0 { "-" } else { "" };
        let c = c.unsigned_abs();
        let whole = (c / 100).to_string();
        let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
        for (i, ch) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(ch);
        }
        let text = format!("{sign}${grouped}.{:02}", c % 100);
        f.pad(&text)
    }
}

impl serde::Serialize for Usd {
    /// Dollars rounded to the cent, as a JSON number.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.dollars())
    }
}

/// A rate in parts per million of an amount.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ppm(pub u32);

impl Ppm {
    /// A percentage as written (`2.6`, `0.3464`, `25`): up to four decimals, 0 to 1000%.
    pub fn parse_percent(s: &str) -> Result<Ppm, BadNumber> {
        let n = parse_fixed(s, 4)?;
        if n < 0 {
            return Err(BadNumber::Negative(s.to_owned()));
        }
        if n > 10_000_000 {
            return Err(BadNumber::Range(s.to_owned()));
        }
        Ok(Ppm(n as u32))
    }

    /// The rate as a percentage, for people and JSON (`2.6`).
    pub fn percent(self) -> f64 {
        f64::from(self.0) / 10_000.0
    }
}

impl serde::Serialize for Ppm {
    /// As a percentage (`2.6`).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.percent())
    }
}

impl Add for Ppm {
    type Output = Ppm;
    fn add(self, o: Ppm) -> Ppm {
        Ppm(self.0.saturating_add(o.0))
    }
}

impl fmt::Display for Ppm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = format!("{}%", self.percent());
        f.pad(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_exactly_and_print_in_cents() {
        assert_eq!(Usd::parse("1234.56").unwrap().cents(), 123_456);
        assert_eq!(Usd::parse("0.005").unwrap().cents(), 1);
        assert_eq!(Usd::parse("-0.005").unwrap().cents(), -1);
        assert_eq!(Usd::parse(".5").unwrap().cents(), 50);
        assert_eq!(Usd::parse("3.").unwrap().cents(), 300);
        assert_eq!(Usd::parse("1.2500000").unwrap().micros(), 1_250_000);
        assert_eq!(
            Usd::parse("1234567.891").unwrap().to_string(),
            "$1,234,567.89"
        );
        assert_eq!(Usd::parse("-12").unwrap().to_string(), "-$12.00");
        assert_eq!(Usd::from_cents(99).to_string(), "$0.99");
        for bad in [
            "",
            "-",
            ".",
            "1e3",
            "1,000",
            "NaN",
            "inf",
            "1.2.3",
            " 1 2",
            "+1",
            "1.0000001",
        ] {
            assert!(Usd::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            Usd::parse_non_negative("-1"),
            Err(BadNumber::Negative(_))
        ));
        assert!(matches!(
            Usd::parse("99999999999999999999"),
            Err(BadNumber::Range(_))
        ));
    }

    #[test]
    fn rates_apply_exactly() {
        let price = Usd::from_dollars(3_000);
        assert_eq!(
            price.at(Ppm::parse_percent("2.6").unwrap()),
            Usd::from_dollars(78)
        );
        assert_eq!(
            price.at(Ppm::parse_percent("57.6").unwrap()),
            Usd::from_dollars(1_728)
        );
        assert_eq!(Ppm::parse_percent("0.3464").unwrap(), Ppm(3_464));
        assert!(Ppm::parse_percent("-1").is_err());
        assert!(Ppm::parse_percent("0.00001").is_err());
        assert_eq!(div_round(5, 2), 3);
        assert_eq!(div_round(-5, 2), -3);
        assert_eq!(div_round(4, 3), 1);
    }
}
