//! Faults a farm or a repair bench meets, as the emulator injects them, and the
//! `KIND:ARGS` syntax they are written in (`--fault dead-chip:12`).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// One injected fault. Chip numbers count from 0 along the chain (0 is the chip next to
/// the connector).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    /// The chip passes no signal on: enumeration stops before it (`dead-chip:N`).
    DeadChip { chip: usize },
    /// The chip answers registers but returns no nonces (`silent-chip:N`).
    SilentChip { chip: usize },
    /// A fraction `rate` of the chip's nonces are wrong (`bad-nonces:N:RATE`).
    BadNonces { chip: usize, rate: f64 },
    /// A fraction `rate` of the frames the chain sends are corrupted (`crc-errors:RATE`).
    CrcErrors { rate: f64 },
    /// The chip runs hot until its protection stops it (`hot-chip:N`).
    HotChip { chip: usize },
    /// A voltage domain, `count` adjacent chips from `first`, loses power
    /// (`lost-domain:FIRST:COUNT`).
    LostDomain { first: usize, count: usize },
    /// A fan stops (`failed-fan:N`, default fan 0).
    FailedFan { fan: usize },
    /// A whole board goes silent (`lost-board:N`, default board 0).
    LostBoard { board: usize },
}

impl Fault {
    /// Every kind's `KIND:ARGS` form, for errors and help texts.
    pub const SYNTAX: &'static str = "dead-chip:N, silent-chip:N, bad-nonces:N:RATE, crc-errors:RATE, hot-chip:N, lost-domain:FIRST:COUNT, failed-fan[:N], lost-board[:N]";
}

/// Why a fault spec could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FaultSpecError {
    #[error("unknown fault `{0}`; expected one of {syntax}", syntax = Fault::SYNTAX)]
    UnknownKind(String),
    #[error("fault `{spec}` needs {expected} (e.g. `{example}`)")]
    Arguments {
        spec: String,
        expected: &'static str,
        example: &'static str,
    },
    #[error("fault `{spec}`: `{value}` is not a {what}")]
    Number {
        spec: String,
        value: String,
        what: &'static str,
    },
    #[error("fault `{spec}`: rate {value} must be between 0 and 1")]
    Rate { spec: String, value: String },
    #[error("fault `{spec}`: a voltage domain of 0 chips is no fault")]
    EmptyDomain { spec: String },
}

impl FromStr for Fault {
    type Err = FaultSpecError;

