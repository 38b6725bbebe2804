//! Every frame of the BM13xx serial link, both directions, and stream decoders that
//! resynchronise on the preamble after garbage, partial frames and bad CRCs.
//!
//! Host to chip: `55 AA | header | length | payload | CRC`, where length counts header,
//! length, payload and CRC; commands end with CRC5, jobs with a big-endian CRC16.
//! Chip to host: `AA 55 | body | CRC byte` of a fixed length per family (11 bytes on
//! BM1366/68/70, 9 on BM1397); the CRC byte holds CRC5 in bits 0..=4 and the
//! "job response" flag in bit 7.

use crate::chip::ChipFamily;
use crate::crc::{crc16, crc5, crc5_reply};

pub const COMMAND_PREAMBLE: [u8; 2] = [0x55, 0xAA];
pub const REPLY_PREAMBLE: [u8; 2] = [0xAA, 0x55];

/// Header bits.
pub mod header {
    pub const TYPE_JOB: u8 = 0x20;
    pub const TYPE_CMD: u8 = 0x40;
    pub const GROUP_ALL: u8 = 0x10;
    pub const CMD_SET_ADDRESS: u8 = 0x00;
    pub const CMD_WRITE: u8 = 0x01;
    pub const CMD_READ: u8 = 0x02;
    pub const CMD_INACTIVE: u8 = 0x03;
    pub const JOB: u8 = TYPE_JOB | CMD_WRITE;
}

/// Payload bytes of a full-header job (BM1366/68/70).
pub const FULL_JOB_PAYLOAD: usize = 82;
/// Bytes of a midstate job (BM1397) before its midstates.
pub const MIDSTATE_JOB_FIXED: usize = 18;
/// Bit 7 of a reply's last byte: this reply carries a nonce.
pub const REPLY_JOB_FLAG: u8 = 0x80;

/// Which chips a register command addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dest {
    All,
    Chip(u8),
}

/// A full-header job (BM1366/68/70): the chip rolls version bits and nonces itself.
/// Fields hold the header's own byte order; the wire order is the codec's business.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FullJob {
    pub job_id: u8,
    pub num_midstates: u8,
    pub starting_nonce: u32,
    pub nbits: u32,
    pub ntime: u32,
    /// Merkle root as in the header (bytes 36..68).
    pub merkle_root: [u8; 32],
    /// Previous block hash as in the header (bytes 4..36).
    pub prev_hash: [u8; 32],
    pub version: u32,
}

impl FullJob {
    /// The job for an 80-byte header (its nonce becomes the starting nonce).
    pub fn from_header(job_id: u8, header: &[u8; 80]) -> FullJob {
        let word = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4"));
        FullJob {
            job_id,
            num_midstates: 1,
            starting_nonce: word(76),
            nbits: word(72),
            ntime: word(68),
            merkle_root: header[36..68].try_into().expect("32"),
            prev_hash: header[4..36].try_into().expect("32"),
            version: word(0),
        }
    }

    /// The header this job describes, with `version` and `nonce` filled in.
    pub fn header_with(&self, version: u32, nonce: u32) -> [u8; 80] {
        let mut h = [0u8; 80];
        h[0..4].copy_from_slice(&version.to_le_bytes());
        h[4..36].copy_from_slice(&self.prev_hash);
        h[36..68].copy_from_slice(&self.merkle_root);
        h[68..72].copy_from_slice(&self.ntime.to_le_bytes());
        h[72..76].copy_from_slice(&self.nbits.to_le_bytes());
        h[76..80].copy_from_slice(&nonce.to_le_bytes());
        h
    }
}

/// A midstate job (BM1397): the host rolls versions and sends one midstate per version.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MidstateJob {
    pub job_id: u8,
    pub starting_nonce: u32,
    pub nbits: u32,
    pub ntime: u32,
    /// The last 4 bytes of the merkle root as in the header (bytes 64..68).
    pub merkle_tail: [u8; 4],
    /// One or four SHA-256 midstates (state words), one per rolled version.
    pub midstates: Vec<[u32; 8]>,
}

