//! Devices behind one interface: something that takes [`WorkUnit`]s from the
//! [`WorkFeed`] and reports the nonces its chips found.
//!
//! The model is a hash board's: a device has chains, a chain has chips, each chip reports
//! nonces with its address, at a ticket difficulty (easier than the pool's, so the miner
//! sees enough nonces to measure every chip and to catch a chip that computes wrong). The
//! CPU device is one chain whose chips are threads. Every nonce is re-hashed by the miner
//! before anything is believed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use hashforge_asic::{OperatingPoint, PowerModel};
pub use hashforge_core::Celsius;
use hashforge_core::{Difficulty, HashRate};
use hashforge_minerapi::ChainState;
use hashforge_sha256d::{Scanner, Work};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::DeviceSpec;
use crate::feed::{WorkFeed, WorkUnit};

/// Fan speed, revolutions per minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Rpm(pub u32);

/// What a device is.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeviceInfo {
    /// `cpu`, `emulated`, `serial`.
    pub kind: &'static str,
    /// For people: `cpu (avx512, 2 threads)`.
    pub name: String,
    /// The machine it stands for in the cgminer API (`VERSION[0].Type`).
    pub model: String,
    /// Chips per chain.
    pub chains: Vec<usize>,
    /// Nonces are reported at this difficulty (or the pool's, if that is easier).
    #[serde(serialize_with = "ser_difficulty")]
    pub ticket_difficulty: Difficulty,
    /// What the hardware should do (JSON: H/s).
    #[serde(rename = "nominal_rate_hs", serialize_with = "ser_rate")]
    pub nominal_rate: HashRate,
    /// What it will really hash at, as far as it knows before it starts: what an SV2
    /// channel tells its pool, whose starting difficulty follows from it. The nominal rate
    /// for hardware and the CPU; an emulated machine's is its host CPU's, not the
    /// nameplate of the machine it plays (234 TH/s claimed for ~40 MH/s of work started the
    /// pool at a difficulty it needed hours to walk down from).
    #[serde(skip)]
    pub expected_rate: HashRate,
}

fn ser_difficulty<S: serde::Serializer>(d: &Difficulty, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_f64())
}

pub(crate) fn ser_rate<S: serde::Serializer>(r: &HashRate, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(r.as_hs())
}

/// Temperatures and fans, where the device has them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Telemetry {
    /// Board (PCB) temperature per chain.
    pub board_temps: Vec<Option<Celsius>>,
    /// Hottest chip per chain.
    pub chip_temps: Vec<Option<Celsius>>,
    pub fans: Vec<Rpm>,
    /// Hashes done, when the device can count them (the CPU can; chips cannot).
    pub hashes: Option<u64>,
    /// Per chain: where its bring-up got to.
    pub chain_states: Vec<ChainState>,
    /// Per chain: the chips that answered enumeration, once it ran.
    pub chips_found: Vec<Option<usize>>,
    /// Per chain: the clock its chips were set to, in MHz (none asleep or before bring-up).
    pub chain_mhz: Vec<Option<f64>>,
    /// What the device draws now, where it knows (an emulated machine: its power model).
    pub power_w: Option<f64>,
}

/// What a device lets the miner do about its power.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PowerControl {
    /// Nothing: hashforge can neither cut its power nor set its clock and voltage (a real
    /// board on a serial port).
    None,
    /// Sleep and wake, no power target: its draw is unknown (CPU threads).
    SleepOnly,
    /// Sleep, wake, and the clock and voltage a power target plans with this model
    /// (emulated machines).
    Model(PowerModel),
}

/// A nonce a chip found.
#[derive(Clone, Debug)]
pub struct FoundNonce {
    pub device: usize,
    pub chain: usize,
    /// The chip's position on its chain.
    pub chip: usize,
    pub unit: Arc<WorkUnit>,
    /// The full nVersion the chip hashed.
    pub version: u32,
    pub nonce: u32,
    /// The difficulty the device was asked to report at.
    pub ticket_difficulty: Difficulty,
}

/// What a running device is given.
#[derive(Clone, Debug)]
pub struct DeviceContext {
    pub index: usize,
    pub feed: Arc<WorkFeed>,
    pub nonces: mpsc::Sender<FoundNonce>,
}

/// A device could not be started.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("device {device}: {why}")]
    Failed { device: String, why: String },
}

