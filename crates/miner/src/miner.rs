//! The miner: pool connections, failover, dispatch, nonce checking and the books, as one
//! tokio task that owns the state; the API and HTTP servers read snapshots of it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hashforge_core::{Difficulty, HashRate, Header};
use hashforge_minerapi::Identity;
use hashforge_stratum::{check_header, Job, Share};

use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;

use crate::config::{ApiConfig, ConfigError, FailoverConfig, MinerConfig, PoolConfig};
use crate::device::{self, Device, DeviceContext, DeviceError, DeviceInfo, FoundNonce, Telemetry};
use crate::failover::{self, Limits, PoolHealth};
use crate::feed::WorkFeed;
use crate::pool::{PoolCommand, PoolEvent, PoolEventKind, PoolTask};
use crate::power::{self, PowerState};
use crate::snapshot::{host_identity, unix_now, Snapshot};
use crate::stats::{DeviceStats, RateWindow, ShareCounts, ShareOutcome};

/// Why the miner did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("cannot listen for the {what} on {addr}: {source}; pick another address (--{flag} HOST:PORT)")]
    Bind {
        what: &'static str,
        flag: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A privileged request from the API, answered with a message or an error.
pub(crate) enum Request {
    SwitchPool(usize),
    EnablePool(usize),
    DisablePool(usize),
    AddPool(PoolConfig),
    RemovePool(usize),
    Restart,
    /// Inject a fault into device N (an emulated machine) while it runs.
    /// A fault into device `.0`, on its chain `.1` only where given.
    InjectFault(usize, Option<usize>, hashforge_asic::Fault),
    /// Keep the machine at or under this many watts; `None` clears the target.
    PowerTarget(Option<f64>),
    Sleep,
    Wake,
}

pub(crate) type Reply = oneshot::Sender<Result<String, String>>;

/// How long after a power change the manager reads the devices' draw every tick.
const POWER_SETTLING: Duration = Duration::from_secs(4);
/// The longest a power command's reply waits for the devices to have done it.
const POWER_REPLY_WAIT: Duration = Duration::from_secs(5);

/// Who found a share, kept until the share's book is closed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ShareMeta {
    pub device: usize,
    /// The difficulty the job was sent under (what the share is worth to the pool).
    pub job_difficulty: Difficulty,
    /// The share also meets the job's nBits: accepted, it is a block.
    pub block: bool,
    /// The job's network target was easier than its share target (regtest, a testnet's
    /// minimum-difficulty blocks under a high share difficulty): every share is a block,
    /// and the pool announces them.
    pub every_share_a_block: bool,
}

/// A share handed to a pool's task and not settled yet.
struct Pending {
    meta: ShareMeta,
    /// The task wrote it to the pool (its verdict is due).
    sent: bool,
}

pub(crate) struct PoolState {
    pub id: u64,
    pub config: PoolConfig,
    pub enabled: bool,
    pub connected: bool,
    pub ready_since: Option<Instant>,
    pub last_job: Option<(Arc<Job>, u64, Instant)>,
    pub difficulty: f64,
    pub jobs: u64,
    pub shares: ShareCounts,
    /// Shares handed to the pool's task that it has not settled, by id. A task that is
    /// aborted (pool removed, restarted) settles nothing more: these are settled for it.
    pending: HashMap<u64, Pending>,
    pub best_share: f64,
    pub last_share_time: u64,
    pub last_share_difficulty: f64,
    pub bad_input: u64,
    pub disconnects: u64,
    pub last_error: Option<String>,
    commands: mpsc::Sender<PoolCommand>,
    task: JoinHandle<()>,
}

/// Everything the miner knows, behind one lock.
pub(crate) struct State {
    pub pools: Vec<PoolState>,
    pub active: Option<u64>,
    pub devices: Vec<DeviceStats>,
    pub telemetry: Vec<Telemetry>,
    pub window: RateWindow,
    /// Every pool's shares together, the pools removed since the start included.
    pub totals: ShareCounts,
    pub hardware_errors: u64,
    pub best_share: f64,
    pub found_blocks: u64,
    pub pool_switches: u64,
    /// The power target and sleep the operator set.
    pub power: PowerState,
    next_pool_id: u64,
    next_share_id: u64,
}

