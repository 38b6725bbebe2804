//! The emulator's power model: what a machine draws at a hash clock and a domain voltage,
//! and the operating point (clock, voltage) that keeps it at or under a power target.
//!
//! **A model, not a measurement.** A board draws a static part (fans, its share of the
//! control board, conversion losses, leakage: [`STATIC_SHARE`] of the nameplate) and a
//! dynamic part that scales as chips x clock x voltage², calibrated so that every chip at
//! the profile's nominal clock and voltage gives the nameplate watts. The voltage for a
//! clock comes from the profile's voltage/frequency curve ([`MachineProfile::vf_curve`]),
//! interpolated between its points. Hash rate scales with the clock alone, so lowering
//! the clock lowers hash rate in proportion and power faster (the voltage drops too):
//! the efficiency a curtailed machine gains, in its usual shape.

use hashforge_core::HashRate;
use serde::Serialize;

use crate::profile::MachineProfile;
use crate::registers::Pll;

/// Share of the nameplate power that does not follow the hash clock (fans, control board,
/// conversion losses, leakage); air-cooled machines are at 10-15%.
pub const STATIC_SHARE: f64 = 0.12;

impl MachineProfile {
    /// The domain voltage at the nominal clock, in mV (the curve's last point).
    pub fn nominal_mv(&self) -> u32 {
        self.vf_curve.last().map_or(0, |&(_, mv)| mv)
    }

    /// The lowest clock the curve covers, in MHz: no power target takes the chips lower.
    pub fn min_mhz(&self) -> f64 {
        self.vf_curve
            .first()
            .map_or(self.nominal_mhz, |&(mhz, _)| mhz)
    }

    /// The domain voltage for a clock of `mhz`, in whole mV: the curve interpolated
    /// linearly, held at its ends outside it.
    pub fn voltage_mv(&self, mhz: f64) -> u32 {
        let curve = self.vf_curve;
        let Some((&(f0, v0), &(fl, vl))) = curve.first().zip(curve.last()) else {
            return 0;
        };
        if mhz.is_nan() || mhz <= f0 {
            return v0;
        }
        if mhz >= fl {
            return vl;
        }
        for w in curve.windows(2) {
            let ((fa, va), (fb, vb)) = (w[0], w[1]);
            if mhz <= fb {
                let t = (mhz - fa) / (fb - fa);
                return (f64::from(va) + t * (f64::from(vb) - f64::from(va))).round() as u32;
            }
        }
        vl
    }

    /// The static part of one powered board's draw, in W.
    pub fn board_static_watts(&self) -> f64 {
        STATIC_SHARE * self.nominal_watts / self.boards.max(1) as f64
    }

    /// What one hashing chip adds at `mhz` and `mv`, in W.
    pub fn chip_watts(&self, mhz: f64, mv: u32) -> f64 {
        let at_nominal = (1.0 - STATIC_SHARE) * self.nominal_watts / self.chips().max(1) as f64;
        let v = f64::from(mv) / f64::from(self.nominal_mv().max(1));
        at_nominal * (mhz / self.nominal_mhz) * v * v
    }
}

/// A machine (or the part of it one miner device drives) seen through the power model.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PowerModel {
    pub profile: MachineProfile,
    /// Boards powered and hashing.
    pub boards: usize,
}

/// A clock and the voltage that goes with it, and what the model says they give.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct OperatingPoint {
    /// The clock the chips run at: the PLL setting nearest the one asked for.
    pub mhz: f64,
    #[serde(skip)]
    pub pll: Pll,
    /// Domain voltage from the curve, in mV.
    pub mv: u32,
    /// The machine's draw, in W.
    pub watts: f64,
    #[serde(serialize_with = "ser_hs")]
    pub hashrate: HashRate,
}

fn ser_hs<S: serde::Serializer>(r: &HashRate, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(r.as_hs())
}

/// How a power target fits what the machine can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fit {
    /// At or just under the target.
    Within,
    /// The target is at or above the nominal draw: the machine runs at nominal.
    Nominal,
    /// The target is below the draw at the lowest clock: the machine runs there, over it.
    BelowMinimum,
}

/// The operating point a power target gets.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Plan {
    pub point: OperatingPoint,
    pub fit: Fit,
}

impl PowerModel {
    /// The operating point at (the PLL setting nearest) `mhz`.
    pub fn at(&self, mhz: f64) -> OperatingPoint {
        let p = &self.profile;
        let pll = Pll::for_frequency(p.chip, mhz)
            .or_else(|_| Pll::for_frequency(p.chip, p.nominal_mhz))
            .expect("every profile's nominal clock is a PLL setting");
        let mhz = pll.frequency_mhz();
        let mv = p.voltage_mv(mhz);
        let boards = self.boards as f64;
        let watts =
            boards * (p.board_static_watts() + p.chips_per_board as f64 * p.chip_watts(mhz, mv));
        let hashrate = HashRate::from_ths(
            p.nominal_ths * boards / p.boards.max(1) as f64 * mhz / p.nominal_mhz,
        );
        OperatingPoint {
            mhz,
            pll,
            mv,
            watts,
            hashrate,
        }
    }

