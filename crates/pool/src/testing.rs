//! A minimal Stratum V1 miner on the `stratum` crate's `ClientSession` and the `sha256d`
//! scanner, for the pool's tests and load generation: it connects, finds real shares on
//! each job and submits them, and records what the pool answered.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::{consensus, Block};

use hashforge_sha256d::{Scanner, Work};
use hashforge_stratum::{ClientConfig, ClientEvent, ClientSession, Job, LineBuffer, Share};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A loopback port free at the time of asking, for a daemon started as a process (which
/// cannot be handed a bound listener).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// An empty directory for one test's data: `hashforge-<name>-<pid>` under the system's
/// temporary directory, cleared of an earlier run's leftovers.
pub fn fresh_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hashforge-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The blocks of the embedded chain in `data_dir`, as `hashforge chain export` prints them.
/// Panics on an unreadable chain: it is for tests.
pub fn exported_blocks(data_dir: &Path) -> Vec<Block> {
    crate::chain::EmbeddedChain::export(data_dir)
        .expect("the embedded chain exports")
        .lines()
        .map(|line| {
            let raw = hex::decode(line).expect("export writes hex");
            consensus::deserialize(&raw).expect("export writes blocks")
        })
        .collect()
}

/// The body of `GET path` on a pool's HTTP API. Panics when the pool does not answer: it is
/// for tests.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr)
        .await
        .expect("the pool's HTTP API answers");
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.expect("request sent");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("reply read");
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// What a test miner saw.
#[derive(Debug, Default, Clone)]
pub struct MinerReport {
    pub accepted: Vec<Share>,
    pub rejected: Vec<(Share, i64)>,
    pub jobs: usize,
    pub authorized: Option<bool>,
    pub events: Vec<String>,
}

/// A Stratum client connection: a `ClientSession` over a TCP stream.
pub struct Connection {
    stream: TcpStream,
    pub session: ClientSession,
    framing: LineBuffer,
    buf: Vec<u8>,
}

impl Connection {
    pub async fn open(
        addr: std::net::SocketAddr,
        config: ClientConfig,
    ) -> std::io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        // As a miner does: a submit goes out now, not when the last one's ACK comes back.
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            session: ClientSession::new(config),
            framing: LineBuffer::default(),
            buf: vec![0; 4096],
        })
    }

    /// Sends what the session has queued.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        let mut out = String::new();
        while let Some(l) = self.session.poll_transmit() {
            out.push_str(&l);
            out.push('\n');
        }
        if !out.is_empty() {
            self.stream.write_all(out.as_bytes()).await?;
        }
        Ok(())
    }

    /// Reads until the pool's first job arrives (after subscribe and authorize).
    pub async fn first_job(&mut self) -> std::io::Result<Arc<Job>> {
        loop {
            for e in self.events().await? {
                if let ClientEvent::Job(job) = e {
                    return Ok(job);
                }
            }
        }
    }

    /// Sends what is queued, then reads until at least one event arrives; the end of the
    /// stream is an `UnexpectedEof` error.
    pub async fn events(&mut self) -> std::io::Result<Vec<ClientEvent>> {
        loop {
            self.flush().await?;
            self.read_more().await?;
            let mut events = Vec::new();
            while let Some(Ok(line)) = self.framing.next_line() {
                events.extend(self.session.handle_line(&line));
            }
            if !events.is_empty() {
                return Ok(events);
            }
        }
    }

    /// Reads until a `mining.notify` with `clean_jobs` arrives, without handing lines to the
    /// session: the load generator times the new tip with this, and a full parse of every
    /// notify (a miner's work, on the miner's own hardware) would take CPU from the pool
    /// under measurement. Sends what is queued first. The end of the stream is an
    /// `UnexpectedEof` error.
    pub async fn clean_notify(&mut self) -> std::io::Result<()> {
        self.flush().await?;
        loop {
            while let Some(line) = self.framing.next_line() {
                if line.is_ok_and(|l| is_clean_notify(&l)) {
                    return Ok(());
                }
            }
            self.read_more().await?;
        }
    }

    /// One read from the pool into the framing; the end of the stream is an
    /// `UnexpectedEof` error.
    async fn read_more(&mut self) -> std::io::Result<()> {
        let n = self.stream.read(&mut self.buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.framing.push(&self.buf[..n]);
        Ok(())
    }
}

