//! One emulated hash board, sans I/O: command bytes in, reply bytes out, hits from the
//! hashing pool in, temperatures stepped by the caller's clock.
//!
//! Each chip runs at the clock its PLL register says ([`POWER_ON_MHZ`] until the host
//! writes one), the board at the voltage its supply is set to
//! ([`BoardEmulator::set_voltage_mv`], standing in for the PSU and the board's PIC).
//! Together they give the board's draw ([`crate::power`]) and its pace
//! ([`BoardEmulator::pace`]): the share of its nominal work the hashing pool does for it,
//! so a board at 60% of its nominal clock returns 60% of the nonces. A supply set to 0 mV
//! is off: the chips lose their addresses, registers and job, answer nothing, and the
//! board draws its sleep watts until the supply comes back.

use hashforge_core::Target;

use crate::chip::{owner_of_field, ChipFamily, NonceOrigin};
use crate::fault::Fault;
use crate::frame::{Command, CommandDecoder, Dest, FullJob, LinkStats, Reply};
use crate::profile::MachineProfile;
use crate::registers::{
    addr, ticket_mask_difficulty, version_mask_of, ChipIdValue, Pll, MAX_EMULATOR_TICKET_SHIFT,
};

/// Die temperature above which a chip's protection stops it, and below which it resumes.
pub const PROTECT_CELSIUS: f64 = 110.0;
pub const RESUME_CELSIUS: f64 = 100.0;
/// Seconds for a chip's temperature to go 63% of the way to where load and cooling put it.
pub const THERMAL_TAU_SECONDS: f64 = 2.0;
pub const AMBIENT_CELSIUS: f64 = 25.0;
/// The clock a chip runs at from power-on until its PLL is written, in MHz.
pub const POWER_ON_MHZ: f64 = 50.0;

/// The work the hashing pool should do for this board (snapshot of its newest job).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoardWork {
    /// Bumped on every new job; hits carry it back so stale ones are recognised.
    pub generation: u64,
    pub job_id: u8,
    /// The job's header with nonce 0.
    pub header: [u8; 80],
    pub version_mask: u32,
    /// The chips' ticket: the easiest hash they report.
    pub ticket: Target,
}

#[derive(Clone, Debug)]
struct EmuChip {
    address: Option<u8>,
    registers: std::collections::HashMap<u8, [u8; 4]>,
    silent: bool,
    bad_rate: f64,
    hot: bool,
    unpowered: bool,
    temperature: f64,
    protected: bool,
    /// The clock its PLL register sets, in MHz.
    mhz: f64,
    nonces: u64,
    hardware_errors: u64,
}

impl EmuChip {
    /// A chip as it comes out of power-on (faults are the board's and survive it).
    fn power_on(&mut self) {
        self.address = Some(0);
        self.registers.clear();
        self.protected = false;
        self.mhz = POWER_ON_MHZ;
        self.nonces = 0;
        self.hardware_errors = 0;
    }
}

/// Counts of what the board did, for tests and benches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BoardStats {
    pub nonces_sent: u64,
    /// Hits no chip reported: their address field is no chip's share of the nonce space,
    /// that chip is not hashing (past a break, silent, unpowered, protected), or it runs
    /// slower than the board's pace and had not reached them.
    pub nonces_dropped: u64,
    pub stale_hits: u64,
    pub corrupted_frames: u64,
}

/// An emulated chain of chips.
#[derive(Debug)]
pub struct BoardEmulator {
    family: ChipFamily,
    profile: MachineProfile,
    chips: Vec<EmuChip>,
    /// Chips before the first dead one (0 when the board is lost).
    reachable: usize,
    /// The chip whose share of the nonce space each address field is, by field: the
    /// addresses change only on bring-up, hits arrive by the thousand a second.
    field_owners: [Option<usize>; 256],
    decoder: CommandDecoder,
    out: Vec<u8>,
    jobs: Vec<Option<FullJob>>,
    work: Option<BoardWork>,
    generation: u64,
    version_mask: u32,
    ticket_difficulty: u64,
    ticket_shift: u32,
    crc_error_rate: f64,
    cooling: f64,
    /// The supply's voltage per domain in mV; 0 is off.
    voltage_mv: u32,
    /// The fastest clock among the hashing chips (0 when none hashes), kept up to date
    /// because every hit needs it.
    fastest_mhz: f64,
    rng: u64,
    stats: BoardStats,
}