impl State {
    /// Books what became of a share found for `pool` in its pool's, the totals' and its
    /// device's counts: the one place share counters change, so the books cannot disagree.
    fn record(&mut self, pool: u64, meta: &ShareMeta, outcome: &ShareOutcome) {
        if let Some(p) = self.pools.iter_mut().find(|p| p.id == pool) {
            p.shares.record(meta.job_difficulty, outcome);
        }
        self.totals.record(meta.job_difficulty, outcome);
        if let Some(d) = self.devices.get_mut(meta.device) {
            d.shares.record(meta.job_difficulty, outcome);
        }
        if meta.block && *outcome == ShareOutcome::Accepted {
            self.found_blocks += 1;
            if meta.every_share_a_block {
                tracing::debug!("the pool accepted a share that is a test-chain block");
            } else {
                tracing::info!("the pool accepted a share that meets the network target: a block");
            }
        }
    }

    /// Stops pool `i`'s task and settles what it held, for `RemovePool` and `Restart`: the
    /// slot stays for the caller to remove or refill, and the miner mines on no pool until
    /// `choose_pool` picks one again.
    fn retire_pool(&mut self, i: usize) {
        let id = self.pools[i].id;
        self.pools[i].task.abort();
        self.settle_pending(id);
        if self.active == Some(id) {
            self.active = None;
        }
    }

    /// Settles everything `pool`'s task still holds, the one way shares a pool did not
    /// answer are closed: when its connection went down (`PoolEventKind::Down`) and before
    /// its task is aborted (pool removed, restart). Sent shares are lost, queued ones were
    /// never sent (stale). Verdicts the task reports later for them are ignored.
    fn settle_pending(&mut self, pool: u64) {
        let Some(p) = self.pools.iter_mut().find(|p| p.id == pool) else {
            return;
        };
        let pending: Vec<Pending> = p.pending.drain().map(|(_, v)| v).collect();
        let lost = pending.iter().filter(|s| s.sent).count();
        if lost > 0 {
            tracing::warn!(pool = %p.config.url, "{lost} share(s) sent and never answered: lost");
        }
        for Pending { meta, sent } in pending {
            let outcome = if sent {
                ShareOutcome::Lost
            } else {
                ShareOutcome::Stale
            };
            self.record(pool, &meta, &outcome);
        }
    }
}

pub(crate) struct Shared {
    pub started: Instant,
    pub started_unix: u64,
    pub state: Mutex<State>,
    pub feed: Arc<WorkFeed>,
    pub devices: Vec<DeviceInfo>,
    pub api: ApiConfig,
    pub model: String,
    /// Who this miner says it is to fleet tools.
    pub identity: Identity,
    pub requests: mpsc::Sender<(Request, Reply)>,
    pub quit: Notify,
    pub quit_requested: std::sync::atomic::AtomicBool,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
    /// Asks the privileged part of the miner to do something.
    pub async fn request(&self, r: Request) -> Result<String, String> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send((r, tx))
            .await
            .map_err(|_| "the miner is stopping".to_string())?;
        rx.await.map_err(|_| "the miner is stopping".to_string())?
    }
    pub fn request_quit(&self) {
        self.quit_requested
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.quit.notify_waiters();
    }
}

/// Starts miners.
pub struct Miner;

/// A running miner. Drop it or call [`MinerHandle::stop`] to stop it.
pub struct MinerHandle {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    devices: Arc<Mutex<Vec<Box<dyn Device>>>>,
    api_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
}