fn is_clean_notify(line: &str) -> bool {
    line.contains("mining.notify")
        && serde_json::from_str::<serde_json::Value>(line)
            .is_ok_and(|v| v["method"] == "mining.notify" && v["params"][8] == true)
}

/// Shares of `job` (extranonce2 `en2`, the job's own version) at the job's difficulty among
/// `count` nonces from `start`, in nonce order, each with its hash.
pub fn scan_job(
    scanner: &Scanner,
    job: &Job,
    en2: &[u8],
    start: u32,
    count: u64,
) -> Vec<(Share, [u8; 32])> {
    let header = job.header(en2, job.parts.ntime, 0, job.parts.version);
    let target = job.difficulty.to_target();
    let Ok(work) = Work::new(header.to_bytes(), target).with_nonces(start, count) else {
        return Vec::new();
    };
    let mut hits = scanner.scan(&work);
    hits.sort_by_key(|h| h.nonce);
    hits.into_iter()
        .map(|h| {
            let share = Share {
                job_id: job.job_id.clone(),
                extranonce2: en2.to_vec(),
                ntime: job.parts.ntime,
                nonce: h.nonce,
                version: h.version,
            };
            (share, h.hash)
        })
        .collect()
}

/// Mines on `addr` as `user` until `shares` were accepted or `limit` passed.
pub async fn mine(
    addr: std::net::SocketAddr,
    user: &str,
    shares: usize,
    limit: Duration,
) -> std::io::Result<MinerReport> {
    let mut config = ClientConfig::new(user, "x");
    config.submit_timeout = Duration::from_secs(10);
    let mut conn = Connection::open(addr, config).await?;
    let mut report = MinerReport::default();
    let deadline = Instant::now() + limit;
    let mut job: Option<Arc<Job>> = None;
    let mut next_nonce = 0u32;
    let scanner = Scanner::detect();
    while report.accepted.len() < shares && Instant::now() < deadline {
        // Find one share on the current job if there is one, else wait for the pool.
        if let Some(j) = job
            .clone()
            .filter(|_| conn.session.is_ready() && conn.session.shares_in_flight() == 0)
        {
            let en2 = vec![0u8; j.extranonce2_size];
            let found = scan_job(&scanner, &j, &en2, next_nonce, 1 << 20)
                .into_iter()
                .next();
            next_nonce = found
                .as_ref()
                .map_or(next_nonce.wrapping_add(1 << 20), |(s, _)| {
                    s.nonce.wrapping_add(1)
                });
            if let Some((share, _)) = found {
                let _ = conn.session.submit(share, Instant::now());
                continue;
            }
        }
        let events = match tokio::time::timeout(Duration::from_millis(200), conn.events()).await {
            Ok(Ok(events)) => events,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Ok(Err(e)) => return Err(e),
            Err(_) => continue,
        };
        for event in events {
            match event {
                ClientEvent::Job(j) => {
                    report.jobs += 1;
                    next_nonce = 0;
                    job = Some(j);
                }
                ClientEvent::Authorized { ok, .. } => report.authorized = Some(ok),
                ClientEvent::ShareAccepted { share, .. } => report.accepted.push(share),
                ClientEvent::ShareRejected { share, error, .. } => {
                    report.rejected.push((share, error.code))
                }
                other => report.events.push(format!("{other:?}")),
            }
        }
        if report.authorized == Some(false) {
            break;
        }
    }
    Ok(report)
}

/// A Stratum V2 client connection: the `sv2` crate's `Sv2ClientSession` (one extended
/// channel) over a TCP stream. Its events are V1's.
pub struct Sv2Connection {
    stream: TcpStream,
    pub session: hashforge_sv2::Sv2ClientSession,
    buf: Vec<u8>,
    out: Vec<u8>,
    /// Events read but not handed out yet.
    pending: Vec<ClientEvent>,
}

fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

fn invalid(e: hashforge_sv2::Sv2Error) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

