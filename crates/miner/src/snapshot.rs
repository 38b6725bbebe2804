//! The read model: what the miner knows at one moment ([`Snapshot`], the REST API's JSON),
//! and the neutral [`MinerStatus`] every fleet contract (the cgminer API, the Antminer web
//! CGI) renders from it. Only what the miner knows goes in: a chain reports the chips that
//! answered and its real state, a chip that went quiet or returns bad nonces is marked,
//! an unknown temperature is left out.

use std::time::{SystemTime, UNIX_EPOCH};

use hashforge_core::{Celsius, Difficulty, HashRate};
use hashforge_minerapi::{
    ChainState, ChainStatus, ChipHealth, Identity, MinerStatus, PoolState, PoolStatus, Shares,
};
use serde::Serialize;

use crate::device::DeviceInfo;
use crate::miner::Shared;
use crate::stats::{ChipStats, RateWindow, ShareCounts};

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Hash rates from found difficulty over the usual windows (JSON: H/s, as `h_5s` ...).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Rates {
    #[serde(rename = "h_5s", serialize_with = "crate::device::ser_rate")]
    pub last_5s: HashRate,
    #[serde(rename = "h_1m", serialize_with = "crate::device::ser_rate")]
    pub last_1m: HashRate,
    #[serde(rename = "h_15m", serialize_with = "crate::device::ser_rate")]
    pub last_15m: HashRate,
    /// Since the start.
    #[serde(rename = "h_avg", serialize_with = "crate::device::ser_rate")]
    pub average: HashRate,
}

impl Rates {
    fn of(w: &RateWindow, elapsed: f64) -> Rates {
        Rates {
            last_5s: w.rate(elapsed, 5),
            last_1m: w.rate(elapsed, 60),
            last_15m: w.rate(elapsed, 900),
            average: w.average(elapsed),
        }
    }
}