impl Miner {
    /// Starts a miner on the current tokio runtime: pool connections, devices, the cgminer
    /// API and (if configured) HTTP. Returns once everything listens.
    pub async fn start(config: MinerConfig) -> Result<MinerHandle, StartError> {
        config.validate()?;
        let faults = config
            .faults
            .iter()
            .map(|f| {
                f.parse::<hashforge_asic::Fault>()
                    .map_err(|e| device::DeviceError::Failed {
                        device: "emulated".into(),
                        why: format!("--fault {f}: {e}"),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut devices: Vec<Box<dyn Device>> = config
            .devices
            .iter()
            .map(|d| device::open(d, &faults))
            .collect::<Result<_, _>>()?;
        let infos: Vec<DeviceInfo> = devices.iter().map(|d| d.info()).collect();
        let model = config
            .api
            .model
            .clone()
            .unwrap_or_else(|| infos[0].model.clone());

        let api_listener = match config.api.listen {
            Some(addr) => Some(bind(addr, "cgminer API", "api").await?),
            None => None,
        };
        let http_listener = match config.http.listen {
            Some(addr) => Some(bind(addr, "HTTP server", "http").await?),
            None => None,
        };

        let (shutdown, shutdown_rx) = watch::channel(false);
        let (pool_events_tx, pool_events) = mpsc::channel(4096);
        let (nonces_tx, nonces) = mpsc::channel(4096);
        let (requests_tx, requests) = mpsc::channel(64);
        let feed = Arc::new(WorkFeed::new());
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let shared = Arc::new(Shared {
            started: Instant::now(),
            started_unix: now_unix,
            state: Mutex::new(State::new(
                infos.iter().map(|i| DeviceStats::new(&i.chains)).collect(),
                devices.iter().map(|d| d.telemetry()).collect(),
            )),
            feed: Arc::clone(&feed),
            devices: infos,
            api: config.api.clone(),
            identity: host_identity(&model, config.serial.clone()),
            model,
            requests: requests_tx,
            quit: Notify::new(),
            quit_requested: false.into(),
        });

        let spawner = PoolSpawner {
            failover: config.failover.clone(),
            expected: HashRate::from_hs(
                shared.devices.iter().map(|i| i.expected_rate.as_hs()).sum(),
            ),
            events: pool_events_tx,
            shutdown: shutdown_rx.clone(),
        };
        {
            let mut st = shared.lock();
            for p in &config.pools {
                let pool = spawner.spawn(&mut st, p.clone());
                st.pools.push(pool);
            }
        }

        for (index, d) in devices.iter_mut().enumerate() {
            d.start(DeviceContext {
                index,
                feed: Arc::clone(&feed),
                nonces: nonces_tx.clone(),
            })?;
        }
        drop(nonces_tx);
        let devices = Arc::new(Mutex::new(devices));

        let mut tasks = Vec::new();
        let manager = Manager {
            shared: Arc::clone(&shared),
            failover: config.failover.clone(),
            spawner,
            devices: Arc::clone(&devices),
        };
        tasks.push(tokio::spawn(manager.run(
            pool_events,
            nonces,
            requests,
            shutdown_rx.clone(),
        )));
        let api_addr = api_listener.as_ref().and_then(|l| l.local_addr().ok());
        if let Some(l) = api_listener {
            tasks.push(tokio::spawn(crate::cgminer::serve(
                l,
                Arc::clone(&shared),
                shutdown_rx.clone(),
            )));
        }
        let http_addr = http_listener.as_ref().and_then(|l| l.local_addr().ok());
        if let Some(l) = http_listener {
            tasks.push(tokio::spawn(crate::http::serve(
                l,
                Arc::clone(&shared),
                config.http.web_password.clone(),
                shutdown_rx.clone(),
            )));
        }
        tracing::info!(
            api = ?api_addr,
            http = ?http_addr,
            devices = shared.devices.len(),
            pools = config.pools.len(),
            "miner started"
        );
        Ok(MinerHandle {
            shared,
            shutdown,
            tasks,
            devices,
            api_addr,
            http_addr,
        })
    }
}

async fn bind(
    addr: SocketAddr,
    what: &'static str,
    flag: &'static str,
) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            what,
            flag,
            addr,
            source,
        })
}

impl MinerHandle {
    /// Where the cgminer API listens.
    /// Injects `fault` into emulated device `device` (its chain `chain` only, where given),
    /// as the cgminer API's privileged `fault` does: a demo's chip that dies while it runs.
    pub async fn inject(
        &self,
        device: usize,
        chain: Option<usize>,
        fault: hashforge_asic::Fault,
    ) -> Result<String, String> {
        self.shared
            .request(Request::InjectFault(device, chain, fault))
            .await
    }

    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api_addr
    }
    /// Where REST, `/metrics` and the status page listen.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }
    /// Everything the miner knows, now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::of(&self.shared)
    }
    /// cgminer's console line: rates, shares, errors, the active pool.
    pub fn status_line(&self) -> String {
        self.snapshot().status_line()
    }
    /// For each clean job or pool switch: the time from the notify's arrival until every
    /// device worker hashed the new job.
    pub fn switch_latencies(&self) -> Vec<Duration> {
        self.shared.feed.switch_latencies()
    }
    /// Resolves when an API client sent an allowed `quit`.
    pub async fn quit_requested(&self) {
        loop {
            let notified = self.shared.quit.notified();
            if self
                .shared
                .quit_requested
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                return;
            }
            notified.await;
        }
    }
    /// Stops mining, closes the pools and the servers, and waits for the device threads.
    pub async fn stop(mut self) {
        self.halt();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        let devices = Arc::clone(&self.devices);
        let _ = tokio::task::spawn_blocking(move || {
            for d in devices.lock().unwrap_or_else(|e| e.into_inner()).iter_mut() {
                d.stop();
            }
        })
        .await;
    }

    fn halt(&self) {
        let _ = self.shutdown.send(true);
        self.shared.feed.shutdown();
        for p in &self.shared.lock().pools {
            p.task.abort();
        }
    }
}

