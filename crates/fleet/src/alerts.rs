//! Alerts: conditions found in each reading, opened when they appear and closed when they
//! go, each with its miner, a start, an end and the evidence. Operational ones (offline,
//! not hashing, low hash rate, chips, boards, heat, fans) and security ones (a pool not on
//! the operator's list, a privileged API open to anyone, the maker's default web password,
//! firmware not on the allowed list).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use serde::Serialize;

use crate::state::Miner;

/// What an alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Offline,
    NotHashing,
    LowHashrate,
    /// Chips bad or silent on a board (the subject is the board).
    BadChips,
    /// Fewer chips answered than the board has.
    MissingChips,
    BoardGone,
    Hot,
    FanFailed,
    /// Mining to a pool that is not on the operator's list.
    PoolHijack,
    /// The cgminer API takes privileged commands from anyone.
    ApiOpen,
    /// The web password is still the maker's.
    DefaultPassword,
    FirmwareNotAllowed,
}

impl AlertKind {
    /// A chip or a board that died: on a deployed machine of the register, a repair ticket.
    pub fn opens_repair(self) -> bool {
        matches!(
            self,
            AlertKind::BadChips | AlertKind::MissingChips | AlertKind::BoardGone
        )
    }

    pub fn security(self) -> bool {
        matches!(
            self,
            AlertKind::PoolHijack
                | AlertKind::ApiOpen
                | AlertKind::DefaultPassword
                | AlertKind::FirmwareNotAllowed
        )
    }

    /// How urgent: lower first. A stolen hash rate before a stopped fan before a chip.
    pub fn rank(self) -> u8 {
        match self {
            AlertKind::PoolHijack => 0,
            AlertKind::Offline => 1,
            AlertKind::DefaultPassword => 2,
            AlertKind::FirmwareNotAllowed => 3,
            AlertKind::NotHashing => 4,
            AlertKind::Hot => 5,
            AlertKind::FanFailed => 6,
            AlertKind::BoardGone => 7,
            AlertKind::BadChips => 8,
            AlertKind::MissingChips => 9,
            AlertKind::LowHashrate => 10,
            AlertKind::ApiOpen => 11,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            AlertKind::Offline => "offline",
            AlertKind::NotHashing => "not hashing",
            AlertKind::LowHashrate => "low hash rate",
            AlertKind::BadChips => "bad chips",
            AlertKind::MissingChips => "missing chips",
            AlertKind::BoardGone => "board gone",
            AlertKind::Hot => "hot",
            AlertKind::FanFailed => "fan failed",
            AlertKind::PoolHijack => "pool not allowed",
            AlertKind::ApiOpen => "API open to anyone",
            AlertKind::DefaultPassword => "default web password",
            AlertKind::FirmwareNotAllowed => "firmware not allowed",
        }
    }
}

/// The operator's rules.
#[derive(Clone, Debug)]
pub struct Rules {
    /// Pools miners may mine to (`stratum+tcp://host:port`); empty: not checked.
    pub pools_allowed: Vec<String>,
    /// Firmware name prefixes allowed; empty: not checked.
    pub firmware_allowed: Vec<String>,
    /// A chip or board at this temperature or above is hot.
    pub hot_celsius: f32,
    /// Below this share of its own recent median the hash rate is low.
    pub low_share: f32,
    /// Polls it must miss in a row (each after its retries) before it is offline.
    pub offline_after: u32,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            pools_allowed: Vec::new(),
            firmware_allowed: Vec::new(),
            hot_celsius: 85.0,
            low_share: 0.8,
            offline_after: 1,
        }
    }
}

/// `stratum+tcp://Host:3333/` -> `host:3333`, to compare pool URLs.
fn pool_key(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.trim_end_matches('/').to_ascii_lowercase()
}

/// One open or closed alert.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    /// Numbered per site.
    pub id: u64,
    /// The site of the collector that saw it.
    pub site: String,
    pub kind: AlertKind,
    pub ip: IpAddr,
    /// The board it names, where it names one.
    pub board: Option<u8>,
    pub start: u64,
    pub end: Option<u64>,
    /// What was seen, for people: `board 1: chips 30, 31 silent or bad`.
    pub evidence: String,
}

