//! What the console keeps about every miner: identity, the last reading in a compact form,
//! and history rolled up as it ages (the last hour per poll, then hourly means for a day),
//! so 100,000 miners and a day of history fit in a few hundred megabytes.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use hashforge_minerapi::{ChainState, MinerStatus};
use serde::Serialize;

use crate::client::{Contract, Identified, MinerPorts};

/// Raw samples kept per miner (one per poll): an hour at one a minute.
pub const RECENT: usize = 60;
/// Hourly means kept per miner: a day.
pub const HOURLY: usize = 24;

/// One board as last read.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Board {
    pub index: u8,
    /// Why it does not hash, when it does not.
    pub failed: Option<String>,
    pub chips_found: u16,
    pub chips_expected: Option<u16>,
    /// Positions of chips that are bad or silent.
    pub bad_chips: Vec<u16>,
    pub hashrate_ths: f32,
    pub chip_temp: Option<f32>,
    pub board_temp: Option<f32>,
    pub hardware_errors: u64,
    pub serial: Option<String>,
}

/// A point of history.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Sample {
    /// Unix seconds.
    pub at: u64,
    pub hashrate_ths: f32,
    /// The hottest chip, `NaN` when unknown.
    pub temp: f32,
    /// `NaN` when unknown.
    pub power_w: f32,
}

/// Everything the console knows about one miner.
#[derive(Clone, Debug, Serialize)]
pub struct Miner {
    pub ip: IpAddr,
    pub ports: MinerPorts,
    pub contract: Contract,
    pub make: String,
    pub model: String,
    /// Chips per board by the model's table (the cgminer API does not say), looked up once.
    pub expected_chips: Option<usize>,
    pub firmware: String,
    pub serial: Option<String>,
    pub mac: Option<String>,
    pub hostname: Option<String>,
    pub first_seen: u64,
    /// When it last answered.
    pub last_seen: Option<u64>,
    pub online: bool,
    /// Polls in a row it did not answer (after retries).
    pub misses: u32,
    pub last_error: Option<String>,
    pub hashrate_ths: f32,
    pub ideal_ths: Option<f32>,
    pub power_w: Option<f32>,
    pub uptime_secs: u64,
    pub boards: Vec<Board>,
    pub fans_rpm: Vec<u32>,
    pub pool_url: Option<String>,
    pub pool_user: Option<String>,
    pub accepted: u64,
    pub rejected: u64,
    pub hardware_errors: u64,
    /// The web password is still the maker's default (found at enrolment).
    pub default_password: Option<bool>,
    /// The cgminer API takes privileged commands from anyone.
    pub api_open: Option<bool>,
    /// Board serials from the web CGI, by board index.
    #[serde(skip)]
    pub board_serials: Vec<(usize, String)>,
    /// The last read's round trip, milliseconds.
    pub read_ms: f32,
    #[serde(skip)]
    pub recent: VecDeque<Sample>,
    #[serde(skip)]
    pub hourly: VecDeque<Sample>,
    #[serde(skip)]
    hour_sum: (f64, f64, f64, u32, u64),
}

impl Miner {
    pub fn new(found: &Identified, now: u64) -> Miner {
        Miner {
            ip: found.ip,
            ports: found.ports,
            contract: found.contract,
            make: found.make.clone(),
            model: found.model.clone(),
            expected_chips: crate::poll::expected_chips(&found.model),
            firmware: found.firmware.clone(),
            serial: None,
            mac: None,
            hostname: None,
            first_seen: now,
            last_seen: None,
            online: false,
            misses: 0,
            last_error: None,
            hashrate_ths: 0.0,
            ideal_ths: None,
            power_w: None,
            uptime_secs: 0,
            boards: Vec::new(),
            fans_rpm: Vec::new(),
            pool_url: None,
            pool_user: None,
            accepted: 0,
            rejected: 0,
            hardware_errors: 0,
            default_password: None,
            api_open: None,
            board_serials: Vec::new(),
            read_ms: 0.0,
            recent: VecDeque::with_capacity(RECENT),
            hourly: VecDeque::with_capacity(HOURLY),
            hour_sum: (0.0, 0.0, 0.0, 0, 0),
        }
    }

