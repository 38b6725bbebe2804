//! Machines the emulator plays, with their published nominal figures.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::chip::ChipFamily;

/// A machine: its chips, boards and nameplate figures.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MachineProfile {
    /// The name used on the command line (`s21pro`).
    pub name: &'static str,
    /// The model as its maker names it.
    pub model: &'static str,
    pub chip: ChipFamily,
    pub boards: usize,
    pub chips_per_board: usize,
    /// Chips per voltage domain (the facts give 5 for S17-and-later boards; the other
    /// splits are this emulator's assumption, chosen to divide the board evenly).
    pub chips_per_domain: usize,
    pub fans: usize,
    /// Nameplate hash rate in TH/s and power in W.
    pub nominal_ths: f64,
    pub nominal_watts: f64,
    /// The hash clock in MHz at which the chips give `nominal_ths` (chips x small cores x
    /// clock; chosen on a PLL step, so the chips run at exactly this clock).
    pub nominal_mhz: f64,
    /// The voltage/frequency curve of [`crate::power`]: (clock in MHz, voltage of one
    /// voltage domain in mV), rising, the last point the nominal one. **A model, not a
    /// measured curve**: the nominal voltage is what puts a board's domains at a 12-15 V
    /// supply (the Bitaxe: ESP-Miner's default core voltage for the BM1370), and the shape
    /// is the usual one of a chip's voltage scaling, flat near its minimum voltage at low
    /// clocks and rising toward the nominal point.
    pub vf_curve: &'static [(f64, u32)],
    /// One board's draw while the machine sleeps (hash chips unpowered; its share of the
    /// control board and of the fans at their lowest speed).
    pub sleep_watts_per_board: f64,
}

impl MachineProfile {
    pub const ALL: [MachineProfile; 5] = [
        MachineProfile {
            name: "s21pro",
            model: "Antminer S21 Pro",
            chip: ChipFamily::Bm1370,
            boards: 3,
            chips_per_board: 65,
            chips_per_domain: 5,
            fans: 4,
            nominal_ths: 234.0,
            nominal_watts: 3510.0,
            nominal_mhz: 590.0,
            vf_curve: &[(240.0, 840), (350.0, 890), (470.0, 960), (590.0, 1040)],
            sleep_watts_per_board: 5.0,
        },
        MachineProfile {
            name: "s21",
            model: "Antminer S21",
            chip: ChipFamily::Bm1368,
            boards: 3,
            chips_per_board: 108,
            chips_per_domain: 4,
            fans: 4,
            nominal_ths: 200.0,
            nominal_watts: 3500.0,
            nominal_mhz: 485.0,
            vf_curve: &[(200.0, 405), (290.0, 430), (390.0, 462), (485.0, 500)],
            sleep_watts_per_board: 5.0,
        },
        MachineProfile {
            name: "t21",
            model: "Antminer T21",
            chip: ChipFamily::Bm1368,
            boards: 3,
            chips_per_board: 108,
            chips_per_domain: 4,
            fans: 4,
            nominal_ths: 190.0,
            nominal_watts: 3610.0,
            nominal_mhz: 460.0,
            vf_curve: &[(190.0, 420), (275.0, 447), (370.0, 480), (460.0, 520)],
            sleep_watts_per_board: 5.0,
        },
        MachineProfile {
            name: "s19xp",
            model: "Antminer S19 XP",
            chip: ChipFamily::Bm1366,
            boards: 3,
            chips_per_board: 110,
            chips_per_domain: 5,
            fans: 4,
            nominal_ths: 140.0,
            nominal_watts: 3010.0,
            nominal_mhz: 475.0,
            vf_curve: &[(190.0, 485), (285.0, 515), (380.0, 555), (475.0, 600)],
            sleep_watts_per_board: 5.0,
        },
        MachineProfile {
            name: "bitaxe-gamma",
            model: "Bitaxe Gamma",
            chip: ChipFamily::Bm1370,
            boards: 1,
            chips_per_board: 1,
            chips_per_domain: 1,
            fans: 1,
            nominal_ths: 1.07,
            nominal_watts: 19.0,
            nominal_mhz: 525.0,
            vf_curve: &[(210.0, 940), (315.0, 990), (420.0, 1060), (525.0, 1150)],
            sleep_watts_per_board: 1.5,
        },
    ];