impl BoardEmulator {
    /// Board `board` of `profile`, with `faults` applied (chip faults count positions on
    /// this board; `lost-board:N` applies only when N is this board).
    pub fn new(profile: MachineProfile, board: usize, faults: &[Fault]) -> BoardEmulator {
        let n = profile.chips_per_board;
        let chip = EmuChip {
            address: Some(0),
            registers: Default::default(),
            silent: false,
            bad_rate: 0.0,
            hot: false,
            unpowered: false,
            temperature: AMBIENT_CELSIUS,
            protected: false,
            mhz: POWER_ON_MHZ,
            nonces: 0,
            hardware_errors: 0,
        };
        let mut b = BoardEmulator {
            family: profile.chip,
            profile,
            chips: vec![chip; n],
            reachable: n,
            field_owners: [None; 256],
            decoder: CommandDecoder::new(),
            out: Vec::with_capacity(4096),
            jobs: vec![None; 128],
            work: None,
            generation: 0,
            version_mask: 0,
            ticket_difficulty: 256,
            ticket_shift: 0,
            crc_error_rate: 0.0,
            cooling: 1.0,
            voltage_mv: profile.nominal_mv(),
            fastest_mhz: 0.0,
            rng: 0x9E37_79B9_7F4A_7C15 ^ (board as u64).wrapping_mul(0xD1B5_4A32_D192_ED03),
            stats: BoardStats::default(),
        };
        for f in faults {
            b.inject(*f, board);
        }
        b.route_fields();
        b
    }

    /// Sets the supply: the domain voltage in mV, 0 to switch the board off (the chips
    /// lose their state) and back on (they come up as from power-on).
    pub fn set_voltage_mv(&mut self, mv: u32) {
        if mv == 0 && self.is_powered() {
            for c in &mut self.chips {
                c.power_on();
            }
            self.jobs.iter_mut().for_each(|j| *j = None);
            self.work = None;
            self.generation += 1;
            self.version_mask = 0;
            self.ticket_difficulty = 256;
            self.ticket_shift = 0;
            self.out.clear();
            self.route_fields();
        }
        self.voltage_mv = mv;
        self.refresh_pace();
    }

    pub fn voltage_mv(&self) -> u32 {
        self.voltage_mv
    }

    pub fn is_powered(&self) -> bool {
        self.voltage_mv > 0
    }

    /// What the board draws now, in W: its static part and each hashing chip's share at
    /// its clock and the supply's voltage; asleep, its sleep watts.
    pub fn power_watts(&self) -> f64 {
        let p = &self.profile;
        if !self.is_powered() {
            return p.sleep_watts_per_board;
        }
        p.board_static_watts()
            + (0..self.chips.len())
                .filter(|&i| self.is_hashing(i))
                .map(|i| p.chip_watts(self.chips[i].mhz, self.voltage_mv))
                .sum::<f64>()
    }

    /// The share of its nominal work the hashing pool should do for this board: its
    /// fastest hashing chip's clock over the profile's nominal one, at most 1 (the CPU
    /// does not hash faster for an overclocked chip); 0 when no chip hashes. Slower chips
    /// report only their clock's share of their hits ([`Self::on_hit`]).
    pub fn pace(&self) -> f64 {
        (self.fastest_mhz / self.profile.nominal_mhz).clamp(0.0, 1.0)
    }

    fn refresh_pace(&mut self) {
        self.fastest_mhz = (0..self.chips.len())
            .filter(|&i| self.is_hashing(i))
            .map(|i| self.chips[i].mhz)
            .fold(0.0, f64::max);
    }

    pub fn family(&self) -> ChipFamily {
        self.family
    }

