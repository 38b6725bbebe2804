//! The collector: discovery into the inventory, enrolment checks (web identity, default
//! password, open API), and poll cycles that read every known miner with bounded
//! concurrency, retry a miss before it counts, update the inventory and the alerts, and
//! write what changed to the database. A console without ranges of its own reads every
//! site's collectors from the database instead ([`Collector::refresh`]).

use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::alerts::{findings, Alert, Alerts, Rules};
use crate::client::{self, Contract, MinerPorts};
use crate::range::Ranges;
use crate::scan::{scan, ScanConfig, ScanReport};
use crate::state::{HourRow, Inventory};
use crate::store::{CycleWrite, MinerRow, RowRef, Store};
use crate::unix_now;

/// How the collector works.
#[derive(Clone, Debug)]
pub struct CollectorConfig {
    pub ports: MinerPorts,
    /// Reads in flight at once.
    pub concurrency: usize,
    /// One read's whole budget (connect, send, reply).
    pub timeout: Duration,
    /// Reads of a miner that failed, within one cycle, before it counts as missed.
    pub attempts: u32,
    /// Web passwords to try, the farm's first; the maker's default is tried separately.
    pub web_passwords: Vec<String>,
    pub rules: Rules,
    /// Where opened alerts are POSTed as JSON (`http://host:port/path`).
    pub webhook: Option<String>,
    /// Log each opened alert (the console does; `hashforge up`, whose log is the miner's,
    /// does not).
    pub log_alerts: bool,
    /// The site this collector watches (`--site`): its miners and alerts carry it.
    pub site: String,
    /// The prices the console's register pages assume where a request names none.
    pub prices: crate::console::PriceDefaults,
    /// hashforge miners' write token (`api.write_token`), for curtailment.
    pub api_token: Option<String>,
}

/// The site of a collector not told one.
pub const DEFAULT_SITE: &str = "local";

impl Default for CollectorConfig {
    fn default() -> CollectorConfig {
        CollectorConfig {
            ports: MinerPorts::default(),
            concurrency: 1024,
            timeout: Duration::from_secs(3),
            attempts: 2,
            web_passwords: Vec::new(),
            rules: Rules::default(),
            webhook: None,
            log_alerts: true,
            site: DEFAULT_SITE.to_owned(),
            prices: crate::console::PriceDefaults::default(),
            api_token: None,
        }
    }
}

/// What one poll cycle did.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct CycleReport {
    pub miners: usize,
    pub answered: usize,
    pub missed: usize,
    /// Reads that failed once and succeeded on a retry.
    pub retried: usize,
    pub elapsed_secs: f64,
    pub read_p50_ms: f64,
    pub read_p99_ms: f64,
    pub alerts_opened: usize,
    /// Writing the cycle to the database (after the reads).
    pub store_secs: f64,
    pub store_error: Option<String>,
    /// Repair tickets opened from this cycle's chip and board alerts (machines in the
    /// register, deployed).
    pub repairs_opened: usize,
}

/// Closed hours (by miner address) and alert changes not yet in the database.
type Unwritten = (Vec<(IpAddr, HourRow)>, Vec<Alert>);

/// The collector and what it knows.
pub struct Collector {
    pub config: CollectorConfig,
    pub inventory: RwLock<Inventory>,
    pub alerts: Mutex<Alerts>,
    pub last_cycle: Mutex<Option<CycleReport>>,
    pub store: Option<Store>,
    /// Hours and alerts a failed write left, written with the next cycle.
    unwritten: Mutex<Unwritten>,
    /// Each site's last cycle as its collector wrote it (a console reading the database).
    pub sites: Mutex<Vec<(String, u64, CycleReport)>>,
    /// Chip and board alerts opened last cycle: each opens its repair ticket if the next
    /// cycle finds it still open.
    suspects: Mutex<Vec<Alert>>,
    /// The curtailments run from this console, newest last (at most [`RUNS_KEPT`]).
    pub curtailments: Mutex<std::collections::VecDeque<crate::curtail::Run>>,
}