/// Hardware that hashes work units.
pub trait Device: Send + Sync {
    fn info(&self) -> DeviceInfo;
    /// Starts hashing: take units from `ctx.feed`, send nonces to `ctx.nonces`.
    fn start(&mut self, ctx: DeviceContext) -> Result<(), DeviceError>;
    /// Current temperatures, fans and counters.
    fn telemetry(&self) -> Telemetry;
    /// Stops and waits for the device's threads (the feed is shut down first).
    fn stop(&mut self);
    /// Injects `fault` while the device runs (a chip dies, a fan stops): emulated machines
    /// only, for tests and demos of what a farm meets; every other device refuses.
    /// `chain`: that chain of the device only (else every chain the fault concerns).
    fn inject(&self, _chain: Option<usize>, fault: hashforge_asic::Fault) -> Result<(), String> {
        Err(format!(
            "{} is not an emulated machine: faults go into emulated machines only (not {fault})",
            self.info().name
        ))
    }
    /// What the miner may do about the device's power.
    fn power_control(&self) -> PowerControl {
        PowerControl::None
    }
    /// Whether the device has done what the last [`Device::set_power`] asked (its chains at
    /// the clock, its supply on or off), so that what it reports now is the new state.
    fn power_settled(&self) -> bool {
        true
    }
    /// Puts the device to sleep (no hashing, idle power) or has it hash, at `point` where
    /// it has a power model (`None`: where it was); see [`PowerControl`].
    fn set_power(&self, sleeping: bool, point: Option<OperatingPoint>) -> Result<(), String> {
        let _ = (sleeping, point);
        Err(format!(
            "{} has no power control: hashforge cannot cut its power or set its clock",
            self.info().name
        ))
    }
}

