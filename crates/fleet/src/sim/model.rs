//! The simulated fleet's machines and their lives, without I/O: every answer a simulated
//! miner gives is [`SimFleet::status`] of the miner at a time, rendered through the same
//! `minerapi` functions a hashforge miner answers with. Seeded: the same seed gives the same
//! fleet, the same faults at the same times.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use hashforge_asic::MachineProfile;

pub use crate::client::Contract;
use hashforge_core::{Celsius, HashRate};
use hashforge_minerapi::{
    ChainState, ChainStatus, ChipHealth, Identity, Make, MinerStatus, PoolState, PoolStatus, Rates,
    Shares,
};

/// A make and model the simulator can be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    S21Pro,
    S21,
    T21,
    S19Xp,
    Bitaxe,
    /// An S21 Pro running hashforge's miner (open firmware, no default password).
    Hashforge,
    /// A MicroBT Whatsminer M60S on stock firmware (btminer, API V2).
    M60s,
    /// A Canaan Avalon A1246 on stock firmware.
    Avalon,
}

/// What a machine is built to do: the simulator's numbers for a kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Nameplate {
    /// The model as its firmware reports it, without the make.
    pub model: &'static str,
    pub boards: usize,
    pub chips_per_board: usize,
    pub fans: usize,
    pub nominal_ths: f64,
    pub nominal_watts: f64,
}

/// Whatsminer M60S, variant VK10: 3 boards of 215 chips and 2 fans (pyasic 0.79's and
/// asic-rs 0.8.6's tables for `M60SVK10`); 172 TH/s at 18.5 J/TH (MicroBT's nameplate).
pub const M60S: Nameplate = Nameplate {
    model: "M60S VK10",
    boards: 3,
    chips_per_board: 215,
    fans: 2,
    nominal_ths: 172.0,
    nominal_watts: 3182.0,
};

/// Avalon A1246 in its 90 TH/s bin (`MODEL` `1246-90`): 3 boards of 120 chips and 4 fans
/// (pyasic's and asic-rs's tables for the 1246); 90 TH/s at 38 J/TH (Canaan's nameplate).
pub const AVALON_1246: Nameplate = Nameplate {
    model: "1246-90",
    boards: 3,
    chips_per_board: 120,
    fans: 4,
    nominal_ths: 90.0,
    nominal_watts: 3420.0,
};

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::S21Pro,
        Kind::S21,
        Kind::T21,
        Kind::S19Xp,
        Kind::Bitaxe,
        Kind::Hashforge,
        Kind::M60s,
        Kind::Avalon,
    ];

    /// The name in `--mix`.
    pub fn key(self) -> &'static str {
        match self {
            Kind::S21Pro => "s21pro",
            Kind::S21 => "s21",
            Kind::T21 => "t21",
            Kind::S19Xp => "s19xp",
            Kind::Bitaxe => "bitaxe",
            Kind::Hashforge => "hashforge",
            Kind::M60s => "m60s",
            Kind::Avalon => "avalon",
        }
    }

    pub fn nameplate(self) -> Nameplate {
        let name = match self {
            Kind::S21Pro | Kind::Hashforge => "s21pro",
            Kind::S21 => "s21",
            Kind::T21 => "t21",
            Kind::S19Xp => "s19xp",
            Kind::Bitaxe => "bitaxe-gamma",
            Kind::M60s => return M60S,
            Kind::Avalon => return AVALON_1246,
        };
        let p: MachineProfile = name.parse().expect("every Bitmain kind has a profile");
        Nameplate {
            model: match self {
                Kind::Bitaxe => "Gamma",
                _ => p.model.trim_start_matches("Antminer "),
            },
            boards: p.boards,
            chips_per_board: p.chips_per_board,
            fans: if self == Kind::Bitaxe { 1 } else { 4 },
            nominal_ths: p.nominal_ths,
            nominal_watts: p.nominal_watts,
        }
    }

    pub fn contract(self) -> Contract {
        match self {
            Kind::Bitaxe => Contract::AxeOs,
            Kind::M60s => Contract::Btminer,
            Kind::Avalon => Contract::Avalon,
            _ => Contract::Bmminer,
        }
    }

    fn fans(self) -> usize {
        self.nameplate().fans
    }
}

