//! The chain driver, sans I/O: it queues the bytes a host sends to a chain and digests
//! the bytes the chain sends back, keeping per-chip statistics. Time, sockets and serial
//! ports belong to the shell ([`crate::shell`]).

use std::collections::{HashSet, VecDeque};

use hashforge_core::{rolled_version, Celsius, Difficulty, Target, VersionMask};
use hashforge_sha256d::sha256d_header;
use serde::Serialize;

use crate::chip::{chip_addresses, owner_of_field, ChipFamily, NonceOrigin};
use crate::frame::{Command, Dest, FullJob, LinkStats, Reply, ReplyDecoder};
use crate::profile::MachineProfile;
use crate::registers::{
    addr, divider_for_baud, misc_control_bytes, temperature_of, ticket_mask_bytes,
    version_mask_bytes, ChipIdValue, Pll, RegisterError, FAST_BAUD_BM136X, FAST_UART_1MBAUD,
    MAX_EMULATOR_TICKET_SHIFT,
};

/// How a chain is brought up.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainConfig {
    pub family: ChipFamily,
    /// Chips the board should have (enumeration compares against it).
    pub expected_chips: usize,
    /// Target hash clock in MHz.
    pub frequency_mhz: f64,
    /// The chips' own share difficulty (rounded down to a power of two, at least 1).
    pub ticket_difficulty: u64,
    /// **Emulated chains only**: lower the ticket by 2^-shift below `ticket_difficulty`
    /// through the emulator-only register. Never set for real chips.
    pub emulator_ticket_shift: Option<u32>,
    /// BIP 320 version-rolling mask the chips may roll.
    pub version_mask: u32,
    /// Switch the link to the chip's fast baud rate after configuration.
    pub fast_baud: bool,
}

impl ChainConfig {
    /// Defaults for a real chain of `family`: default clock, ticket 256, BIP 320 mask,
    /// fast baud.
    pub fn new(family: ChipFamily, expected_chips: usize) -> ChainConfig {
        ChainConfig {
            family,
            expected_chips,
            frequency_mhz: family.default_mhz(),
            ticket_difficulty: 256,
            emulator_ticket_shift: None,
            version_mask: 0x1fff_e000,
            fast_baud: true,
        }
    }

    /// A board of an emulated `profile`: its nominal clock, ticket difficulty 1 lowered by
    /// 2^-`ticket_shift` through the emulator-only register, no baud switch (the link is in
    /// memory).
    pub fn emulated(profile: &MachineProfile, ticket_shift: u32) -> ChainConfig {
        ChainConfig {
            frequency_mhz: profile.nominal_mhz,
            ticket_difficulty: 1,
            emulator_ticket_shift: Some(ticket_shift),
            fast_baud: false,
            ..ChainConfig::new(profile.chip, profile.chips_per_board)
        }
    }

    /// The share target the chips report at.
    pub fn ticket_target(&self) -> Target {
        let pow = 63 - self.ticket_difficulty.max(1).leading_zeros();
        let d = (1u64 << pow) as f64
            // The chips clamp the shift the same way; judging at a lower ticket than they
            // report at would undercount every nonce.
            / f64::from(1u32 << self.emulator_ticket_shift.unwrap_or(0).min(MAX_EMULATOR_TICKET_SHIFT));
        Difficulty::new(d)
            .map(Target::from_difficulty)
            .unwrap_or(Target::DIFF1)
    }

    /// Whether this chain is the hashforge emulator (it has the emulator-only registers).
    pub fn is_emulated(&self) -> bool {
        self.emulator_ticket_shift.is_some()
    }

    /// The ticket difficulty as a number (below 1 on emulated chains).
    pub fn ticket(&self) -> Difficulty {
        self.ticket_target().difficulty()
    }
}

/// What enumeration found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Enumeration {
    pub expected: usize,
    pub found: usize,
    /// Chip ids in answer order (a wrong id is a wrong chip or a garbled answer).
    pub chip_ids: Vec<u16>,
    /// When fewer chips answered than expected: the first position that did not.
    pub first_missing: Option<usize>,
}