/// Curtailment runs a console keeps.
pub const RUNS_KEPT: usize = 50;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

impl Collector {
    pub fn new(config: CollectorConfig) -> Arc<Collector> {
        Collector::build(config, None)
    }

    /// A collector that writes to `store`, continuing what it wrote before: its site's
    /// miners (with a day of hourly history) and open alerts are read back first.
    pub async fn with_store(
        config: CollectorConfig,
        store: Store,
    ) -> Result<Arc<Collector>, hashforge_store::StoreError> {
        let me = Collector::build(config, Some(store.clone()));
        let miners = store.load_miners(false, unix_now()).await?;
        let (open, closed, next_id) = store.load_alerts(false).await?;
        if !miners.is_empty() {
            tracing::info!(
                "fleet database: {} miner(s) and {} open alert(s) of site {} read back",
                miners.len(),
                open.len(),
                store.site()
            );
        }
        me.inventory_mut().restore(miners);
        let mut alerts = me.alerts();
        alerts.restore(open, closed, next_id);
        alerts.journaling = true;
        drop(alerts);
        Ok(me)
    }

    /// A console of every site in `store`, filled by [`Collector::refresh`]; it polls nothing.
    pub fn with_reader(config: CollectorConfig, store: Store) -> Arc<Collector> {
        Collector::build(config, Some(store))
    }

    fn build(config: CollectorConfig, store: Option<Store>) -> Arc<Collector> {
        let mut alerts = Alerts::default();
        alerts.site.clone_from(&config.site);
        Arc::new(Collector {
            config,
            inventory: RwLock::new(Inventory::default()),
            alerts: Mutex::new(alerts),
            last_cycle: Mutex::new(None),
            store,
            unwritten: Mutex::new((Vec::new(), Vec::new())),
            sites: Mutex::new(Vec::new()),
            curtailments: Mutex::new(std::collections::VecDeque::new()),
            suspects: Mutex::new(Vec::new()),
        })
    }