/// `s21pro=60,s21=20,bitaxe=1`: kinds with weights.
pub fn parse_mix(text: &str) -> Result<Vec<(Kind, u32)>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = part
            .split_once('=')
            .ok_or_else(|| format!("--mix `{part}`: write KIND=WEIGHT (s21pro=60)"))?;
        let name = name.trim().to_ascii_lowercase();
        let weight: u32 = weight
            .trim()
            .parse()
            .map_err(|_| format!("--mix `{part}`: `{weight}` is not a whole number"))?;
        let kind = Kind::ALL
            .into_iter()
            .find(|k| k.key() == name)
            .ok_or_else(|| {
                format!(
                    "--mix `{part}`: unknown kind; expected one of {}",
                    kinds_list()
                )
            })?;
        if weight > 0 {
            out.push((kind, weight));
        }
    }
    if out.is_empty() {
        return Err("--mix names no kind with a weight above 0".into());
    }
    Ok(out)
}

fn kinds_list() -> String {
    Kind::ALL.map(Kind::key).join(", ")
}

/// A fault in a simulated miner's life.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SimFault {
    FanFails(u8),
    /// A chip stops returning nonces (it still answers enumeration).
    ChipDies {
        board: u8,
        chip: u16,
    },
    /// A board stops answering.
    BoardDrops(u8),
    /// The machine restarts: a minute offline, then warm-up again.
    Reboot,
    /// Someone changed the first pool behind the operator's back.
    PoolHijack,
}

#[derive(Clone, Copy, Debug)]
struct Event {
    at: f64,
    fault: SimFault,
}

/// How the fleet is made.
#[derive(Clone, Debug)]
pub struct FleetSpec {
    pub miners: u32,
    /// The first miner's address; the others follow.
    pub base: Ipv4Addr,
    pub mix: Vec<(Kind, u32)>,
    pub seed: u64,
    /// Faults across the whole fleet per hour.
    pub faults_per_hour: f64,
    /// The web password the farm set; a few machines keep the maker's (`root`).
    pub farm_password: String,
    /// The share of machines whose web password is still the maker's default.
    pub default_password_share: f64,
    /// The pools the farm configured, in priority order.
    pub pools: Vec<String>,
    /// Machines come up over this many seconds after the start.
    pub boot_spread_secs: f64,
    /// The write token the farm gave its hashforge miners (`api.write_token`).
    pub api_token: String,
    /// The simulation starts this many seconds into the machines' lives (0: they boot as
    /// it starts; benches start them warmed up).
    pub head_start_secs: f64,
}

impl FleetSpec {
    pub fn new(miners: u32, base: Ipv4Addr) -> FleetSpec {
        FleetSpec {
            miners,
            base,
            mix: parse_mix("s21pro=50,s21=15,t21=10,s19xp=5,m60s=15,avalon=2,bitaxe=1,hashforge=2")
                .expect("valid"),
            seed: 1,
            faults_per_hour: 60.0,
            farm_password: "farm".into(),
            default_password_share: 0.05,
            pools: vec![
                "stratum+tcp://pool.farm.example:3333".into(),
                "stratum+tcp://backup.farm.example:3333".into(),
            ],
            boot_spread_secs: 30.0,
            api_token: "farm-token".into(),
            head_start_secs: 0.0,
        }
    }
}

/// The URL a hijacked miner mines to.
pub const HIJACK_POOL: &str = "stratum+tcp://203.0.113.66:3333";
/// The web password stock Antminer firmware ships with.
pub const MAKER_DEFAULT_PASSWORD: &str = "root";
/// How long the simulated horizon of scheduled faults is.
const HORIZON_SECS: f64 = 7.0 * 24.0 * 3600.0;
const WARMUP_SECS: f64 = 120.0;
const REBOOT_DOWN_SECS: f64 = 60.0;

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A uniform number in [0, 1) from the inputs.
fn unit(seed: u64, a: u64, b: u64) -> f64 {
    (splitmix(seed ^ splitmix(a ^ splitmix(b))) >> 11) as f64 / (1u64 << 53) as f64
}

/// The simulated fleet.
#[derive(Debug)]
pub struct SimFleet {
    pub spec: FleetSpec,
    kinds: Vec<Kind>,
    /// Scheduled and injected faults, by miner, in time order.
    events: Mutex<HashMap<u32, Vec<Event>>>,
    /// Machines a curtailment put to sleep or under a power target.
    power: Mutex<HashMap<u32, SimPower>>,
}