/// A condition found in one reading: (kind, board, evidence).
type Finding = (AlertKind, Option<u8>, String);

/// The conditions a miner's latest state shows.
pub fn findings(m: &Miner, rules: &Rules) -> Vec<Finding> {
    let mut out = Vec::new();
    if !m.online {
        if m.misses >= rules.offline_after {
            let why = m.last_error.clone().unwrap_or_default();
            out.push((
                AlertKind::Offline,
                None,
                format!("no answer for {} poll(s): {why}", m.misses),
            ));
        }
        return out;
    }
    // A machine put to sleep or held under a power target hashes less on purpose.
    if m.sleeping != Some(true) {
        if m.hashrate_ths <= 0.0 && m.uptime_secs > 120 {
            out.push((
                AlertKind::NotHashing,
                None,
                format!("0 TH/s after {} s up", m.uptime_secs),
            ));
        } else if let (Some(median), None) = (m.recent_median_ths(10), m.power_limit_w) {
            if m.hashrate_ths < median * rules.low_share {
                out.push((
                    AlertKind::LowHashrate,
                    None,
                    format!(
                        "{:.1} TH/s, below {:.0}% of its recent median {:.1} TH/s",
                        m.hashrate_ths,
                        rules.low_share * 100.0,
                        median
                    ),
                ));
            }
        }
    }
    for b in &m.boards {
        if let Some(why) = &b.failed {
            out.push((
                AlertKind::BoardGone,
                Some(b.index),
                format!("board {}: {why}", b.index),
            ));
            continue;
        }
        if !b.bad_chips.is_empty() {
            let list: Vec<String> = b.bad_chips.iter().take(12).map(u16::to_string).collect();
            let more = b.bad_chips.len().saturating_sub(12);
            out.push((
                AlertKind::BadChips,
                Some(b.index),
                format!(
                    "board {}: chip{} {}{} silent or bad",
                    b.index,
                    if b.bad_chips.len() == 1 { "" } else { "s" },
                    list.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                ),
            ));
        }
        if let Some(expected) = b.chips_expected {
            if b.chips_found < expected {
                out.push((
                    AlertKind::MissingChips,
                    Some(b.index),
                    format!(
                        "board {}: {} of {expected} chips answer; look at chips {} and {}",
                        b.index,
                        b.chips_found,
                        b.chips_found.saturating_sub(1),
                        b.chips_found
                    ),
                ));
            }
        }
        let hot = [b.chip_temp, b.board_temp]
            .into_iter()
            .flatten()
            .fold(f32::NAN, f32::max);
        if hot >= rules.hot_celsius {
            out.push((
                AlertKind::Hot,
                Some(b.index),
                format!("board {}: {hot:.0} °C", b.index),
            ));
        }
    }
    let stopped: Vec<String> = m
        .fans_rpm
        .iter()
        .enumerate()
        .filter(|(_, r)| **r == 0)
        .map(|(i, _)| i.to_string())
        .collect();
    if !stopped.is_empty() {
        out.push((
            AlertKind::FanFailed,
            None,
            format!("fan {} at 0 RPM", stopped.join(", ")),
        ));
    }
    if !rules.pools_allowed.is_empty() {
        if let Some(url) = &m.pool_url {
            let key = pool_key(url);
            if !rules.pools_allowed.iter().any(|a| pool_key(a) == key) {
                out.push((
                    AlertKind::PoolHijack,
                    None,
                    format!(
                        "mining to {url} as {}, not an allowed pool",
                        m.pool_user.as_deref().unwrap_or("?")
                    ),
                ));
            }
        }
    }
    if m.api_open == Some(true) {
        out.push((
            AlertKind::ApiOpen,
            None,
            "the cgminer API grants `privileged` to anyone".into(),
        ));
    }
    if m.default_password == Some(true) {
        out.push((
            AlertKind::DefaultPassword,
            None,
            "the web interface takes root/root".into(),
        ));
    }
    if !rules.firmware_allowed.is_empty()
        && !rules
            .firmware_allowed
            .iter()
            .any(|f| m.firmware.starts_with(f.as_str()))
    {
        out.push((
            AlertKind::FirmwareNotAllowed,
            None,
            format!("firmware `{}`", m.firmware),
        ));
    }
    out
}

