//! Calendar dates for the asset register: a day, counted from 1970-01-01, read and written
//! as ISO 8601 (`2025-03-06`). Customs, lead times and repairs count whole days; nothing
//! here needs a time of day or a time zone, so no date crate is pulled in for it.

use std::fmt;
use std::str::FromStr;

/// A proleptic Gregorian day, stored as days since 1970-01-01 (negative before). Years
/// 1900-2199 only: a date outside them in an operator's file is a typo, not a machine's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(i32);

/// Why a text is not a date.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a date: write YYYY-MM-DD (ISO 8601), e.g. 2025-03-06")]
pub struct BadDate(pub String);

impl Date {
    pub const MIN_YEAR: i32 = 1900;
    pub const MAX_YEAR: i32 = 2199;

    /// A date from its parts, `None` when there is no such day.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Date> {
        if !(Date::MIN_YEAR..=Date::MAX_YEAR).contains(&year)
            || !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
        {
            return None;
        }
        Some(Date(days_from_civil(year, month, day)))
    }

    /// Days since 1970-01-01.
    pub fn from_days(days: i32) -> Date {
        Date(days)
    }

    pub fn days(self) -> i32 {
        self.0
    }

    /// (year, month 1-12, day 1-31).
    pub fn ymd(self) -> (i32, u32, u32) {
        civil_from_days(self.0)
    }

    /// `self + n` days.
    pub fn plus(self, n: i32) -> Date {
        Date(self.0 + n)
    }

    /// Days from `earlier` to `self` (negative when `earlier` is later).
    pub fn since(self, earlier: Date) -> i32 {
        self.0 - earlier.0
    }

    /// Today, by the system clock (UTC).
    pub fn today() -> Date {
        Date((crate::unix_now() / 86_400) as i32)
    }

    /// The date at the start of an ISO 8601 date or date-time (`2025-03-06T14:00:00Z`).
    pub fn parse_prefix(s: &str) -> Result<Date, BadDate> {
        let head = s.trim().get(..10).unwrap_or(s.trim());
        let rest = &s.trim()[head.len()..];
        if !(rest.is_empty() || rest.starts_with('T') || rest.starts_with(' ')) {
            return Err(BadDate(s.to_owned()));
        }
        head.parse()
    }
}

impl FromStr for Date {
    type Err = BadDate;

    /// Exactly `YYYY-MM-DD`.
    fn from_str(s: &str) -> Result<Date, BadDate> {
        let b = s.as_bytes();
        let bad = || BadDate(s.to_owned());
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            b[r].iter().try_fold(0u32, |n, &c| {
                c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
            })
        };
        let (y, m, d) = (num(0..4), num(5..7), num(8..10));
        match (y, m, d) {
            (Some(y), Some(m), Some(d)) => Date::from_ymd(y as i32, m, d).ok_or_else(bad),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl serde::Serialize for Date {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Date {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's `days_from_civil` / `civil_from_days` (public domain algorithms).
fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i32;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i32::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_days() {
        assert_eq!("1970-01-01".parse::<Date>().unwrap().days(), 0);
        assert_eq!("2000-03-01".parse::<Date>().unwrap().days(), 11_017);
        assert_eq!("2025-03-06".parse::<Date>().unwrap().days(), 20_153);
        assert_eq!(Date::from_days(20_153).to_string(), "2025-03-06");
        let a: Date = "2024-09-15".parse().unwrap();
        let b: Date = "2025-02-15".parse().unwrap();
        assert_eq!(b.since(a), 153);
    }

    #[test]
    fn every_day_of_three_centuries_round_trips() {
        let first = Date::from_ymd(Date::MIN_YEAR, 1, 1).unwrap();
        let last = Date::from_ymd(Date::MAX_YEAR, 12, 31).unwrap();
        let mut expect = (Date::MIN_YEAR, 1, 1);
        for n in first.days()..=last.days() {
            let d = Date::from_days(n);
            assert_eq!(d.ymd(), expect);
            assert_eq!(d.to_string().parse::<Date>(), Ok(d));
            let (y, m, day) = expect;
            expect = if day < days_in_month(y, m) {
                (y, m, day + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
    }

    #[test]
    fn impossible_dates_are_refused() {
        for bad in [
            "2025-02-29",
            "2024-02-30",
            "2025-13-01",
            "2025-00-10",
            "2025-04-31",
            "25-03-06",
            "2025/03/06",
            "2025-3-6",
            "2025-03-06x",
            "",
            "1899-12-31",
            "2200-01-01",
            "+025-03-06",
            "２０２５-03-06",
        ] {
            assert!(bad.parse::<Date>().is_err(), "{bad}");
        }
        assert!("2024-02-29".parse::<Date>().is_ok());
        assert_eq!(
            Date::parse_prefix("2025-03-06T14:00:00Z")
                .unwrap()
                .to_string(),
            "2025-03-06"
        );
        assert!(Date::parse_prefix("2025-03-061").is_err());
    }
}
