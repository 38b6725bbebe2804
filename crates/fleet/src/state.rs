//! What the console keeps about every miner: identity, the last reading in a compact form,
//! and history rolled up as it ages (the last hour per poll, then hourly means for a day),
//! so 100,000 miners and a day of history fit in a few hundred megabytes. Each hour that
//! closes is handed out as an [`HourRow`], the unit the database keeps (`store`).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use hashforge_minerapi::{ChainState, MinerStatus};
use serde::{Deserialize, Serialize};

use crate::client::{Contract, Identified, MinerPorts};

/// Raw samples kept per miner (one per poll): an hour at one a minute.
pub const RECENT: usize = 60;
/// Hourly means kept per miner: a day.
pub const HOURLY: usize = 24;

/// One board as last read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

/// A point of history: 16 bytes, 84 of them per miner in memory.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Unix seconds (32 bits hold them until 2106: [`secs32`]).
    pub at: u32,
    pub hashrate_ths: f32,
    /// The hottest chip, `NaN` when unknown.
    pub temp: f32,
    /// `NaN` when unknown.
    pub power_w: f32,
}

/// Unix seconds in a [`Sample`]'s 32 bits (saturating past 2106).
pub fn secs32(unix: u64) -> u32 {
    u32::try_from(unix).unwrap_or(u32::MAX)
}

/// One hour of one miner, rolled up: what the database keeps per miner and hour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HourRow {
    /// Unix hour (seconds / 3600).
    pub hour: u64,
    /// Polls in the hour, and how many it answered.
    pub samples: u32,
    pub answered: u32,
    /// Mean over every poll, a missed one counting 0: the rate the hour delivered.
    pub hashrate_ths: f32,
    /// Mean of the hottest chip over the polls that reported one.
    pub temp: Option<f32>,
    /// Mean over the polls that reported it.
    pub power_w: Option<f32>,
    /// Shares accepted and rejected during the hour (a reboot's reset counts from 0).
    pub accepted: u64,
    pub rejected: u64,
    /// Per board: mean hash rate over the polls it answered, mean chip temperature.
    pub boards: Vec<BoardHour>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoardHour {
    pub hashrate_ths: f32,
    pub temp: Option<f32>,
}

impl HourRow {
    /// The chart point of the hour.
    pub fn sample(&self) -> Sample {
        Sample {
            at: secs32(self.hour * 3600),
            hashrate_ths: self.hashrate_ths,
            temp: self.temp.unwrap_or(f32::NAN),
            power_w: self.power_w.unwrap_or(f32::NAN),
        }
    }
}

/// The hour being summed.
#[derive(Clone, Debug, Default)]
struct HourSum {
    /// Unix hour (fits 32 bits until the year 491,000).
    hour: u32,
    samples: u16,
    answered: u16,
    hashrate: f32,
    temp: Mean,
    power: Mean,
    accepted: u32,
    rejected: u32,
    /// Per board: hash rate, temperature.
    boards: Vec<(Mean, Mean)>,
}

/// A running sum for a mean over an hour's polls (at most a few thousand: `f32` and `u16`
/// keep 100,000 miners' sums small).
#[derive(Clone, Copy, Debug, Default)]
struct Mean {
    sum: f32,
    n: u16,
}

impl Mean {
    fn add(&mut self, x: f32) {
        self.sum += x;
        self.n = self.n.saturating_add(1);
    }

    fn get(self) -> Option<f32> {
        (self.n > 0).then(|| self.sum / f32::from(self.n))
    }
}

impl HourSum {
    fn row(&self) -> HourRow {
        HourRow {
            hour: u64::from(self.hour),
            samples: u32::from(self.samples),
            answered: u32::from(self.answered),
            hashrate_ths: self.hashrate / f32::from(self.samples.max(1)),
            temp: self.temp.get(),
            power_w: self.power.get(),
            accepted: u64::from(self.accepted),
            rejected: u64::from(self.rejected),
            boards: self
                .boards
                .iter()
                .map(|(h, t)| BoardHour {
                    hashrate_ths: h.get().unwrap_or(0.0),
                    temp: t.get(),
                })
                .collect(),
        }
    }
}