impl Drop for MinerHandle {
    fn drop(&mut self) {
        self.halt();
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct PoolSpawner {
    failover: FailoverConfig,
    /// The devices' expected rates together, what an SV2 channel tells its pool.
    expected: HashRate,
    events: mpsc::Sender<PoolEvent>,
    shutdown: watch::Receiver<bool>,
}

impl PoolSpawner {
    fn spawn(&self, st: &mut State, config: PoolConfig) -> PoolState {
        let id = st.next_pool_id;
        st.next_pool_id += 1;
        let (tx, rx) = mpsc::channel(1024);
        let task = PoolTask {
            id,
            config: config.clone(),
            failover: self.failover.clone(),
            expected: self.expected,
            events: self.events.clone(),
            commands: rx,
            shutdown: self.shutdown.clone(),
        };
        PoolState::new(id, config, tx, tokio::spawn(task.run()))
    }
}

impl State {
    /// No pools yet and nothing counted, for these devices.
    fn new(devices: Vec<DeviceStats>, telemetry: Vec<Telemetry>) -> State {
        State {
            pools: Vec::new(),
            active: None,
            devices,
            telemetry,
            window: RateWindow::default(),
            totals: ShareCounts::default(),
            hardware_errors: 0,
            best_share: 0.0,
            found_blocks: 0,
            pool_switches: 0,
            power: PowerState::default(),
            next_pool_id: 0,
            next_share_id: 0,
        }
    }
}

impl PoolState {
    /// A pool not yet connected, with nothing counted.
    fn new(
        id: u64,
        config: PoolConfig,
        commands: mpsc::Sender<PoolCommand>,
        task: JoinHandle<()>,
    ) -> PoolState {
        PoolState {
            id,
            config,
            enabled: true,
            connected: false,
            ready_since: None,
            last_job: None,
            difficulty: 1.0,
            jobs: 0,
            shares: ShareCounts::default(),
            pending: HashMap::new(),
            best_share: 0.0,
            last_share_time: 0,
            last_share_difficulty: 0.0,
            bad_input: 0,
            disconnects: 0,
            last_error: None,
            commands,
            task,
        }
    }
}

struct Manager {
    shared: Arc<Shared>,
    failover: FailoverConfig,
    spawner: PoolSpawner,
    devices: Arc<Mutex<Vec<Box<dyn Device>>>>,
}

impl Manager {
    async fn run(
        self,
        mut pool_events: mpsc::Receiver<PoolEvent>,
        mut nonces: mpsc::Receiver<FoundNonce>,
        mut requests: mpsc::Receiver<(Request, Reply)>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Pool health is judged every tick; telemetry (device locks, sysfs) every 2 s, which
        // is as often as chains read their temperatures, and every tick for a few seconds
        // after a power change, so the draw reported follows it.
        let mut ticks = 0u32;
        let mut power_changed = None;
        // Power commands done, their replies held until the devices did them (or a bound
        // passed), so a reading right after a reply shows the new draw.
        let mut settling: Vec<(Reply, Result<String, String>, Instant)> = Vec::new();
        // An interval, not a sleep made anew each turn: nonces arrive every few ms.
        let mut settle_tick = tokio::time::interval(Duration::from_millis(20));
        settle_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(e) = pool_events.recv() => self.on_pool_event(e),
                Some(n) = nonces.recv() => self.on_nonce(n),
                Some((r, reply)) = requests.recv() => {
                    let power = matches!(r, Request::PowerTarget(_) | Request::Sleep | Request::Wake);
                    let outcome = self.on_request(r);
                    if power && outcome.is_ok() {
                        power_changed = Some(Instant::now());
                        settling.push((reply, outcome, Instant::now() + POWER_REPLY_WAIT));
                    } else {
                        let _ = reply.send(outcome);
                    }
                }
                _ = settle_tick.tick(), if !settling.is_empty() => {
                    let settled = self.power_settled();
                    if settled {
                        self.refresh_telemetry();
                    }
                    let now = Instant::now();
                    for (reply, outcome, until) in std::mem::take(&mut settling) {
                        if settled || now >= until {
                            let outcome = outcome.map(|m| if settled {
                                m
                            } else {
                                format!("{m} (not all of it done after {} s)", POWER_REPLY_WAIT.as_secs())
                            });
                            let _ = reply.send(outcome);
                        } else {
                            settling.push((reply, outcome, until));
                        }
                    }
                }
                _ = tick.tick() => {
                    let settling = power_changed.is_some_and(|at| at.elapsed() < POWER_SETTLING);
                    if ticks.is_multiple_of(8) || settling {
                        self.refresh_telemetry();
                    }
                    ticks = ticks.wrapping_add(1);
                    self.choose_pool(Instant::now());
                }
                _ = shutdown.changed() => return,
            }
        }
    }

