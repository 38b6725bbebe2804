//! Mining economics, sans I/O: hashprice from the network difficulty, block reward and BTC
//! price; a machine's revenue, power cost, margin and payback; dated price series (a flat
//! value or a CSV, hourly time-of-use rows averaged per day) and sums of them over days.
//!
//! The formulas (FACTS-fleet): expected BTC a day = H/s x 86,400 x reward / (difficulty x
//! 2^32); power a day = W / 1000 x 24 x $/kWh; payback with difficulty growth compounded
//! monthly. Money is [`Usd`]; a hashprice is dollars per PH/s per day.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::assets::ImportErrors;
use crate::csv::read_rows;
use crate::date::Date;
use crate::money::{parse_fixed, Usd};

/// The block subsidy since the April 2024 halving.
pub const SUBSIDY_BTC: f64 = 3.125;

/// Dollars a day that 1 PH/s earns at `difficulty`, with `reward_btc` per block (subsidy
/// plus average fees) and BTC at `btc_usd`.
pub fn hashprice_from_difficulty(difficulty: f64, reward_btc: f64, btc_usd: Usd) -> Option<Usd> {
    if !(difficulty.is_finite() && difficulty > 0.0 && reward_btc.is_finite() && reward_btc >= 0.0)
    {
        return None;
    }
    let btc_per_ph_day = 1e15 * 86_400.0 * reward_btc / (difficulty * 4_294_967_296.0);
    let micros = btc_per_ph_day * btc_usd.micros() as f64;
    micros
        .is_finite()
        .then(|| Usd::from_micros(micros.round() as i64))
}

/// Revenue a day of `ghs` GH/s at `hashprice` dollars per PH/s per day.
pub fn revenue_per_day(ghs: u64, hashprice: Usd) -> Usd {
    hashprice.mul_div(i128::from(ghs), 1_000_000)
}

/// Power cost a day of `watts` at `usd_per_kwh`.
pub fn power_per_day(watts: u32, usd_per_kwh: Usd) -> Usd {
    usd_per_kwh.mul_div(i128::from(watts) * 24, 1000)
}

/// J/TH: watts per TH/s.
pub fn joules_per_th(watts: u32, ghs: u64) -> Option<f64> {
    (ghs > 0).then(|| f64::from(watts) * 1000.0 / ghs as f64)
}

/// Days until a machine's margin has paid back `cost`, when its revenue falls as the
/// difficulty grows by `growth_per_month` (0.03: 3% a month, compounded) and power costs
/// stay; `None` when it never does within ten years.
pub fn payback_days(cost: Usd, revenue: Usd, power: Usd, growth_per_month: f64) -> Option<u32> {
    const DAYS_PER_MONTH: f64 = 30.436_875;
    if cost <= Usd::ZERO {
        return Some(0);
    }
    let growth = if growth_per_month.is_finite() && growth_per_month > -0.99 {
        growth_per_month
    } else {
        0.0
    };
    let (cost, revenue, power) = (
        cost.micros() as f64,
        revenue.micros() as f64,
        power.micros() as f64,
    );
    let mut paid = 0.0;
    for day in 0..3653u32 {
        let month = (f64::from(day) / DAYS_PER_MONTH).floor();
        let margin = revenue / (1.0 + growth).powf(month) - power;
        if margin <= 0.0 {
            return None;
        }
        paid += margin;
        if paid >= cost {
            return Some(day + 1);
        }
    }
    None
}

/// A value by day: each point holds from its date until the next; before the first, the
/// first holds, after the last, the last.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Series {
    points: Vec<(Date, Usd)>,
}

impl Series {
    pub fn flat(v: Usd) -> Series {
        Series {
            points: vec![(Date::from_days(0), v)],
        }
    }