/// A simulated machine's power as a curtailment left it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SimPower {
    pub sleep: bool,
    /// At or under this many watts (hashforge machines), asleep or not.
    pub target: Option<f64>,
}

/// The simulator's power model: static watts are 12% of the nameplate's, the rest goes as
/// the square of the hash rate's fraction (clock and voltage come down together); a machine
/// runs at a quarter of its rate at the least, and sleeps at 1.2% of its nameplate (control
/// board and fans).
pub fn sim_power(nominal_watts: f64, fraction: f64) -> f64 {
    nominal_watts * (0.12 + 0.88 * fraction * fraction)
}

/// The hash rate's fraction a machine holds under `target` watts (at least a quarter).
pub fn sim_fraction(nominal_watts: f64, target: f64) -> f64 {
    ((target / nominal_watts - 0.12).max(0.0) / 0.88)
        .sqrt()
        .clamp(0.25, 1.0)
}

/// Watts a sleeping machine draws, as a share of its nameplate.
pub const SLEEP_SHARE: f64 = 0.012;

impl SimFleet {
    pub fn new(spec: FleetSpec) -> SimFleet {
        let total: u32 = spec.mix.iter().map(|(_, w)| w).sum();
        let kinds = (0..spec.miners)
            .map(|i| {
                let mut pick = (unit(spec.seed, u64::from(i), 1) * f64::from(total)) as u32;
                for (k, w) in &spec.mix {
                    if pick < *w {
                        return *k;
                    }
                    pick -= w;
                }
                spec.mix[0].0
            })
            .collect();
        let fleet = SimFleet {
            spec,
            kinds,
            events: Mutex::new(HashMap::new()),
            power: Mutex::new(HashMap::new()),
        };
        fleet.schedule_faults();
        fleet
    }

    /// Draws the fleet's faults over the horizon: a Poisson process at `faults_per_hour`.
    fn schedule_faults(&self) {
        let rate = self.spec.faults_per_hour / 3600.0;
        if rate <= 0.0 || self.spec.miners == 0 {
            return;
        }
        let mut t = 0.0;
        let mut n = 0u64;
        let mut events = self.events.lock().expect("events");
        loop {
            let u = unit(self.spec.seed, 0xFA17, n).max(1e-12);
            t += -u.ln() / rate;
            if t > HORIZON_SECS || n > 10_000_000 {
                break;
            }
            let miner = (unit(self.spec.seed, 0xFA18, n) * f64::from(self.spec.miners)) as u32;
            let kind = self.kinds[miner as usize];
            let boards = kind.nameplate().boards as u64;
            let chips = kind.nameplate().chips_per_board as u64;
            let pick = |salt: u64, m: u64| (unit(self.spec.seed, salt, n) * m as f64) as u64;
            let fault = match pick(0xFA19, 100) {
                0..=34 => SimFault::ChipDies {
                    board: pick(0xFA1A, boards) as u8,
                    chip: pick(0xFA1B, chips) as u16,
                },
                35..=54 => SimFault::FanFails(pick(0xFA1C, kind.fans() as u64) as u8),
                55..=69 => SimFault::BoardDrops(pick(0xFA1D, boards) as u8),
                70..=94 => SimFault::Reboot,
                _ => SimFault::PoolHijack,
            };
            events
                .entry(miner)
                .or_default()
                .push(Event { at: t, fault });
            n += 1;
        }
    }

    /// Injects `fault` into miner `index` at `at` seconds (for tests and demos).
    pub fn inject(&self, index: u32, at: f64, fault: SimFault) {
        let mut events = self.events.lock().expect("events");
        let list = events.entry(index).or_default();
        list.push(Event { at, fault });
        list.sort_by(|a, b| a.at.total_cmp(&b.at));
    }

    /// Changes miner `index`'s power state (sleep, target).
    pub fn set_power(&self, index: u32, change: impl FnOnce(&mut SimPower)) {
        let mut map = self.power.lock().expect("power");
        let p = map.entry(index).or_default();
        change(p);
        if *p == SimPower::default() {
            map.remove(&index);
        }
    }

