//! BM13xx chains as a miner device: emulated machines (the `asic` crate's hash-board
//! emulator on in-memory links) and real chains on a serial port, both driven by the `asic`
//! crate's chain driver, byte for byte.
//!
//! One tokio task per chain: enumerate, bring up, then feed it work units (a new header
//! every second, or at once when the job changes), map each returned job id back to its
//! unit, and hand every nonce to the miner, which re-hashes it (a wrong one is a hardware
//! error of that chip).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hashforge_asic::emulator::{EmulatedMachine, HashPool};
use hashforge_asic::profile::{EmulatedSpec, MachineProfile};
use hashforge_asic::shell::{open_serial, BringUp, Chain, Link};
use hashforge_asic::{ChainConfig, ChainEvent, ChipFamily, Fault};
use hashforge_core::HashRate;
use hashforge_minerapi::ChainState;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::device::{
    Celsius, Device, DeviceContext, DeviceError, DeviceInfo, FoundNonce, Telemetry,
};
use crate::feed::WorkUnit;

/// Emulated chips report at difficulty 2^-16 (an emulator-only register): at CPU speed
/// that is several hundred nonces a second, enough for any pool difficulty a CPU meets.
const EMULATOR_TICKET_SHIFT: u32 = 16;
/// A new header this often even without a new job (fresh ntime, and the chips never run
/// dry).
const JOB_INTERVAL: Duration = Duration::from_secs(1);
const HEALTH_INTERVAL: Duration = Duration::from_secs(2);

enum Source {
    Emulated {
        spec: EmulatedSpec,
        faults: Vec<Fault>,
    },
    Serial {
        path: String,
    },
}

/// A machine of BM13xx chains.
pub struct ChainDevice {
    source: Source,
    name: String,
    model: String,
    chains: Vec<usize>,
    /// Every chain's driver settings; the ticket and the nominal rate come from them.
    config: ChainConfig,
    nominal: HashRate,
    hash_pool: Option<HashPool>,
    machine: Arc<Mutex<Option<EmulatedMachine>>>,
    telemetry: Arc<Mutex<Telemetry>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl ChainDevice {
    /// An emulated machine (`s21pro`, `s21pro:0` for one board, ...) with `faults`.
    pub fn emulated(spec: &str, faults: Vec<Fault>) -> Result<ChainDevice, DeviceError> {
        let spec: EmulatedSpec = spec.parse().map_err(|e| DeviceError::Failed {
            device: format!("emulated:{spec}"),
            why: format!("{e}"),
        })?;
        let p: MachineProfile = spec.profile;
        let boards = spec.boards();
        Ok(ChainDevice {
            name: format!(
                "emulated {} ({} board(s) x {} {})",
                p.model,
                boards.len(),
                p.chips_per_board,
                p.chip.name()
            ),
            model: p.model.to_string(),
            chains: vec![p.chips_per_board; boards.len()],
            config: ChainConfig::emulated(&p, EMULATOR_TICKET_SHIFT),
            nominal: HashRate::from_ths(p.nominal_ths * boards.len() as f64 / p.boards as f64),
            source: Source::Emulated { spec, faults },
            hash_pool: None,
            machine: Arc::new(Mutex::new(None)),
            telemetry: Arc::default(),
            stop: Arc::default(),
            tasks: Vec::new(),
        })
    }

    /// A real chain of `chip` chips on a serial port (a Bitaxe-class board).
    pub fn serial(path: &str, chip: &str) -> Result<ChainDevice, DeviceError> {
        let family: ChipFamily = chip.parse().map_err(|e| DeviceError::Failed {
            device: format!("serial:{path}:{chip}"),
            why: format!("{e}"),
        })?;
        family.check_drivable().map_err(|why| DeviceError::Failed {
            device: format!("serial:{path}:{chip}"),
            why,
        })?;
        Ok(ChainDevice {
            name: format!("{} chain on {path}", family.name()),
            model: format!("hashforge {} board", family.name()),
            chains: vec![1],
            config: ChainConfig::new(family, 1),
            nominal: HashRate::from_hs(family.expected_hs(family.default_mhz())),
            source: Source::Serial {
                path: path.to_string(),
            },
            hash_pool: None,
            machine: Arc::new(Mutex::new(None)),
            telemetry: Arc::default(),
            stop: Arc::default(),
            tasks: Vec::new(),
        })
    }
}

impl Device for ChainDevice {
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            kind: match self.source {
                Source::Emulated { .. } => "emulated",
                Source::Serial { .. } => "serial",
            },
            name: self.name.clone(),
            model: self.model.clone(),
            chains: self.chains.clone(),
            ticket_difficulty: self.config.ticket(),
            nominal_rate: self.nominal,
        }
    }

    fn start(&mut self, ctx: DeviceContext) -> Result<(), DeviceError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| DeviceError::Failed {
            device: self.name.clone(),
            why: "chains run on the miner's tokio runtime".into(),
        })?;
        *self.telemetry.lock().unwrap_or_else(|p| p.into_inner()) = Telemetry {
            board_temps: vec![None; self.chains.len()],
            chip_temps: vec![None; self.chains.len()],
            fans: Vec::new(),
            hashes: None,
            chain_states: vec![ChainState::Starting; self.chains.len()],
            chips_found: vec![None; self.chains.len()],
        };
        match &self.source {
            Source::Emulated { spec, faults } => {
                let pool = HashPool::per_core();
                let boards = spec.boards();
                // The emulator spawns its board tasks on the miner's runtime.
                let (machine, links) = {
                    let _guard = runtime.enter();
                    EmulatedMachine::spawn(spec.profile, &boards, faults, &pool.handle())
                };
                *self.machine.lock().unwrap_or_else(|p| p.into_inner()) = Some(machine);
                self.hash_pool = Some(pool);
                for (i, link) in links.into_iter().enumerate() {
                    let task = run_chain(
                        Chain::new(link, self.config.clone()),
                        BringUp::EMULATED,
                        i,
                        ctx.clone(),
                        Arc::clone(&self.telemetry),
                        Arc::clone(&self.stop),
                    );
                    self.tasks.push(runtime.spawn(task));
                }
            }
            Source::Serial { path } => {
                let port = open_serial(path).map_err(|e| DeviceError::Failed {
                    device: self.name.clone(),
                    why: e.to_string(),
                })?;
                let task = run_chain(
                    Chain::new(port, self.config.clone()),
                    BringUp::REAL,
                    0,
                    ctx,
                    Arc::clone(&self.telemetry),
                    Arc::clone(&self.stop),
                );
                self.tasks.push(runtime.spawn(task));
            }
        }
        Ok(())
    }

    fn inject(&self, fault: Fault) -> Result<(), String> {
        let machine = self.machine.lock().unwrap_or_else(|p| p.into_inner());
        match (&self.source, machine.as_ref()) {
            (Source::Emulated { .. }, Some(m)) => {
                m.inject(fault);
                Ok(())
            }
            (Source::Emulated { .. }, None) => Err(format!("{} is not running", self.name)),
            (Source::Serial { .. }, _) => Err(format!(
                "{} is real hardware: faults go into emulated machines only",
                self.name
            )),
        }
    }

    fn telemetry(&self) -> Telemetry {
        let mut t = self
            .telemetry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(m) = self
            .machine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            t.hashes = Some(m.boards.iter().map(|b| b.hashes()).sum());
        }
        t
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks.drain(..) {
            t.abort();
        }
        self.machine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.hash_pool.take();
    }
}