    /// Model name with its make, for people: `Antminer S21 Pro`.
    pub fn name(&self) -> String {
        format!("{} {}", self.make, self.model)
    }

    /// Takes in a reading made at `now`.
    pub fn update(&mut self, s: &MinerStatus, now: u64, read_ms: f32) {
        let id = &s.identity;
        self.firmware = id.firmware.clone();
        self.serial = id.serial.clone().or(self.serial.take());
        self.mac = id.mac.clone().or(self.mac.take());
        self.hostname = id.hostname.clone().or(self.hostname.take());
        self.online = true;
        self.misses = 0;
        self.last_error = None;
        self.last_seen = Some(now);
        self.read_ms = read_ms;
        self.hashrate_ths = s.hashrate.last_5s.as_ths() as f32;
        self.ideal_ths = s.ideal.map(|r| r.as_ths() as f32);
        self.power_w = s.power_w.map(|w| w as f32);
        self.uptime_secs = s.uptime_secs;
        self.boards = s
            .chains
            .iter()
            .map(|c| Board {
                index: c.index as u8,
                failed: match &c.state {
                    ChainState::Failed(why) => Some(why.clone()),
                    _ => None,
                },
                chips_found: c.chips_found() as u16,
                chips_expected: c.expected_chips.map(|n| n as u16),
                bad_chips: c.bad_positions().into_iter().map(|p| p as u16).collect(),
                hashrate_ths: c.hashrate.last_5s.as_ths() as f32,
                chip_temp: c.chip_temp.map(|t| t.0 as f32),
                board_temp: c.board_temp.map(|t| t.0 as f32),
                hardware_errors: c.hardware_errors,
                serial: c
                    .serial
                    .clone()
                    .or_else(|| serial_in(&self.board_serials, c.index)),
            })
            .collect();
        self.fans_rpm = s.fans_rpm.clone();
        let active = s.active_pool();
        self.pool_url = active.map(|p| p.url.clone());
        self.pool_user = active.map(|p| p.user.clone());
        self.accepted = s.shares.accepted;
        self.rejected = s.shares.rejected;
        self.hardware_errors = s.hardware_errors;
        let temp = self
            .boards
            .iter()
            .filter_map(|b| b.chip_temp)
            .fold(f32::NAN, f32::max);
        self.record_sample(Sample {
            at: now,
            hashrate_ths: self.hashrate_ths,
            temp,
            power_w: self.power_w.unwrap_or(f32::NAN),
        });
    }

    /// What the web CGI said at enrolment: identity, and board serials that readings of the
    /// cgminer API (which has none) keep from then on.
    pub fn take_web_identity(&mut self, web: crate::client::WebIdentity) {
        self.serial = web.serial.or(self.serial.take());
        self.mac = web.mac.or(self.mac.take());
        self.hostname = web.hostname.or(self.hostname.take());
        self.board_serials = web.board_serials;
        for b in &mut self.boards {
            b.serial = serial_in(&self.board_serials, usize::from(b.index)).or(b.serial.take());
        }
    }

    /// A poll it did not answer.
    pub fn missed(&mut self, why: String, now: u64) {
        self.misses += 1;
        self.online = false;
        self.last_error = Some(why);
        self.hashrate_ths = 0.0;
        self.record_sample(Sample {
            at: now,
            hashrate_ths: 0.0,
            temp: f32::NAN,
            power_w: f32::NAN,
        });
    }