    /// Applies a fault now (the same faults configuration gives, at run time).
    pub fn inject(&mut self, fault: Fault, board: usize) {
        let n = self.chips.len();
        match fault {
            Fault::DeadChip { chip } => self.reachable = self.reachable.min(chip.min(n)),
            Fault::SilentChip { chip } => {
                if let Some(c) = self.chips.get_mut(chip) {
                    c.silent = true;
                }
            }
            Fault::BadNonces { chip, rate } => {
                if let Some(c) = self.chips.get_mut(chip) {
                    c.bad_rate = rate;
                }
            }
            Fault::CrcErrors { rate } => self.crc_error_rate = rate,
            Fault::HotChip { chip } => {
                if let Some(c) = self.chips.get_mut(chip) {
                    c.hot = true;
                }
            }
            Fault::LostDomain { first, count } => {
                for c in self.chips.iter_mut().skip(first).take(count) {
                    c.unpowered = true;
                }
            }
            Fault::FailedFan { .. } => {
                let fans = self.profile.fans.max(1) as f64;
                // The remaining fans cannot make up for one that stopped.
                self.cooling = (self.cooling - 1.0 / fans * 2.0).max(0.2);
            }
            Fault::LostBoard { board: b } => {
                if b == board {
                    self.reachable = 0;
                }
            }
        }
        self.refresh_pace();
    }

    /// Feeds bytes the host sent.
    pub fn receive(&mut self, bytes: &[u8]) {
        self.decoder.push(bytes);
        while let Some(cmd) = self.decoder.next_command() {
            // Unpowered chips hear nothing.
            if self.is_powered() {
                self.execute(cmd);
            }
        }
        self.refresh_pace();
    }

    /// Takes the bytes the chain has sent since the last call.
    pub fn take_output(&mut self, into: &mut Vec<u8>) {
        into.append(&mut self.out);
    }

    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    pub fn link_stats(&self) -> LinkStats {
        self.decoder.stats()
    }

    pub fn stats(&self) -> BoardStats {
        self.stats
    }