async fn run_chain<L: Link>(
    mut chain: Chain<L>,
    timing: BringUp,
    index: usize,
    ctx: DeviceContext,
    telemetry: Arc<Mutex<Telemetry>>,
    stop: Arc<AtomicBool>,
) {
    let report = |state: ChainState, found: Option<usize>| {
        let mut t = telemetry.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = t.chain_states.get_mut(index) {
            *slot = state;
        }
        if let (Some(slot), Some(n)) = (t.chips_found.get_mut(index), found) {
            *slot = Some(n);
        }
    };
    let expected = chain.driver().config().expected_chips;
    let found = match chain.enumerate(&timing).await {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(chain = index, "enumeration failed: {e}");
            report(
                ChainState::Failed(format!("enumeration failed: {e}")),
                Some(0),
            );
            return;
        }
    };
    report(ChainState::Starting, Some(found.found));
    if found.found == 0 {
        tracing::error!(chain = index, "chain found none of its {expected} chips");
        report(
            ChainState::Failed(format!("found 0 of {expected} chips")),
            None,
        );
        return;
    }
    if found.found < expected {
        tracing::warn!(
            chain = index,
            "chain found only {} of {expected} chips (first missing: {:?})",
            found.found,
            found.first_missing
        );
    }
    if let Err(e) = chain.bring_up(&timing).await {
        tracing::error!(chain = index, "bring-up failed: {e}");
        report(ChainState::Failed(format!("bring-up failed: {e}")), None);
        return;
    }
    report(ChainState::Running, None);
    let worker = ctx.feed.add_worker();
    let mut units: HashMap<u8, Arc<WorkUnit>> = HashMap::new();
    let mut next_health = Instant::now() + HEALTH_INTERVAL;
    while !stop.load(Ordering::Relaxed) && !ctx.feed.is_shutdown() {
        let Some((unit, control)) = ctx.feed.next_unit(worker, Duration::ZERO) else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let job_id = match chain.send_job(&unit.header).await {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(chain = index, "link lost: {e}");
                report(ChainState::Failed(format!("link lost: {e}")), None);
                return;
            }
        };
        units.insert(job_id, Arc::clone(&unit));
        let until = Instant::now() + JOB_INTERVAL;
        while Instant::now() < until
            && !control.is_stopped()
            && ctx.feed.generation() == unit.generation
        {
            let deadline = (Instant::now() + Duration::from_millis(50)).min(until);
            let event = match chain.next_event(deadline).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(chain = index, "link: {e}");
                    report(ChainState::Failed(format!("link lost: {e}")), None);
                    return;
                }
            };
            let (chip, job, version, nonce) = match event {
                Some(ChainEvent::Nonce(f)) => (f.chip, f.job_id, f.version, f.nonce),
                // The driver found it wrong; the miner's own re-check counts it against the chip.
                Some(ChainEvent::HardwareError {
                    chip,
                    job_id,
                    nonce,
                }) => (
                    chip,
                    job_id,
                    units.get(&job_id).map_or(0, |u| u.job.parts.version),
                    nonce,
                ),
                _ => continue,
            };
            let Some(unit) = units.get(&job).cloned() else {
                continue;
            };
            let found = FoundNonce {
                device: ctx.index,
                chain: index,
                chip,
                unit,
                version,
                nonce,
                ticket_difficulty: chain.driver().config().ticket(),
            };
            if ctx.nonces.send(found).await.is_err() {
                return;
            }
        }
        if Instant::now() >= next_health {
            next_health = Instant::now() + HEALTH_INTERVAL;
            let _ = chain.request_health().await;
            let temps: Vec<f64> = chain
                .driver()
                .chips()
                .iter()
                .filter_map(|c| c.temperature.map(|t| t.0))
                .collect();
            let hottest = temps
                .iter()
                .copied()
                .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.max(t))));
            let mut t = telemetry.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(slot) = t.chip_temps.get_mut(index) {
                *slot = hottest.map(Celsius);
            }
        }
    }
}