/// Everything the miner knows at one moment (the REST API's JSON).
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    pub version: &'static str,
    pub model: String,
    pub elapsed_secs: f64,
    pub started_unix: u64,
    /// Hash rates from found difficulty.
    pub hashrate: Rates,
    pub found_difficulty: f64,
    /// Every pool's shares together (the pools removed since the start included).
    pub shares: ShareCounts,
    pub hardware_errors: u64,
    pub best_share: f64,
    pub found_blocks: u64,
    pub pool_switches: u64,
    /// Index into `pools` of the pool being mined on.
    pub active_pool: Option<usize>,
    /// What the machine draws now, in W, where every device says (emulated machines, from
    /// their power model); moves with the hash rate.
    pub power_w: Option<f64>,
    /// The power target in force, in W.
    pub power_limit_w: Option<f64>,
    /// Asleep on an operator's word: no device hashes.
    pub sleeping: bool,
    pub pools: Vec<PoolSnapshot>,
    pub devices: Vec<DeviceSnapshot>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PoolSnapshot {
    pub index: usize,
    pub url: String,
    pub user: String,
    /// `Alive`, `Dead` or `Disabled` (cgminer's words).
    pub status: &'static str,
    pub active: bool,
    pub enabled: bool,
    pub difficulty: f64,
    /// The network difficulty of the pool's current job (its nBits); below 1 on a test
    /// chain such as regtest, where every share is also a block.
    pub network_difficulty: Option<Difficulty>,
    pub jobs: u64,
    pub shares: ShareCounts,
    pub best_share: f64,
    pub last_share_time: u64,
    pub last_share_difficulty: f64,
    pub bad_input: u64,
    pub disconnects: u64,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ChainSnapshot {
    pub index: usize,
    #[serde(flatten)]
    pub state: ChainState,
    /// Chips the chain should have.
    pub expected_chips: usize,
    /// Chips that answered enumeration, once it ran.
    pub chips_found: Option<usize>,
    pub hashrate: Rates,
    pub hardware_errors: u64,
    /// The board's PCB sensor, where it has one.
    pub board_temp: Option<Celsius>,
    /// The hottest chip, where chips report temperatures.
    pub chip_temp: Option<Celsius>,
    /// The clock its chips were set to, where the chain has one (not asleep).
    pub frequency_mhz: Option<f64>,
    /// Per position, all the chain should have.
    pub chips: Vec<ChipStats>,
    /// Per position of the chips that answered: good, bad or silent.
    pub chip_health: Vec<ChipHealth>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DeviceSnapshot {
    pub index: usize,
    pub info: DeviceInfo,
    pub hashrate: Rates,
    /// Hashes counted by the device itself, when it can.
    pub hashes: Option<u64>,
    pub hardware_errors: u64,
    pub shares: ShareCounts,
    pub best_share: f64,
    pub fans_rpm: Vec<u32>,
    /// What the device draws now, in W, where it says.
    pub power_w: Option<f64>,
    pub chains: Vec<ChainSnapshot>,
}

impl Snapshot {
    pub(crate) fn of(shared: &Shared) -> Snapshot {
        let elapsed = shared.elapsed();
        let st = shared.lock();
        let active_pool = st
            .active
            .and_then(|id| st.pools.iter().position(|p| p.id == id));
        let pools = st
            .pools
            .iter()
            .enumerate()
            .map(|(index, p)| PoolSnapshot {
                index,
                url: p.config.url.to_string(),
                user: p.config.user.clone(),
                status: if !p.enabled {
                    "Disabled"
                } else if p.ready_since.is_some() {
                    "Alive"
                } else {
                    "Dead"
                },
                active: Some(index) == active_pool,
                enabled: p.enabled,
                difficulty: p.difficulty,
                network_difficulty: p
                    .last_job
                    .as_ref()
                    .and_then(|(job, _, _)| job.parts.nbits.to_target().ok())
                    .map(|t| t.difficulty()),
                jobs: p.jobs,
                shares: p.shares.clone(),
                best_share: p.best_share,
                last_share_time: p.last_share_time,
                last_share_difficulty: p.last_share_difficulty,
                bad_input: p.bad_input,
                disconnects: p.disconnects,
                last_error: p.last_error.clone(),
            })
            .collect();
        let devices = st
            .devices
            .iter()
            .enumerate()
            .map(|(index, d)| {
                let t = st.telemetry.get(index).cloned().unwrap_or_default();
                DeviceSnapshot {
                    index,
                    info: shared.devices[index].clone(),
                    hashrate: Rates::of(&d.window, elapsed),
                    hashes: t.hashes,
                    hardware_errors: d.hardware_errors,
                    shares: d.shares.clone(),
                    best_share: d.best_share,
                    fans_rpm: t.fans.iter().map(|f| f.0).collect(),
                    power_w: t.power_w,
                    chains: d
                        .chips
                        .iter()
                        .enumerate()
                        .map(|(c, chips)| {
                            let state = t
                                .chain_states
                                .get(c)
                                .cloned()
                                .unwrap_or(ChainState::Starting);
                            let chips_found = t.chips_found.get(c).copied().flatten();
                            ChainSnapshot {
                                index: c,
                                chip_health: chip_health(
                                    &state,
                                    chips_found,
                                    chips,
                                    d.chain_nonces.get(c).copied().unwrap_or(0),
                                ),
                                state,
                                expected_chips: chips.len(),
                                chips_found,
                                hashrate: Rates::of(&d.chain_windows[c], elapsed),
                                hardware_errors: d.chain_hardware_errors[c],
                                board_temp: t.board_temps.get(c).copied().flatten(),
                                chip_temp: t.chip_temps.get(c).copied().flatten(),
                                frequency_mhz: t.chain_mhz.get(c).copied().flatten(),
                                chips: chips.clone(),
                            }
                        })
                        .collect(),
                }
            })
            .collect::<Vec<DeviceSnapshot>>();
        let power_w = if devices.is_empty() {
            None
        } else {
            devices.iter().map(|d| d.power_w).sum::<Option<f64>>()
        };
        Snapshot {
            version: env!("CARGO_PKG_VERSION"),
            model: shared.model.clone(),
            elapsed_secs: elapsed,
            started_unix: shared.started_unix,
            hashrate: Rates::of(&st.window, elapsed),
            found_difficulty: st.window.total(),
            shares: st.totals.clone(),
            hardware_errors: st.hardware_errors,
            best_share: st.best_share,
            found_blocks: st.found_blocks,
            pool_switches: st.pool_switches,
            active_pool,
            power_w,
            power_limit_w: st.power.limit_w,
            sleeping: st.power.sleeping,
            pools,
            devices,
        }
    }

    /// cgminer's console line.
    pub fn status_line(&self) -> String {
        let pool = match self.active_pool {
            Some(i) => format!(
                "pool {i} {} diff {}",
                self.pools[i].url,
                short_difficulty(self.pools[i].difficulty)
            ),
            None => "no pool".to_string(),
        };
        format!(
            "(5s):{} (1m):{} (15m):{} (avg):{} | A:{} R:{} S:{} HW:{} | best {} | {pool}",
            self.hashrate.last_5s,
            self.hashrate.last_1m,
            self.hashrate.last_15m,
            self.hashrate.average,
            self.shares.accepted,
            self.shares.rejected,
            self.shares.stale,
            self.hardware_errors,
            short_difficulty(self.best_share),
        )
    }
}

/// A difficulty the miner keeps as a plain number (0 before the first share), in the short
/// form people read (`65.5K`).
pub(crate) fn short_difficulty(d: f64) -> String {
    Difficulty::new(d).map_or_else(|_| "-".to_string(), |d| d.short().to_string())
}

/// The health of each chip that answered, judged against its share of the chain's nonces
/// (only a running chain's silence means anything).
fn chip_health(
    state: &ChainState,
    found: Option<usize>,
    chips: &[ChipStats],
    chain_nonces: u64,
) -> Vec<ChipHealth> {
    let found = found.unwrap_or(0).min(chips.len());
    // A chain that is not running says nothing about silence, only about bad nonces.
    let chain_nonces = if *state == ChainState::Running {
        chain_nonces
    } else {
        0
    };
    chips[..found]
        .iter()
        .map(|c| c.health(chain_nonces, found))
        .collect()
}

/// This machine's name and MAC address, as a fleet tool would want them: the kernel's
/// hostname and the first network interface's address (loopback and virtual ones aside).
pub(crate) fn host_identity(model: &str, serial: Option<String>) -> Identity {
    let (make, model) = hashforge_minerapi::bmminer::make_and_model(model);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty());
    let mac = std::fs::read_dir("/sys/class/net").ok().and_then(|dir| {
        let mut names: Vec<String> = dir
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n != "lo")
            .collect();
        names.sort();
        names.into_iter().find_map(|n| {
            let mac = std::fs::read_to_string(format!("/sys/class/net/{n}/address")).ok()?;
            let mac = mac.trim().to_ascii_lowercase();
            (mac.len() == 17 && mac != "00:00:00:00:00:00").then_some(mac)
        })
    });
    Identity {
        make,
        model,
        firmware: format!("hashforge {}", env!("CARGO_PKG_VERSION")),
        serial,
        mac,
        hostname,
    }
}