    pub fn nominal(&self) -> OperatingPoint {
        self.at(self.profile.nominal_mhz)
    }

    /// What the boards draw asleep, in W.
    pub fn sleep_watts(&self) -> f64 {
        self.boards as f64 * self.profile.sleep_watts_per_board
    }

    /// The fastest clock, in steps of 1 MHz down from nominal to the curve's lowest, whose
    /// draw is at or under `watts`; nominal for a target at or above the nominal draw, the
    /// lowest clock for one below what that draws. A target that is not a number gets
    /// nominal.
    pub fn plan(&self, watts: f64) -> Plan {
        let nominal = self.nominal();
        if watts.is_nan() || watts >= nominal.watts {
            return Plan {
                point: nominal,
                fit: Fit::Nominal,
            };
        }
        let lowest = self.profile.min_mhz();
        let mut mhz = self.profile.nominal_mhz.floor();
        while mhz >= lowest {
            let point = self.at(mhz);
            if point.watts <= watts {
                return Plan {
                    point,
                    fit: Fit::Within,
                };
            }
            mhz -= 1.0;
        }
        Plan {
            point: self.at(lowest),
            fit: Fit::BelowMinimum,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(name: &str) -> PowerModel {
        let profile: MachineProfile = name.parse().unwrap();
        PowerModel {
            profile,
            boards: profile.boards,
        }
    }

    #[test]
    fn the_nominal_point_gives_the_nameplate() {
        for profile in MachineProfile::ALL {
            let m = machine(profile.name);
            let n = m.nominal();
            assert_eq!(n.mhz, profile.nominal_mhz, "{}: a PLL step", profile.name);
            assert_eq!(n.mv, profile.nominal_mv());
            assert!(
                (n.watts - profile.nominal_watts).abs() < 1e-9,
                "{}: {} W",
                profile.name,
                n.watts
            );
            // Chips x small cores x clock is the nameplate rate, within half a percent.
            let chips_rate = profile.chips() as f64 * profile.chip.expected_hs(n.mhz);
            assert!(
                (chips_rate / (profile.nominal_ths * 1e12) - 1.0).abs() < 0.005,
                "{}: {chips_rate} H/s",
                profile.name
            );
            assert!((n.hashrate.as_ths() - profile.nominal_ths).abs() < 1e-9);
            let (first, _) = profile.vf_curve[0];
            assert!(profile
                .vf_curve
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1));
            assert!(first < 0.5 * profile.nominal_mhz);
        }
    }

    #[test]
    fn a_lower_target_gives_a_lower_clock_and_at_most_the_target() {
        let m = machine("s21pro");
        let mut last = m.nominal();
        for target in [3400.0, 3000.0, 2500.0, 2000.0, 1600.0] {
            let plan = m.plan(target);
            assert_eq!(plan.fit, Fit::Within, "{target} W");
            let p = plan.point;
            assert!(p.watts <= target, "{target} W: {p:?}");
            // Just under: the 1 MHz steps move the draw by about 10 W.
            assert!(p.watts > target - 20.0, "{target} W: {p:?}");
            assert!(p.mhz < last.mhz && p.mv <= last.mv && p.watts < last.watts);
            assert!(p.hashrate.as_hs() < last.hashrate.as_hs());
            // Power falls faster than hash rate: the voltage falls with the clock.
            let rate = p.hashrate.as_hs() / m.nominal().hashrate.as_hs();
            let power = p.watts / m.nominal().watts;
            assert!(
                power < rate,
                "{target} W: {power} of the power, {rate} of the rate"
            );
            last = p;
        }
    }

    #[test]
    fn targets_past_either_end_are_clamped() {
        let m = machine("s21pro");
        let plan = m.plan(5000.0);
        assert_eq!((plan.fit, plan.point), (Fit::Nominal, m.nominal()));
        let plan = m.plan(100.0);
        assert_eq!(plan.fit, Fit::BelowMinimum);
        assert_eq!(plan.point.mhz, m.profile.min_mhz());
        assert!(plan.point.watts > 100.0);
        assert_eq!(m.plan(f64::NAN).fit, Fit::Nominal);
        // One board of three draws a third.
        let one = PowerModel { boards: 1, ..m };
        assert!((one.nominal().watts - 3510.0 / 3.0).abs() < 1e-9);
        assert_eq!(m.sleep_watts(), 15.0);
    }

    #[test]
    fn the_curve_interpolates_and_holds_its_ends() {
        let p: MachineProfile = "s21pro".parse().unwrap();
        assert_eq!(p.voltage_mv(100.0), 840);
        assert_eq!(p.voltage_mv(410.0), 925);
        assert_eq!(p.voltage_mv(590.0), 1040);
        assert_eq!(p.voltage_mv(700.0), 1040);
        assert_eq!(p.voltage_mv(f64::NAN), 840);
    }
}