impl Enumeration {
    /// The positions a repair should look at when the chain breaks: the last chip that
    /// answered and the first that did not (signals pass from chip to chip, so the
    /// broken one is either).
    pub fn suspects(&self) -> Option<(usize, usize)> {
        self.first_missing
            .map(|m| (m.saturating_sub(1), m.min(self.expected.saturating_sub(1))))
    }
}

/// Per-chip statistics the driver keeps.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ChipStats {
    /// Position along the chain, from 0.
    pub position: usize,
    pub address: u8,
    /// Nonces that met the ticket.
    pub nonces: u64,
    /// Nonces that did not hash to the ticket: the chip's hardware errors.
    pub hardware_errors: u64,
    /// The same nonce reported again.
    pub duplicates: u64,
    /// Sum of the ticket difficulty over valid nonces (difficulty-1 shares found).
    pub diff1_shares: f64,
    /// Best share difficulty this chip found.
    pub best_difficulty: f64,
    /// Last die temperature read, if the chip answered it with a reading.
    pub temperature: Option<Celsius>,
    /// Highest die temperature read.
    pub max_temperature: Option<Celsius>,
    /// Last value of the chip's error-count register.
    pub error_count: Option<u32>,
}

/// Chain-level counts of input that made no sense.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Anomalies {
    /// Nonces for a job id the driver never sent (or already reused).
    pub unknown_job: u64,
    /// Nonces whose address field no chip of the chain owns.
    pub unknown_chip: u64,
    /// The same nonce reported twice.
    pub duplicates: u64,
    /// Register replies from an address no chip has.
    pub wrong_address: u64,
    /// Register replies nobody asked for (e.g. a chip answering twice on enumeration).
    pub unexpected_replies: u64,
}

/// A nonce a chip found that hashes to the ticket: what the miner turns into a share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FoundNonce {
    /// Position of the chip along the chain.
    pub chip: usize,
    pub address: u8,
    /// Core (from the nonce's top bits) and small core (from the job/core byte).
    pub core: u8,
    pub small_core: u8,
    pub job_id: u8,
    /// The full rolled nVersion and the nonce as the header stores them.
    pub version: u32,
    pub nonce: u32,
    /// SHA-256d of the header, internal byte order.
    pub hash: [u8; 32],
}

/// What the driver tells its owner.
#[derive(Clone, Debug, PartialEq)]
pub enum ChainEvent {
    Nonce(FoundNonce),
    /// A chip returned a nonce that does not hash to the ticket.
    HardwareError {
        chip: usize,
        job_id: u8,
        nonce: u32,
    },
    /// A register value arrived (after the driver recorded it).
    Register {
        chip: Option<usize>,
        register: u8,
        value: [u8; 4],
    },
}

#[derive(Clone, Debug)]
struct JobEntry {
    job: FullJob,
    version_mask: u32,
    ticket: Target,
    seen: HashSet<(u32, u32)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Enumerating,
    Running,
}

/// The sans-I/O chain driver.
#[derive(Debug)]
pub struct ChainDriver {
    config: ChainConfig,
    decoder: ReplyDecoder,
    tx: Vec<u8>,
    phase: Phase,
    enumerated: Vec<ChipIdValue>,
    addresses: Vec<u8>,
    chips: Vec<ChipStats>,
    jobs: Vec<Option<JobEntry>>,
    last_job_id: Option<u8>,
    events: VecDeque<ChainEvent>,
    anomalies: Anomalies,
    /// Bound on queued events, so an owner that never polls cannot exhaust memory.
    max_events: usize,
    /// The clock last written to every chip since bring-up configured them (the PLL's).
    clock_mhz: Option<f64>,
}

impl ChainDriver {
    pub fn new(config: ChainConfig) -> ChainDriver {
        ChainDriver {
            decoder: ReplyDecoder::new(config.family),
            config,
            tx: Vec::with_capacity(1024),
            phase: Phase::Idle,
            enumerated: Vec::new(),
            addresses: Vec::new(),
            chips: Vec::new(),
            jobs: vec![None; 128],
            last_job_id: None,
            events: VecDeque::new(),
            anomalies: Anomalies::default(),
            max_events: 65_536,
            clock_mhz: None,
        }
    }