    pub fn chips(&self) -> usize {
        self.boards * self.chips_per_board
    }

    /// Efficiency in J/TH.
    pub fn joules_per_th(&self) -> f64 {
        self.nominal_watts / self.nominal_ths
    }

    /// The voltage domain of chip `position` on a board.
    pub fn domain_of(&self, position: usize) -> usize {
        position / self.chips_per_domain.max(1)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("unknown machine `{0}`; expected one of s21pro, s21, t21, s19xp, bitaxe-gamma")]
    Unknown(String),
    #[error("`{spec}`: board {board} does not exist (the {model} has boards 0 to {last})")]
    Board {
        spec: String,
        board: String,
        model: &'static str,
        last: usize,
    },
}

impl FromStr for MachineProfile {
    type Err = ProfileError;
    fn from_str(s: &str) -> Result<MachineProfile, ProfileError> {
        let name = s.trim().to_ascii_lowercase().replace(['_', ' '], "-");
        let name = match name.as_str() {
            "s21-pro" => "s21pro".to_string(),
            "s19-xp" => "s19xp".to_string(),
            "bitaxe" | "gamma" => "bitaxe-gamma".to_string(),
            _ => name,
        };
        MachineProfile::ALL
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| ProfileError::Unknown(s.to_string()))
    }
}

impl fmt::Display for MachineProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} x {} {}, {} TH/s, {} W)",
            self.model,
            self.boards,
            self.chips_per_board,
            self.chip,
            self.nominal_ths,
            self.nominal_watts
        )
    }
}

/// `PROFILE[:BOARD]`: a machine, or one board of it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EmulatedSpec {
    pub profile: MachineProfile,
    pub board: Option<usize>,
}

impl EmulatedSpec {
    /// The boards this spec covers.
    pub fn boards(&self) -> Vec<usize> {
        match self.board {
            Some(b) => vec![b],
            None => (0..self.profile.boards).collect(),
        }
    }
}

impl FromStr for EmulatedSpec {
    type Err = ProfileError;
    fn from_str(s: &str) -> Result<EmulatedSpec, ProfileError> {
        let s = s.trim();
        let s = s.strip_prefix("emulated:").unwrap_or(s);
        let (name, board) = match s.split_once(':') {
            Some((n, b)) => (n, Some(b)),
            None => (s, None),
        };
        let profile: MachineProfile = name.parse()?;
        let board = match board {
            None => None,
            Some(b) => match b.trim().parse::<usize>() {
                Ok(n) if n < profile.boards => Some(n),
                _ => {
                    return Err(ProfileError::Board {
                        spec: s.to_string(),
                        board: b.to_string(),
                        model: profile.model,
                        last: profile.boards - 1,
                    })
                }
            },
        };
        Ok(EmulatedSpec { profile, board })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_carry_the_published_figures() {
        let p: MachineProfile = "s21pro".parse().unwrap();
        assert_eq!(p.chips(), 195);
        assert!((p.joules_per_th() - 15.0).abs() < 0.01);
        let t: MachineProfile = "T21".parse().unwrap();
        assert_eq!((t.chip, t.chips()), (ChipFamily::Bm1368, 324));
        assert_eq!(
            "s19xp".parse::<MachineProfile>().unwrap().chips_per_board,
            110
        );
        assert_eq!("bitaxe-gamma".parse::<MachineProfile>().unwrap().chips(), 1);
        assert_eq!(p.domain_of(64), 12);
    }

    #[test]
    fn emulated_specs_name_a_machine_or_a_board() {
        let s: EmulatedSpec = "s21pro:2".parse().unwrap();
        assert_eq!(s.boards(), [2]);
        let s: EmulatedSpec = "emulated:s21".parse().unwrap();
        assert_eq!(s.boards(), [0, 1, 2]);
        let e = "s21pro:3".parse::<EmulatedSpec>().unwrap_err();
        assert!(e.to_string().contains("boards 0 to 2"), "{e}");
        assert!("s9".parse::<EmulatedSpec>().is_err());
    }
}