    pub fn from_points(mut points: Vec<(Date, Usd)>) -> Series {
        points.sort_by_key(|p| p.0);
        points.dedup_by_key(|p| p.0);
        Series { points }
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    pub fn points(&self) -> &[(Date, Usd)] {
        &self.points
    }

    /// The value on `d` (`None` only for an empty series).
    pub fn at(&self, d: Date) -> Option<Usd> {
        let i = self.points.partition_point(|p| p.0 <= d);
        self.points.get(i.saturating_sub(1)).map(|p| p.1)
    }

    /// A dated CSV: a header (`date,usd_per_ph_day`, `date,usd`; a second column named
    /// `..._mwh` is in dollars per MWh and read as per kWh), then `DATE,VALUE` rows; a date
    /// may carry a time (`2025-03-06T14:00`), and the rows of one day are averaged (hourly
    /// time-of-use prices become the day's mean).
    pub fn parse_csv(text: &str) -> Result<Series, ImportErrors> {
        let rows = read_rows(
            text,
            |h| {
                Ok(h.fields
                    .get(1)
                    .is_some_and(|f| f.to_ascii_lowercase().contains("mwh")))
            },
            |per_mwh, r| {
                let d = r.fields.first().map(|f| f.trim()).unwrap_or("");
                let v = r.fields.get(1).map(|f| f.trim()).unwrap_or("");
                let date = Date::parse_prefix(d).map_err(|e| e.to_string())?;
                let v = parse_fixed(v, 6).map_err(|e| e.to_string())?;
                Ok((date, if *per_mwh { v / 1000 } else { v }))
            },
        )
        .map_err(ImportErrors::from)?;
        if rows.is_empty() {
            return Err(ImportErrors::from(vec![crate::csv::CsvError {
                line: 2,
                reason: "no rows".into(),
            }]));
        }
        let mut days: BTreeMap<Date, (i128, i128)> = BTreeMap::new();
        for (_, (d, v)) in rows {
            let e = days.entry(d).or_insert((0, 0));
            e.0 += i128::from(v);
            e.1 += 1;
        }
        Ok(Series {
            points: days
                .into_iter()
                .map(|(d, (sum, n))| (d, Usd::from_micros(crate::money::div_round(sum, n) as i64)))
                .collect(),
        })
    }

    /// Sums of the value over ranges of days, precomputed from `first` to `last`.
    pub fn sums(&self, first: Date, last: Date) -> Sums {
        let n = (last.since(first).max(0) + 1) as usize;
        let mut prefix = Vec::with_capacity(n + 1);
        prefix.push(0i128);
        let mut acc = 0i128;
        for i in 0..n {
            acc += i128::from(self.at(first.plus(i as i32)).unwrap_or_default().micros());
            prefix.push(acc);
        }
        Sums {
            first,
            prefix,
            before: self.points.first().map_or(0, |p| p.1.micros()),
            after: self.points.last().map_or(0, |p| p.1.micros()),
        }
    }
}

/// Sums of a [`Series`] over days, each in O(1).
#[derive(Clone, Debug)]
pub struct Sums {
    first: Date,
    prefix: Vec<i128>,
    before: i64,
    after: i64,
}

impl Sums {
    /// The sum of the daily values for the days `from..to` (`to` not included), in micros.
    pub fn sum(&self, from: Date, to: Date) -> i128 {
        if to <= from {
            return 0;
        }
        let n = (self.prefix.len() - 1) as i64;
        let idx = |d: Date| i64::from(d.since(self.first));
        let at = |i: i64| -> i128 {
            // Sum of days first..first+i, extended flat on both sides.
            if i <= 0 {
                i128::from(i) * i128::from(self.before)
            } else if i <= n {
                self.prefix[i as usize]
            } else {
                self.prefix[n as usize] + i128::from(i - n) * i128::from(self.after)
            }
        };
        at(idx(to)) - at(idx(from))
    }

    /// What `ghs` GH/s earns over `from..to` at these hashprices.
    pub fn revenue(&self, ghs: u64, from: Date, to: Date) -> Usd {
        let micros = self.sum(from, to).saturating_mul(i128::from(ghs));
        Usd::from_micros(
            crate::money::div_round(micros, 1_000_000).clamp(i64::MIN.into(), i64::MAX.into())
                as i64,
        )
    }
}

/// What the economics are computed with.
#[derive(Clone, Debug, Default)]
pub struct Market {
    /// Dollars per PH/s per day; empty when unknown (revenue-based numbers are then absent).
    pub hashprice: Series,
    /// Dollars per kWh; empty when unknown.
    pub energy: Series,
    /// Difficulty growth a month (0.03: 3%), for payback.
    pub growth_per_month: f64,
    /// Storage per unit per day for holds whose event named no fee (the rate card).
    pub storage_rate: Option<Usd>,
}

/// One machine's (or a group's) day.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Day {
    pub revenue: Option<Usd>,
    pub power: Option<Usd>,
    pub margin: Option<Usd>,
}