/// Builds the device a spec names; `faults` apply to emulated machines.
pub fn open(
    spec: &DeviceSpec,
    faults: &[hashforge_asic::Fault],
) -> Result<Box<dyn Device>, DeviceError> {
    match spec {
        DeviceSpec::Cpu { threads } => Ok(Box::new(CpuDevice::new(
            threads.unwrap_or_else(default_threads),
        ))),
        DeviceSpec::Emulated { profile } => Ok(Box::new(crate::chain::ChainDevice::emulated(
            profile,
            faults.to_vec(),
        )?)),
        DeviceSpec::Serial { path, chip } => {
            Ok(Box::new(crate::chain::ChainDevice::serial(path, chip)?))
        }
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Nonces per scan piece: a thread looks for new work between pieces (with 16 versions
/// per vector, about 0.4 s of one AVX-512 core; nonces are reported at the end of a piece).
const NONCES_PER_BLOCK: u64 = 1 << 20;
/// Versions per scan piece when rolling: one AVX-512 vector's worth.
const VERSIONS_PER_BLOCK: u64 = 16;

/// The `sha256d` scanner on N threads; each thread is a "chip" of one chain.
pub struct CpuDevice {
    threads: usize,
    scanner: Scanner,
    ticket: Difficulty,
    hashes: Arc<AtomicU64>,
    /// Asleep: the threads take no work (they notice between scan pieces).
    asleep: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
}

impl CpuDevice {
    pub fn new(threads: usize) -> CpuDevice {
        let threads = threads.max(1);
        let scanner = Scanner::detect();
        // About 5 nonces per second per thread at AVX-512 speed: enough for a 5 s rate.
        let ticket = Difficulty::new(1.0 / 512.0).expect("positive");
        CpuDevice {
            threads,
            scanner,
            ticket,
            hashes: Arc::new(AtomicU64::new(0)),
            asleep: Arc::default(),
            handles: Vec::new(),
        }
    }

    /// Reports nonces at `ticket` (or at the pool's difficulty, if easier).
    pub fn with_ticket_difficulty(mut self, ticket: Difficulty) -> CpuDevice {
        self.ticket = ticket;
        self
    }
}

impl Device for CpuDevice {
    fn info(&self) -> DeviceInfo {
        // What this CPU measured for the backend at start-up, not a figure from another CPU.
        let per_thread = hashforge_sha256d::calibration()
            .rate_of(self.scanner.backend())
            .unwrap_or(0.0);
        let rate = HashRate::from_hs(per_thread * self.threads as f64);
        DeviceInfo {
            kind: "cpu",
            name: format!("cpu ({}, {} threads)", self.scanner.backend(), self.threads),
            model: "Antminer S9 (hashforge cpu)".into(),
            chains: vec![self.threads],
            ticket_difficulty: self.ticket,
            nominal_rate: rate,
            expected_rate: rate,
        }
    }

    fn start(&mut self, ctx: DeviceContext) -> Result<(), DeviceError> {
        for chip in 0..self.threads {
            let worker = ctx.feed.add_worker();
            let ctx = ctx.clone();
            let scanner = self.scanner;
            let ticket = self.ticket;
            let hashes = Arc::clone(&self.hashes);
            let asleep = Arc::clone(&self.asleep);
            let handle = std::thread::Builder::new()
                .name(format!("cpu-{}-{chip}", ctx.index))
                .spawn(move || cpu_thread(ctx, worker, chip, scanner, ticket, &hashes, &asleep))
                .map_err(|e| DeviceError::Failed {
                    device: "cpu".into(),
                    why: format!("cannot start a thread: {e}"),
                })?;
            self.handles.push(handle);
        }
        Ok(())
    }

    fn telemetry(&self) -> Telemetry {
        Telemetry {
            board_temps: vec![None],
            chip_temps: vec![cpu_temperature()],
            fans: Vec::new(),
            hashes: Some(self.hashes.load(Ordering::Relaxed)),
            // The threads are the chips: all there once started.
            chain_states: vec![if self.handles.is_empty() {
                ChainState::Starting
            } else {
                ChainState::Running
            }],
            chips_found: vec![Some(self.threads)],
            chain_mhz: vec![None],
            power_w: None,
        }
    }

    /// Its threads can stop and start; with no power model (what a CPU draws is not known
    /// here) it takes no power target.
    fn power_control(&self) -> PowerControl {
        PowerControl::SleepOnly
    }

    fn set_power(&self, sleeping: bool, point: Option<OperatingPoint>) -> Result<(), String> {
        if point.is_some() {
            return Err(format!(
                "{} has no power model: it takes no clock or voltage",
                self.info().name
            ));
        }
        self.asleep.store(sleeping, Ordering::Relaxed);
        Ok(())
    }

    fn stop(&mut self) {
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// The CPU's temperature where Linux exposes one (a control board's SoC does).
fn cpu_temperature() -> Option<Celsius> {
    let text = std::fs::read_to_string("/sys/class/thermal/thermal_zone0/temp").ok()?;
    let milli: f64 = text.trim().parse().ok()?;
    Some(Celsius(milli / 1000.0))
}

fn cpu_thread(
    ctx: DeviceContext,
    worker: usize,
    chip: usize,
    scanner: Scanner,
    ticket: Difficulty,
    hashes: &AtomicU64,
    asleep: &AtomicBool,
) {
    loop {
        if asleep.load(Ordering::Relaxed) {
            if ctx.feed.is_shutdown() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let Some((unit, control)) = ctx.feed.next_unit(worker, Duration::from_millis(100)) else {
            if ctx.feed.is_shutdown() {
                return;
            }
            // No pool to mine on right now: wait for one.
            continue;
        };
        let ticket = if unit.share_difficulty.as_f64() < ticket.as_f64() {
            unit.share_difficulty
        } else {
            ticket
        };
        let mask = unit.job.version_mask;
        let (version_space, versions_per_block) = if mask == 0 {
            (1u64, 1u64)
        } else {
            (
                1u64 << mask.count_ones(),
                VERSIONS_PER_BLOCK.min(1 << mask.count_ones()),
            )
        };
        let nonce_blocks = (1u64 << 32) / NONCES_PER_BLOCK;
        let blocks = (version_space / versions_per_block) * nonce_blocks;
        let target = ticket.to_target();
        let mut done_before = 0;
        'unit: for block in 0..blocks {
            let v_start = (block / nonce_blocks) * versions_per_block;
            let n_start = (block % nonce_blocks) * NONCES_PER_BLOCK;
            let work = Work::new(unit.header, target)
                .with_nonces(n_start as u32, NONCES_PER_BLOCK)
                .and_then(|w| {
                    if mask == 0 {
                        Ok(w)
                    } else {
                        w.with_versions(mask, v_start as u32, versions_per_block)
                    }
                });
            let Ok(work) = work else { break };
            let hits = scanner.scan_pieces(&work, &control);
            let done = control.hashes();
            hashes.fetch_add(done - done_before, Ordering::Relaxed);
            done_before = done;
            if control.is_stopped() {
                // Abandoned (clean job, pool switch): its nonces are for work nobody wants.
                break 'unit;
            }
            for hit in hits {
                let nonce = FoundNonce {
                    device: ctx.index,
                    chain: 0,
                    chip,
                    unit: Arc::clone(&unit),
                    version: hit.version,
                    nonce: hit.nonce,
                    ticket_difficulty: ticket,
                };
                if ctx.nonces.blocking_send(nonce).is_err() {
                    return;
                }
            }
            if ctx.feed.generation() != unit.generation || asleep.load(Ordering::Relaxed) {
                break 'unit;
            }
        }
    }
}
