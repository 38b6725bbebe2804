//! The board test of a factory or repair bench: enumerate, bring up, send known work to
//! every chip for a while, check every nonce, read temperatures and error counts, and
//! judge each chip and the board. The CLI only presents the [`BoardReport`].

use std::time::Duration;

use hashforge_core::{Celsius, HashRate};
use serde::Serialize;
use tokio::time::Instant;

use crate::chip::ChipFamily;
use crate::driver::{Anomalies, ChainConfig, ChipStats, Enumeration};
use crate::emulator::{EmulatedMachine, PoolHandle};
use crate::fault::Fault;
use crate::frame::LinkStats;
use crate::profile::EmulatedSpec;
use crate::shell::{BringUp, Chain, ChainError, Link};

/// Die temperature from which a chip is judged over temperature (normal boards run
/// 70-80 degrees, the emulator's too; protection stops chips at 110).
pub const OVER_TEMPERATURE_CELSIUS: f64 = 105.0;
/// Hardware errors above this fraction of a chip's nonces fail it.
pub const MAX_HARDWARE_ERROR_RATE: f64 = 0.01;
/// Link CRC errors above this fraction of frames fail the board.
pub const MAX_CRC_ERROR_RATE: f64 = 0.001;
/// A chip is judged only when it was expected to find at least this many nonces.
pub const MIN_EXPECTED_NONCES: f64 = 8.0;

/// What to test and how long.
#[derive(Clone, Debug, PartialEq)]
pub struct BoardTestConfig {
    pub chain: ChainConfig,
    pub chips_per_domain: usize,
    /// Seconds of hashing.
    pub seconds: f64,
    pub bring_up: BringUp,
    /// How often a new job is sent.
    pub job_interval: Duration,
    /// How often temperatures and error counts are read.
    pub health_interval: Duration,
}

impl BoardTestConfig {
    /// A real board of `expected_chips` chips of `family`.
    pub fn real(family: ChipFamily, expected_chips: usize, seconds: f64) -> BoardTestConfig {
        BoardTestConfig {
            chain: ChainConfig::new(family, expected_chips),
            chips_per_domain: 5,
            seconds,
            bring_up: BringUp::REAL,
            job_interval: Duration::from_millis(500),
            health_interval: Duration::from_secs(1),
        }
    }

    /// An emulated board: the emulator-only low ticket (difficulty 2^-20, a few hundred
    /// nonces a second per chip at CPU speed), a fast ramp and no baud switch.
    pub fn emulated(spec: &EmulatedSpec, seconds: f64) -> BoardTestConfig {
        let p = spec.profile;
        let chain = ChainConfig::emulated(&p, 20);
        BoardTestConfig {
            chain,
            chips_per_domain: p.chips_per_domain,
            seconds,
            bring_up: BringUp::EMULATED,
            job_interval: Duration::from_secs(1),
            health_interval: Duration::from_millis(500),
        }
    }
}

/// A chip's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Ok,
    /// Beyond the break: did not answer enumeration.
    Missing,
    /// Answered, but returned no nonces.
    NoNonces,
    /// Returned far fewer nonces than its share of the work.
    LowNonces,
    /// Returned wrong nonces.
    HardwareErrors,
    /// Ran over temperature (and its protection stopped it).
    OverTemperature,
    /// Part of a run of adjacent chips with no power: no nonces and no temperature.
    DomainLost,
}

impl Verdict {
    pub fn passes(self) -> bool {
        self == Verdict::Ok
    }
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Missing => "missing",
            Verdict::NoNonces => "no nonces",
            Verdict::LowNonces => "low nonces",
            Verdict::HardwareErrors => "hardware errors",
            Verdict::OverTemperature => "over temperature",
            Verdict::DomainLost => "domain lost",
        }
    }
}

/// One row of the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChipReport {
    pub position: usize,
    pub domain: usize,
    pub address: Option<u8>,
    pub nonces: u64,
    pub expected_nonces: f64,
    pub hardware_errors: u64,
    /// Highest die temperature read during the test.
    pub temperature: Option<Celsius>,
    pub verdict: Verdict,
}

/// A run of positions a repair should look at, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Suspect {
    pub first: usize,
    pub last: usize,
    pub reason: String,
}

