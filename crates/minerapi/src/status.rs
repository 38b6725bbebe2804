//! `MinerStatus`: what a miner says about itself, in one neutral shape every contract
//! renders from and reads into. A value the miner does not know is `None` (or an empty
//! list), never a zero that a fleet tool would take for a reading.

use hashforge_core::{Celsius, HashRate};
use serde::Serialize;

/// Who makes a machine, as fleet tools group them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Make {
    /// Bitmain (Antminer).
    Antminer,
    /// MicroBT (Whatsminer).
    Whatsminer,
    /// Canaan (Avalon).
    Avalon,
    /// Open hardware running ESP-Miner (AxeOS).
    Bitaxe,
    /// A make no contract names.
    Other(String),
}

impl std::fmt::Display for Make {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Make::Antminer => f.write_str("Antminer"),
            Make::Whatsminer => f.write_str("Whatsminer"),
            Make::Avalon => f.write_str("Avalon"),
            Make::Bitaxe => f.write_str("Bitaxe"),
            Make::Other(s) => f.write_str(s),
        }
    }
}

/// The machine and the firmware that answered.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Identity {
    pub make: Make,
    /// The model as its maker names it, without the make: `S21 Pro`, `M60S`, `Gamma`.
    pub model: String,
    /// The firmware's name and version as it reports them: `hashforge 0.1.0`,
    /// `Thu Oct 10 11:43:12 CST 2024`, `v2.4.1`.
    pub firmware: String,
    pub serial: Option<String>,
    /// `aa:bb:cc:dd:ee:ff`, lower case.
    pub mac: Option<String>,
    pub hostname: Option<String>,
}

/// Hash rates over the windows a miner keeps. The 5-second rate is the one every
/// contract has; the others only where the miner reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Rates {
    #[serde(rename = "last_5s_hs")]
    pub last_5s: HashRate,
    #[serde(rename = "last_1m_hs")]
    pub last_1m: Option<HashRate>,
    #[serde(rename = "last_15m_hs")]
    pub last_15m: Option<HashRate>,
    /// Since the miner started.
    #[serde(rename = "average_hs")]
    pub average: Option<HashRate>,
}

/// Share counts, the cgminer way: counts and summed share difficulty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Shares {
    pub accepted: u64,
    pub rejected: u64,
    /// Found for a job the pool had already replaced: never sent.
    pub stale: u64,
    /// Sent and never answered.
    pub lost: u64,
    pub accepted_difficulty: f64,
    pub rejected_difficulty: f64,
    pub stale_difficulty: f64,
}

impl Shares {
    /// Difficulty sent or found in all: accepted, rejected and stale.
    pub fn difficulty_total(&self) -> f64 {
        self.accepted_difficulty + self.rejected_difficulty + self.stale_difficulty
    }
}

/// How a chip on a chain is doing, by position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChipHealth {
    /// Answers and returns good nonces.
    Ok,
    /// Returns nonces that do not hash to its ticket.
    Bad,
    /// Answered at start-up but has returned no nonce for far longer than its share of the
    /// chain's rate allows.
    Silent,
}

impl ChipHealth {
    pub fn is_ok(self) -> bool {
        self == ChipHealth::Ok
    }
}

/// Whether a chain hashes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
pub enum ChainState {
    /// Being enumerated and brought up.
    Starting,
    /// Enumerated and brought up: hashing with the chips it found.
    Running,
    /// Did not come up, or stopped: why, in the miner's words.
    Failed(String),
}

/// One hash board (a chain of chips).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChainStatus {
    /// From 0, in the miner's order.
    pub index: usize,
    #[serde(flatten)]
    pub state: ChainState,
    /// Chips the board should have, where the miner (or the model's table) says.
    pub expected_chips: Option<usize>,
    /// The chips that answered, by position from 0 (a chain stops answering at its first
    /// broken chip, so these are positions `0..chips.len()`).
    pub chips: Vec<ChipHealth>,
    pub hashrate: Rates,
    /// What the board should do.
    #[serde(rename = "ideal_hs")]
    pub ideal: Option<HashRate>,
    pub hardware_errors: u64,
    /// The board's PCB sensor.
    pub board_temp: Option<Celsius>,
    /// The hottest chip.
    pub chip_temp: Option<Celsius>,
    pub serial: Option<String>,
    pub frequency_mhz: Option<f64>,
}

impl ChainStatus {
    pub fn chips_found(&self) -> usize {
        self.chips.len()
    }

    /// Positions of chips that answered but are bad or silent.
    pub fn bad_positions(&self) -> Vec<usize> {
        self.chips
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.is_ok())
            .map(|(i, _)| i)
            .collect()
    }
}

/// A pool's connection state as fleet tools read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolState {
    Alive,
    Dead,
    Disabled,
}

/// One configured pool.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PoolStatus {
    /// Priority order, from 0.
    pub index: usize,
    pub url: String,
    pub user: String,
    pub state: PoolState,
    /// The pool the miner hashes for now.
    pub active: bool,
    pub shares: Shares,
    /// The share difficulty the pool set, once it set one.
    pub difficulty: Option<f64>,
    pub jobs: u64,
    pub best_share: f64,
    /// Unix seconds of the last share sent, 0 for none.
    pub last_share_time: u64,
    pub last_share_difficulty: f64,
    /// Connection attempts that failed or connections that dropped.
    pub get_failures: u64,
    /// Lines from the pool that made no sense.
    pub bad_work: u64,
}

/// Everything a miner reports about itself at one moment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MinerStatus {
    pub identity: Identity,
    /// Unix seconds of this status (the `When` of cgminer replies).
    pub when: u64,
    pub uptime_secs: u64,
    pub hashrate: Rates,
    /// What the machine should do: its boards' ideal rates summed.
    #[serde(rename = "ideal_hs")]
    pub ideal: Option<HashRate>,
    /// Wall power, where the machine measures or estimates it.
    pub power_w: Option<f64>,
    /// The power target in force, in W (curtailment): `None` when the machine has none or
    /// does not say.
    pub power_limit_w: Option<f64>,
    /// Whether the machine sleeps (hashes nothing, at idle power, on an operator's or a
    /// price signal's word); `None` when it does not say.
    pub sleeping: Option<bool>,
    pub shares: Shares,
    /// Difficulty-1 work found since the start (cgminer's `Diff1 Work`).
    pub diff1_work: f64,
    pub hardware_errors: u64,
    pub best_share: f64,
    pub found_blocks: u64,
    pub chains: Vec<ChainStatus>,
    /// Fan speeds in RPM, by position; a stopped fan reads 0.
    pub fans_rpm: Vec<u32>,
    pub pools: Vec<PoolStatus>,
    /// Errors and warnings the miner shows its operator, newest last.
    pub messages: Vec<String>,
}

impl MinerStatus {
    /// The pool the miner hashes for now.
    pub fn active_pool(&self) -> Option<&PoolStatus> {
        self.pools.iter().find(|p| p.active)
    }

    pub fn chips_found(&self) -> usize {
        self.chains.iter().map(ChainStatus::chips_found).sum()
    }

    /// Chips the boards should have, where every board says.
    pub fn chips_expected(&self) -> Option<usize> {
        self.chains.iter().map(|c| c.expected_chips).sum()
    }

    /// The hottest chip or board reading, if any.
    pub fn hottest(&self) -> Option<Celsius> {
        self.chains
            .iter()
            .flat_map(|c| [c.chip_temp, c.board_temp])
            .flatten()
            .fold(None, |m: Option<Celsius>, t| match m {
                Some(m) if m.0 >= t.0 => Some(m),
                _ => Some(t),
            })
    }
}
