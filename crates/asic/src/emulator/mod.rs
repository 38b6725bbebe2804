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
//!
//! Power: chips run at the clock their PLL register sets, boards at the voltage their
//! supply is set to ([`BoardHandle::set_voltage_mv`], [`EmulatedMachine::set_voltage_mv`]:
//! the PSU and PIC of a real machine, which a control board drives outside the chain's
//! UART). The pool hashes for a board at its pace (clock over nominal), and the board
//! reports what the power model ([`crate::power`]) says it draws, in [`BoardView`].

mod board;
mod pool;

pub use board::{
    BoardEmulator, BoardStats, BoardWork, AMBIENT_CELSIUS, POWER_ON_MHZ, PROTECT_CELSIUS,
    RESUME_CELSIUS, THERMAL_TAU_SECONDS,
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
    /// The supply's domain voltage in mV (0: off).
    pub voltage_mv: u32,
    /// What the board draws, by the power model, in W.
    pub power_watts: f64,
    /// The share of its nominal work the pool does for it.
    pub pace: f64,
}

impl BoardView {
    fn of(emu: &BoardEmulator) -> BoardView {
        BoardView {
            temperatures: emu.temperatures(),
            stats: emu.stats(),
            link: emu.link_stats(),
            reachable: emu.reachable(),
            voltage_mv: emu.voltage_mv(),
            power_watts: emu.power_watts(),
            pace: emu.pace(),
        }
    }
}

/// What the outside does to a running board besides its link.
#[derive(Clone, Copy, Debug)]
enum Control {
    Fault(Fault),
    VoltageMv(u32),
}

/// A running emulated board.
#[derive(Debug)]
pub struct BoardHandle {
    board: usize,
    control: mpsc::UnboundedSender<Control>,
    slot: Arc<BoardSlot>,
    pool: PoolHandle,
    view: Arc<Mutex<BoardView>>,
    task: JoinHandle<()>,
}

impl BoardHandle {
    /// Injects a fault now.
    pub fn inject(&self, fault: Fault) {
        let _ = self.control.send(Control::Fault(fault));
    }
    /// Sets the board's supply to `mv` per voltage domain; 0 switches it off (its chips
    /// lose their state), a voltage after that on again (they come up as from power-on).
    pub fn set_voltage_mv(&self, mv: u32) {
        let _ = self.control.send(Control::VoltageMv(mv));
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
    let (ctx, crx) = mpsc::unbounded_channel();
    let view = Arc::new(Mutex::new(BoardView::of(&emu)));
    let task = tokio::spawn(run_board(
        stream,
        emu,
        board,
        slot.clone(),
        pool.clone(),
        hits,
        crx,
        view.clone(),
    ));
    BoardHandle {
        board,
        control: ctx,
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
    mut control: mpsc::UnboundedReceiver<Control>,
    view: Arc<Mutex<BoardView>>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::with_capacity(4096);
    let mut generation = 0;
    let mut pace = 1.0;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Instant::now();
    loop {
        tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    // The supply switched before these bytes were sent acts before them.
                    while let Ok(c) = control.try_recv() {
                        apply(&mut emu, c, board, &view);
                    }
                    emu.receive(&buf[..n]);
                }
            },
            Some(hit) = hits.recv() => {
                emu.on_hit(hit.generation, hit.version, hit.nonce);
                while let Ok(hit) = hits.try_recv() {
                    emu.on_hit(hit.generation, hit.version, hit.nonce);
                }
            }
            Some(c) = control.recv() => apply(&mut emu, c, board, &view),
            _ = tick.tick() => {
                let now = Instant::now();
                emu.tick(now.duration_since(last).as_secs_f64());
                last = now;
                *view.lock().expect("view lock") = BoardView::of(&emu);
            }
        }
        if emu.generation() != generation {
            generation = emu.generation();
            slot.set_work(emu.work().cloned(), &pool);
        }
        if emu.pace() != pace {
            pace = emu.pace();
            slot.set_pace(pace, &pool);
            // A new clock is a new draw: show it now, not at the next tick.
            *view.lock().expect("view lock") = BoardView::of(&emu);
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

fn apply(emu: &mut BoardEmulator, c: Control, board: usize, view: &Mutex<BoardView>) {
    match c {
        Control::Fault(f) => emu.inject(f, board),
        Control::VoltageMv(mv) => emu.set_voltage_mv(mv),
    }
    *view.lock().expect("view lock") = BoardView::of(emu);
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

    /// Sets the supply of every board (one PSU feeds them all): `mv` per voltage domain,
    /// 0 for off.
    pub fn set_voltage_mv(&self, mv: u32) {
        for b in &self.boards {
            b.set_voltage_mv(mv);
        }
    }

    /// What the boards draw now, by the power model, in W.
    pub fn power_watts(&self) -> f64 {
        self.boards.iter().map(|b| b.view().power_watts).sum()
    }
}