impl Market {
    /// A day of `ghs` GH/s drawing `watts` on `on`.
    pub fn day(&self, ghs: u64, watts: u32, on: Date) -> Day {
        let revenue = self.hashprice.at(on).map(|h| revenue_per_day(ghs, h));
        let power = self.energy.at(on).map(|p| power_per_day(watts, p));
        Day {
            revenue,
            power,
            margin: revenue.zip(power).map(|(r, p)| r - p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        s.parse().unwrap()
    }

    /// FACTS-fleet's worked example: a 200 TH/s, 3.5 kW machine at $45/PH/day earns $9.00
    /// a day; at $0.06/kWh its power costs $5.04 a day.
    #[test]
    fn the_worked_example() {
        let hp = Usd::from_dollars(45);
        assert_eq!(revenue_per_day(200_000, hp), Usd::from_cents(900));
        assert_eq!(
            power_per_day(3_500, Usd::parse("0.06").unwrap()),
            Usd::from_cents(504)
        );
        let m = Market {
            hashprice: Series::flat(hp),
            energy: Series::flat(Usd::parse("0.06").unwrap()),
            ..Market::default()
        };
        assert_eq!(
            m.day(200_000, 3_500, d("2025-06-01")).margin,
            Some(Usd::from_cents(396))
        );
        assert_eq!(joules_per_th(3_500, 200_000), Some(17.5));
    }

    #[test]
    fn hashprice_from_the_network() {
        // Late 2025: difficulty 148T, 3.125 BTC, BTC at $88,000: about $37-38/PH/day, the
        // ~$38 FACTS-fleet gives for late November.
        let hp = hashprice_from_difficulty(148e12, SUBSIDY_BTC, Usd::from_dollars(88_000)).unwrap();
        assert!((37_000_000..38_500_000).contains(&hp.micros()), "{hp}");
        // Twice the difficulty, half the hashprice.
        let half =
            hashprice_from_difficulty(296e12, SUBSIDY_BTC, Usd::from_dollars(88_000)).unwrap();
        assert!((hp.micros() - 2 * half.micros()).abs() <= 1);
        assert!(hashprice_from_difficulty(0.0, 3.125, Usd::from_dollars(1)).is_none());
        assert!(hashprice_from_difficulty(f64::NAN, 3.125, Usd::from_dollars(1)).is_none());
    }

    #[test]
    fn payback_with_difficulty_growth() {
        // $3,960 at $3.96 a day without growth: 1,000 days.
        let (rev, pow) = (Usd::from_cents(900), Usd::from_cents(504));
        assert_eq!(
            payback_days(Usd::from_dollars(3_960), rev, pow, 0.0),
            Some(1000)
        );
        // Growth makes it longer, or never.
        let with = payback_days(Usd::from_dollars(1_000), rev, pow, 0.02).unwrap();
        assert!(with > 253, "{with}");
        assert_eq!(payback_days(Usd::from_dollars(3_960), rev, pow, 0.04), None);
        assert_eq!(payback_days(Usd::from_dollars(1), pow, rev, 0.0), None);
    }

    #[test]
    fn series_steps_sums_and_csv() {
        let s = Series::parse_csv(
            "date,usd_per_mwh\n2025-01-01T00:00,40\n2025-01-01T01:00,60\n2025-01-03,100\n",
        )
        .unwrap();
        assert_eq!(s.at(d("2025-01-01")), Some(Usd::parse("0.05").unwrap()));
        assert_eq!(s.at(d("2025-01-02")), Some(Usd::parse("0.05").unwrap()));
        assert_eq!(s.at(d("2025-01-09")), Some(Usd::parse("0.1").unwrap()));
        assert_eq!(s.at(d("2024-12-01")), Some(Usd::parse("0.05").unwrap()));
        assert_eq!(Series::default().at(d("2024-12-01")), None);
        let sums = s.sums(d("2025-01-01"), d("2025-01-05"));
        // 0.05 + 0.05 + 0.1 + 0.1 (Jan 1-4), then flat past the end and before the start.
        assert_eq!(sums.sum(d("2025-01-01"), d("2025-01-05")), 300_000);
        assert_eq!(sums.sum(d("2025-01-04"), d("2025-01-10")), 600_000);
        assert_eq!(sums.sum(d("2024-12-30"), d("2025-01-02")), 150_000);
        let e = Series::parse_csv("date,usd\n2025-01-01,abc\n2025-13-01,1\n").unwrap_err();
        assert_eq!(e.total, 2);
        assert_eq!(e.errors[0].line, 2);
        assert!(Series::parse_csv("").is_err());
    }
}