impl Sv2Connection {
    /// Connects to a pool whose authority key is `authority`; the handshake and channel
    /// opening run as [`Sv2Connection::events`] is read. A handshake or protocol failure is
    /// an `InvalidData` error naming it.
    pub async fn open(
        addr: std::net::SocketAddr,
        authority: hashforge_sv2::AuthorityPublicKey,
        user: &str,
        submit_timeout: Duration,
    ) -> std::io::Result<Sv2Connection> {
        let mut config = hashforge_sv2::Sv2ClientConfig::new(user, authority);
        config.submit_timeout = submit_timeout;
        Sv2Connection::open_with(addr, config).await
    }

    /// Connects with a client configuration of the caller's.
    pub async fn open_with(
        addr: std::net::SocketAddr,
        config: hashforge_sv2::Sv2ClientConfig,
    ) -> std::io::Result<Sv2Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let session =
            hashforge_sv2::Sv2ClientSession::new(config, unix_now(), hashforge_sv2::random_seed())
                .map_err(invalid)?;
        Ok(Sv2Connection {
            stream,
            session,
            buf: vec![0; 8192],
            out: Vec::new(),
            pending: Vec::new(),
        })
    }

    /// Sends what the session has queued.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        self.out.clear();
        self.session.transmit_into(&mut self.out);
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
        }
        Ok(())
    }

    /// Sends what is queued, then reads until at least one event arrives; the end of the
    /// stream is an `UnexpectedEof` error.
    pub async fn events(&mut self) -> std::io::Result<Vec<ClientEvent>> {
        loop {
            if !self.pending.is_empty() {
                return Ok(std::mem::take(&mut self.pending));
            }
            self.flush().await?;
            let n = self.stream.read(&mut self.buf).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let events = self
                .session
                .handle_bytes(&self.buf[..n], unix_now())
                .map_err(invalid)?;
            self.pending.extend(events);
        }
    }

    /// Reads until a clean job (a new tip) arrives. Unlike V1's, an SV2 frame must be
    /// decrypted to be read, so this is the session's own parse.
    pub async fn clean_notify(&mut self) -> std::io::Result<()> {
        loop {
            for e in self.events().await? {
                if matches!(&e, ClientEvent::Job(j) if j.clean_jobs) {
                    return Ok(());
                }
            }
        }
    }
}

/// Mines over Stratum V2 on `addr` (a pool whose authority key is `authority`) as `user`
/// until `shares` were accepted or `limit` passed, finding shares as [`mine`] does. A
/// handshake or protocol failure is an `InvalidData` error naming it.
pub async fn mine_sv2(
    addr: std::net::SocketAddr,
    authority: hashforge_sv2::AuthorityPublicKey,
    user: &str,
    shares: usize,
    limit: Duration,
) -> std::io::Result<MinerReport> {
    let mut conn = Sv2Connection::open(addr, authority, user, Duration::from_secs(10)).await?;
    let mut report = MinerReport::default();
    let deadline = Instant::now() + limit;
    let mut job: Option<Arc<Job>> = None;
    let mut next_nonce = 0u32;
    let mut in_flight = 0usize;
    let scanner = Scanner::detect();
    while report.accepted.len() < shares && Instant::now() < deadline {
        if let Some(j) = job
            .clone()
            .filter(|_| conn.session.is_open() && in_flight == 0)
        {
            let en2 = vec![0u8; j.extranonce2_size];
            let found = scan_job(&scanner, &j, &en2, next_nonce, 1 << 20)
                .into_iter()
                .next();
            next_nonce = found
                .as_ref()
                .map_or(next_nonce.wrapping_add(1 << 20), |(s, _)| {
                    s.nonce.wrapping_add(1)
                });
            if let Some((share, _)) = found {
                if conn.session.submit(share, Instant::now()).is_ok() {
                    in_flight += 1;
                }
                continue;
            }
        }
        // Written whole before the timed read: a write cut short would break the cipher.
        conn.flush().await?;
        let events = match tokio::time::timeout(Duration::from_millis(200), conn.events()).await {
            Ok(Ok(events)) => events,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Ok(Err(e)) => return Err(e),
            Err(_) => continue,
        };
        for event in events {
            match event {
                ClientEvent::Job(j) => {
                    report.jobs += 1;
                    next_nonce = 0;
                    job = Some(j);
                }
                ClientEvent::Authorized { ok, .. } => report.authorized = Some(ok),
                ClientEvent::ShareAccepted { share, .. } => {
                    in_flight = in_flight.saturating_sub(1);
                    report.accepted.push(share)
                }
                ClientEvent::ShareRejected { share, error, .. } => {
                    in_flight = in_flight.saturating_sub(1);
                    report.rejected.push((share, error.code))
                }
                other => report.events.push(format!("{other:?}")),
            }
        }
        if report.authorized == Some(false) {
            break;
        }
    }
    Ok(report)
}