    /// A console of every site: reads what the collectors wrote (miners, alerts, cycles)
    /// into this collector's inventory; the first call also reads a day of hourly history.
    pub async fn refresh(&self) -> Result<(), hashforge_store::StoreError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let now = unix_now();
        let first = self.inventory().miners.is_empty();
        let mut miners = store.load_miners(true, now).await?;
        if !first {
            for m in &mut miners {
                m.hourly.clear();
            }
        }
        let (open, closed, _) = store.load_alerts(true).await?;
        let sites = store.sites().await?;
        {
            let mut inv = self.inventory_mut();
            inv.restore(miners);
            inv.close_cycle(now);
        }
        self.alerts().restore(open, closed, 0);
        *self.sites.lock().unwrap_or_else(|e| e.into_inner()) = sites;
        Ok(())
    }

    pub fn inventory(&self) -> std::sync::RwLockReadGuard<'_, Inventory> {
        self.inventory.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn inventory_mut(&self) -> std::sync::RwLockWriteGuard<'_, Inventory> {
        self.inventory.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn alerts(&self) -> std::sync::MutexGuard<'_, Alerts> {
        self.alerts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Scans `ranges` and adds what answered to the inventory; returns the scan's report
    /// and the addresses that are new.
    pub async fn discover(&self, ranges: &Ranges) -> (ScanReport, Vec<IpAddr>) {
        let config = ScanConfig {
            ports: self.config.ports,
            concurrency: self.config.concurrency,
            timeout: self.config.timeout,
            attempts: self.config.attempts + 1,
        };
        let report = scan(ranges, config).await;
        let fresh = {
            let mut inv = self.inventory_mut();
            let positions = inv.enroll(&report.found, &self.config.site, unix_now());
            positions.into_iter().map(|i| inv.miners[i].ip).collect()
        };
        (report, fresh)
    }

    /// Adds one miner that answers on ports of its own (a miner whose API was moved), if it
    /// answers; returns whether it is new.
    pub async fn watch(&self, ip: IpAddr, ports: MinerPorts) -> Result<bool, client::ReadError> {
        match client::identify(ip, ports, self.config.timeout).await? {
            Some(found) => Ok(!self
                .inventory_mut()
                .enroll(&[found], &self.config.site, unix_now())
                .is_empty()),
            None => Err(client::ReadError::Shape(format!(
                "nothing miner-like answers at {ip} on ports {} and {}",
                ports.cgminer, ports.http
            ))),
        }
    }

    /// Enrolment checks for `ips`: the web identity (MAC, serial) with the farm's
    /// passwords, whether the maker's default password still works, whether the API is
    /// open to anyone.
    pub async fn enrol(self: &Arc<Self>, ips: Vec<IpAddr>) {
        let permits = Arc::new(Semaphore::new((self.config.concurrency / 4).max(1)));
        let mut tasks = JoinSet::new();
        for ip in ips {
            let Some(contract) = self.inventory().get(ip).map(|m| m.contract) else {
                continue;
            };
            if contract == Contract::AxeOs {
                continue;
            }
            let permit = Arc::clone(&permits).acquire_owned().await.expect("open");
            let me = Arc::clone(self);
            tasks.spawn(async move {
                let _permit = permit;
                me.enrol_one(ip).await;
            });
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn enrol_one(&self, ip: IpAddr) {
        let Some((ports, contract)) = self.inventory().get(ip).map(|m| (m.ports, m.contract))
        else {
            return;
        };
        let t = self.config.timeout;
        if contract != Contract::Bmminer {
            // Whatsminer and Avalon: the cgminer API only (their web pages are not read);
            // a Whatsminer's identity from btminer's own command.
            let api_open = client::api_open(ip, ports.cgminer, t).await.ok();
            let identity = if contract == Contract::Btminer {
                client::read_btminer_identity(ip, ports.cgminer, t)
                    .await
                    .ok()
            } else {
                None
            };
            let mut inv = self.inventory_mut();
            if let Some(i) = inv.position(ip) {
                inv.miners[i].api_open = api_open;
                if let Some(id) = identity {
                    inv.miners[i].take_web_identity(id);
                }
            }
            return;
        }
        let defaults = [hashforge_minerapi::antminer_web::USER.to_string()];
        let by_default = client::read_web_identity(ip, ports.http, &defaults, t)
            .await
            .ok();
        let default_password = by_default.is_some();
        let web = match by_default {
            Some((_, web)) => Some(web),
            None if !self.config.web_passwords.is_empty() => {
                client::read_web_identity(ip, ports.http, &self.config.web_passwords, t)
                    .await
                    .ok()
                    .map(|(_, web)| web)
            }
            None => None,
        };
        let api_open = client::api_open(ip, ports.cgminer, t).await.ok();
        let mut inv = self.inventory_mut();
        if let Some(i) = inv.position(ip) {
            let m = &mut inv.miners[i];
            m.default_password = Some(default_password);
            m.api_open = api_open;
            if let Some(web) = web {
                m.take_web_identity(web);
            }
        }
    }

    /// Reads every known miner once.
    pub async fn poll_cycle(self: &Arc<Self>) -> CycleReport {
        let start = Instant::now();
        let targets: Vec<(IpAddr, MinerPorts, Contract, Option<usize>)> = self
            .inventory()
            .miners
            .iter()
            .map(|m| (m.ip, m.ports, m.contract, m.expected_chips))
            .collect();
        let permits = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        let mut report = CycleReport {
            miners: targets.len(),
            ..CycleReport::default()
        };
        let mut latencies = Vec::with_capacity(targets.len());
        let mut opened: Vec<Alert> = Vec::new();
        let mut hours: Vec<(IpAddr, HourRow)> = Vec::new();
        for (ip, ports, contract, expected) in targets {
            let permit = Arc::clone(&permits).acquire_owned().await.expect("open");
            let me = Arc::clone(self);
            tasks.spawn(async move {
                let _permit = permit;
                me.read_one(ip, ports, contract, expected).await
            });
            while let Some(r) = tasks.try_join_next() {
                self.tally(r, &mut report, &mut latencies, &mut opened, &mut hours);
            }
        }
        while let Some(r) = tasks.join_next().await {
            self.tally(r, &mut report, &mut latencies, &mut opened, &mut hours);
        }
        self.inventory_mut().close_cycle(unix_now());
        latencies.sort_by(f64::total_cmp);
        report.read_p50_ms = percentile(&latencies, 0.5);
        report.read_p99_ms = percentile(&latencies, 0.99);
        report.elapsed_secs = start.elapsed().as_secs_f64();
        report.alerts_opened = opened.len();
        if self.config.log_alerts {
            for a in &opened {
                tracing::info!(ip = %a.ip, kind = a.kind.label(), "alert: {}", a.evidence);
            }
        }
        if let (Some(hook), false) = (&self.config.webhook, opened.is_empty()) {
            if let Err(e) = crate::http::post_json(
                hook,
                &serde_json::to_vec(&opened).unwrap_or_default(),
                self.config.timeout,
            )
            .await
            {
                tracing::warn!("webhook {hook}: {e}");
            }
        }
        if self.store.is_some() {
            let t = Instant::now();
            // The report written carries the previous cycle's write time (its own is not
            // known until it is written).
            let mut written = report.clone();
            written.store_secs = self
                .last_cycle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map_or(0.0, |r| r.store_secs);
            match self.persist(hours, &written).await {
                Ok(repairs) => report.repairs_opened = repairs,
                Err(e) => {
                    tracing::warn!(
                        "fleet database: {e}; the cycle's history is written with the next one"
                    );
                    report.store_error = Some(e.to_string());
                }
            }
            report.store_secs = t.elapsed().as_secs_f64();
        }
        *self.last_cycle.lock().unwrap_or_else(|e| e.into_inner()) = Some(report.clone());
        report
    }

    /// Runs a curtailment on `group` (`curtail::run`) with this collector's token and
    /// passwords, and keeps it for the console; returns it.
    pub async fn curtail(
        self: &Arc<Self>,
        action: crate::curtail::Action,
        group: crate::curtail::Group,
    ) -> crate::curtail::Run {
        let settings = crate::curtail::Settings {
            api_token: self.config.api_token.clone(),
            confirm_within: Duration::from_secs(15),
            concurrency: self.config.concurrency,
            timeout: self.config.timeout,
        };
        let mut run = crate::curtail::run(self, action, group, &settings).await;
        tracing::info!(
            "curtailment: {} on {} machine(s): {} confirmed in {:.1} s, {:.0} W -> {:.0} W",
            action.label(),
            run.machines,
            run.confirmed,
            run.elapsed_secs,
            run.power_before_w,
            run.power_after_w
        );
        let mut runs = self.curtailments.lock().unwrap_or_else(|e| e.into_inner());
        run.id = runs.back().map_or(1, |r| r.id + 1);
        runs.push_back(run.clone());
        while runs.len() > RUNS_KEPT {
            runs.pop_front();
        }
        run
    }

    /// Opens a repair ticket for each alert of a chip or a board that died, on a machine the
    /// register knows and has deployed (a `failed` event naming the board and the chips);
    /// returns how many opened. A miner nobody ordered, or a machine already failed or in
    /// repair, gets none: the alert itself still stands.
    async fn open_repairs(&self, alerts: &[Alert]) -> usize {
        let Some(store) = &self.store else {
            return 0;
        };
        let today = crate::date::Date::today();
        let mut opened = 0;
        for a in alerts {
            match store.repair_from_alert(a, today).await {
                Ok((serial, _)) => {
                    opened += 1;
                    tracing::info!(ip = %a.ip, serial, "repair ticket opened: {}", a.evidence);
                }
                Err(crate::assets::db::EventError::Store(e)) => {
                    tracing::warn!(ip = %a.ip, "repair ticket not opened: {e}");
                }
                Err(e) => tracing::debug!(ip = %a.ip, "no repair ticket: {e}"),
            }
        }
        opened
    }

    /// Writes the cycle: new or changed miners, every reading, the hours that closed, the
    /// alerts that opened or closed. What a failed write held is kept for the next one.
    /// Once the alerts are in, those of a chip or a board that died open repair tickets;
    /// returns how many did.
    pub async fn persist(
        &self,
        hours: Vec<(IpAddr, HourRow)>,
        report: &CycleReport,
    ) -> Result<usize, hashforge_store::StoreError> {
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let (mut hours_due, mut alerts_due) =
            std::mem::take(&mut *self.unwritten.lock().unwrap_or_else(|e| e.into_inner()));
        hours_due.extend(hours);
        alerts_due.extend(self.alerts().take_journal());
        let (write, fresh) = {
            let inv = self.inventory();
            let mut w = CycleWrite {
                report: Some(report.clone()),
                ..CycleWrite::default()
            };
            let mut fresh = Vec::new();
            let mut refs = Vec::with_capacity(inv.miners.len());
            // One row per identity: when two machines claim one serial or MAC (a cloned
            // control board, a machine that moved and left its old address silent), the
            // one seen last has it and the other is kept by its address.
            let keys: Vec<u64> = inv.miners.iter().map(MinerRow::identity_hash).collect();
            let mut owner: std::collections::HashMap<u64, usize> =
                std::collections::HashMap::with_capacity(keys.len());
            for (i, k) in keys.iter().enumerate() {
                let e = owner.entry(*k).or_insert(i);
                if inv.miners[i].last_seen > inv.miners[*e].last_seen {
                    *e = i;
                }
            }
            for (i, (m, key)) in inv.miners.iter().zip(&keys).enumerate() {
                let by_address = owner.get(key) != Some(&i);
                let r = match m.stored {
                    Some(s) if s.describes(m, by_address) => RowRef::Id(s.id),
                    _ => {
                        fresh.push(i);
                        w.miners.push(MinerRow::build(m, by_address));
                        RowRef::New(w.miners.len() - 1)
                    }
                };
                refs.push(r);
            }
            for (ip, h) in &hours_due {
                if let Some(i) = inv.position(*ip) {
                    w.hours.push((refs[i], h.clone(), *ip));
                }
            }
            w.alerts = alerts_due.clone();
            (w, fresh)
        };
        match store.write(&write).await {
            Ok(ids) => {
                let mut inv = self.inventory_mut();
                for ((pos, id), row) in fresh.iter().zip(ids).zip(&write.miners) {
                    if let Some(m) = inv.miners.get_mut(*pos) {
                        m.stored = Some(row.stored(id));
                    }
                }
            }
            Err(e) => {
                *self.unwritten.lock().unwrap_or_else(|e| e.into_inner()) = (hours_due, alerts_due);
                return Err(e);
            }
        }
        drop(write);
        // A chip or board alert opens its ticket once the next cycle still finds it open: a
        // board that reads empty while its miner boots, then answers, opens none.
        let fresh: Vec<Alert> = alerts_due
            .into_iter()
            .filter(|a| a.end.is_none() && a.kind.opens_repair())
            .collect();
        let tickets: Vec<Alert> = {
            let waiting = std::mem::replace(
                &mut *self.suspects.lock().unwrap_or_else(|e| e.into_inner()),
                fresh,
            );
            let alerts = self.alerts();
            waiting
                .into_iter()
                .filter(|a| alerts.open_for(a.ip).iter().any(|o| o.id == a.id))
                .collect()
        };
        let repairs = self.open_repairs(&tickets).await;
        // The readings, a batch at a time: each serialized under the lock, written without it.
        let total = self.inventory().miners.len();
        for start in (0..total).step_by(crate::store::BATCH) {
            let batch = {
                let inv = self.inventory();
                let end = (start + crate::store::BATCH).min(inv.miners.len());
                crate::store::readings_batch(inv.miners[start.min(end)..end].iter().filter_map(
                    |m| match (m.stored, m.last_seen) {
                        (Some(s), Some(_)) => Some((s.id, m)),
                        _ => None,
                    },
                ))
            };
            if batch.len() > 2 {
                store.write_readings(&batch).await?;
            }
        }
        Ok(repairs)
    }

    fn tally(
        &self,
        r: Result<Outcome, tokio::task::JoinError>,
        report: &mut CycleReport,
        latencies: &mut Vec<f64>,
        opened: &mut Vec<Alert>,
        hours: &mut Vec<(IpAddr, HourRow)>,
    ) {
        let Ok(o) = r else {
            return;
        };
        hours.extend(o.hour);
        if o.answered {
            report.answered += 1;
            latencies.push(o.ms);
        } else {
            report.missed += 1;
        }
        if o.retried {
            report.retried += 1;
        }
        opened.extend(o.opened);
    }

    async fn read_one(
        &self,
        ip: IpAddr,
        ports: MinerPorts,
        contract: Contract,
        expected: Option<usize>,
    ) -> Outcome {
        let mut retried = false;
        let mut result = Err(client::ReadError::Closed);
        let mut ms = 0.0;
        for attempt in 0..self.config.attempts.max(1) {
            let t0 = Instant::now();
            result = client::read(ip, contract, ports, expected, self.config.timeout).await;
            ms = t0.elapsed().as_secs_f64() * 1e3;
            if result.is_ok() {
                break;
            }
            retried = true;
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
        let now = unix_now();
        let answered = result.is_ok();
        let f = {
            let mut inv = self.inventory_mut();
            let Some(i) = inv.position(ip) else {
                return Outcome::default();
            };
            let m = &mut inv.miners[i];
            let closed = match &result {
                Ok(s) => m.update(s, now, ms as f32),
                Err(e) => m.missed(e.to_string(), now),
            };
            (findings(m, &self.config.rules), closed)
        };
        let (f, hour) = f;
        let opened = self.alerts().apply(ip, f, now);
        Outcome {
            answered,
            retried: retried && answered,
            ms,
            opened,
            hour: hour.map(|h| (ip, h)),
        }
    }

    /// Polls every `every` until `stop` is set.
    pub async fn run(
        self: Arc<Self>,
        every: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let started = Instant::now();
            let r = self.poll_cycle().await;
            tracing::debug!(
                "poll: {} of {} answered in {:.2} s",
                r.answered,
                r.miners,
                r.elapsed_secs
            );
            let wait = every.saturating_sub(started.elapsed());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

#[derive(Default)]
struct Outcome {
    answered: bool,
    retried: bool,
    ms: f64,
    opened: Vec<Alert>,
    hour: Option<(IpAddr, HourRow)>,
}

/// Chips per board of a model, from the machine tables (`S21 Pro` -> 65, `M60S VK10` ->
/// 215, Avalon `1246-90` -> 120: an Avalon's model is its family and a rate bin).
pub fn expected_chips(model: &str) -> Option<usize> {
    let key = model.to_ascii_lowercase().replace([' ', '_'], "");
    let bitmain = hashforge_asic::MachineProfile::ALL
        .into_iter()
        .find(|p| {
            p.name.replace('-', "") == key
                || p.model
                    .to_ascii_lowercase()
                    .replace(' ', "")
                    .ends_with(&key)
        })
        .map(|p| p.chips_per_board);
    let family = |m: &str| {
        let m = m.to_ascii_lowercase().replace([' ', '_'], "");
        m.split('-').next().unwrap_or("").to_string()
    };
    bitmain.or_else(|| {
        [crate::sim::model::M60S, crate::sim::model::AVALON_1246]
            .into_iter()
            .find(|n| !key.is_empty() && family(n.model) == family(model))
            .map(|n| n.chips_per_board)
    })
}