/// Open alerts and the recently closed ones.
#[derive(Debug, Default)]
pub struct Alerts {
    /// Open alerts by miner.
    open: HashMap<IpAddr, Vec<Alert>>,
    open_count: usize,
    pub closed: VecDeque<Alert>,
    next_id: u64,
    /// Notifications this minute, by rule, for the rate limit.
    opened_this_minute: (u64, HashMap<AlertKind, u32>),
    /// Notifications not sent because of the rate limit.
    pub suppressed: u64,
    /// The site new alerts are numbered in.
    pub site: String,
    /// Every opening and closing since the last [`Alerts::take_journal`], kept only while
    /// `journaling` (a collector writing to a database).
    pub journaling: bool,
    journal: Vec<Alert>,
}

/// Closed alerts kept for the console.
const CLOSED_KEPT: usize = 10_000;
/// Notifications (log lines, webhook) per rule per minute at most; the rest are counted. Per
/// rule, so that a flood of one kind (every stock machine's open API, found at enrolment)
/// never silences another (a chip that just died).
pub const NOTIFY_PER_MINUTE: u32 = 120;

impl Alerts {
    /// Brings a miner's alerts in line with its findings at `now`; returns the alerts that
    /// opened and may be notified (the rate limit applied).
    pub fn apply(&mut self, ip: IpAddr, found: Vec<Finding>, now: u64) -> Vec<Alert> {
        let mut opened = Vec::new();
        let mine = self.open.entry(ip).or_default();
        // Close what is no longer seen.
        let mut i = 0;
        while i < mine.len() {
            let a = &mine[i];
            if found.iter().any(|(k, b, _)| *k == a.kind && *b == a.board) {
                i += 1;
                continue;
            }
            let mut a = mine.swap_remove(i);
            a.end = Some(now);
            self.open_count -= 1;
            if self.journaling {
                self.journal.push(a.clone());
            }
            if self.closed.len() == CLOSED_KEPT {
                self.closed.pop_front();
            }
            self.closed.push_back(a);
        }
        for (kind, board, evidence) in found {
            if let Some(a) = mine.iter_mut().find(|a| a.kind == kind && a.board == board) {
                a.evidence = evidence;
                continue;
            }
            self.next_id += 1;
            let a = Alert {
                id: self.next_id,
                site: self.site.clone(),
                kind,
                ip,
                board,
                start: now,
                end: None,
                evidence,
            };
            mine.push(a.clone());
            self.open_count += 1;
            if self.journaling {
                self.journal.push(a.clone());
            }
            let minute = now / 60;
            if self.opened_this_minute.0 != minute {
                self.opened_this_minute = (minute, HashMap::new());
            }
            let sent = self.opened_this_minute.1.entry(kind).or_default();
            if *sent < NOTIFY_PER_MINUTE {
                *sent += 1;
                opened.push(a);
            } else {
                self.suppressed += 1;
            }
        }
        if mine.is_empty() {
            self.open.remove(&ip);
        }
        opened
    }

    /// The openings and closings since the last call, oldest first.
    pub fn take_journal(&mut self) -> Vec<Alert> {
        std::mem::take(&mut self.journal)
    }

    /// Takes in alerts read back from the database: the open ones become open again (a
    /// collector's restart continues them, numbering after `next_id`), the closed ones
    /// are history. Replaces what was there.
    pub fn restore(&mut self, open: Vec<Alert>, closed: Vec<Alert>, next_id: u64) {
        self.open.clear();
        self.open_count = open.len();
        for a in open {
            self.open.entry(a.ip).or_default().push(a);
        }
        self.closed = closed.into_iter().rev().take(CLOSED_KEPT).rev().collect();
        self.next_id = self.next_id.max(next_id);
    }

    /// Open alerts, the most urgent kinds first, newest first within a kind.
    pub fn open(&self) -> Vec<&Alert> {
        let mut v: Vec<&Alert> = self.open.values().flatten().collect();
        v.sort_by(|a, b| {
            a.kind
                .rank()
                .cmp(&b.kind.rank())
                .then(b.start.cmp(&a.start))
                .then(b.id.cmp(&a.id))
        });
        v
    }