/// The outcome of one board test.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BoardReport {
    pub family: ChipFamily,
    pub enumeration: Enumeration,
    pub chips: Vec<ChipReport>,
    pub suspects: Vec<Suspect>,
    /// Board-level findings (link, cooling) in words.
    pub findings: Vec<String>,
    pub link: LinkStats,
    pub anomalies: Anomalies,
    pub valid_nonces: u64,
    pub hardware_errors: u64,
    pub seconds: f64,
    /// Estimated from the shares found (JSON: H/s).
    #[serde(rename = "hashrate_hs")]
    pub hashrate: HashRate,
    pub max_temperature: Option<Celsius>,
    pub passed: bool,
}

/// Progress for a person watching.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    pub elapsed: f64,
    pub total: f64,
    pub nonces: u64,
    pub hardware_errors: u64,
}

/// Runs the test on an open chain.
pub async fn run<L: Link>(
    link: L,
    cfg: &BoardTestConfig,
    mut progress: impl FnMut(Progress),
) -> Result<BoardReport, ChainError> {
    let mut chain = Chain::new(link, cfg.chain.clone());
    let enumeration = chain.enumerate(&cfg.bring_up).await?;
    let started = Instant::now();
    let mut hashing_seconds = 0.0;
    if enumeration.found > 0 {
        chain.bring_up(&cfg.bring_up).await?;
        let total = Duration::from_secs_f64(cfg.seconds.max(0.0));
        let end = Instant::now() + total;
        let t0 = Instant::now();
        let mut seed = 0u64;
        let mut next_job = Instant::now();
        let mut next_health = Instant::now() + cfg.health_interval;
        let mut next_progress = Instant::now();
        while Instant::now() < end {
            let now = Instant::now();
            if now >= next_job {
                seed += 1;
                chain.send_job(&test_header(seed)).await?;
                next_job = now + cfg.job_interval;
            }
            if now >= next_health {
                chain.request_health().await?;
                next_health = now + cfg.health_interval;
            }
            if now >= next_progress {
                let (n, hw) = totals(chain.driver().chips());
                progress(Progress {
                    elapsed: t0.elapsed().as_secs_f64(),
                    total: cfg.seconds,
                    nonces: n,
                    hardware_errors: hw,
                });
                next_progress = now + Duration::from_millis(200);
            }
            let wake = end.min(next_job).min(next_health).min(next_progress);
            while chain.next_event(wake).await?.is_some() {}
        }
        chain.request_health().await?;
        chain
            .pump_until_quiet(Duration::from_millis(150), Duration::from_millis(500))
            .await?;
        while chain.driver_mut().poll_event().is_some() {}
        hashing_seconds = t0.elapsed().as_secs_f64();
        let (n, hw) = totals(chain.driver().chips());
        progress(Progress {
            elapsed: cfg.seconds,
            total: cfg.seconds,
            nonces: n,
            hardware_errors: hw,
        });
    }
    // The chips hash until the last reply is read, a little past `cfg.seconds`.
    let seconds = if enumeration.found > 0 {
        hashing_seconds
    } else {
        started.elapsed().as_secs_f64()
    };
    let d = chain.driver();
    Ok(judge(
        cfg,
        enumeration,
        d.chips(),
        d.link_stats(),
        d.anomalies(),
        seconds,
    ))
}

fn totals(chips: &[ChipStats]) -> (u64, u64) {
    chips
        .iter()
        .fold((0, 0), |(n, h), c| (n + c.nonces, h + c.hardware_errors))
}

/// Known work: a deterministic header per job (version 0x20000000, rolled by the chips).
pub fn test_header(seed: u64) -> [u8; 80] {
    let mut h = [0u8; 80];
    h[0..4].copy_from_slice(&0x2000_0000u32.to_le_bytes());
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for b in h[4..68].iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    h[68..72].copy_from_slice(&1_700_000_000u32.to_le_bytes());
    h[72..76].copy_from_slice(&0x1703_a30cu32.to_le_bytes());
    h
}

