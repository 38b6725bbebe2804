//! The hashing pool: a few worker threads (one per core) that do the real SHA-256d work
//! of every emulated chip on every board, in short pieces, round robin over the boards.
//!
//! A board publishes its newest job ([`BoardWork`]); workers cut it into pieces of 16
//! rolled versions (a full AVX-512 vector of version lanes) by a run of nonces, walk
//! the whole nonce space of each version block, and send every hit back with the job's
//! generation. The chips' own parts of the nonce space are the address fields in the
//! nonce (see [`crate::chip::NonceOrigin`]), one address step each: a piece covers every
//! chip's part evenly, and the board hands each hit to the chip that owns it. When the
//! step does not divide 256 (65 chips: 3) the fields past the last chip's part are hashed
//! too, since they are interleaved with the others nonce by nonce, and dropped.
//!
//! A board's nominal work is what the pool gives it at full speed. A board set to a pace
//! below 1 (its chips clocked below nominal: [`super::BoardEmulator::pace`]) is held to
//! that share of its fair part of the workers' time (all workers over the boards with
//! work): it earns worker-seconds at `pace x workers / boards` a second, spends what its
//! pieces take, and is skipped while it owes. So a board at 60% of its clock is hashed
//! for about 60% of the time, finds about 60% of the nonces, and the CPU rests the rest.
//! Boards at full pace take whatever the workers have, as before.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hashforge_sha256d::{Scanner, Work};
use tokio::sync::mpsc;

use super::board::BoardWork;

/// Nonces per piece: with 16 versions, about 6 ms of one core's work.
const PIECE_NONCES: u64 = 1 << 14;
/// Versions per piece: one AVX-512 vector of version lanes.
const PIECE_VERSIONS: u64 = 16;
/// The most worker-seconds (per worker of its fair part) a paced board saves up while
/// nobody takes it: enough to ride out a wait, too little for a burst that shows.
const PACE_BURST_SECS: f64 = 0.1;
/// How long an idle worker waits before looking again while a paced board owes time.
const PACE_WAIT: Duration = Duration::from_millis(2);

/// A hit for a board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolHit {
    pub generation: u64,
    pub version: u32,
    pub nonce: u32,
}

#[derive(Debug)]
struct Cursor {
    work: BoardWork,
    version_block: u64,
    nonce: u64,
}

#[derive(Debug)]
struct SlotState {
    cursor: Option<Cursor>,
    /// Share of its nominal work the board gets (1: all the pool gives it).
    pace: f64,
    /// Worker-seconds the board may still spend (negative: owed).
    credit: f64,
    refilled: Instant,
}

/// A board's place in the pool.
#[derive(Debug)]
pub struct BoardSlot {
    state: Mutex<SlotState>,
    hits: mpsc::UnboundedSender<PoolHit>,
    hashes: AtomicU64,
}

impl BoardSlot {
    /// Replaces the board's work (a new job); `None` stops its hashing.
    pub fn set_work(&self, work: Option<BoardWork>, shared: &PoolHandle) {
        let mut st = self.state.lock().expect("slot lock");
        st.cursor = work.map(|work| Cursor {
            work,
            version_block: 0,
            nonce: 0,
        });
        drop(st);
        shared.inner.wake.notify_all();
    }

    /// Sets the board's pace (clamped to 0..=1; see the module's doc).
    pub fn set_pace(&self, pace: f64, shared: &PoolHandle) {
        let pace = if pace.is_nan() {
            0.0
        } else {
            pace.clamp(0.0, 1.0)
        };
        self.state.lock().expect("slot lock").pace = pace;
        shared.inner.wake.notify_all();
    }

    pub fn pace(&self) -> f64 {
        self.state.lock().expect("slot lock").pace
    }

    /// Hashes done for this board so far.
    pub fn hashes(&self) -> u64 {
        self.hashes.load(Ordering::Relaxed)
    }

    fn has_work(&self) -> bool {
        self.state.lock().expect("slot lock").cursor.is_some()
    }

    /// Books `secs` of a worker's time spent on this board.
    fn spend(&self, secs: f64) {
        let mut st = self.state.lock().expect("slot lock");
        if st.pace < 1.0 {
            st.credit -= secs;
        }
    }

    /// The next piece of this board's work, advancing its cursor; none when it has no
    /// work or, paced, owes time. `fair` is its fair part of the workers (workers over
    /// boards with work).
    fn next_piece(&self, fair: f64, now: Instant) -> Option<(u64, Work)> {
        let mut guard = self.state.lock().expect("slot lock");
        let st = &mut *guard;
        let dt = now.saturating_duration_since(st.refilled).as_secs_f64();
        st.refilled = now;
        if st.pace < 1.0 {
            st.credit = (st.credit + dt * st.pace * fair).min(PACE_BURST_SECS * fair);
            if st.credit <= 0.0 {
                return None;
            }
        }
        let cur = st.cursor.as_mut()?;
        let w = &cur.work;
        let space = if w.version_mask == 0 {
            1
        } else {
            1u64 << w.version_mask.count_ones()
        };
        let per_block = PIECE_VERSIONS.min(space);
        let blocks = space / per_block;
        let vstart = (cur.version_block % blocks) * per_block;
        let mut work = Work::new(w.header, w.ticket);
        if w.version_mask != 0 {
            work = work
                .with_versions(w.version_mask, vstart as u32, per_block)
                .ok()?;
        }
        let work = work.with_nonces(cur.nonce as u32, PIECE_NONCES).ok()?;
        cur.nonce += PIECE_NONCES;
        if cur.nonce >= 1 << 32 {
            cur.nonce = 0;
            cur.version_block += 1;
        }
        Some((w.generation, work))
    }
}