/// Everything the console knows about one miner.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Miner {
    /// The site its collector watches (`--site`).
    #[serde(default)]
    pub site: String,
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
    #[serde(default)]
    pub board_serials: Vec<(usize, String)>,
    /// The last read's round trip, milliseconds.
    pub read_ms: f32,
    /// Asleep (curtailed): from its reading where the firmware says (hashforge), else as a
    /// confirmed curtailment left it (a stock Antminer says it only on its web CGI).
    #[serde(default)]
    pub sleeping: Option<bool>,
    /// The power target it holds, from its reading.
    #[serde(default)]
    pub power_limit_w: Option<f32>,
    #[serde(skip)]
    pub recent: VecDeque<Sample>,
    #[serde(skip)]
    pub hourly: VecDeque<Sample>,
    #[serde(skip)]
    hour: HourSum,
    /// Share counters at the last reading, for the hour's deltas.
    #[serde(skip)]
    last_counts: Option<(u64, u64)>,
    /// Its row in the database and what that row says, once written.
    #[serde(skip)]
    pub stored: Option<crate::store::Stored>,
}

impl Miner {
    pub fn new(found: &Identified, site: &str, now: u64) -> Miner {
        Miner {
            site: site.to_owned(),
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
            sleeping: None,
            power_limit_w: None,
            recent: VecDeque::with_capacity(RECENT),
            hourly: VecDeque::with_capacity(HOURLY),
            hour: HourSum::default(),
            last_counts: None,
            stored: None,
        }
    }

    /// Who it is across addresses: its serial, else its MAC, else its address at its site.
    pub fn identity_key(&self) -> String {
        match (&self.serial, &self.mac) {
            (Some(sn), _) => format!("sn:{sn}"),
            (None, Some(mac)) => format!("mac:{}", mac.to_ascii_lowercase()),
            (None, None) => crate::store::address_key(&self.site, self.ip),
        }
    }

    /// Model name with its make, for people: `Antminer S21 Pro`.
    pub fn name(&self) -> String {
        format!("{} {}", self.make, self.model)
    }