    pub fn open_for(&self, ip: IpAddr) -> &[Alert] {
        self.open.get(&ip).map_or(&[], Vec::as_slice)
    }

    pub fn open_count(&self) -> usize {
        self.open_count
    }

    /// Open alerts by kind, most first.
    pub fn counts(&self) -> Vec<(AlertKind, usize)> {
        let mut m: HashMap<AlertKind, usize> = HashMap::new();
        for a in self.open.values().flatten() {
            *m.entry(a.kind).or_default() += 1;
        }
        let mut v: Vec<_> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.label().cmp(b.0.label())));
        v
    }

    /// Miners with at least one open alert.
    pub fn alerting_miners(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Contract, Identified};
    use crate::state::Board;

    fn miner() -> Miner {
        let mut m = Miner::new(
            &Identified {
                ip: "127.16.0.1".parse().unwrap(),
                ports: crate::client::MinerPorts::default(),
                contract: Contract::Bmminer,
                make: "Antminer".into(),
                model: "S21 Pro".into(),
                firmware: "x".into(),
            },
            "a",
            0,
        );
        m.online = true;
        m.hashrate_ths = 230.0;
        m.uptime_secs = 600;
        m.boards = vec![Board {
            index: 1,
            failed: None,
            chips_found: 65,
            chips_expected: Some(65),
            bad_chips: vec![30],
            hashrate_ths: 76.0,
            chip_temp: Some(70.0),
            board_temp: None,
            hardware_errors: 0,
            serial: None,
        }];
        m.pool_url = Some("stratum+tcp://203.0.113.66:3333".into());
        m
    }

    #[test]
    fn a_bad_chip_and_a_foreign_pool_open_alerts_that_close_when_gone() {
        let rules = Rules {
            pools_allowed: vec!["stratum+tcp://pool.farm.example:3333".into()],
            ..Rules::default()
        };
        let mut m = miner();
        let mut alerts = Alerts::default();
        let opened = alerts.apply(m.ip, findings(&m, &rules), 100);
        let kinds: Vec<AlertKind> = opened.iter().map(|a| a.kind).collect();
        assert_eq!(kinds, [AlertKind::BadChips, AlertKind::PoolHijack]);
        assert_eq!(opened[0].evidence, "board 1: chip 30 silent or bad");
        assert_eq!(opened[0].board, Some(1));
        // Seen again: nothing new opens.
        assert!(alerts.apply(m.ip, findings(&m, &rules), 160).is_empty());
        m.boards[0].bad_chips.clear();
        m.pool_url = Some("stratum+tcp://POOL.farm.example:3333/".into());
        alerts.apply(m.ip, findings(&m, &rules), 220);
        assert_eq!(alerts.open_count(), 0);
        assert_eq!(alerts.closed.len(), 2);
        assert_eq!(alerts.closed[0].end, Some(220));
    }

    #[test]
    fn offline_and_rate_limit() {
        let mut m = miner();
        m.online = false;
        m.misses = 1;
        m.last_error = Some("connect: refused".into());
        let f = findings(&m, &Rules::default());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].0, AlertKind::Offline);
        let mut alerts = Alerts::default();
        let mut notified = 0;
        for i in 0..(NOTIFY_PER_MINUTE + 10) {
            let ip = IpAddr::from([127, 16, (i / 256) as u8, (i % 256) as u8]);
            notified += alerts.apply(ip, f.clone(), 60).len();
        }
        assert_eq!(notified as u32, NOTIFY_PER_MINUTE);
        assert_eq!(alerts.suppressed, 10);
        assert_eq!(alerts.open_count() as u32, NOTIFY_PER_MINUTE + 10);
        // Another rule has a budget of its own.
        let hot = vec![(AlertKind::Hot, Some(0), "board 0: 99 °C".to_string())];
        assert_eq!(
            alerts.apply(IpAddr::from([127, 17, 0, 1]), hot, 61).len(),
            1
        );
    }
}
