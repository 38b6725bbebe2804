//! SHA-256d nonce scanners: hash a block-header template over a range of nonces (and,
//! optionally, of rolled versions) and report every header whose hash meets a target.
//!
//! Backends: [`Backend::Portable`] (the reference, plain Rust), [`Backend::ShaNi`] (the
//! x86 SHA extensions), [`Backend::Avx2`] (8 lanes) and [`Backend::Avx512`] (16 lanes).
//! [`Scanner::detect`] picks the fastest this CPU has, measured by a short calibration at
//! the first call ([`calibration`]), unless the environment variable
//! `HASHFORGE_SHA256D_BACKEND` names one.
//!
//! Every backend reports exactly the same hits as the portable one: candidates that pass a
//! kernel's early filter on the hash's top word are hashed again in full and compared with
//! the whole 256-bit target, so easy targets (regtest's, where nearly every hash qualifies)
//! are correct, only slower.
//!
//! This crate knows nothing of Stratum, pools or chips: it turns a [`Work`] into [`Hit`]s.
//!
//! ```
//! use hashforge_core::Target;
//! use hashforge_sha256d::{Scanner, Work};
//!
//! let header = [0u8; 80];
//! let work = Work::new(header, Target::MAX).with_nonces(0, 1000).unwrap();
//! let hits = Scanner::detect().scan(&work);
//! assert_eq!(hits.len(), 1000); // every hash meets the easiest target
//! ```

mod lanes;
mod parallel;
mod sha256;
#[cfg(target_arch = "x86_64")]
mod shani;
mod throughput;
mod work;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use parallel::Control;
pub use sha256::{midstate, sha256d_header, sha256d_header_from_midstate};
pub use throughput::{compressions_per_nonce, measure_compressions};
pub use work::{deposit, Hit, Work, WorkError};

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Instant;

use hashforge_core::Target;

/// The environment variable that forces a backend (`portable`, `sha-ni`, `avx2`, `avx512`).
pub const BACKEND_ENV: &str = "HASHFORGE_SHA256D_BACKEND";

/// A SHA-256d implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Backend {
    /// Plain Rust, one nonce at a time: the reference every other backend must agree with.
    Portable,
    /// The x86 SHA extensions (`sha256rnds2`), several nonces interleaved.
    ShaNi,
    /// AVX2, 8 lanes.
    Avx2,
    /// AVX-512, 16 lanes.
    Avx512,
}

/// A backend that this CPU cannot run, or a name that is no backend.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    #[error("backend `{0}` needs CPU features this machine does not have (available: {1})")]
    Unavailable(Backend, String),
    #[error("unknown backend `{0}`; expected one of portable, sha-ni, avx2, avx512")]
    Unknown(String),
}

impl Backend {
    /// Every backend, slowest first.
    pub const ALL: [Backend; 4] = [
        Backend::Portable,
        Backend::ShaNi,
        Backend::Avx2,
        Backend::Avx512,
    ];