    fn power_settled(&self) -> bool {
        self.devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .all(|d| d.power_settled())
    }

    fn refresh_telemetry(&self) {
        let t: Vec<Telemetry> = self
            .devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|d| d.telemetry())
            .collect();
        self.shared.lock().telemetry = t;
    }

    fn on_pool_event(&self, e: PoolEvent) {
        let now = Instant::now();
        let mut st = self.shared.lock();
        let Some(p) = st.pools.iter_mut().find(|p| p.id == e.pool) else {
            return;
        };
        let secs = unix_now();
        match e.kind {
            PoolEventKind::Connected => p.connected = true,
            PoolEventKind::Ready => {
                p.ready_since = Some(now);
                p.last_error = None;
            }
            PoolEventKind::Job {
                job,
                epoch,
                received,
            } => {
                p.jobs += 1;
                p.difficulty = job.difficulty.as_f64();
                p.last_job = Some((Arc::clone(&job), epoch, received));
                if st.active == Some(e.pool) {
                    self.dispatch(e.pool, &job, epoch, job.clean_jobs, received);
                    return;
                }
            }
            PoolEventKind::Difficulty(d) => p.difficulty = d.as_f64(),
            PoolEventKind::Share { id, outcome } => {
                let Some(pending) = p.pending.get_mut(&id) else {
                    // Settled already: its task was aborted.
                    return;
                };
                let meta = pending.meta;
                match outcome {
                    ShareOutcome::Sent => pending.sent = true,
                    _ => {
                        p.pending.remove(&id);
                    }
                }
                if outcome == ShareOutcome::Accepted {
                    p.last_share_time = secs;
                    p.last_share_difficulty = meta.job_difficulty.as_f64();
                }
                st.record(e.pool, &meta, &outcome);
                return;
            }
            PoolEventKind::BadInput(what) => {
                tracing::warn!(pool = %p.config.url, "bad input from the pool: {what}");
                p.bad_input += 1;
                return;
            }
            PoolEventKind::Down(why) => {
                p.connected = false;
                p.ready_since = None;
                p.last_job = None;
                p.disconnects += 1;
                p.last_error = Some(why);
                st.settle_pending(e.pool);
            }
        }
        drop(st);
        self.choose_pool(now);
    }

    fn dispatch(&self, pool: u64, job: &Arc<Job>, epoch: u64, clean: bool, received: Instant) {
        self.shared.feed.set_job(
            pool,
            Arc::clone(job),
            epoch,
            job.difficulty,
            clean,
            received,
        );
    }

    /// Applies [`failover::choose`] to the pools' health now.
    fn choose_pool(&self, now: Instant) {
        let limits = Limits {
            stall: FailoverConfig::secs(self.failover.stall_secs),
            failback: FailoverConfig::secs(self.failover.failback_after_secs),
        };
        let mut st = self.shared.lock();
        let health: Vec<PoolHealth> = st
            .pools
            .iter()
            .map(|p| PoolHealth {
                enabled: p.enabled,
                ready_since: p.ready_since,
                last_job_at: p.last_job.as_ref().map(|(_, _, at)| *at),
                disconnects: p.disconnects,
            })
            .collect();
        let active_pos = st
            .active
            .and_then(|id| st.pools.iter().position(|p| p.id == id));
        let choice = failover::choose(&health, active_pos, now, limits);
        let new_active = choice.map(|i| st.pools[i].id);
        if new_active == st.active {
            return;
        }
        st.pool_switches += 1;
        st.active = new_active;
        match choice {
            Some(i) => {
                let p = &st.pools[i];
                tracing::info!(pool = %p.config.url, priority = i, "mining on this pool");
                let (job, epoch, _) = p.last_job.clone().expect("healthy pools have a job");
                let id = p.id;
                drop(st);
                self.dispatch(id, &job, epoch, true, now);
            }
            None => {
                tracing::warn!("no pool is usable; devices wait");
                drop(st);
                self.shared.feed.clear();
            }
        }
    }

    fn on_nonce(&self, n: FoundNonce) {
        let unit = &n.unit;
        let header = Header::from_bytes(&unit.header_for(n.version, n.nonce));
        let ticket = n.ticket_difficulty;
        let check = check_header(header, ticket.to_target());
        let outside_mask = (n.version ^ unit.job.parts.version) & !unit.job.version_mask != 0;
        let mut st = self.shared.lock();
        let second = self.shared.started.elapsed().as_secs();
        let Some(dev) = st.devices.get_mut(n.device) else {
            return;
        };
        if !check.meets_share_target || outside_mask {
            dev.hardware_errors += 1;
            if let Some(e) = dev.chain_hardware_errors.get_mut(n.chain) {
                *e += 1;
            }
            if let Some(c) = dev.chip(n.chain, n.chip) {
                c.hardware_errors += 1;
            }
            st.hardware_errors += 1;
            tracing::debug!(
                device = n.device,
                chain = n.chain,
                chip = n.chip,
                "hardware error: nonce {:08x} does not meet its ticket",
                n.nonce
            );
            return;
        }
        let found = ticket.as_f64();
        let share_difficulty = check.difficulty.as_f64();
        dev.window.add(second, found);
        if let Some(w) = dev.chain_windows.get_mut(n.chain) {
            w.add(second, found);
        }
        let chain_nonces = match dev.chain_nonces.get_mut(n.chain) {
            Some(count) => {
                *count += 1;
                *count
            }
            None => 0,
        };
        if let Some(c) = dev.chip(n.chain, n.chip) {
            c.nonces += 1;
            c.found_difficulty += found;
            c.chain_nonces_at_last = chain_nonces;
        }
        dev.best_share = dev.best_share.max(share_difficulty);
        st.window.add(second, found);
        st.best_share = st.best_share.max(share_difficulty);
        // Only what meets the pool's share target goes out, as cgminer and ESP-Miner do: a
        // pool refuses the rest ("above target"), and where the network target is easier
        // than the share target (regtest, a testnet's minimum-difficulty blocks) sending
        // every hash that meets nBits floods the pool with blocks. Where the network target
        // is the harder one, a block meets the share target too.
        if !unit.share_target.is_met_by(&check.hash) {
            return;
        }
        let meta = ShareMeta {
            device: n.device,
            job_difficulty: unit.job.difficulty,
            block: check.meets_network_target,
            every_share_a_block: check
                .header
                .bits
                .to_target()
                .is_ok_and(|network| network.difficulty() <= unit.job.difficulty),
        };
        let id = st.next_share_id;
        st.next_share_id += 1;
        let Some(p) = st.pools.iter_mut().find(|p| p.id == unit.pool_id) else {
            return;
        };
        p.best_share = p.best_share.max(share_difficulty);
        let current_epoch = p.last_job.as_ref().map(|(_, e, _)| *e);
        if current_epoch != Some(unit.epoch) {
            st.record(unit.pool_id, &meta, &ShareOutcome::Stale);
            return;
        }
        let share = Share {
            job_id: unit.job.job_id.clone(),
            extranonce2: unit.extranonce2.clone(),
            ntime: unit.ntime,
            nonce: n.nonce,
            version: n.version,
        };
        let cmd = PoolCommand::Submit {
            share,
            epoch: unit.epoch,
            id,
        };
        if p.commands.try_send(cmd).is_ok() {
            p.pending.insert(id, Pending { meta, sent: false });
        } else {
            st.record(unit.pool_id, &meta, &ShareOutcome::Stale);
        }
    }

    fn on_request(&self, r: Request) -> Result<String, String> {
        let mut st = self.shared.lock();
        let n = st.pools.len();
        let check = |i: usize| {
            if i < n {
                Ok(i)
            } else {
                Err(format!(
                    "Invalid pool id {i} - range is 0 - {}",
                    n.saturating_sub(1)
                ))
            }
        };
        let msg = match r {
            Request::SwitchPool(i) => {
                let i = check(i)?;
                let p = st.pools.remove(i);
                let url = p.config.url.to_string();
                st.pools.insert(0, p);
                st.pools[0].enabled = true;
                // An operator's choice applies now, without the failback delay: with no active
                // pool, choose_pool takes the first healthy one, which is this one if it is.
                st.active = None;
                format!("Switching to pool 0:'{url}'")
            }
            Request::EnablePool(i) => {
                let i = check(i)?;
                st.pools[i].enabled = true;
                format!("Enabling pool {i}:'{}'", st.pools[i].config.url)
            }
            Request::DisablePool(i) => {
                let i = check(i)?;
                st.pools[i].enabled = false;
                format!("Disabling pool {i}:'{}'", st.pools[i].config.url)
            }
            Request::AddPool(config) => {
                let url = config.url.to_string();
                let p = self.spawner.spawn(&mut st, config);
                st.pools.push(p);
                format!("Added pool {}: '{url}'", st.pools.len() - 1)
            }
            Request::RemovePool(i) => {
                let i = check(i)?;
                if st.pools.len() == 1 {
                    return Err("Cannot remove the last pool".into());
                }
                st.retire_pool(i);
                let p = st.pools.remove(i);
                format!("Removed pool {i}:'{}'", p.config.url)
            }
            Request::InjectFault(device, chain, fault) => {
                let devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
                let Some(d) = devices.get(device) else {
                    return Err(format!(
                        "Invalid device id {device} - range is 0 - {}",
                        devices.len().saturating_sub(1)
                    ));
                };
                d.inject(chain, fault)?;
                tracing::warn!(device, ?chain, %fault, "fault injected");
                match chain {
                    Some(c) => format!("Injected {fault} into device {device}, chain {c}"),
                    None => format!("Injected {fault} into device {device}"),
                }
            }
            Request::PowerTarget(limit) => {
                let devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
                let msg = power::set_target(&devices, &mut st.power, limit)?;
                tracing::info!("{msg}");
                msg
            }
            Request::Sleep => {
                let devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
                let msg = power::sleep(&devices, &mut st.power)?;
                tracing::info!("{msg}");
                msg
            }
            Request::Wake => {
                let devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
                let msg = power::wake(&devices, &mut st.power)?;
                tracing::info!("{msg}");
                msg
            }
            Request::Restart => {
                for i in 0..st.pools.len() {
                    st.retire_pool(i);
                    let old = &st.pools[i];
                    let (config, enabled, shares) =
                        (old.config.clone(), old.enabled, old.shares.clone());
                    let mut p = self.spawner.spawn(&mut st, config);
                    p.enabled = enabled;
                    // The same pool: its book goes on (and still adds up to the totals).
                    p.shares = shares;
                    st.pools[i] = p;
                }
                "Restarting pool connections".into()
            }
        };
        drop(st);
        self.choose_pool(Instant::now());
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::WorkUnit;
    use hashforge_core::{CompactTarget, HashRate};

    /// A share (and ticket) difficulty of 2^-20: about one nonce in 4096 meets it.
    const EASY: f64 = 1.0 / 1_048_576.0;
    const MASK: u32 = 0x1fff_e000;

    /// A manager with one device of two 2-chip chains and one pool whose task is a
    /// stand-in: what the manager submits to the pool lands in the receiver.
    fn manager_and_unit() -> (Manager, mpsc::Receiver<PoolCommand>, Arc<WorkUnit>) {
        let mut job = (*crate::feed::tests::job("1", 4)).clone();
        // A share at EASY is not a block.
        job.parts.nbits = CompactTarget(0x1d00ffff);
        job.difficulty = Difficulty::new(EASY).unwrap();
        job.version_mask = MASK;
        let job = Arc::new(job);
        let feed = Arc::new(WorkFeed::new());
        let worker = feed.add_worker();
        let share_difficulty = Difficulty::new(EASY).unwrap();
        feed.set_job(
            0,
            Arc::clone(&job),
            1,
            share_difficulty,
            true,
            Instant::now(),
        );
        let (unit, _) = feed.next_unit(worker, Duration::ZERO).unwrap();
        let (commands, submitted) = mpsc::channel(16);
        let (events, _) = mpsc::channel(16);
        let (requests, _) = mpsc::channel(1);
        let (_, shutdown) = watch::channel(false);
        let info = DeviceInfo {
            kind: "emulated",
            name: "test board".into(),
            model: "test".into(),
            chains: vec![2, 2],
            ticket_difficulty: share_difficulty,
            nominal_rate: HashRate::ZERO,
            expected_rate: HashRate::ZERO,
        };
        let config = PoolConfig {
            url: "stratum+tcp://127.0.0.1:1".parse().unwrap(),
            user: "w".into(),
            password: "x".into(),
        };
        let mut pool = PoolState::new(0, config, commands, tokio::spawn(async {}));
        pool.connected = true;
        pool.ready_since = Some(Instant::now());
        pool.last_job = Some((job, 1, Instant::now()));
        pool.difficulty = EASY;
        pool.jobs = 1;
        let shared = Arc::new(Shared {
            started: Instant::now(),
            started_unix: 0,
            state: Mutex::new(State {
                pools: vec![pool],
                active: Some(0),
                next_pool_id: 1,
                ..State::new(
                    vec![DeviceStats::new(&info.chains)],
                    vec![Telemetry::default()],
                )
            }),
            feed,
            devices: vec![info],
            api: ApiConfig::default(),
            model: "test".into(),
            identity: host_identity("test", None),
            requests,
            quit: Notify::new(),
            quit_requested: false.into(),
        });
        let manager = Manager {
            shared,
            failover: FailoverConfig::default(),
            spawner: PoolSpawner {
                failover: FailoverConfig::default(),
                expected: HashRate::ZERO,
                events,
                shutdown,
            },
            devices: Arc::new(Mutex::new(Vec::new())),
        };
        (manager, submitted, unit)
    }

    /// The first nonce from 0 whose header at `version` does (or does not) meet `EASY`.
    fn nonce(unit: &WorkUnit, version: u32, meets: bool) -> u32 {
        let target = Difficulty::new(EASY).unwrap().to_target();
        (0..u32::MAX)
            .find(|&n| {
                let header = Header::from_bytes(&unit.header_for(version, n));
                check_header(header, target).meets_share_target == meets
            })
            .unwrap()
    }

    fn found(
        unit: &Arc<WorkUnit>,
        chain: usize,
        chip: usize,
        version: u32,
        nonce: u32,
    ) -> FoundNonce {
        FoundNonce {
            device: 0,
            chain,
            chip,
            unit: Arc::clone(unit),
            version,
            nonce,
            ticket_difficulty: Difficulty::new(EASY).unwrap(),
        }
    }

    #[tokio::test]
    async fn a_bad_nonce_is_its_chips_hardware_error_and_never_reaches_the_pool() {
        let (manager, mut submitted, unit) = manager_and_unit();
        let version = unit.job.parts.version;

        // A nonce that does not meet its ticket, from chip 1 of chain 0.
        manager.on_nonce(found(&unit, 0, 1, version, nonce(&unit, version, false)));
        // A nonce that meets its ticket, but only with a version bit outside the job's
        // mask rolled, from chip 0 of chain 1.
        let outside = version | 1 << 3;
        assert_eq!(outside & !MASK, 0x2000_0008);
        manager.on_nonce(found(&unit, 1, 0, outside, nonce(&unit, outside, true)));

        assert!(
            submitted.try_recv().is_err(),
            "a bad nonce went to the pool"
        );
        {
            let st = manager.shared.lock();
            let dev = &st.devices[0];
            assert_eq!((st.hardware_errors, dev.hardware_errors), (2, 2));
            assert_eq!(dev.chain_hardware_errors, [1, 1]);
            let chip_errors: Vec<Vec<u64>> = dev
                .chips
                .iter()
                .map(|c| c.iter().map(|x| x.hardware_errors).collect())
                .collect();
            assert_eq!(chip_errors, [[0, 1], [1, 0]]);
            // Bad nonces add nothing to the rates, the best share or the shares.
            assert_eq!(st.window.total(), 0.0);
            assert_eq!(st.best_share, 0.0);
            assert_eq!(st.totals, ShareCounts::default());
        }
        let snapshot = Snapshot::of(&manager.shared);
        assert_eq!(snapshot.hardware_errors, 2);
        assert_eq!(snapshot.devices[0].chains[1].chips[0].hardware_errors, 1);

        // A good nonce from the same chip still goes out, with the version it was found at.
        let rolled = version | 1 << 13;
        let good = nonce(&unit, rolled, true);
        manager.on_nonce(found(&unit, 1, 0, rolled, good));
        let Ok(PoolCommand::Submit { share, .. }) = submitted.try_recv() else {
            panic!("the good nonce was not submitted");
        };
        assert_eq!((share.nonce, share.version), (good, rolled));
        let st = manager.shared.lock();
        assert_eq!(st.hardware_errors, 2);
        assert_eq!(st.devices[0].chips[1][0].nonces, 1);
    }
}