    /// Takes in a reading made at `now`; returns the hour it closed, if it closed one.
    pub fn update(&mut self, s: &MinerStatus, now: u64, read_ms: f32) -> Option<HourRow> {
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
        if s.sleeping.is_some() {
            self.sleeping = s.sleeping;
        }
        self.power_limit_w = s.power_limit_w.map(|w| w as f32);
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
        let closed = self.record(
            Sample {
                at: secs32(now),
                hashrate_ths: self.hashrate_ths,
                temp,
                power_w: self.power_w.unwrap_or(f32::NAN),
            },
            true,
        );
        let (a, r) = (self.accepted, self.rejected);
        let (a0, r0) = self.last_counts.unwrap_or((a, r));
        // Counters only grow; a smaller one is a restart, counting again from 0.
        let delta = |now: u64, then: u64| {
            u32::try_from(if now >= then { now - then } else { now }).unwrap_or(u32::MAX)
        };
        self.hour.accepted = self.hour.accepted.saturating_add(delta(a, a0));
        self.hour.rejected = self.hour.rejected.saturating_add(delta(r, r0));
        self.last_counts = Some((a, r));
        closed
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

    /// A poll it did not answer; returns the hour it closed, if it closed one.
    pub fn missed(&mut self, why: String, now: u64) -> Option<HourRow> {
        self.misses += 1;
        self.online = false;
        self.last_error = Some(why);
        self.hashrate_ths = 0.0;
        self.record(
            Sample {
                at: secs32(now),
                hashrate_ths: 0.0,
                temp: f32::NAN,
                power_w: f32::NAN,
            },
            false,
        )
    }

    /// Adds a point of history (hash rate 0 for a missed poll) and, when it `answered`, the
    /// boards as last read, rolling the last hour up as it ages; returns the hour that
    /// closed, if `s` is the first point of a new one.
    pub fn record(&mut self, s: Sample, answered: bool) -> Option<HourRow> {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(s);
        let hour = s.at / 3600;
        let mut closed = None;
        if self.hour.samples > 0 && self.hour.hour != hour {
            let row = self.hour.row();
            self.keep_hour(row.sample());
            closed = Some(row);
            self.hour = HourSum::default();
        }
        let h = &mut self.hour;
        h.hour = hour;
        h.samples = h.samples.saturating_add(1);
        h.hashrate += s.hashrate_ths;
        h.answered = h.answered.saturating_add(u16::from(answered));
        if answered {
            for b in &self.boards {
                let i = usize::from(b.index);
                if h.boards.len() <= i {
                    h.boards.resize(i + 1, Default::default());
                }
                let (rate, temp) = &mut h.boards[i];
                rate.add(b.hashrate_ths);
                if let Some(t) = b.chip_temp {
                    temp.add(t);
                }
            }
        }
        if !s.temp.is_nan() {
            h.temp.add(s.temp);
        }
        if !s.power_w.is_nan() {
            h.power.add(s.power_w);
        }
        closed
    }

    /// Adds an hour to the day kept in memory (from a rollup, or from the database).
    pub fn keep_hour(&mut self, s: Sample) {
        if self.hourly.len() == HOURLY {
            self.hourly.pop_front();
        }
        self.hourly.push_back(s);
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

    /// (watts, TH/s) for efficiency: online, reporting power, and hashing at least 1% of
    /// its nameplate. Below that a J/TH says nothing of the machine (an emulated board
    /// hashing on a CPU while its power model draws the nameplate's watts, a machine
    /// warming up) and is not shown.
    pub fn metered(&self) -> Option<(f64, f64)> {
        let w = f64::from(self.power_w?);
        let th = f64::from(self.hashrate_ths);
        let floor = self.ideal_ths.map_or(0.0, |i| f64::from(i) * 0.01);
        (self.online && th > 0.0 && th >= floor).then_some((w, th))
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
    /// Adds what a scan found at `site`; a known address keeps its record (and history).
    /// Returns the positions of new miners.
    pub fn enroll(&mut self, found: &[Identified], site: &str, now: u64) -> Vec<usize> {
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
                    self.miners.push(Miner::new(f, site, now));
                }
            }
        }
        fresh
    }

    /// Adds miners read back from the database; one at a known address replaces it,
    /// keeping the history this process gathered.
    pub fn restore(&mut self, miners: Vec<Miner>) {
        for mut m in miners {
            match self.by_ip.get(&m.ip) {
                Some(&i) => {
                    let old = &mut self.miners[i];
                    m.recent = std::mem::take(&mut old.recent);
                    if m.hourly.is_empty() {
                        m.hourly = std::mem::take(&mut old.hourly);
                    }
                    if m.last_seen > old.last_seen {
                        if let Some(at) = m.last_seen {
                            let temp = m
                                .boards
                                .iter()
                                .filter_map(|b| b.chip_temp)
                                .fold(f32::NAN, f32::max);
                            if m.recent.len() == RECENT {
                                m.recent.pop_front();
                            }
                            m.recent.push_back(Sample {
                                at: secs32(at),
                                hashrate_ths: if m.online { m.hashrate_ths } else { 0.0 },
                                temp,
                                power_w: m.power_w.unwrap_or(f32::NAN),
                            });
                        }
                    }
                    *old = m;
                }
                None => {
                    self.by_ip.insert(m.ip, self.miners.len());
                    self.miners.push(m);
                }
            }
        }
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