    pub fn config(&self) -> &ChainConfig {
        &self.config
    }

    fn queue(&mut self, cmd: Command) {
        cmd.encode(&mut self.tx);
    }

    /// Moves the bytes waiting to go to the chain into `out`.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.tx);
    }

    pub fn has_transmit(&self) -> bool {
        !self.tx.is_empty()
    }

    pub fn poll_event(&mut self) -> Option<ChainEvent> {
        self.events.pop_front()
    }

    /// Step 1: ask every chip for its id. Answers are collected by [`Self::receive`];
    /// read them with [`Self::enumeration`] once the chain has been quiet for a while.
    pub fn start_enumeration(&mut self) {
        self.phase = Phase::Enumerating;
        self.enumerated.clear();
        self.queue(Command::ReadRegister {
            dest: Dest::All,
            register: addr::CHIP_ID,
        });
    }

    pub fn enumeration(&self) -> Enumeration {
        let found = self.enumerated.len();
        let expected = self.config.expected_chips;
        Enumeration {
            expected,
            found,
            chip_ids: self.enumerated.iter().map(|c| c.chip_id).collect(),
            first_missing: (found < expected).then_some(found),
        }
    }

    /// Steps 2-4: chain inactive, addresses for the chips that answered, then version
    /// mask, ticket mask, (emulated chains only) the emulator ticket, and the fast UART.
    /// Returns the baud rate the host must switch to after sending, if any.
    pub fn address_and_configure(&mut self) -> Result<Option<u32>, RegisterError> {
        let n = self.enumerated.len();
        self.addresses = chip_addresses(n);
        self.chips = self
            .addresses
            .iter()
            .enumerate()
            .map(|(position, &address)| ChipStats {
                position,
                address,
                ..ChipStats::default()
            })
            .collect();
        // Until the ramp writes one, the chips run at whatever clock they had.
        self.clock_mhz = None;
        self.queue(Command::ChainInactive);
        for &address in &self.addresses.clone() {
            self.queue(Command::SetAddress { address });
        }
        self.write_all(
            addr::VERSION_MASK,
            version_mask_bytes(self.config.version_mask),
        );
        self.write_all(
            addr::TICKET_MASK,
            ticket_mask_bytes(self.config.ticket_difficulty),
        );
        if let Some(shift) = self.config.emulator_ticket_shift {
            self.write_all(addr::EMULATOR_TICKET_SHIFT, shift.to_be_bytes());
        }
        self.phase = Phase::Running;
        if !self.config.fast_baud {
            return Ok(None);
        }
        if self.config.family == ChipFamily::Bm1397 {
            let baud = 3_125_000;
            self.write_all(
                addr::MISC_CONTROL,
                misc_control_bytes(divider_for_baud(baud)?),
            );
            Ok(Some(baud))
        } else {
            self.write_all(addr::FAST_UART, FAST_UART_1MBAUD);
            Ok(Some(FAST_BAUD_BM136X))
        }
    }

    pub fn write_all(&mut self, register: u8, value: [u8; 4]) {
        self.queue(Command::WriteRegister {
            dest: Dest::All,
            register,
            value,
        });
    }

    pub fn read_all(&mut self, register: u8) {
        self.queue(Command::ReadRegister {
            dest: Dest::All,
            register,
        });
    }

    /// Sets every chip's clock (one step of a ramp; see
    /// [`crate::registers::frequency_ramp`]).
    pub fn set_frequency(&mut self, mhz: f64) -> Result<Pll, RegisterError> {
        let pll = Pll::for_frequency(self.config.family, mhz)?;
        self.write_all(addr::PLL0, pll.to_bytes());
        self.clock_mhz = Some(pll.frequency_mhz());
        Ok(pll)
    }

    /// The clock the chips were last set to (the PLL setting's, in MHz), once bring-up's
    /// ramp has written one.
    pub fn clock_mhz(&self) -> Option<f64> {
        self.clock_mhz
    }

    /// Makes `mhz` the clock bring-up and [`crate::shell::Chain::ramp_to_target`] ramp to;
    /// refused when no PLL setting of the family reaches it.
    pub fn set_target_mhz(&mut self, mhz: f64) -> Result<Pll, RegisterError> {
        let pll = Pll::for_frequency(self.config.family, mhz)?;
        self.config.frequency_mhz = mhz;
        Ok(pll)
    }

    /// Queues a job for an 80-byte header (its version's masked bits are rolled by the
    /// chips) and returns the job id, rotated the family's way.
    pub fn send_job(&mut self, header: &[u8; 80]) -> u8 {
        let id = match self.last_job_id {
            None => 0,
            Some(id) => self.config.family.next_job_id(id),
        };
        self.last_job_id = Some(id);
        let mut job = FullJob::from_header(id, header);
        job.starting_nonce = 0;
        self.jobs[usize::from(id & 0x7F)] = Some(JobEntry {
            job,
            version_mask: self.config.version_mask,
            ticket: self.config.ticket_target(),
            seen: HashSet::new(),
        });
        self.queue(Command::Job(job));
        id
    }

    /// Forgets every job (after a pool's clean_jobs): later nonces for them count as
    /// unknown.
    pub fn clear_jobs(&mut self) {
        self.jobs.iter_mut().for_each(|j| *j = None);
    }

    /// Feeds bytes from the chain.
    pub fn receive(&mut self, bytes: &[u8]) {
        self.decoder.push(bytes);
        while let Some(reply) = self.decoder.next_reply() {
            self.handle(reply);
        }
    }

    fn push_event(&mut self, e: ChainEvent) {
        if self.events.len() < self.max_events {
            self.events.push_back(e);
        }
    }

    fn chip_of_address(&self, address: u8) -> Option<usize> {
        self.addresses.binary_search(&address).ok()
    }

    fn handle(&mut self, reply: Reply) {
        match reply {
            Reply::Register {
                value,
                address,
                register,
                ..
            } => {
                if self.phase == Phase::Enumerating && register == addr::CHIP_ID {
                    // A chain of N chips can answer at most N + a few; more is a chip
                    // answering twice or noise, not a longer board.
                    if self.enumerated.len() >= 256 {
                        self.anomalies.unexpected_replies += 1;
                        return;
                    }
                    self.enumerated.push(ChipIdValue::from_bytes(value));
                    return;
                }
                let chip = self.chip_of_address(address);
                match chip {
                    None => self.anomalies.wrong_address += 1,
                    Some(i) => match register {
                        // The emulator answers the analog mux with its die temperature in
                        // hundredths of a degree; a real chip's sensor path is not decoded
                        // here, so real chains report no temperature rather than a wrong one.
                        addr::ANALOG_MUX if self.config.is_emulated() => {
                            let t = temperature_of(value);
                            let c = &mut self.chips[i];
                            c.temperature = (t > 0.0).then_some(Celsius(t));
                            if t > c.max_temperature.map_or(0.0, |m| m.0) {
                                c.max_temperature = Some(Celsius(t));
                            }
                        }
                        addr::ERROR_COUNT => {
                            self.chips[i].error_count = Some(u32::from_be_bytes(value))
                        }
                        _ => {}
                    },
                }
                self.push_event(ChainEvent::Register {
                    chip,
                    register,
                    value,
                });
            }
            Reply::Nonce {
                nonce,
                midstate: _,
                job_byte,
                version_bits,
            } => self.handle_nonce(nonce, job_byte, version_bits),
        }
    }

    fn handle_nonce(&mut self, nonce: u32, job_byte: u8, version_bits: u16) {
        let (job_id, small_core) = self.config.family.split_job_byte(job_byte);
        let origin = NonceOrigin::of(nonce);
        let Some(chip) = owner_of_field(&self.addresses, origin.address_field) else {
            self.anomalies.unknown_chip += 1;
            return;
        };
        let Some(entry) = self.jobs[usize::from(job_id & 0x7F)].as_mut() else {
            self.anomalies.unknown_job += 1;
            return;
        };
        // BM1366/68/70 return the rolled bits 13..28; bits outside the job's mask are the
        // chip's error, like a wrong nonce.
        let rolled = if self.config.family.takes_full_header() {
            rolled_version(
                entry.job.version,
                u32::from(version_bits) << 13,
                VersionMask(entry.version_mask),
            )
        } else {
            Ok(entry.job.version)
        };
        let version = rolled.unwrap_or(entry.job.version);
        let header = entry.job.header_with(version, nonce);
        let hash = sha256d_header(&header);
        if rolled.is_err() || !entry.ticket.is_met_by(&hash) {
            self.chips[chip].hardware_errors += 1;
            self.push_event(ChainEvent::HardwareError {
                chip,
                job_id,
                nonce,
            });
            return;
        }
        if !entry.seen.insert((version, nonce)) {
            self.anomalies.duplicates += 1;
            self.chips[chip].duplicates += 1;
            return;
        }
        let ticket = entry.ticket.difficulty().as_f64();
        let stats = &mut self.chips[chip];
        stats.nonces += 1;
        stats.diff1_shares += ticket;
        let d = Difficulty::of_hash(&hash).as_f64();
        if d > stats.best_difficulty {
            stats.best_difficulty = d;
        }
        let address = stats.address;
        self.push_event(ChainEvent::Nonce(FoundNonce {
            chip,
            address,
            core: origin.core,
            small_core,
            job_id,
            version,
            nonce,
            hash,
        }));
    }

    pub fn chips(&self) -> &[ChipStats] {
        &self.chips
    }

    pub fn link_stats(&self) -> LinkStats {
        self.decoder.stats()
    }

    pub fn anomalies(&self) -> Anomalies {
        self.anomalies
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A driver that enumerated and addressed `n` BM1370 chips and sent one job.
    fn running_chain(n: usize) -> (ChainDriver, u8) {
        let family = ChipFamily::Bm1370;
        let mut d = ChainDriver::new(ChainConfig::new(family, n));
        d.start_enumeration();
        let id = Reply::Register {
            value: ChipIdValue {
                chip_id: family.chip_id(),
                core_byte: 0,
                address: 0,
            }
            .to_bytes(),
            address: 0,
            register: addr::CHIP_ID,
            extra: [0, 0],
        }
        .to_bytes(family);
        d.receive(&id.repeat(n));
        d.address_and_configure().unwrap();
        let job_id = d.send_job(&[0x5A; 80]);
        (d, job_id)
    }

    /// A nonce reply whose nonce carries `field` in its address bits.
    fn nonce_from_field(field: u8, job_id: u8) -> Vec<u8> {
        let be = (u32::from(field) << 17) | (5 << 25) | 0x1234;
        Reply::Nonce {
            nonce: be.swap_bytes(),
            midstate: 0,
            job_byte: ChipFamily::Bm1370.job_byte(job_id, 3),
            version_bits: 0,
        }
        .to_bytes(ChipFamily::Bm1370)
    }

    #[test]
    fn a_nonce_past_the_last_chips_step_is_an_unknown_chip() {
        let (mut d, job) = running_chain(65);
        assert_eq!(d.chips().len(), 65);
        // 65 chips are 3 fields apart: chip 64 owns 192..=194, 195..=255 are no chip's.
        d.receive(&nonce_from_field(200, job));
        d.receive(&nonce_from_field(255, job));
        assert_eq!(d.anomalies().unknown_chip, 2);
        assert!(d.chips().iter().all(|c| c.nonces + c.hardware_errors == 0));
        // A field inside chip 64's step is chip 64's (a random nonce misses the ticket:
        // its hardware error).
        d.receive(&nonce_from_field(194, job));
        assert_eq!(d.anomalies().unknown_chip, 2);
        assert_eq!(d.chips()[64].hardware_errors, 1);
        assert!(matches!(
            d.poll_event(),
            Some(ChainEvent::HardwareError { chip: 64, .. })
        ));
    }
}