/// A host-to-chip frame.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// Gives the next unaddressed chip an address (after [`Command::ChainInactive`]).
    SetAddress {
        address: u8,
    },
    WriteRegister {
        dest: Dest,
        register: u8,
        value: [u8; 4],
    },
    ReadRegister {
        dest: Dest,
        register: u8,
    },
    /// Makes every chip forget its address and stop forwarding until addressed.
    ChainInactive,
    Job(FullJob),
    MidstateJob(MidstateJob),
}

impl Command {
    /// Appends the frame's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        use header::*;
        let start = out.len();
        out.extend_from_slice(&COMMAND_PREAMBLE);
        match self {
            Command::SetAddress { address } => {
                out.extend_from_slice(&[TYPE_CMD | CMD_SET_ADDRESS, 5, *address, 0]);
            }
            Command::WriteRegister {
                dest,
                register,
                value,
            } => {
                let (group, a) = dest_bits(*dest);
                out.extend_from_slice(&[TYPE_CMD | group | CMD_WRITE, 9, a, *register]);
                out.extend_from_slice(value);
            }
            Command::ReadRegister { dest, register } => {
                let (group, a) = dest_bits(*dest);
                out.extend_from_slice(&[TYPE_CMD | group | CMD_READ, 5, a, *register]);
            }
            Command::ChainInactive => {
                out.extend_from_slice(&[TYPE_CMD | GROUP_ALL | CMD_INACTIVE, 5, 0, 0]);
            }
            Command::Job(job) => {
                out.extend_from_slice(&[JOB, (FULL_JOB_PAYLOAD + 4) as u8]);
                out.push(job.job_id);
                out.push(job.num_midstates);
                out.extend_from_slice(&job.starting_nonce.to_le_bytes());
                out.extend_from_slice(&job.nbits.to_le_bytes());
                out.extend_from_slice(&job.ntime.to_le_bytes());
                push_words_reversed(out, &job.merkle_root);
                push_words_reversed(out, &job.prev_hash);
                out.extend_from_slice(&job.version.to_le_bytes());
                let crc = crc16(&out[start + 2..]);
                out.extend_from_slice(&crc.to_be_bytes());
                return;
            }
            Command::MidstateJob(job) => {
                let len = MIDSTATE_JOB_FIXED + 32 * job.midstates.len() + 4;
                out.extend_from_slice(&[JOB, len as u8]);
                out.push(job.job_id);
                out.push(job.midstates.len() as u8);
                out.extend_from_slice(&job.starting_nonce.to_le_bytes());
                out.extend_from_slice(&job.nbits.to_le_bytes());
                out.extend_from_slice(&job.ntime.to_le_bytes());
                out.extend_from_slice(&job.merkle_tail);
                for m in &job.midstates {
                    out.extend_from_slice(&midstate_wire(m));
                }
                let crc = crc16(&out[start + 2..]);
                out.extend_from_slice(&crc.to_be_bytes());
                return;
            }
        }
        let crc = crc5(&out[start + 2..]);
        out.push(crc);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(88);
        self.encode(&mut v);
        v
    }
}

fn dest_bits(dest: Dest) -> (u8, u8) {
    match dest {
        Dest::All => (header::GROUP_ALL, 0),
        Dest::Chip(a) => (0, a),
    }
}

/// Merkle root and previous hash travel with their eight 4-byte words in reverse order
/// (bytes within a word kept).
fn push_words_reversed(out: &mut Vec<u8>, field: &[u8; 32]) {
    for w in field.chunks_exact(4).rev() {
        out.extend_from_slice(w);
    }
}

fn words_reversed(wire: &[u8]) -> [u8; 32] {
    let mut f = [0u8; 32];
    for (i, w) in wire.chunks_exact(4).enumerate() {
        f[28 - 4 * i..32 - 4 * i].copy_from_slice(w);
    }
    f
}