    /// Adds a point of history, rolling the last hour up into hourly means as it ages.
    pub fn record_sample(&mut self, s: Sample) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(s);
        let hour = s.at / 3600;
        let (h, t, p, n, at) = &mut self.hour_sum;
        if *n > 0 && *at != hour {
            if self.hourly.len() == HOURLY {
                self.hourly.pop_front();
            }
            self.hourly.push_back(Sample {
                at: *at * 3600,
                hashrate_ths: (*h / f64::from(*n)) as f32,
                temp: (*t / f64::from(*n)) as f32,
                power_w: (*p / f64::from(*n)) as f32,
            });
            self.hour_sum = (0.0, 0.0, 0.0, 0, hour);
        }
        let (h, t, p, n, at) = &mut self.hour_sum;
        *at = hour;
        *h += f64::from(s.hashrate_ths);
        *t += f64::from(s.temp);
        *p += f64::from(s.power_w);
        *n += 1;
    }

    /// The median of its recent hash rates while it answered, if there are enough.
    pub fn recent_median_ths(&self, at_least: usize) -> Option<f32> {
        let mut v: Vec<f32> = self
            .recent
            .iter()
            .map(|s| s.hashrate_ths)
            .filter(|h| *h > 0.0)
            .collect();
        if v.len() < at_least {
            return None;
        }
        v.sort_by(f32::total_cmp);
        Some(v[v.len() / 2])
    }

    /// Hashing: online with a rate above zero.
    pub fn hashing(&self) -> bool {
        self.online && self.hashrate_ths > 0.0
    }
}

/// The serial of board `index` in a list of (index, serial).
fn serial_in(serials: &[(usize, String)], index: usize) -> Option<String> {
    serials
        .iter()
        .find(|(i, _)| *i == index)
        .map(|(_, s)| s.clone())
}

/// The fleet at one poll: totals for the overview's chart.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct FleetPoint {
    pub at: u64,
    pub hashrate_ths: f64,
    pub power_w: f64,
    pub online: u32,
    pub hashing: u32,
    pub offline: u32,
}

/// Every miner, by address.
#[derive(Debug, Default)]
pub struct Inventory {
    pub miners: Vec<Miner>,
    by_ip: HashMap<IpAddr, usize>,
    /// One point per poll cycle, a day of them at most.
    pub series: VecDeque<FleetPoint>,
}

impl Inventory {
    /// Adds what a scan found; a known address keeps its record (and history). Returns the
    /// positions of new miners.
    pub fn enroll(&mut self, found: &[Identified], now: u64) -> Vec<usize> {
        let mut fresh = Vec::new();
        for f in found {
            match self.by_ip.get(&f.ip) {
                Some(&i) => {
                    let m = &mut self.miners[i];
                    m.make.clone_from(&f.make);
                    if m.model != f.model {
                        m.model.clone_from(&f.model);
                        m.expected_chips = crate::poll::expected_chips(&f.model);
                    }
                    m.contract = f.contract;
                    m.ports = f.ports;
                }
                None => {
                    self.by_ip.insert(f.ip, self.miners.len());
                    fresh.push(self.miners.len());
                    self.miners.push(Miner::new(f, now));
                }
            }
        }
        fresh
    }

    pub fn position(&self, ip: IpAddr) -> Option<usize> {
        self.by_ip.get(&ip).copied()
    }

    pub fn get(&self, ip: IpAddr) -> Option<&Miner> {
        self.position(ip).map(|i| &self.miners[i])
    }

    /// Adds the fleet's point for a poll that ended at `now`.
    pub fn close_cycle(&mut self, now: u64) {
        let mut p = FleetPoint {
            at: now,
            hashrate_ths: 0.0,
            power_w: 0.0,
            online: 0,
            hashing: 0,
            offline: 0,
        };
        for m in &self.miners {
            if m.online {
                p.online += 1;
                p.hashrate_ths += f64::from(m.hashrate_ths);
                p.power_w += f64::from(m.power_w.unwrap_or(0.0));
                if m.hashing() {
                    p.hashing += 1;
                }
            } else {
                p.offline += 1;
            }
        }
        if self.series.len() >= 1440 {
            self.series.pop_front();
        }
        self.series.push_back(p);
    }
}