/// Judges each chip and the board from what the driver counted.
pub fn judge(
    cfg: &BoardTestConfig,
    enumeration: Enumeration,
    stats: &[ChipStats],
    link: LinkStats,
    anomalies: Anomalies,
    seconds: f64,
) -> BoardReport {
    let expected = cfg.chain.expected_chips.max(enumeration.found);
    let per_domain = cfg.chips_per_domain.max(1);
    let valid: u64 = stats.iter().map(|c| c.nonces).sum();
    let hw_total: u64 = stats.iter().map(|c| c.hardware_errors).sum();
    // Chips split the work evenly (each hashes one address step of the nonce space), so
    // each working chip should find an even share of what the working chips found.
    let working = stats.iter().filter(|c| c.nonces > 0).count();
    let expected_nonces = if working > 0 {
        valid as f64 / working as f64
    } else {
        0.0
    };
    let mut chips: Vec<ChipReport> = (0..expected)
        .map(|position| {
            let domain = position / per_domain;
            let Some(c) = stats.get(position) else {
                return ChipReport {
                    position,
                    domain,
                    address: None,
                    nonces: 0,
                    expected_nonces: 0.0,
                    hardware_errors: 0,
                    temperature: None,
                    verdict: Verdict::Missing,
                };
            };
            let returned = c.nonces + c.hardware_errors;
            let verdict = if c
                .max_temperature
                .is_some_and(|t| t.0 >= OVER_TEMPERATURE_CELSIUS)
            {
                Verdict::OverTemperature
            } else if c.hardware_errors >= 3
                && c.hardware_errors as f64 > MAX_HARDWARE_ERROR_RATE * returned as f64
            {
                Verdict::HardwareErrors
            } else if expected_nonces >= MIN_EXPECTED_NONCES && c.nonces == 0 {
                Verdict::NoNonces
            } else if expected_nonces >= 4.0 * MIN_EXPECTED_NONCES
                && (c.nonces as f64) < 0.25 * expected_nonces
            {
                Verdict::LowNonces
            } else {
                Verdict::Ok
            };
            ChipReport {
                position,
                domain,
                address: Some(c.address),
                nonces: c.nonces,
                expected_nonces,
                hardware_errors: c.hardware_errors,
                temperature: c.max_temperature,
                verdict,
            }
        })
        .collect();

    // Runs of adjacent chips with no nonces and no temperature: a lost domain.
    let mut i = 0;
    let mut suspects = Vec::new();
    while i < chips.len() {
        let dead = |c: &ChipReport| c.verdict == Verdict::NoNonces && c.temperature.is_none();
        if dead(&chips[i]) {
            let mut j = i;
            while j + 1 < chips.len() && dead(&chips[j + 1]) {
                j += 1;
            }
            if j > i {
                for c in &mut chips[i..=j] {
                    c.verdict = Verdict::DomainLost;
                }
                suspects.push(Suspect {
                    first: i,
                    last: j,
                    reason: format!(
                        "chips {i}-{j} (domain {}-{}) have no power: no nonces, no temperature",
                        i / per_domain,
                        j / per_domain
                    ),
                });
            }
            i = j + 1;
        } else {
            i += 1;
        }
    }

    let mut findings = Vec::new();
    if let Some((a, b)) = enumeration.suspects() {
        if enumeration.found == 0 {
            suspects.push(Suspect {
                first: 0,
                last: 0,
                reason: "chain finds 0 chips: check the cable, the board's power and chip 0"
                    .to_string(),
            });
        } else {
            suspects.push(Suspect {
                first: a,
                last: b,
                reason: format!(
                    "chain breaks after chip {a}: only {} of {} chips answer; chip {a} or {b} (or the signal path between them) is bad",
                    enumeration.found, enumeration.expected
                ),
            });
        }
    }
    for c in &chips {
        let reason = match c.verdict {
            Verdict::NoNonces => format!(
                "chip {} answers but returns no nonces ({:.0} expected)",
                c.position, c.expected_nonces
            ),
            Verdict::LowNonces => format!(
                "chip {} returns {} nonces, {:.0} expected",
                c.position, c.nonces, c.expected_nonces
            ),
            Verdict::HardwareErrors => format!(
                "chip {} returns wrong nonces: {} hardware errors in {}",
                c.position,
                c.hardware_errors,
                c.nonces + c.hardware_errors
            ),
            Verdict::OverTemperature => match c.temperature {
                Some(t) => format!("chip {} runs at {t}", c.position),
                None => format!("chip {} runs over temperature", c.position),
            },
            _ => continue,
        };
        suspects.push(Suspect {
            first: c.position,
            last: c.position,
            reason,
        });
    }
    let hot = chips
        .iter()
        .filter(|c| c.verdict == Verdict::OverTemperature)
        .count();
    if hot * 4 >= stats.len().max(1) && hot > 1 {
        findings.push(format!(
            "{hot} of {} chips over {OVER_TEMPERATURE_CELSIUS} C: the board is not being cooled (check the fans and the airflow)",
            stats.len()
        ));
    }
    let crc_rate = link.bad_crc as f64 / (link.frames + link.bad_crc).max(1) as f64;
    let link_bad = crc_rate > MAX_CRC_ERROR_RATE && link.bad_crc >= 3;
    if link_bad {
        findings.push(format!(
            "{} CRC errors in {} frames ({:.2}%): the data path between the chips and the fixture is failing",
            link.bad_crc,
            link.frames + link.bad_crc,
            crc_rate * 100.0
        ));
    }
    let max_temperature = stats
        .iter()
        .filter_map(|c| c.max_temperature)
        .fold(None, |m: Option<Celsius>, t| {
            Some(m.map_or(t, |m| if t > m { t } else { m }))
        });
    let diff1: f64 = stats.iter().map(|c| c.diff1_shares).sum();
    let passed = enumeration.found == enumeration.expected
        && enumeration.found > 0
        && chips.iter().all(|c| c.verdict.passes())
        && !link_bad
        && findings.is_empty();
    BoardReport {
        family: cfg.chain.family,
        enumeration,
        chips,
        suspects,
        findings,
        link,
        anomalies,
        valid_nonces: valid,
        hardware_errors: hw_total,
        seconds,
        hashrate: HashRate::from_diff1_shares(diff1, seconds),
        max_temperature,
        passed,
    }
}