/// One SV2 connection message by message (the `sv2` crate's `Sv2Initiator` over a TCP
/// stream), for tests that play a peer the crate has no session for: a Job Declarator
/// Client, or a miner that chooses its own work.
pub struct Sv2Peer {
    stream: TcpStream,
    initiator: hashforge_sv2::Sv2Initiator,
    buf: Vec<u8>,
    out: Vec<u8>,
    frames: std::collections::VecDeque<(u8, Vec<u8>)>,
}

impl Sv2Peer {
    /// Connects to a server whose authority key is `authority`; the handshake runs as the
    /// first message is sent and the first answer read.
    pub async fn connect(
        addr: std::net::SocketAddr,
        authority: hashforge_sv2::AuthorityPublicKey,
    ) -> std::io::Result<Sv2Peer> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let initiator =
            hashforge_sv2::Sv2Initiator::new(authority, unix_now(), hashforge_sv2::random_seed())
                .map_err(invalid)?;
        let mut peer = Sv2Peer {
            stream,
            initiator,
            buf: vec![0; 16 * 1024],
            out: Vec::new(),
            frames: Default::default(),
        };
        while !peer.initiator.is_established() {
            peer.flush().await?;
            peer.read_some().await?;
        }
        Ok(peer)
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        self.out.clear();
        self.initiator.transmit_into(&mut self.out);
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
        }
        Ok(())
    }

    async fn read_some(&mut self) -> std::io::Result<()> {
        let n = self.stream.read(&mut self.buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let frames = self
            .initiator
            .handle_bytes(&self.buf[..n])
            .map_err(invalid)?;
        self.frames.extend(frames);
        Ok(())
    }

    /// Sends one of SRI's messages.
    pub async fn send<T>(
        &mut self,
        name: &'static str,
        message: T,
        msg_type: u8,
        channel_msg: bool,
    ) -> std::io::Result<()>
    where
        T: hashforge_sv2::sri::binary_sv2::Serialize + hashforge_sv2::sri::binary_sv2::GetSize,
    {
        self.initiator
            .send(name, message, msg_type, channel_msg)
            .map_err(invalid)?;
        self.flush().await
    }

    /// The next frame, as (message type, payload), within `limit`; `TimedOut` if none.
    pub async fn recv(&mut self, limit: Duration) -> std::io::Result<(u8, Vec<u8>)> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(frame) = self.frames.pop_front() {
                return Ok(frame);
            }
            tokio::time::timeout_at(deadline, self.read_some())
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_clean_notify;

    #[test]
    fn a_clean_notify_is_told_from_other_lines() {
        let notify = |clean: bool| {
            format!(
                r#"{{"id":null,"method":"mining.notify","params":["1","00","01","02",[],"20000000","207fffff","6925f3a1",{clean}]}}"#
            )
        };
        assert!(is_clean_notify(&notify(true)));
        assert!(!is_clean_notify(&notify(false)));
        // Another pool's key order.
        assert!(is_clean_notify(
            r#"{"params":["1","00","01","02",[],"20000000","207fffff","6925f3a1",true],"id":null,"method":"mining.notify"}"#
        ));
        assert!(!is_clean_notify(
            r#"{"id":3,"result":true,"error":null,"note":"mining.notify"}"#
        ));
        assert!(!is_clean_notify(r#"{"method":"mining.notify","params":"#));
    }
}
