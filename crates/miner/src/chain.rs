//! BM13xx chains as a miner device: emulated machines (the `asic` crate's hash-board
//! emulator on in-memory links) and real chains on a serial port, both driven by the `asic`
//! crate's chain driver, byte for byte.
//!
//! One tokio task per chain: enumerate, bring up, then feed it work units (a new header
//! every second, or at once when the job changes), map each returned job id back to its
//! unit, and hand every nonce to the miner, which re-hashes it (a wrong one is a hardware
//! error of that chip).
//!
//! Power (emulated machines): the device sets the machine's supply voltage (the PSU and
//! PIC a control board drives) and tells each chain task the clock to run at, which the
//! task ramps to with PLL writes through the driver. Asleep, the supply is off and the tasks
//! send no work; on waking they enumerate and bring their chains up again (the chips lost
//! their state with their power), at the clock in force.

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
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::device::{
    Celsius, Device, DeviceContext, DeviceError, DeviceInfo, FoundNonce, OperatingPoint,
    PowerControl, PowerModel, Telemetry,
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

/// What every chain task of a device should run at.
#[derive(Clone, Copy, Debug, PartialEq)]
struct ChainPower {
    /// The clock, in MHz.
    mhz: f64,
    /// No work, supply off.
    sleeping: bool,
    /// Times the supply was cut: a chain that missed a sleep as short as its look at the
    /// setting still knows its chips lost their state.
    cuts: u64,
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
    power: watch::Sender<ChainPower>,
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
        let config = ChainConfig::emulated(&p, EMULATOR_TICKET_SHIFT);
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
            power: watch::Sender::new(ChainPower {
                mhz: config.frequency_mhz,
                sleeping: false,
                cuts: 0,
            }),
            config,
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
        let config = ChainConfig::new(family, 1);
        Ok(ChainDevice {
            name: format!("{} chain on {path}", family.name()),
            model: format!("hashforge {} board", family.name()),
            chains: vec![1],
            power: watch::Sender::new(ChainPower {
                mhz: config.frequency_mhz,
                sleeping: false,
                cuts: 0,
            }),
            config,
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
            expected_rate: match self.source {
                Source::Emulated { .. } => HashRate::from_hs(HashPool::per_core_rate()),
                Source::Serial { .. } => self.nominal,
            },
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
            chain_mhz: vec![None; self.chains.len()],
            power_w: None,
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
                        self.power.subscribe(),
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
                    self.power.subscribe(),
                );
                self.tasks.push(runtime.spawn(task));
            }
        }
        Ok(())
    }

    fn inject(&self, chain: Option<usize>, fault: Fault) -> Result<(), String> {
        let machine = self.machine.lock().unwrap_or_else(|p| p.into_inner());
        match (&self.source, machine.as_ref()) {
            (Source::Emulated { .. }, Some(m)) => match chain {
                None => {
                    m.inject(fault);
                    Ok(())
                }
                Some(c) => match m.boards.get(c) {
                    Some(b) => {
                        b.inject(fault);
                        Ok(())
                    }
                    None => Err(format!(
                        "{} has {} chain(s): no chain {c}",
                        self.name,
                        m.boards.len()
                    )),
                },
            },
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
            t.power_w = Some(m.power_watts());
        }
        t
    }

    fn power_control(&self) -> PowerControl {
        match &self.source {
            Source::Emulated { spec, .. } => PowerControl::Model(PowerModel {
                profile: spec.profile,
                boards: self.chains.len(),
            }),
            // Neither the supply nor the voltage of a serial board is ours to set.
            Source::Serial { .. } => PowerControl::None,
        }
    }

    /// Every board's supply on or off as asked, and every chain that is not failed asleep
    /// (no clock) or running at the clock asked.
    fn power_settled(&self) -> bool {
        let want = *self.power.borrow();
        let supply = self
            .machine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_none_or(|m| {
                m.boards
                    .iter()
                    .all(|b| (b.view().voltage_mv == 0) == want.sleeping)
            });
        let t = self.telemetry.lock().unwrap_or_else(|p| p.into_inner());
        let chains = t
            .chain_states
            .iter()
            .zip(&t.chain_mhz)
            .all(|(state, mhz)| match state {
                ChainState::Failed(_) => true,
                _ if want.sleeping => mhz.is_none(),
                ChainState::Running => mhz.is_some_and(|f| (f - want.mhz).abs() < 0.01),
                ChainState::Starting => false,
            });
        supply && chains
    }

    /// Asleep: the chain tasks stop sending work, then the supply goes off. Awake: the
    /// supply comes up at the point's voltage first, then the chains run at its clock
    /// (brought up again if they slept). The emulator does not model chips failing at
    /// too low a voltage, so the voltage and the clock are not stepped in the careful
    /// order real firmware needs.
    fn set_power(&self, sleeping: bool, point: Option<OperatingPoint>) -> Result<(), String> {
        let machine = self.machine.lock().unwrap_or_else(|p| p.into_inner());
        let m = match (&self.source, machine.as_ref()) {
            (Source::Emulated { .. }, Some(m)) => m,
            (Source::Emulated { .. }, None) => return Err(format!("{} is not running", self.name)),
            (Source::Serial { .. }, _) => {
                return Err(format!(
                    "{} is real hardware on a serial port: hashforge can neither cut its power nor set its voltage",
                    self.name
                ))
            }
        };
        let was = *self.power.borrow();
        let mhz = point.map_or(was.mhz, |p| p.mhz);
        if sleeping {
            self.power.send_replace(ChainPower {
                mhz,
                sleeping: true,
                cuts: was.cuts + u64::from(!was.sleeping),
            });
            m.set_voltage_mv(0);
        } else {
            let mv = point.map_or_else(|| m.profile.voltage_mv(mhz), |p| p.mv);
            m.set_voltage_mv(mv);
            self.power.send_replace(ChainPower {
                mhz,
                sleeping: false,
                cuts: was.cuts,
            });
        }
        Ok(())
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

/// Enumerates the chain and brings it up at `mhz`; false when it did not come up (said
/// through `report`).
async fn come_up<L: Link>(
    chain: &mut Chain<L>,
    timing: &BringUp,
    index: usize,
    mhz: f64,
    report: &impl Fn(ChainState, Option<usize>),
) -> bool {
    report(ChainState::Starting, None);
    let expected = chain.driver().config().expected_chips;
    let found = match chain.enumerate(timing).await {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(chain = index, "enumeration failed: {e}");
            report(
                ChainState::Failed(format!("enumeration failed: {e}")),
                Some(0),
            );
            return false;
        }
    };
    report(ChainState::Starting, Some(found.found));
    if found.found == 0 {
        tracing::error!(chain = index, "chain found none of its {expected} chips");
        report(
            ChainState::Failed(format!("found 0 of {expected} chips")),
            None,
        );
        return false;
    }
    if found.found < expected {
        tracing::warn!(
            chain = index,
            "chain found only {} of {expected} chips (first missing: {:?})",
            found.found,
            found.first_missing
        );
    }
    let brought_up = match chain.driver_mut().set_target_mhz(mhz) {
        Ok(_) => chain.bring_up(timing).await,
        Err(e) => Err(e.into()),
    };
    if let Err(e) = brought_up {
        tracing::error!(chain = index, "bring-up failed: {e}");
        report(ChainState::Failed(format!("bring-up failed: {e}")), None);
        return false;
    }
    report(ChainState::Running, None);
    true
}