fn shares_of(c: &ShareCounts) -> Shares {
    Shares {
        accepted: c.accepted,
        rejected: c.rejected,
        stale: c.stale,
        lost: c.lost,
        accepted_difficulty: c.accepted_difficulty.as_f64(),
        rejected_difficulty: c.rejected_difficulty.as_f64(),
        stale_difficulty: c.stale_difficulty.as_f64(),
    }
}

fn rates_of(r: &Rates) -> hashforge_minerapi::Rates {
    hashforge_minerapi::Rates {
        last_5s: r.last_5s,
        last_1m: Some(r.last_1m),
        last_15m: Some(r.last_15m),
        average: Some(r.average),
    }
}

impl Snapshot {
    /// The neutral status every fleet contract renders, at unix second `when`. Chains are
    /// numbered across devices in device order.
    pub fn status(&self, identity: &Identity, when: u64) -> MinerStatus {
        let mut chains = Vec::new();
        let mut ideal = HashRate::ZERO;
        for d in &self.devices {
            let per_chain = d.info.nominal_rate.as_hs() / d.chains.len().max(1) as f64;
            ideal = HashRate::from_hs(ideal.as_hs() + d.info.nominal_rate.as_hs());
            for c in &d.chains {
                chains.push(ChainStatus {
                    index: chains.len(),
                    state: c.state.clone(),
                    expected_chips: Some(c.expected_chips),
                    chips: c.chip_health.clone(),
                    hashrate: rates_of(&c.hashrate),
                    ideal: Some(HashRate::from_hs(per_chain)),
                    hardware_errors: c.hardware_errors,
                    board_temp: c.board_temp,
                    chip_temp: c.chip_temp,
                    serial: None,
                    frequency_mhz: c.frequency_mhz,
                });
            }
        }
        let pools = self
            .pools
            .iter()
            .map(|p| PoolStatus {
                index: p.index,
                url: p.url.clone(),
                user: p.user.clone(),
                state: match p.status {
                    "Alive" => PoolState::Alive,
                    "Disabled" => PoolState::Disabled,
                    _ => PoolState::Dead,
                },
                active: p.active,
                shares: shares_of(&p.shares),
                difficulty: (p.jobs > 0).then_some(p.difficulty),
                jobs: p.jobs,
                best_share: p.best_share,
                last_share_time: p.last_share_time,
                last_share_difficulty: p.last_share_difficulty,
                get_failures: p.disconnects,
                bad_work: p.bad_input,
            })
            .collect();
        let messages = self
            .devices
            .iter()
            .flat_map(|d| {
                d.chains.iter().filter_map(move |c| match &c.state {
                    ChainState::Failed(why) => {
                        Some(format!("{} chain {}: {why}", d.info.name, c.index))
                    }
                    _ => None,
                })
            })
            .chain(self.pools.iter().filter_map(|p| {
                p.last_error
                    .as_ref()
                    .map(|e| format!("pool {} {}: {e}", p.index, p.url))
            }))
            .collect();
        MinerStatus {
            identity: identity.clone(),
            when,
            uptime_secs: self.elapsed_secs as u64,
            hashrate: rates_of(&self.hashrate),
            ideal: Some(ideal),
            power_w: self.power_w,
            power_limit_w: self.power_limit_w,
            sleeping: Some(self.sleeping),
            shares: shares_of(&self.shares),
            diff1_work: self.found_difficulty,
            hardware_errors: self.hardware_errors,
            best_share: self.best_share,
            found_blocks: self.found_blocks,
            chains,
            fans_rpm: self
                .devices
                .iter()
                .flat_map(|d| d.fans_rpm.clone())
                .collect(),
            pools,
            messages,
        }
    }
}