    /// The name used on the command line and in `HASHFORGE_SHA256D_BACKEND`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Portable => "portable",
            Backend::ShaNi => "sha-ni",
            Backend::Avx2 => "avx2",
            Backend::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the backend.
    pub fn is_available(self) -> bool {
        match self {
            Backend::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Backend::ShaNi => {
                std::is_x86_feature_detected!("sha")
                    && std::is_x86_feature_detected!("sse4.1")
                    && std::is_x86_feature_detected!("ssse3")
            }
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => std::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 => {
                std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512bw")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The backends this CPU can run, slowest first.
    pub fn available() -> Vec<Backend> {
        Backend::ALL
            .into_iter()
            .filter(|b| b.is_available())
            .collect()
    }

    /// How many nonces (or versions) one kernel step hashes side by side.
    pub fn lanes(self) -> usize {
        match self {
            Backend::Portable => 1,
            Backend::ShaNi => shani_lanes(),
            Backend::Avx2 => 8,
            Backend::Avx512 => 16,
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn shani_lanes() -> usize {
    shani::VERSIONS
}
#[cfg(not(target_arch = "x86_64"))]
fn shani_lanes() -> usize {
    1
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = BackendError;
    fn from_str(s: &str) -> Result<Backend, BackendError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "portable" | "scalar" => Ok(Backend::Portable),
            "sha-ni" | "shani" | "sha_ni" | "sha" => Ok(Backend::ShaNi),
            "avx2" => Ok(Backend::Avx2),
            "avx512" | "avx-512" => Ok(Backend::Avx512),
            _ => Err(BackendError::Unknown(s.to_string())),
        }
    }
}

/// A backend this CPU is known to run; the only way to call a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scanner {
    backend: Backend,
}

impl Scanner {
    /// A scanner on `backend`, if this CPU has what it needs.
    pub fn new(backend: Backend) -> Result<Scanner, BackendError> {
        if backend.is_available() {
            Ok(Scanner { backend })
        } else {
            let names: Vec<&str> = Backend::available().iter().map(|b| b.name()).collect();
            Err(BackendError::Unavailable(backend, names.join(", ")))
        }
    }

    /// The fastest backend this CPU runs, as [`calibration`] measured it.
    pub fn fastest() -> Scanner {
        Scanner {
            backend: calibration().chosen,
        }
    }

    /// The backend named by `HASHFORGE_SHA256D_BACKEND` when it is set, else the fastest.
    /// A forced backend the CPU lacks is an error, not a silent fallback.
    pub fn from_env() -> Result<Scanner, BackendError> {
        Ok(Scanner::forced()?.unwrap_or_else(Scanner::fastest))
    }

    /// The backend `HASHFORGE_SHA256D_BACKEND` forces, if it names one: checking the
    /// variable costs no calibration.
    pub fn forced() -> Result<Option<Scanner>, BackendError> {
        match std::env::var(BACKEND_ENV) {
            Ok(name) if !name.trim().is_empty() => Scanner::new(name.parse()?).map(Some),
            _ => Ok(None),
        }
    }

    /// [`Scanner::from_env`], falling back to the fastest backend when the variable is wrong.
    /// A binary checks the variable once with [`Scanner::from_env`] at start-up and refuses a
    /// wrong value (the `hashforge` binary does), so this fallback is never silent there.
    pub fn detect() -> Scanner {
        Scanner::from_env().unwrap_or_else(|_| Scanner::fastest())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Every hit of `work`, in no particular order.
    pub fn scan(&self, work: &Work) -> Vec<Hit> {
        let mut hits = Vec::new();
        self.scan_into(work, &mut hits);
        hits
    }

    /// Appends every hit of `work` to `hits`.
    pub fn scan_into(&self, work: &Work, hits: &mut Vec<Hit>) {
        match self.backend {
            // SAFETY (all arms): a Scanner exists only for a backend whose CPU features were
            // detected in `Scanner::new` or `Scanner::fastest`.
            Backend::Portable => unsafe { lanes::scan_nonce_lanes::<u32>(work, hits) },
            #[cfg(target_arch = "x86_64")]
            Backend::ShaNi => unsafe { shani::scan(work, hits) },
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => unsafe {
                if work.version_count() >= 8 {
                    x86::avx2_version_lanes(work, hits)
                } else {
                    x86::avx2_nonce_lanes(work, hits)
                }
            },
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 => unsafe {
                if work.version_count() >= 16 {
                    x86::avx512_version_lanes(work, hits)
                } else {
                    x86::avx512_nonce_lanes(work, hits)
                }
            },
            #[cfg(not(target_arch = "x86_64"))]
            _ => unreachable!("no SIMD backend is available off x86_64"),
        }
    }
}

/// What the start-up calibration measured: each backend this CPU runs, hashing the way a
/// miner does (16 rolled versions per piece), on the calling thread, and the fastest.
///
/// The best design differs between CPUs (the Intel Xeon this was first tuned on is fastest
/// with AVX-512, a Zen 3 EPYC with SHA-NI at twice its AVX2 rate), so the choice is measured
/// rather than read off the feature flags.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    /// Hashes per second of each available backend, slowest backend first.
    pub rates: Vec<(Backend, f64)>,
    /// The backend with the highest rate.
    pub chosen: Backend,
}

impl Calibration {
    /// Hashes per second measured for `backend`, if this CPU runs it.
    pub fn rate_of(&self, backend: Backend) -> Option<f64> {
        self.rates.iter().find(|(b, _)| *b == backend).map(|r| r.1)
    }

    /// Measures every available backend: the best of five short rounds each, the backends
    /// taking turns so that a busy moment hurts them alike. A few milliseconds per backend.
    pub fn measure() -> Calibration {
        let mut header = [0u8; 80];
        header[0..4].copy_from_slice(&0x2000_0000u32.to_le_bytes());
        let rolled = |nonces: u64| {
            Work::new(header, Target::DIFF1)
                .with_versions(0x1fff_e000, 0, 16)
                .and_then(|w| w.with_nonces(0, nonces))
                .expect("a valid calibration piece")
        };
        let candidates: Vec<(Scanner, Work)> = Backend::available()
            .into_iter()
            .map(|b| {
                // The portable backend is ten times slower: a smaller piece, the same time.
                let nonces = if b == Backend::Portable { 32 } else { 512 };
                (Scanner { backend: b }, rolled(nonces))
            })
            .collect();
        let mut best = vec![0f64; candidates.len()];
        let mut hits = Vec::new();
        for _ in 0..5 {
            for (i, (scanner, work)) in candidates.iter().enumerate() {
                let start = Instant::now();
                hits.clear();
                scanner.scan_into(work, &mut hits);
                let secs = start.elapsed().as_secs_f64().max(1e-9);
                let hashes = (work.version_count() * work.nonce_count()) as f64;
                best[i] = best[i].max(hashes / secs);
            }
        }
        let rates: Vec<(Backend, f64)> = candidates
            .iter()
            .map(|(s, _)| s.backend)
            .zip(best)
            .collect();
        let chosen = rates
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|r| r.0)
            .unwrap_or(Backend::Portable);
        Calibration { rates, chosen }
    }
}

/// The calibration of this process, measured at the first call and kept.
pub fn calibration() -> &'static Calibration {
    static CALIBRATION: OnceLock<Calibration> = OnceLock::new();
    CALIBRATION.get_or_init(Calibration::measure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_measures_every_available_backend_and_picks_the_fastest() {
        let c = Calibration::measure();
        let measured: Vec<Backend> = c.rates.iter().map(|r| r.0).collect();
        assert_eq!(measured, Backend::available());
        assert!(c.rates.iter().all(|r| r.1.is_finite() && r.1 > 0.0));
        let top = c.rates.iter().map(|r| r.1).fold(0.0, f64::max);
        assert_eq!(c.rate_of(c.chosen), Some(top));
        assert!(c.chosen.is_available());
        assert_eq!(Scanner::fastest().backend(), calibration().chosen);
    }
}