/// Tests board `board` of an emulated machine with `faults`; the emulator runs on
/// `pool`'s threads for the duration of the test.
pub async fn run_emulated(
    spec: &EmulatedSpec,
    board: usize,
    faults: &[Fault],
    seconds: f64,
    pool: &PoolHandle,
    progress: impl FnMut(Progress),
) -> Result<BoardReport, ChainError> {
    let (machine, mut links) = EmulatedMachine::spawn(spec.profile, &[board], faults, pool);
    let cfg = BoardTestConfig::emulated(spec, seconds);
    let link = links.pop().expect("one board, one link");
    let report = run(link, &cfg, progress).await;
    drop(machine);
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chip::chip_addresses;

    /// A healthy S21 Pro board's bench run: every chip answered, ran at 80 C and found
    /// `nonces[i]` nonces, the split a real board's chips give.
    fn judged(nonces: &[u64]) -> BoardReport {
        let spec: EmulatedSpec = "s21pro:0".parse().unwrap();
        let cfg = BoardTestConfig::emulated(&spec, 10.0);
        let n = cfg.chain.expected_chips;
        assert_eq!(nonces.len(), n);
        let stats: Vec<ChipStats> = chip_addresses(n)
            .into_iter()
            .zip(nonces)
            .enumerate()
            .map(|(position, (address, &nonces))| ChipStats {
                position,
                address,
                nonces,
                max_temperature: Some(Celsius(80.0)),
                ..ChipStats::default()
            })
            .collect();
        let enumeration = Enumeration {
            expected: n,
            found: n,
            chip_ids: vec![0x1370; n],
            first_missing: None,
        };
        judge(
            &cfg,
            enumeration,
            &stats,
            LinkStats::default(),
            Anomalies::default(),
            10.0,
        )
    }

    #[test]
    fn a_board_whose_chips_split_the_work_evenly_passes() {
        // Chip 64 owns one address step like every other chip, not fields 192..=255.
        let r = judged(&[300; 65]);
        assert!(r.passed, "{:#?}", r.suspects);
        assert!(r.chips.iter().all(|c| c.expected_nonces == 300.0));
    }

    #[test]
    fn a_chip_far_below_an_even_share_is_named() {
        let mut nonces = [300; 65];
        nonces[64] = 40;
        nonces[12] = 0;
        let r = judged(&nonces);
        assert!(!r.passed);
        let bad: Vec<(usize, Verdict)> = r
            .chips
            .iter()
            .filter(|c| !c.verdict.passes())
            .map(|c| (c.position, c.verdict))
            .collect();
        assert_eq!(bad, [(12, Verdict::NoNonces), (64, Verdict::LowNonces)]);
    }
}