/// A midstate on the wire: the state's 32 big-endian bytes reversed (as ESP-Miner sends it).
fn midstate_wire(m: &[u32; 8]) -> [u8; 32] {
    let mut b = [0u8; 32];
    for (i, w) in m.iter().enumerate() {
        b[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
    }
    b.reverse();
    b
}

fn midstate_of_wire(wire: &[u8]) -> [u32; 8] {
    let mut b: [u8; 32] = wire.try_into().expect("32");
    b.reverse();
    std::array::from_fn(|i| u32::from_be_bytes(b[4 * i..4 * i + 4].try_into().expect("4")))
}

/// A chip-to-host frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reply {
    /// A register's value. On 11-byte families two more bytes follow the register
    /// number; their meaning is unknown (chips send zeros) and they are kept as read.
    Register {
        value: [u8; 4],
        address: u8,
        register: u8,
        extra: [u8; 2],
    },
    /// A nonce: the header's nonce (little-endian on the wire, as the header stores it),
    /// the midstate number, the job/core byte and (11-byte families) the rolled version
    /// bits, big-endian on the wire, to be shifted left by 13.
    Nonce {
        nonce: u32,
        midstate: u8,
        job_byte: u8,
        version_bits: u16,
    },
}

impl Reply {
    /// Appends the reply as a chip of `family` sends it.
    pub fn encode(&self, family: ChipFamily, out: &mut Vec<u8>) {
        let long = family.reply_len() == 11;
        let start = out.len();
        out.extend_from_slice(&REPLY_PREAMBLE);
        let flag = match self {
            Reply::Register {
                value,
                address,
                register,
                extra,
            } => {
                out.extend_from_slice(value);
                out.push(*address);
                out.push(*register);
                if long {
                    out.extend_from_slice(extra);
                }
                0
            }
            Reply::Nonce {
                nonce,
                midstate,
                job_byte,
                version_bits,
            } => {
                out.extend_from_slice(&nonce.to_le_bytes());
                out.push(*midstate);
                out.push(*job_byte);
                if long {
                    out.extend_from_slice(&version_bits.to_be_bytes());
                }
                REPLY_JOB_FLAG
            }
        };
        let crc = crc5_reply(&out[start + 2..], flag);
        out.push(flag | crc);
    }

    pub fn to_bytes(&self, family: ChipFamily) -> Vec<u8> {
        let mut v = Vec::with_capacity(11);
        self.encode(family, &mut v);
        v
    }
}

/// What a decoder has thrown away, and why.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkStats {
    /// Frames decoded.
    pub frames: u64,
    /// Bytes skipped while looking for a preamble.
    pub garbage_bytes: u64,
    /// Candidate frames whose CRC did not match (the decoder then resynchronises).
    pub bad_crc: u64,
    /// Candidate command frames with an unknown header or a length that does not fit it.
    pub bad_header: u64,
}

/// A byte buffer that frames are cut from; compacts itself instead of shifting per frame.
#[derive(Debug, Default)]
struct RxBuffer {
    buf: Vec<u8>,
    pos: usize,
}

/// The decoders never hold more than this many undecoded bytes: a stream that never
/// forms a frame is dropped as garbage, so memory stays bounded.
const MAX_BUFFERED: usize = 64 * 1024;

impl RxBuffer {
    fn push(&mut self, bytes: &[u8], stats: &mut LinkStats) {
        if self.pos > 0 && (self.pos >= 4096 || self.pos * 2 >= self.buf.len()) {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
        let pending = self.buf.len() - self.pos;
        if pending > MAX_BUFFERED {
            let drop = pending - MAX_BUFFERED;
            stats.garbage_bytes += drop as u64;
            self.pos += drop;
        }
    }
    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }
    fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }
    /// Skips to the next occurrence of `preamble`, counting what was skipped. Leaves a
    /// lone trailing first preamble byte in place (it may be completed by more bytes).
    fn seek(&mut self, preamble: [u8; 2], stats: &mut LinkStats) -> bool {
        let p = self.pending();
        let mut i = 0;
        while i + 1 < p.len() {
            if p[i] == preamble[0] && p[i + 1] == preamble[1] {
                stats.garbage_bytes += i as u64;
                self.consume(i);
                return true;
            }
            i += 1;
        }
        let keep = usize::from(p.last() == Some(&preamble[0]));
        let skip = p.len() - keep;
        stats.garbage_bytes += skip as u64;
        self.consume(skip);
        false
    }
}