    fn from_str(spec: &str) -> Result<Fault, FaultSpecError> {
        let spec = spec.trim();
        let mut parts = spec.split(':');
        let kind = parts.next().unwrap_or("").to_ascii_lowercase();
        let args: Vec<&str> = parts.collect();
        let want = |n: usize, expected: &'static str, example: &'static str| {
            if args.len() == n {
                Ok(())
            } else {
                Err(FaultSpecError::Arguments {
                    spec: spec.to_string(),
                    expected,
                    example,
                })
            }
        };
        let index = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| FaultSpecError::Number {
                    spec: spec.to_string(),
                    value: s.to_string(),
                    what: "chip, fan or board number (0, 1, 2, ...)",
                })
        };
        let rate = |s: &str| {
            let r: f64 = s.trim().parse().map_err(|_| FaultSpecError::Number {
                spec: spec.to_string(),
                value: s.to_string(),
                what: "rate (a number from 0 to 1)",
            })?;
            if (0.0..=1.0).contains(&r) {
                Ok(r)
            } else {
                Err(FaultSpecError::Rate {
                    spec: spec.to_string(),
                    value: s.to_string(),
                })
            }
        };
        let optional = |d: usize| -> Result<usize, FaultSpecError> {
            match args.as_slice() {
                [] => Ok(d),
                [n] => index(n),
                _ => Err(FaultSpecError::Arguments {
                    spec: spec.to_string(),
                    expected: "at most one number",
                    example: "failed-fan:1",
                }),
            }
        };
        let one_chip = |example: &'static str| {
            want(1, "a chip number", example)?;
            index(args[0])
        };
        match kind.as_str() {
            "dead-chip" => Ok(Fault::DeadChip {
                chip: one_chip("dead-chip:12")?,
            }),
            "silent-chip" => Ok(Fault::SilentChip {
                chip: one_chip("silent-chip:12")?,
            }),
            "bad-nonces" => {
                want(2, "a chip number and a rate", "bad-nonces:12:0.2")?;
                Ok(Fault::BadNonces {
                    chip: index(args[0])?,
                    rate: rate(args[1])?,
                })
            }
            "crc-errors" => {
                want(1, "a rate", "crc-errors:0.01")?;
                Ok(Fault::CrcErrors {
                    rate: rate(args[0])?,
                })
            }
            "hot-chip" => Ok(Fault::HotChip {
                chip: one_chip("hot-chip:30")?,
            }),
            "lost-domain" => {
                want(2, "a first chip and a chip count", "lost-domain:20:5")?;
                let count = index(args[1])?;
                if count == 0 {
                    return Err(FaultSpecError::EmptyDomain {
                        spec: spec.to_string(),
                    });
                }
                Ok(Fault::LostDomain {
                    first: index(args[0])?,
                    count,
                })
            }
            "failed-fan" | "fan" => Ok(Fault::FailedFan { fan: optional(0)? }),
            "lost-board" => Ok(Fault::LostBoard {
                board: optional(0)?,
            }),
            _ => Err(FaultSpecError::UnknownKind(spec.to_string())),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Fault::DeadChip { chip } => write!(f, "dead-chip:{chip}"),
            Fault::SilentChip { chip } => write!(f, "silent-chip:{chip}"),
            Fault::BadNonces { chip, rate } => write!(f, "bad-nonces:{chip}:{rate}"),
            Fault::CrcErrors { rate } => write!(f, "crc-errors:{rate}"),
            Fault::HotChip { chip } => write!(f, "hot-chip:{chip}"),
            Fault::LostDomain { first, count } => write!(f, "lost-domain:{first}:{count}"),
            Fault::FailedFan { fan } => write!(f, "failed-fan:{fan}"),
            Fault::LostBoard { board } => write!(f, "lost-board:{board}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_and_prints_back() {
        for s in [
            "dead-chip:12",
            "silent-chip:0",
            "bad-nonces:3:0.25",
            "crc-errors:0.01",
            "hot-chip:30",
            "lost-domain:20:5",
            "failed-fan:1",
            "lost-board:2",
        ] {
            let f: Fault = s.parse().unwrap();
            assert_eq!(f.to_string(), s);
        }
        assert_eq!("failed-fan".parse(), Ok(Fault::FailedFan { fan: 0 }));
        assert_eq!(" DEAD-CHIP:4 ".parse(), Ok(Fault::DeadChip { chip: 4 }));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = "dead-chip".parse::<Fault>().unwrap_err();
        assert!(e.to_string().contains("needs a chip number"), "{e}");
        let e = "bad-nonces:3:1.5".parse::<Fault>().unwrap_err();
        assert!(matches!(e, FaultSpecError::Rate { .. }));
        let e = "dead-chip:x".parse::<Fault>().unwrap_err();
        assert!(e.to_string().contains("`x` is not a chip"), "{e}");
        assert!(matches!(
            "melted-chip:1".parse::<Fault>(),
            Err(FaultSpecError::UnknownKind(_))
        ));
        assert!("lost-domain:3:0".parse::<Fault>().is_err());
        assert!("lost-board:1:2".parse::<Fault>().is_err());
    }

    #[test]
    fn the_syntax_names_every_kind_once() {
        let mut kinds = std::collections::HashSet::new();
        for form in Fault::SYNTAX.split(", ") {
            let spec = form
                .replace(['[', ']'], "")
                .replace("RATE", "0.5")
                .replace("FIRST", "2")
                .replace("COUNT", "3")
                .replace(":N", ":1");
            let fault: Fault = spec.parse().unwrap_or_else(|e| panic!("{form}: {e}"));
            assert!(kinds.insert(std::mem::discriminant(&fault)), "{form} twice");
        }
        assert_eq!(kinds.len(), 8, "a kind is missing from Fault::SYNTAX");
        let e = "melted-chip:1".parse::<Fault>().unwrap_err().to_string();
        assert!(e.ends_with(Fault::SYNTAX), "{e}");
    }
}