    /// The newest work, for the hashing pool.
    pub fn work(&self) -> Option<&BoardWork> {
        self.work.as_ref()
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Die temperatures along the chain, in degrees Celsius.
    pub fn temperatures(&self) -> Vec<f64> {
        self.chips.iter().map(|c| c.temperature).collect()
    }

    fn is_hashing(&self, i: usize) -> bool {
        let c = &self.chips[i];
        i < self.reachable
            && self.work.is_some()
            && self.is_powered()
            && !c.unpowered
            && !c.silent
            && !c.protected
    }

    /// Advances the thermal model by `dt` seconds.
    pub fn tick(&mut self, dt: f64) {
        let n = self.chips.len().max(1) as f64;
        let k = 1.0 - (-dt / THERMAL_TAU_SECONDS).exp();
        let nominal_chip = self
            .profile
            .chip_watts(self.profile.nominal_mhz, self.profile.nominal_mv());
        for i in 0..self.chips.len() {
            // A hashing chip heats as it draws: its clock and the voltage set it.
            let load = if self.is_hashing(i) {
                self.profile.chip_watts(self.chips[i].mhz, self.voltage_mv) / nominal_chip
            } else if i < self.reachable && !self.chips[i].unpowered && self.is_powered() {
                0.15
            } else {
                0.0
            };
            // Air warms along the board: the last chips run ~10 degrees hotter.
            let mut rise = (45.0 + 10.0 * i as f64 / n) * load / self.cooling;
            if self.chips[i].hot {
                rise *= 2.5;
            }
            let c = &mut self.chips[i];
            let target = AMBIENT_CELSIUS + rise;
            c.temperature += (target - c.temperature) * k;
            if c.temperature >= PROTECT_CELSIUS {
                c.protected = true;
            } else if c.temperature < RESUME_CELSIUS {
                c.protected = false;
            }
        }
        self.refresh_pace();
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: cheap, deterministic per board.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.next_random() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    fn send(&mut self, reply: Reply) {
        let start = self.out.len();
        reply.encode(self.family, &mut self.out);
        if self.chance(self.crc_error_rate) {
            let len = self.out.len() - start;
            let at = start + 2 + (self.next_random() as usize % (len - 2));
            self.out[at] ^= 1 << (self.next_random() % 8);
            self.stats.corrupted_frames += 1;
        }
    }

    /// The reachable chips a command addressed to `dest` reaches, in chain order.
    fn targets(&self, dest: Dest) -> Vec<usize> {
        (0..self.reachable)
            .filter(|&i| match dest {
                Dest::All => true,
                Dest::Chip(a) => self.chips[i].address == Some(a),
            })
            .collect()
    }

    fn execute(&mut self, cmd: Command) {
        match cmd {
            Command::ChainInactive => {
                for c in &mut self.chips {
                    c.address = None;
                }
                self.route_fields();
            }
            Command::SetAddress { address } => {
                if let Some(i) = (0..self.reachable).find(|&i| self.chips[i].address.is_none()) {
                    self.chips[i].address = Some(address);
                    self.route_fields();
                }
            }
            Command::ReadRegister { dest, register } => {
                for i in self.targets(dest) {
                    let value = self.read_register(i, register);
                    let address = self.chips[i].address.unwrap_or(0);
                    self.send(Reply::Register {
                        value,
                        address,
                        register,
                        extra: [0, 0],
                    });
                }
            }
            Command::WriteRegister {
                dest,
                register,
                value,
            } => {
                for i in self.targets(dest) {
                    self.chips[i].registers.insert(register, value);
                }
                match register {
                    addr::PLL0 => {
                        // A value with a zero divider leaves the clock where it was.
                        if let Ok(pll) = Pll::from_bytes(value) {
                            for i in self.targets(dest) {
                                self.chips[i].mhz = pll.frequency_mhz();
                            }
                        }
                    }
                    addr::VERSION_MASK => self.version_mask = version_mask_of(value),
                    addr::TICKET_MASK => {
                        if let Ok(d) = ticket_mask_difficulty(value) {
                            self.ticket_difficulty = d;
                        }
                    }
                    addr::EMULATOR_TICKET_SHIFT => {
                        self.ticket_shift = u32::from_be_bytes(value).min(MAX_EMULATOR_TICKET_SHIFT)
                    }
                    _ => {}
                }
            }
            Command::Job(job) => {
                self.jobs[usize::from(job.job_id & 0x7F)] = Some(job);
                self.generation += 1;
                self.work = Some(BoardWork {
                    generation: self.generation,
                    job_id: job.job_id,
                    header: job.header_with(job.version, 0),
                    version_mask: self.version_mask,
                    ticket: self.ticket(),
                });
            }
            // Midstate jobs (BM1397) are decoded but not hashed by this emulator.
            Command::MidstateJob(_) => {}
        }
    }

    /// The chips' share target: the ticket mask's difficulty, divided by 2^shift when
    /// the emulator-only register is set.
    pub fn ticket(&self) -> Target {
        let d = self.ticket_difficulty as f64 / f64::from(1u32 << self.ticket_shift.min(31));
        hashforge_core::Difficulty::new(d)
            .map(Target::from_difficulty)
            .unwrap_or(Target::DIFF1)
    }

    fn read_register(&self, i: usize, register: u8) -> [u8; 4] {
        let c = &self.chips[i];
        match register {
            addr::CHIP_ID => ChipIdValue {
                chip_id: self.family.chip_id(),
                core_byte: 0,
                address: c.address.unwrap_or(0),
            }
            .to_bytes(),
            // An unpowered chip's diode reads nothing.
            addr::ANALOG_MUX if c.unpowered => [0; 4],
            addr::ANALOG_MUX => crate::registers::temperature_bytes(c.temperature),
            addr::ERROR_COUNT => (c.hardware_errors.min(u64::from(u32::MAX)) as u32).to_be_bytes(),
            addr::TOTAL_HASH_COUNT => (c.nonces.min(u64::from(u32::MAX)) as u32).to_be_bytes(),
            addr::PLL0 => c.registers.get(&register).copied().unwrap_or_else(|| {
                Pll::for_frequency(self.family, POWER_ON_MHZ)
                    .map(|p| p.to_bytes())
                    .unwrap_or_default()
            }),
            r => c.registers.get(&r).copied().unwrap_or_default(),
        }
    }

    /// Gives each address field to the chip whose share of the nonce space it is, as
    /// real chips split it: one address step from each chip's address. Chips past a
    /// break keep their addresses (and their share, which nobody hashes); the fields past
    /// the last chip's step are nobody's.
    fn route_fields(&mut self) {
        let mut by_address: Vec<(u8, usize)> = self
            .chips
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.address.map(|a| (a, i)))
            .collect();
        by_address.sort_unstable();
        let addresses: Vec<u8> = by_address.iter().map(|&(a, _)| a).collect();
        for (field, owner) in (0..=u8::MAX).zip(self.field_owners.iter_mut()) {
            *owner = owner_of_field(&addresses, field).map(|k| by_address[k].1);
        }
    }

    /// A hit the pool found for `generation` (a real nonce of the newest job's header).
    /// The chip whose share of the nonce space holds the nonce's address field reports
    /// it, unless that chip is not hashing; a field that is no chip's share is dropped
    /// (the pool hashes the whole space, the chips only their shares).
    pub fn on_hit(&mut self, generation: u64, version: u32, nonce: u32) {
        let Some(work) = &self.work else { return };
        if generation != work.generation {
            self.stats.stale_hits += 1;
            return;
        }
        let job_id = work.job_id;
        let mask = work.version_mask;
        let origin = NonceOrigin::of(nonce);
        let Some(chip) = self.field_owners[usize::from(origin.address_field)] else {
            self.stats.nonces_dropped += 1;
            return;
        };
        // A chip slower than the board's pace scans its share of the space more slowly:
        // of the hits the pool found there at the pace, it reaches its clock's share.
        let clock = self.chips[chip].mhz;
        if !self.is_hashing(chip)
            || clock < self.fastest_mhz && !self.chance(clock / self.fastest_mhz)
        {
            self.stats.nonces_dropped += 1;
            return;
        }
        let mut reported = nonce;
        let bad = self.chips[chip].bad_rate;
        if self.chance(bad) {
            // Flip a bit that leaves the address field alone, so the error is this chip's.
            reported ^= 1 << 24;
            self.chips[chip].hardware_errors += 1;
        }
        self.chips[chip].nonces += 1;
        let small_core = (self.next_random() & 0x0F) as u8;
        let job_byte = self.family.job_byte(job_id, small_core);
        self.send(Reply::Nonce {
            nonce: reported,
            midstate: 0,
            job_byte,
            version_bits: ((version & mask) >> 13) as u16,
        });
        self.stats.nonces_sent += 1;
    }

    /// How many chips answer enumeration.
    pub fn reachable(&self) -> usize {
        self.reachable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chip::chip_addresses;

    /// Board 0 of `profile`, addressed the way the driver addresses it, with one job.
    fn addressed(profile: &str, faults: &[Fault]) -> BoardEmulator {
        let profile: MachineProfile = profile.parse().unwrap();
        let mut b = BoardEmulator::new(profile, 0, faults);
        let mut bytes = Command::ChainInactive.to_bytes();
        for address in chip_addresses(b.reachable()) {
            bytes.extend(Command::SetAddress { address }.to_bytes());
        }
        bytes.extend(Command::Job(FullJob::from_header(0, &[0; 80])).to_bytes());
        b.receive(&bytes);
        b
    }

    /// Hits on every nonce of 0..2^16, which carries each address field 256 times.
    fn hit_every_field(b: &mut BoardEmulator) {
        let generation = b.generation();
        for nonce in 0..1u32 << 16 {
            b.on_hit(generation, 0x2000_0000, nonce);
        }
    }

    #[test]
    fn a_65_chip_board_splits_the_nonce_space_evenly() {
        let mut b = addressed("s21pro", &[]);
        hit_every_field(&mut b);
        // Each chip reports its own 3 fields; fields 195..=255 are no chip's.
        assert!(b.chips.iter().all(|c| c.nonces == 3 * 256));
        assert_eq!(b.stats().nonces_sent, 195 * 256);
        assert_eq!(b.stats().nonces_dropped, 61 * 256);
    }

    #[test]
    fn chips_past_a_break_report_nothing_and_the_rest_split_evenly() {
        let mut b = addressed("s21pro", &[Fault::DeadChip { chip: 33 }]);
        hit_every_field(&mut b);
        // The driver addresses the 33 chips that answer 7 fields apart (231 fields).
        assert!(b.chips[..33].iter().all(|c| c.nonces == 7 * 256));
        assert!(b.chips[33..].iter().all(|c| c.nonces == 0));
        // A chain that breaks while running keeps its addresses: chips before the break
        // keep their share, nobody takes over the lost chips'.
        b.inject(Fault::DeadChip { chip: 10 }, 0);
        hit_every_field(&mut b);
        assert!(b.chips[..10].iter().all(|c| c.nonces == 2 * 7 * 256));
        assert!(b.chips[10..33].iter().all(|c| c.nonces == 7 * 256));
    }
}