#[derive(Debug)]
struct Inner {
    /// Worker threads.
    workers: usize,
    boards: Mutex<Vec<Weak<BoardSlot>>>,
    wake: Condvar,
    idle: Mutex<()>,
    stop: AtomicBool,
    hashes: AtomicU64,
}

/// A handle on the pool's shared state (cheap to clone).
#[derive(Clone, Debug)]
pub struct PoolHandle {
    inner: Arc<Inner>,
}

impl PoolHandle {
    /// Registers a board; its hits arrive on the returned receiver.
    pub fn register(&self) -> (Arc<BoardSlot>, mpsc::UnboundedReceiver<PoolHit>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let slot = Arc::new(BoardSlot {
            state: Mutex::new(SlotState {
                cursor: None,
                pace: 1.0,
                credit: 0.0,
                refilled: Instant::now(),
            }),
            hits: tx,
            hashes: AtomicU64::new(0),
        });
        self.inner
            .boards
            .lock()
            .expect("pool lock")
            .push(Arc::downgrade(&slot));
        (slot, rx)
    }

    /// Hashes done by all workers so far.
    pub fn hashes(&self) -> u64 {
        self.inner.hashes.load(Ordering::Relaxed)
    }
}

/// The worker threads. Dropping the pool stops them.
#[derive(Debug)]
pub struct HashPool {
    handle: PoolHandle,
    threads: Vec<JoinHandle<()>>,
}

impl HashPool {
    /// A pool of `threads` workers scanning with `scanner`.
    pub fn new(threads: usize, scanner: Scanner) -> HashPool {
        let threads = threads.max(1);
        let inner = Arc::new(Inner {
            workers: threads,
            boards: Mutex::new(Vec::new()),
            wake: Condvar::new(),
            idle: Mutex::new(()),
            stop: AtomicBool::new(false),
            hashes: AtomicU64::new(0),
        });
        let threads = (0..threads)
            .map(|i| {
                let inner = inner.clone();
                std::thread::Builder::new()
                    .name(format!("asic-emu-{i}"))
                    .spawn(move || worker(&inner, scanner, i))
                    .expect("spawn a hashing thread")
            })
            .collect();
        HashPool {
            handle: PoolHandle { inner },
            threads,
        }
    }

    /// One worker per available core, on the fastest backend (or the one forced by
    /// `HASHFORGE_SHA256D_BACKEND`).
    pub fn per_core() -> HashPool {
        HashPool::new(cores(), Scanner::detect())
    }

    /// What [`HashPool::per_core`] hashes at, H/s: the backend's calibrated one-thread rate on
    /// every core. An emulated machine's chips are this CPU, whatever their nameplate says.
    pub fn per_core_rate() -> f64 {
        let backend = Scanner::detect().backend();
        hashforge_sha256d::calibration()
            .rate_of(backend)
            .unwrap_or(0.0)
            * cores() as f64
    }

    pub fn handle(&self) -> PoolHandle {
        self.handle.clone()
    }

    pub fn threads(&self) -> usize {
        self.threads.len()
    }
}

/// The cores `per_core` puts a worker on.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Drop for HashPool {
    fn drop(&mut self) {
        self.handle.inner.stop.store(true, Ordering::Relaxed);
        self.handle.inner.wake.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn worker(inner: &Inner, scanner: Scanner, index: usize) {
    let mut turn = index;
    let mut hits = Vec::new();
    while !inner.stop.load(Ordering::Relaxed) {
        let slots: Vec<Arc<BoardSlot>> = {
            let mut boards = inner.boards.lock().expect("pool lock");
            boards.retain(|w| w.strong_count() > 0);
            boards.iter().filter_map(Weak::upgrade).collect()
        };
        let busy = slots.iter().filter(|s| s.has_work()).count();
        let fair = inner.workers as f64 / busy.max(1) as f64;
        let mut did = false;
        let mut owing = false;
        for k in 0..slots.len() {
            let slot = &slots[(turn + k) % slots.len()];
            let Some((generation, work)) = slot.next_piece(fair, Instant::now()) else {
                owing |= slot.has_work() && slot.pace() > 0.0;
                continue;
            };
            hits.clear();
            let started = Instant::now();
            scanner.scan_into(&work, &mut hits);
            slot.spend(started.elapsed().as_secs_f64());
            let n = work.hashes();
            slot.hashes.fetch_add(n, Ordering::Relaxed);
            inner.hashes.fetch_add(n, Ordering::Relaxed);
            for h in &hits {
                // A closed receiver means the board is gone; its slot goes soon after.
                let _ = slot.hits.send(PoolHit {
                    generation,
                    version: h.version,
                    nonce: h.nonce,
                });
            }
            did = true;
            turn = turn.wrapping_add(1);
            break;
        }
        if !did {
            let wait = if owing {
                PACE_WAIT
            } else {
                Duration::from_millis(20)
            };
            let guard = inner.idle.lock().expect("idle lock");
            let _ = inner.wake.wait_timeout(guard, wait).expect("idle wait");
        }
    }
}