async fn run_chain<L: Link>(
    mut chain: Chain<L>,
    timing: BringUp,
    index: usize,
    ctx: DeviceContext,
    telemetry: Arc<Mutex<Telemetry>>,
    stop: Arc<AtomicBool>,
    mut power: watch::Receiver<ChainPower>,
) {
    let update = |f: &dyn Fn(&mut Telemetry)| {
        f(&mut telemetry.lock().unwrap_or_else(|p| p.into_inner()));
    };
    let report = |state: ChainState, found: Option<usize>| {
        update(&|t| {
            if let Some(slot) = t.chain_states.get_mut(index) {
                *slot = state.clone();
            }
            if let (Some(slot), Some(n)) = (t.chips_found.get_mut(index), found) {
                *slot = Some(n);
            }
        })
    };
    let clock = |mhz: Option<f64>| {
        update(&|t| {
            if let Some(slot) = t.chain_mhz.get_mut(index) {
                *slot = mhz;
            }
        })
    };
    let mut setting = *power.borrow_and_update();
    if !come_up(&mut chain, &timing, index, setting.mhz, &report).await {
        return;
    }
    clock(chain.driver().clock_mhz());
    let worker = ctx.feed.add_worker();
    let mut units: HashMap<u8, Arc<WorkUnit>> = HashMap::new();
    let mut next_health = Instant::now() + HEALTH_INTERVAL;
    while !stop.load(Ordering::Relaxed) && !ctx.feed.is_shutdown() {
        let want = *power.borrow_and_update();
        if want != setting {
            if want.sleeping {
                // The supply is off: the chips forgot their jobs, their clock and their
                // temperature.
                units.clear();
                clock(None);
                update(&|t| {
                    if let Some(slot) = t.chip_temps.get_mut(index) {
                        *slot = None;
                    }
                });
            } else if setting.sleeping || want.cuts != setting.cuts {
                if !come_up(&mut chain, &timing, index, want.mhz, &report).await {
                    return;
                }
                clock(chain.driver().clock_mhz());
            } else if want.mhz != setting.mhz {
                let ramped = match chain.driver_mut().set_target_mhz(want.mhz) {
                    Ok(_) => chain.ramp_to_target(&timing).await,
                    Err(e) => Err(e.into()),
                };
                if let Err(e) = ramped {
                    tracing::error!(chain = index, "clock change failed: {e}");
                    report(
                        ChainState::Failed(format!("clock change failed: {e}")),
                        None,
                    );
                    return;
                }
                tracing::info!(chain = index, mhz = want.mhz, "clock changed");
                clock(chain.driver().clock_mhz());
            }
            setting = want;
        }
        if setting.sleeping {
            // Nothing to hash until the next setting (read at the top of the loop).
            match tokio::time::timeout(Duration::from_millis(200), power.changed()).await {
                Ok(Err(_)) => return,
                _ => continue,
            }
        }
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
            && !power.has_changed().unwrap_or(false)
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
            update(&|t| {
                if let Some(slot) = t.chip_temps.get_mut(index) {
                    *slot = hottest.map(Celsius);
                }
            });
        }
    }
}