    pub fn power(&self, index: u32) -> SimPower {
        self.power
            .lock()
            .expect("power")
            .get(&index)
            .copied()
            .unwrap_or_default()
    }

    pub fn len(&self) -> u32 {
        self.spec.miners
    }

    pub fn is_empty(&self) -> bool {
        self.spec.miners == 0
    }

    pub fn kind(&self, index: u32) -> Kind {
        self.kinds[index as usize]
    }

    /// The miner at `ip`, if there is one.
    pub fn index_of(&self, ip: Ipv4Addr) -> Option<u32> {
        let i = u32::from(ip).checked_sub(u32::from(self.spec.base))?;
        (i < self.spec.miners).then_some(i)
    }

    pub fn address(&self, index: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.spec.base) + index)
    }

    /// Its web password: the farm's, or for a few stock machines still the maker's.
    pub fn web_password(&self, index: u32) -> &str {
        let stock = self.kind(index) != Kind::Hashforge;
        if stock && unit(self.spec.seed, u64::from(index), 2) < self.spec.default_password_share {
            MAKER_DEFAULT_PASSWORD
        } else {
            &self.spec.farm_password
        }
    }

    /// Stock firmware answers privileged commands to anyone; hashforge does not.
    pub fn api_open(&self, index: u32) -> bool {
        self.kind(index) != Kind::Hashforge
    }

    /// Where it stands: site, row, rack, position.
    pub fn position(&self, index: u32) -> (char, u32, u32, u32) {
        let per_rack = 40;
        let racks_per_row = 20;
        let rows_per_site = 25;
        let rack = index / per_rack;
        let row = rack / racks_per_row;
        let site = (b'A' + ((row / rows_per_site) % 26) as u8) as char;
        (
            site,
            row % rows_per_site + 1,
            rack % racks_per_row + 1,
            index % per_rack + 1,
        )
    }

    pub fn serial(&self, index: u32) -> String {
        let prefix = match self.kind(index) {
            Kind::S21Pro | Kind::Hashforge => "JYZZB2",
            Kind::S21 => "JYZZA1",
            Kind::T21 => "JYZZT1",
            Kind::S19Xp => "JYZZX9",
            Kind::Bitaxe => "BXG",
            Kind::M60s => "HTM60SVK10",
            Kind::Avalon => "A1246",
        };
        // From the seed and the address, so two fleets (two sites) never share one.
        let address = u64::from(u32::from(self.address(index)));
        format!(
            "{prefix}{:010}",
            splitmix(splitmix(self.spec.seed) ^ address) % 10_000_000_000
        )
    }

    /// Unique on 127.0.0.0/8: the address's last three bytes.
    pub fn mac(&self, index: u32) -> String {
        let b = self.address(index).octets();
        format!("02:48:46:{:02x}:{:02x}:{:02x}", b[1], b[2], b[3])
    }

    /// The miner at `t` seconds into the simulation (`now` is the wall clock's unix
    /// seconds): `None` while it is off (rebooting).
    pub fn status(&self, index: u32, t: f64, now: u64) -> Option<MinerStatus> {
        let kind = self.kind(index);
        let profile = kind.nameplate();
        let seed = self.spec.seed;
        let i = u64::from(index);
        let mut fans_failed = [false; 4];
        let mut boards_dropped = [false; 4];
        let mut dead: Vec<(u8, u16)> = Vec::new();
        let mut hijacked = false;
        // Machines come up over the first seconds, not all at once.
        let mut boot = unit(seed, i, 3) * self.spec.boot_spread_secs;
        if let Some(events) = self.events.lock().expect("events").get(&index) {
            for e in events.iter().take_while(|e| e.at <= t) {
                match e.fault {
                    SimFault::FanFails(f) => fans_failed[usize::from(f) % 4] = true,
                    SimFault::ChipDies { board, chip } => dead.push((board, chip)),
                    SimFault::BoardDrops(b) => boards_dropped[usize::from(b) % 4] = true,
                    SimFault::Reboot => {
                        boot = e.at + REBOOT_DOWN_SECS;
                        // A reboot brings a dropped board back (reseated) and fans spin again.
                        boards_dropped = [false; 4];
                        fans_failed = [false; 4];
                    }
                    SimFault::PoolHijack => hijacked = true,
                }
            }
        }
        if t < boot {
            return None;
        }
        let uptime = t - boot;
        let warm = (uptime / WARMUP_SECS).min(1.0);
        let bucket = (t / 5.0) as u64;
        let noise = |salt: u64| unit(seed, i * 64 + salt, bucket) * 2.0 - 1.0;
        let any_fan_failed = fans_failed.iter().take(kind.fans()).any(|f| *f);
        let curtailed = self.power(index);
        let fraction = match curtailed {
            SimPower { sleep: true, .. } => 0.0,
            SimPower {
                target: Some(w), ..
            } => sim_fraction(profile.nominal_watts, w),
            _ => 1.0,
        };
        let per_board = profile.nominal_ths * 1e12 / profile.boards as f64;
        let mut chains = Vec::with_capacity(profile.boards);
        let mut total = 0.0;
        for b in 0..profile.boards {
            let dropped = boards_dropped[b % 4];
            let mut chips = vec![ChipHealth::Ok; if dropped { 0 } else { profile.chips_per_board }];
            for (db, dc) in &dead {
                if usize::from(*db) == b {
                    if let Some(c) = chips.get_mut(usize::from(*dc)) {
                        *c = ChipHealth::Silent;
                    }
                }
            }
            let alive =
                chips.iter().filter(|c| c.is_ok()).count() as f64 / profile.chips_per_board as f64;
            let rate = per_board * fraction * warm * alive * (1.0 + 0.02 * noise(b as u64));
            total += rate;
            let chip_temp = 58.0
                + 9.0 * warm
                + 1.5 * noise(10 + b as u64)
                + if any_fan_failed { 17.0 } else { 0.0 };
            chains.push(ChainStatus {
                index: b,
                state: if dropped {
                    ChainState::Failed("board lost: no answer on its chain".into())
                } else {
                    ChainState::Running
                },
                expected_chips: Some(profile.chips_per_board),
                chips,
                hashrate: Rates {
                    last_5s: HashRate::from_hs(rate),
                    last_1m: Some(HashRate::from_hs(rate)),
                    ..Rates::default()
                },
                ideal: Some(HashRate::from_hs(per_board)),
                hardware_errors: (uptime * 0.01) as u64,
                board_temp: (!dropped).then(|| Celsius((chip_temp - 9.0).round())),
                chip_temp: (!dropped).then(|| Celsius((chip_temp * 10.0).round() / 10.0)),
                serial: Some(format!("{}B{b}", self.serial(index))),
                frequency_mhz: Some(match kind {
                    Kind::Bitaxe => 525.0,
                    Kind::M60s => 600.0,
                    Kind::Avalon => 500.0,
                    _ => 490.0,
                }),
            });
        }
        let fans_rpm = (0..kind.fans())
            .map(|f| {
                if fans_failed[f] {
                    0
                } else {
                    let base = if kind == Kind::Bitaxe { 4200.0 } else { 5800.0 };
                    (base + 150.0 * noise(20 + f as u64)) as u32
                }
            })
            .collect();
        let difficulty = if kind == Kind::Bitaxe {
            4096.0
        } else {
            65536.0
        };
        let shares_per_sec = total / (difficulty * 4_294_967_296.0);
        let accepted = (shares_per_sec * uptime) as u64;
        let rejected = accepted / 500;
        let mut pools: Vec<PoolStatus> = self
            .spec
            .pools
            .iter()
            .enumerate()
            .map(|(p, url)| PoolStatus {
                index: p,
                url: url.clone(),
                user: format!("farm.{}", self.serial(index)),
                state: PoolState::Alive,
                active: p == 0,
                shares: Shares {
                    accepted: if p == 0 { accepted } else { 0 },
                    rejected: if p == 0 { rejected } else { 0 },
                    accepted_difficulty: if p == 0 {
                        accepted as f64 * difficulty
                    } else {
                        0.0
                    },
                    ..Shares::default()
                },
                difficulty: Some(difficulty),
                jobs: (uptime / 30.0) as u64,
                best_share: difficulty * 40.0,
                last_share_time: now.saturating_sub(1),
                last_share_difficulty: difficulty,
                get_failures: 0,
                bad_work: 0,
            })
            .collect();
        if hijacked {
            if let Some(p) = pools.first_mut() {
                p.url = HIJACK_POOL.into();
                p.user = "bc1qthief.0".into();
            }
        }
        let model = profile.model.to_string();
        let (make, firmware, hostname) = match kind {
            Kind::Bitaxe => (Make::Bitaxe, "v2.9.0".to_string(), "bitaxe"),
            Kind::Hashforge => (
                Make::Antminer,
                format!("hashforge {}", env!("CARGO_PKG_VERSION")),
                "hashforge",
            ),
            // Dated before 2024-11: the firmware that still speaks btminer's API V2.
            Kind::M60s => (
                Make::Whatsminer,
                "20240624.18.REL".to_string(),
                "WhatsMiner",
            ),
            Kind::Avalon => (
                Make::Avalon,
                "21072802_4ec6bb0_211fc46".to_string(),
                "Avalon",
            ),
            _ => (
                Make::Antminer,
                "Thu Oct 10 11:43:12 CST 2024".to_string(),
                "Antminer",
            ),
        };
        let (site, row, rack, pos) = self.position(index);
        Some(MinerStatus {
            identity: Identity {
                make,
                model,
                firmware,
                serial: Some(self.serial(index)),
                mac: Some(self.mac(index)),
                hostname: Some(format!("{hostname}-{site}{row:02}-{rack:02}-{pos:02}")),
            },
            when: now,
            uptime_secs: uptime as u64,
            hashrate: Rates {
                last_5s: HashRate::from_hs(total),
                last_1m: Some(HashRate::from_hs(total)),
                last_15m: None,
                average: Some(HashRate::from_hs(total)),
            },
            ideal: Some(HashRate::from_ths(profile.nominal_ths)),
            power_w: Some(match curtailed {
                SimPower { sleep: true, .. } => (profile.nominal_watts * SLEEP_SHARE).round(),
                // Under a target the noise only ever takes watts off: the limit holds.
                SimPower {
                    target: Some(_), ..
                } => (sim_power(profile.nominal_watts, fraction)
                    * (0.15 + 0.85 * warm)
                    * (1.0 + 0.01 * noise(30).min(0.0)))
                .floor(),
                _ => (profile.nominal_watts * (0.15 + 0.85 * warm) * (1.0 + 0.01 * noise(30)))
                    .round(),
            }),
            power_limit_w: curtailed.target,
            // hashforge says whether it sleeps; stock firmware only on its web CGI (the
            // simulator keeps it here for that page, and leaves it out of stock readings).
            sleeping: match kind {
                Kind::Hashforge => Some(curtailed.sleep),
                _ => curtailed.sleep.then_some(true),
            },
            shares: Shares {
                accepted,
                rejected,
                accepted_difficulty: accepted as f64 * difficulty,
                rejected_difficulty: rejected as f64 * difficulty,
                ..Shares::default()
            },
            diff1_work: accepted as f64 * difficulty,
            hardware_errors: (uptime * 0.01 * profile.boards as f64) as u64,
            best_share: difficulty * 40.0,
            found_blocks: 0,
            chains,
            fans_rpm,
            pools,
            messages: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(n: u32) -> SimFleet {
        SimFleet::new(FleetSpec::new(n, Ipv4Addr::new(127, 16, 0, 1)))
    }

    #[test]
    fn the_same_seed_is_the_same_fleet() {
        let a = fleet(1000);
        let b = fleet(1000);
        for i in 0..1000 {
            assert_eq!(a.kind(i), b.kind(i));
            assert_eq!(a.status(i, 600.0, 1), b.status(i, 600.0, 1));
        }
        let s21pro = (0..1000).filter(|i| a.kind(*i) == Kind::S21Pro).count();
        assert!((420..580).contains(&s21pro), "50% of 1000: {s21pro}");
        let m60s = (0..1000).filter(|i| a.kind(*i) == Kind::M60s).count();
        assert!((100..200).contains(&m60s), "15% of 1000: {m60s}");
    }

    #[test]
    fn a_life_warm_up_faults_and_reboot() {
        let mut spec = FleetSpec::new(10, Ipv4Addr::new(127, 16, 0, 1));
        spec.faults_per_hour = 0.0;
        spec.mix = vec![(Kind::S21Pro, 1)];
        let f = SimFleet::new(spec);
        assert!(f.status(0, 0.0, 1).is_none() || f.status(0, 0.0, 1).unwrap().uptime_secs == 0);
        let warm = f.status(0, 600.0, 1).unwrap();
        assert!((warm.hashrate.last_5s.as_ths() - 234.0).abs() < 234.0 * 0.03);
        assert_eq!(warm.chips_found(), 195);
        f.inject(0, 700.0, SimFault::ChipDies { board: 1, chip: 30 });
        f.inject(0, 700.0, SimFault::FanFails(2));
        let s = f.status(0, 701.0, 1).unwrap();
        assert_eq!(s.chains[1].bad_positions(), [30]);
        assert_eq!(s.fans_rpm[2], 0);
        assert!(s.chains[1].chip_temp.unwrap().0 > 80.0);
        f.inject(0, 800.0, SimFault::Reboot);
        assert!(f.status(0, 820.0, 1).is_none());
        let back = f.status(0, 870.0, 1).unwrap();
        assert_eq!(back.uptime_secs, 10);
        assert_ne!(back.fans_rpm[2], 0);
        f.inject(0, 900.0, SimFault::PoolHijack);
        assert_eq!(f.status(0, 901.0, 1).unwrap().pools[0].url, HIJACK_POOL);
    }

    #[test]
    fn seed_one_is_the_fleet_the_fleet_tools_test_reads() {
        // crates/cli/tests/fleet_tools.rs reads .1, .3 and .5 of this fleet.
        let mut spec = FleetSpec::new(6, Ipv4Addr::new(127, 0, 3, 1));
        spec.mix = parse_mix("s21pro=1,bitaxe=1,hashforge=1").unwrap();
        let f = SimFleet::new(spec);
        assert_eq!(
            (f.kind(0), f.kind(2), f.kind(4)),
            (Kind::Bitaxe, Kind::Hashforge, Kind::S21Pro)
        ); // ... and .1 and .3 of this one.
        let mut spec = FleetSpec::new(4, Ipv4Addr::new(127, 0, 4, 1));
        spec.mix = parse_mix("m60s=1,avalon=1").unwrap();
        let f = SimFleet::new(spec);
        assert_eq!((f.kind(0), f.kind(2)), (Kind::M60s, Kind::Avalon));
    }

    #[test]
    fn whatsminers_and_avalons_have_their_nameplates() {
        let mut spec = FleetSpec::new(2, Ipv4Addr::new(127, 16, 0, 1));
        spec.faults_per_hour = 0.0;
        spec.boot_spread_secs = 0.0;
        spec.mix = parse_mix("m60s=1").unwrap();
        let m = SimFleet::new(spec.clone()).status(0, 600.0, 1).unwrap();
        assert_eq!(
            (&m.identity.make, m.identity.model.as_str()),
            (&Make::Whatsminer, "M60S VK10")
        );
        assert_eq!(
            (m.chains.len(), m.chips_found(), m.fans_rpm.len()),
            (3, 645, 2)
        );
        assert!((m.hashrate.last_5s.as_ths() - 172.0).abs() < 172.0 * 0.03);
        spec.mix = parse_mix("avalon=1").unwrap();
        let a = SimFleet::new(spec).status(0, 600.0, 1).unwrap();
        assert_eq!(
            (&a.identity.make, a.identity.model.as_str()),
            (&Make::Avalon, "1246-90")
        );
        assert_eq!(
            (a.chains.len(), a.chips_found(), a.fans_rpm.len()),
            (3, 360, 4)
        );
        assert_eq!(Kind::M60s.contract(), Contract::Btminer);
        assert_eq!(crate::poll::expected_chips("M60S VK10"), Some(215));
        assert_eq!(crate::poll::expected_chips("1246-90"), Some(120));
        assert_eq!(crate::poll::expected_chips("S21 Pro"), Some(65));
    }

    #[test]
    fn mixes_are_checked() {
        assert!(parse_mix("s21pro=60,bitaxe=1").is_ok());
        assert_eq!(
            parse_mix("m60s=7,avalon=3").unwrap(),
            [(Kind::M60s, 7), (Kind::Avalon, 3)]
        );
        assert!(parse_mix("s22=1").unwrap_err().contains("unknown kind"));
        assert!(parse_mix("s21pro").is_err());
        assert!(parse_mix("s21pro=0").is_err());
    }
}