/// Decodes chip-to-host bytes of one family into [`Reply`]s.
#[derive(Debug)]
pub struct ReplyDecoder {
    family: ChipFamily,
    rx: RxBuffer,
    stats: LinkStats,
}

impl ReplyDecoder {
    pub fn new(family: ChipFamily) -> ReplyDecoder {
        ReplyDecoder {
            family,
            rx: RxBuffer::default(),
            stats: LinkStats::default(),
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.rx.push(bytes, &mut self.stats);
    }

    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Bytes held back waiting for the rest of a frame.
    pub fn buffered(&self) -> usize {
        self.rx.pending().len()
    }

    /// The next whole, CRC-checked reply, or `None` until more bytes come.
    pub fn next_reply(&mut self) -> Option<Reply> {
        let len = self.family.reply_len();
        loop {
            if !self.rx.seek(REPLY_PREAMBLE, &mut self.stats) {
                return None;
            }
            let p = self.rx.pending();
            if p.len() < len {
                return None;
            }
            let frame = &p[..len];
            if crc5(&frame[2..]) != 0 {
                self.stats.bad_crc += 1;
                // The preamble may have been garbage: look again one byte on.
                self.rx.consume(1);
                self.stats.garbage_bytes += 1;
                continue;
            }
            let reply = parse_reply(frame, len == 11);
            self.rx.consume(len);
            self.stats.frames += 1;
            return Some(reply);
        }
    }
}

fn parse_reply(f: &[u8], long: bool) -> Reply {
    let four: [u8; 4] = f[2..6].try_into().expect("4");
    if f[f.len() - 1] & REPLY_JOB_FLAG != 0 {
        Reply::Nonce {
            nonce: u32::from_le_bytes(four),
            midstate: f[6],
            job_byte: f[7],
            version_bits: if long {
                u16::from_be_bytes([f[8], f[9]])
            } else {
                0
            },
        }
    } else {
        Reply::Register {
            value: four,
            address: f[6],
            register: f[7],
            extra: if long { [f[8], f[9]] } else { [0, 0] },
        }
    }
}

/// Decodes host-to-chip bytes into [`Command`]s (what a chip, or the emulator, reads).
#[derive(Debug, Default)]
pub struct CommandDecoder {
    rx: RxBuffer,
    stats: LinkStats,
}

impl CommandDecoder {
    pub fn new() -> CommandDecoder {
        CommandDecoder::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.rx.push(bytes, &mut self.stats);
    }

    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// The next whole, CRC-checked command, or `None` until more bytes come.
    pub fn next_command(&mut self) -> Option<Command> {
        loop {
            if !self.rx.seek(COMMAND_PREAMBLE, &mut self.stats) {
                return None;
            }
            let p = self.rx.pending();
            if p.len() < 4 {
                return None;
            }
            let (hdr, len) = (p[2], usize::from(p[3]));
            if !length_fits(hdr, len) {
                self.stats.bad_header += 1;
                self.stats.garbage_bytes += 1;
                self.rx.consume(1);
                continue;
            }
            let total = 2 + len;
            if p.len() < total {
                return None;
            }
            let frame = &p[..total];
            match parse_command(frame) {
                Some(cmd) => {
                    self.rx.consume(total);
                    self.stats.frames += 1;
                    return Some(cmd);
                }
                None => {
                    self.stats.bad_crc += 1;
                    self.stats.garbage_bytes += 1;
                    self.rx.consume(1);
                }
            }
        }
    }
}

fn length_fits(hdr: u8, len: usize) -> bool {
    use header::*;
    match hdr {
        h if h == TYPE_CMD | CMD_SET_ADDRESS => len == 5,
        h if h & !GROUP_ALL == TYPE_CMD | CMD_WRITE => len == 9,
        h if h & !GROUP_ALL == TYPE_CMD | CMD_READ => len == 5,
        h if h == TYPE_CMD | GROUP_ALL | CMD_INACTIVE => len == 5,
        JOB => {
            len == FULL_JOB_PAYLOAD + 4
                || len == MIDSTATE_JOB_FIXED + 32 + 4
                || len == MIDSTATE_JOB_FIXED + 4 * 32 + 4
        }
        _ => false,
    }
}

/// Parses a whole frame whose header and length already fit; `None` on a bad CRC.
fn parse_command(f: &[u8]) -> Option<Command> {
    use header::*;
    let hdr = f[2];
    let n = f.len();
    if hdr == JOB {
        let crc = u16::from_be_bytes([f[n - 2], f[n - 1]]);
        if crc16(&f[2..n - 2]) != crc {
            return None;
        }
        let p = &f[4..n - 2];
        let word = |at: usize| u32::from_le_bytes(p[at..at + 4].try_into().expect("4"));
        if p.len() == FULL_JOB_PAYLOAD {
            return Some(Command::Job(FullJob {
                job_id: p[0],
                num_midstates: p[1],
                starting_nonce: word(2),
                nbits: word(6),
                ntime: word(10),
                merkle_root: words_reversed(&p[14..46]),
                prev_hash: words_reversed(&p[46..78]),
                version: word(78),
            }));
        }
        let midstates = p[MIDSTATE_JOB_FIXED..]
            .chunks_exact(32)
            .map(midstate_of_wire)
            .collect();
        return Some(Command::MidstateJob(MidstateJob {
            job_id: p[0],
            starting_nonce: word(2),
            nbits: word(6),
            ntime: word(10),
            merkle_tail: p[14..18].try_into().expect("4"),
            midstates,
        }));
    }
    if crc5(&f[2..n - 1]) != f[n - 1] {
        return None;
    }
    let dest = if hdr & GROUP_ALL != 0 {
        Dest::All
    } else {
        Dest::Chip(f[4])
    };
    Some(match hdr & 0x0F {
        CMD_SET_ADDRESS => Command::SetAddress { address: f[4] },
        CMD_WRITE => Command::WriteRegister {
            dest,
            register: f[5],
            value: f[6..10].try_into().expect("4"),
        },
        CMD_READ => Command::ReadRegister {
            dest,
            register: f[5],
        },
        _ => Command::ChainInactive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registers::{addr, ticket_mask_bytes, version_mask_bytes};
    use proptest::prelude::*;

    #[test]
    fn commands_are_byte_exact() {
        let read_all = Command::ReadRegister {
            dest: Dest::All,
            register: addr::CHIP_ID,
        };
        assert_eq!(
            read_all.to_bytes(),
            [0x55, 0xAA, 0x52, 0x05, 0x00, 0x00, 0x0A]
        );
        assert_eq!(
            Command::ChainInactive.to_bytes(),
            [0x55, 0xAA, 0x53, 0x05, 0x00, 0x00, 0x03]
        );
        assert_eq!(
            Command::SetAddress { address: 4 }.to_bytes(),
            [0x55, 0xAA, 0x40, 0x05, 0x04, 0x00, 0x03]
        );
        let vmask = Command::WriteRegister {
            dest: Dest::All,
            register: addr::VERSION_MASK,
            value: version_mask_bytes(0x1fffe000),
        };
        assert_eq!(
            vmask.to_bytes(),
            [0x55, 0xAA, 0x51, 0x09, 0x00, 0xA4, 0x90, 0x00, 0xFF, 0xFF, 0x1C]
        );
        let ticket = Command::WriteRegister {
            dest: Dest::Chip(6),
            register: addr::TICKET_MASK,
            value: ticket_mask_bytes(512),
        };
        let b = ticket.to_bytes();
        assert_eq!(
            &b[..10],
            [0x55, 0xAA, 0x41, 0x09, 0x06, 0x14, 0x00, 0x00, 0x80, 0xFF]
        );
        assert_eq!(b[10], crc5(&b[2..10]));
    }

    #[test]
    fn a_full_job_frame_is_88_bytes_with_its_fields_in_place() {
        let mut header = [0u8; 80];
        for (i, b) in header.iter_mut().enumerate() {
            *b = i as u8;
        }
        let job = FullJob::from_header(24, &header);
        let f = Command::Job(job).to_bytes();
        assert_eq!(f.len(), 88);
        assert_eq!(&f[..6], [0x55, 0xAA, 0x21, 0x56, 24, 1]);
        assert_eq!(&f[6..10], &header[76..80]); // starting nonce
        assert_eq!(&f[10..14], &header[72..76]); // nbits
        assert_eq!(&f[14..18], &header[68..72]); // ntime
                                                 // Merkle root words reversed: the wire starts with the root's last word.
        assert_eq!(&f[18..22], &header[64..68]);
        assert_eq!(&f[46..50], &header[36..40]);
        // Previous hash likewise.
        assert_eq!(&f[50..54], &header[32..36]);
        assert_eq!(&f[78..82], &header[4..8]);
        assert_eq!(&f[82..86], &header[0..4]); // version
        let crc = crc16(&f[2..86]);
        assert_eq!(&f[86..88], crc.to_be_bytes());
        assert_eq!(job.header_with(job.version, job.starting_nonce), header);
    }

    #[test]
    fn replies_decode_from_captured_bytes() {
        let mut d = ReplyDecoder::new(ChipFamily::Bm1370);
        d.push(&[0xAA, 0x55, 0x13, 0x70, 0, 0, 0, 0, 0, 0, 0x10]);
        d.push(&[
            0xAA, 0x55, 0x18, 0x00, 0xA6, 0x40, 0x02, 0x99, 0x22, 0xF9, 0x91,
        ]);
        assert_eq!(
            d.next_reply(),
            Some(Reply::Register {
                value: [0x13, 0x70, 0, 0],
                address: 0,
                register: 0,
                extra: [0, 0]
            })
        );
        assert_eq!(
            d.next_reply(),
            Some(Reply::Nonce {
                nonce: 0x40A6_0018,
                midstate: 2,
                job_byte: 0x99,
                version_bits: 0x22F9
            })
        );
        assert_eq!(d.next_reply(), None);
        let mut d = ReplyDecoder::new(ChipFamily::Bm1397);
        d.push(&[0xAA, 0x55, 0x13, 0x97, 0x18, 0x00, 0x00, 0x00, 0x06]);
        assert!(matches!(
            d.next_reply(),
            Some(Reply::Register {
                value: [0x13, 0x97, 0x18, 0],
                ..
            })
        ));
    }

    #[test]
    fn reply_decoder_resyncs_after_garbage_partial_frames_and_bad_crcs() {
        let fam = ChipFamily::Bm1368;
        let good = Reply::Nonce {
            nonce: 0xDEADBEEF,
            midstate: 0,
            job_byte: 0x31,
            version_bits: 7,
        }
        .to_bytes(fam);
        let mut bad = good.clone();
        bad[5] ^= 0x40;
        let mut stream = vec![0x00, 0xAA, 0x13, 0x55];
        stream.extend_from_slice(&good[..6]); // truncated frame
        stream.extend_from_slice(&bad);
        stream.extend_from_slice(&good);
        stream.extend_from_slice(&[0xAA]); // a lone first preamble byte at the end
        let mut d = ReplyDecoder::new(fam);
        let mut got = Vec::new();
        for chunk in stream.chunks(3) {
            d.push(chunk);
            while let Some(r) = d.next_reply() {
                got.push(r);
            }
        }
        assert_eq!(got.len(), 1);
        let s = d.stats();
        assert_eq!(s.frames, 1);
        assert!(s.bad_crc >= 2, "{s:?}");
        assert!(s.garbage_bytes >= 4, "{s:?}");
        assert_eq!(d.buffered(), 1);
    }

    #[test]
    fn command_decoder_resyncs_and_counts() {
        let good = Command::SetAddress { address: 9 }.to_bytes();
        let mut stream = vec![0x55, 0xAA, 0x99, 0x05, 1, 2]; // unknown header
        stream.extend_from_slice(&good[..4]); // truncated
        let mut bad = good.clone();
        bad[6] ^= 1;
        stream.extend_from_slice(&bad);
        stream.extend_from_slice(&good);
        let mut d = CommandDecoder::new();
        d.push(&stream);
        assert_eq!(d.next_command(), Some(Command::SetAddress { address: 9 }));
        assert_eq!(d.next_command(), None);
        let s = d.stats();
        assert_eq!(s.frames, 1);
        assert!(s.bad_header >= 1 && s.bad_crc >= 1, "{s:?}");
    }

    fn arb_command() -> impl Strategy<Value = Command> {
        let dest = prop_oneof![Just(Dest::All), any::<u8>().prop_map(Dest::Chip)];
        prop_oneof![
            any::<u8>().prop_map(|address| Command::SetAddress { address }),
            (dest.clone(), any::<u8>(), any::<[u8; 4]>()).prop_map(|(dest, register, value)| {
                Command::WriteRegister {
                    dest,
                    register,
                    value,
                }
            }),
            (dest, any::<u8>()).prop_map(|(dest, register)| Command::ReadRegister {
                // A read to all chips carries address 0 on the wire.
                dest: match dest {
                    Dest::All => Dest::All,
                    d => d,
                },
                register
            }),
            Just(Command::ChainInactive),
            (
                any::<u8>(),
                any::<[u8; 32]>(),
                any::<[u8; 32]>(),
                any::<[u32; 5]>()
            )
                .prop_map(|(job_id, merkle_root, prev_hash, w)| Command::Job(
                    FullJob {
                        job_id,
                        num_midstates: 1,
                        starting_nonce: w[0],
                        nbits: w[1],
                        ntime: w[2],
                        merkle_root,
                        prev_hash,
                        version: w[3] ^ w[4],
                    }
                )),
            (
                any::<u8>(),
                any::<[u32; 3]>(),
                any::<[u8; 4]>(),
                prop_oneof![Just(1usize), Just(4)],
                any::<[u32; 8]>()
            )
                .prop_map(|(job_id, w, merkle_tail, n, m)| Command::MidstateJob(
                    MidstateJob {
                        job_id,
                        starting_nonce: w[0],
                        nbits: w[1],
                        ntime: w[2],
                        merkle_tail,
                        midstates: (0..n as u32).map(|k| m.map(|x| x ^ k)).collect(),
                    }
                )),
        ]
    }

    fn arb_reply() -> impl Strategy<Value = Reply> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u8>(), any::<u8>(), any::<[u8; 2]>()).prop_map(
                |(value, address, register, extra)| Reply::Register {
                    value,
                    address,
                    register,
                    extra
                }
            ),
            (any::<u32>(), any::<u8>(), any::<u8>(), any::<u16>()).prop_map(
                |(nonce, midstate, job_byte, version_bits)| Reply::Nonce {
                    nonce,
                    midstate,
                    job_byte,
                    version_bits
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn commands_round_trip(cmds in proptest::collection::vec(arb_command(), 1..8), split in 1usize..40) {
            let mut bytes = Vec::new();
            for c in &cmds {
                c.encode(&mut bytes);
            }
            let mut d = CommandDecoder::new();
            let mut got = Vec::new();
            for chunk in bytes.chunks(split) {
                d.push(chunk);
                while let Some(c) = d.next_command() {
                    got.push(c);
                }
            }
            // Writes/reads to chip 0 and "all" differ only by the group bit; both survive.
            prop_assert_eq!(got, cmds);
            prop_assert_eq!(d.stats().garbage_bytes, 0);
        }

        #[test]
        fn replies_round_trip(replies in proptest::collection::vec(arb_reply(), 1..8)) {
            let fam = ChipFamily::Bm1370;
            let mut bytes = Vec::new();
            for r in &replies {
                r.encode(fam, &mut bytes);
            }
            let mut d = ReplyDecoder::new(fam);
            d.push(&bytes);
            let mut got = Vec::new();
            while let Some(r) = d.next_reply() {
                got.push(r);
            }
            prop_assert_eq!(got, replies);
        }

        #[test]
        fn a_good_frame_after_garbage_is_found(garbage in proptest::collection::vec(any::<u8>(), 0..64), r in arb_reply()) {
            let fam = ChipFamily::Bm1366;
            let mut d = ReplyDecoder::new(fam);
            d.push(&garbage);
            while d.next_reply().is_some() {}
            // Whatever the garbage left buffered, a frame after a fresh preamble-free gap
            // of 11 bytes of zeros decodes.
            d.push(&[0u8; 11]);
            while d.next_reply().is_some() {}
            d.push(&r.to_bytes(fam));
            prop_assert_eq!(d.next_reply(), Some(r));
        }
    }
}
