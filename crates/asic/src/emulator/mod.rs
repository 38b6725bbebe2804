//! The hash-board emulator: chains of BM13xx chips that speak the protocol byte for byte
//! on any byte stream, hash for real on the CPU, run hot or cold, and fail on request.
//!
//! [`BoardEmulator`] is the sans-I/O chain; [`HashPool`] the worker threads that hash for
//! every chip of every board; [`spawn_board`] the tokio task that joins them to a stream;
//! [`EmulatedMachine`] a whole machine's boards on in-memory duplex streams.
//!
//! Emulator-only behaviour, documented because no real chip has it: register
//! [`crate::registers::addr::EMULATOR_TICKET_SHIFT`] lowers the ticket below difficulty 1
//! so a CPU-speed board finds shares; the analog-mux register (0x54) reads back the die
//! temperature in hundredths of a degree. Midstate (BM1397) jobs are decoded, not hashed.

mod board;
mod pool;

pub use board::{
    BoardEmulator, BoardStats, BoardWork, AMBIENT_CELSIUS, PROTECT_CELSIUS, RESUME_CELSIUS,
    THERMAL_TAU_SECONDS,
};
pub use pool::{BoardSlot, HashPool, PoolHandle, PoolHit};

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::fault::Fault;
use crate::frame::LinkStats;
use crate::profile::MachineProfile;

/// What a running emulated board shows from outside (for tests, benches and dashboards).
#[derive(Clone, Debug, Default)]
pub struct BoardView {
    pub temperatures: Vec<f64>,
    pub stats: BoardStats,
    pub link: LinkStats,
    pub reachable: usize,
}

/// A running emulated board.
#[derive(Debug)]
pub struct BoardHandle {
    board: usize,
    faults: mpsc::UnboundedSender<Fault>,
    slot: Arc<BoardSlot>,
    pool: PoolHandle,
    view: Arc<Mutex<BoardView>>,
    task: JoinHandle<()>,
}

impl BoardHandle {
    /// Injects a fault now.
    pub fn inject(&self, fault: Fault) {
        let _ = self.faults.send(fault);
    }
    pub fn board(&self) -> usize {
        self.board
    }
    /// Hashes the pool has done for this board.
    pub fn hashes(&self) -> u64 {
        self.slot.hashes()
    }
    pub fn view(&self) -> BoardView {
        self.view.lock().expect("view lock").clone()
    }
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for BoardHandle {
    fn drop(&mut self) {
        self.task.abort();
        // The aborted task may not be dropped until its runtime runs again: stop the
        // pool hashing for this board now.
        self.slot.set_work(None, &self.pool);
    }
}

/// Starts board `board` of `profile` on `stream` (the chip end of a link); hashing is done
/// by `pool`. The task ends when the stream closes.
pub fn spawn_board<S>(
    stream: S,
    profile: MachineProfile,
    board: usize,
    faults: &[Fault],
    pool: &PoolHandle,
) -> BoardHandle
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let emu = BoardEmulator::new(profile, board, faults);
    let (slot, hits) = pool.register();
    let (ftx, frx) = mpsc::unbounded_channel();
    let view = Arc::new(Mutex::new(BoardView::default()));
    let task = tokio::spawn(run_board(
        stream,
        emu,
        board,
        slot.clone(),
        pool.clone(),
        hits,
        frx,
        view.clone(),
    ));
    BoardHandle {
        board,
        faults: ftx,
        slot,
        pool: pool.clone(),
        view,
        task,
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_board<S>(
    stream: S,
    mut emu: BoardEmulator,
    board: usize,
    slot: Arc<BoardSlot>,
    pool: PoolHandle,
    mut hits: mpsc::UnboundedReceiver<PoolHit>,
    mut faults: mpsc::UnboundedReceiver<Fault>,
    view: Arc<Mutex<BoardView>>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::with_capacity(4096);
    let mut generation = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Instant::now();
    loop {
        tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => emu.receive(&buf[..n]),
            },
            Some(hit) = hits.recv() => {
                emu.on_hit(hit.generation, hit.version, hit.nonce);
                while let Ok(hit) = hits.try_recv() {
                    emu.on_hit(hit.generation, hit.version, hit.nonce);
                }
            }
            Some(f) = faults.recv() => emu.inject(f, board),
            _ = tick.tick() => {
                let now = Instant::now();
                emu.tick(now.duration_since(last).as_secs_f64());
                last = now;
                let mut v = view.lock().expect("view lock");
                v.temperatures = emu.temperatures();
                v.stats = emu.stats();
                v.link = emu.link_stats();
                v.reachable = emu.reachable();
            }
        }
        if emu.generation() != generation {
            generation = emu.generation();
            slot.set_work(emu.work().cloned(), &pool);
        }
        if emu.has_output() {
            out.clear();
            emu.take_output(&mut out);
            if wr.write_all(&out).await.is_err() {
                break;
            }
        }
    }
    slot.set_work(None, &pool);
}

/// A whole emulated machine: one board task per chain, each on an in-memory duplex
/// stream whose host end the caller drives (the control board's side).
#[derive(Debug)]
pub struct EmulatedMachine {
    pub profile: MachineProfile,
    pub boards: Vec<BoardHandle>,
}

/// Bytes of buffer in each direction of an emulated link.
pub const LINK_BUFFER: usize = 64 * 1024;

impl EmulatedMachine {
    /// Starts `boards` of `profile` with `faults`; returns the machine and the host end of
    /// each board's link, in the same order.
    pub fn spawn(
        profile: MachineProfile,
        boards: &[usize],
        faults: &[Fault],
        pool: &PoolHandle,
    ) -> (EmulatedMachine, Vec<DuplexStream>) {
        let mut handles = Vec::new();
        let mut hosts = Vec::new();
        for &b in boards {
            let (host, chip) = tokio::io::duplex(LINK_BUFFER);
            handles.push(spawn_board(chip, profile, b, faults, pool));
            hosts.push(host);
        }
        (
            EmulatedMachine {
                profile,
                boards: handles,
            },
            hosts,
        )
    }

    /// Injects a fault into every board (`lost-board:N` only takes board N).
    pub fn inject(&self, fault: Fault) {
        for b in &self.boards {
            b.inject(fault);
        }
    }
}
