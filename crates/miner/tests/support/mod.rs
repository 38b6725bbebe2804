//! A small Stratum pool for the miner's tests, on `hashforge_stratum::ServerSession` and
//! tokio, loopback only. Jobs are made up (their nBits is difficulty 1 unless a test asks
//! for regtest's, so no share is a block); every share the session judges is recorded.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hashforge_core::{CompactTarget, JobParts, StratumPrevHash};
use hashforge_stratum::{LineBuffer, ServerConfig, ServerEvent, ServerJob, ServerSession};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// What the pool saw.
#[derive(Clone, Debug, PartialEq)]
pub enum Seen {
    Connected,
    Accepted {
        job_id: String,
    },
    Rejected {
        job_id: Option<String>,
        reason: String,
    },
    /// A clean notify was written to a connection, followed by a `mining.ping`.
    CleanSent {
        job_id: String,
    },
    /// The miner answered that ping: everything it sends from now on was sent after it
    /// had read the clean notify.
    Pong,
    /// A share arrived while answers were held: it gets no verdict.
    Held,
}

#[derive(Clone, Debug)]
enum Out {
    Job(Arc<ServerJob>),
    Raw(Vec<u8>),
    Close,
}

pub struct TestPool {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<(Instant, Seen)>>>,
    out: broadcast::Sender<Out>,
    current: Arc<Mutex<Arc<ServerJob>>>,
    next_job: AtomicU32,
    hold: Arc<AtomicBool>,
    task: JoinHandle<()>,
    pub difficulty: f64,
    nbits: CompactTarget,
}

/// Difficulty 1: a CPU finds no block at the tests' share difficulties.
const DIFFICULTY_1_BITS: CompactTarget = CompactTarget(0x1d00ffff);
/// Regtest's nBits: about half of all hashes meet it.
pub const REGTEST_BITS: CompactTarget = CompactTarget(0x207fffff);

fn parts(n: u32, nbits: CompactTarget) -> JobParts {
    let mut prev = [0u8; 32];
    prev[..4].copy_from_slice(&n.to_le_bytes());
    prev[31] = 0x42;
    JobParts {
        prevhash: StratumPrevHash(prev),
        coinb1: hex::decode("01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff2003").unwrap(),
        coinb2: hex::decode("ffffffff0100f2052a010000001976a914000000000000000000000000000000000000000088ac00000000").unwrap(),
        merkle_branch: vec![[7u8; 32]],
        version: 0x2000_0000,
        nbits,
        ntime: 1_700_000_000 + n,
    }
}

impl TestPool {
    /// A pool on 127.0.0.1 (port 0: any free one) handing out shares at `difficulty`.
    pub async fn start(port: u16, difficulty: f64) -> TestPool {
        TestPool::start_with_bits(port, difficulty, DIFFICULTY_1_BITS).await
    }

    /// The same, with jobs whose nBits is `nbits`.
    pub async fn start_with_bits(port: u16, difficulty: f64, nbits: CompactTarget) -> TestPool {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind test pool");
        let addr = listener.local_addr().unwrap();
        let (out, _) = broadcast::channel(256);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let current = Arc::new(Mutex::new(Arc::new(ServerJob::new(
            "1",
            parts(1, nbits),
            true,
        ))));
        let hold = Arc::new(AtomicBool::new(false));
        let task = {
            let out = out.clone();
            let seen = Arc::clone(&seen);
            let current = Arc::clone(&current);
            let hold = Arc::clone(&hold);
            tokio::spawn(async move {
                let en1 = AtomicU32::new(1);
                let mut conns = Vec::new();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let id = en1.fetch_add(1, Ordering::Relaxed);
                    let rx = out.subscribe();
                    let seen = Arc::clone(&seen);
                    let current = Arc::clone(&current);
                    let hold = Arc::clone(&hold);
                    conns.push(AbortOnDrop(tokio::spawn(connection(
                        stream, id, difficulty, rx, seen, current, hold,
                    ))));
                }
            })
        };
        TestPool {
            addr,
            seen,
            out,
            current,
            next_job: AtomicU32::new(2),
            hold,
            task,
            difficulty,
            nbits,
        }
    }

    pub fn url(&self) -> String {
        format!("stratum+tcp://{}", self.addr)
    }

    /// Sends a new job to every connection; returns its id.
    pub fn new_job(&self, clean: bool) -> String {
        let n = self.next_job.fetch_add(1, Ordering::Relaxed);
        let job = Arc::new(ServerJob::new(n.to_string(), parts(n, self.nbits), clean));
        *self.current.lock().unwrap() = Arc::clone(&job);
        let _ = self.out.send(Out::Job(job));
        n.to_string()
    }

    /// Writes raw bytes to every connection.
    pub fn send_raw(&self, bytes: &[u8]) {
        let _ = self.out.send(Out::Raw(bytes.to_vec()));
    }

    /// While `hold` is set, shares get no answer (the pool records them as [`Seen::Held`]).
    pub fn hold_answers(&self, hold: bool) {
        self.hold.store(hold, Ordering::SeqCst);
    }

    /// Shares that got no answer because answers were held.
    pub fn held(&self) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| matches!(s, Seen::Held))
            .count()
    }

    /// Closes every connection (the listener stays).
    pub fn close_connections(&self) {
        let _ = self.out.send(Out::Close);
    }

    pub fn accepted(&self) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| matches!(s, Seen::Accepted { .. }))
            .count()
    }
    pub fn rejected(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, s)| match s {
                Seen::Rejected { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }
    pub fn connections(&self) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| matches!(s, Seen::Connected))
            .count()
    }

    /// Stops the pool: the port closes and every connection drops.
    pub fn kill(self) {
        self.task.abort();
    }
}

struct AbortOnDrop(JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn connection(
    mut stream: tokio::net::TcpStream,
    id: u32,
    difficulty: f64,
    mut rx: broadcast::Receiver<Out>,
    seen: Arc<Mutex<Vec<(Instant, Seen)>>>,
    current: Arc<Mutex<Arc<ServerJob>>>,
    hold: Arc<AtomicBool>,
) {
    let record = |s: Seen| seen.lock().unwrap().push((Instant::now(), s));
    record(Seen::Connected);
    let mut config = ServerConfig::new(id.to_be_bytes().to_vec());
    config.start_difficulty = difficulty;
    let mut session = ServerSession::new(config);
    let mut lines = LineBuffer::default();
    let mut buf = vec![0u8; 4096];
    loop {
        while let Some(line) = session.poll_transmit() {
            if stream
                .write_all(format!("{line}\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
        tokio::select! {
            n = stream.read(&mut buf) => {
                let Ok(n) = n else { return };
                if n == 0 { return; }
                lines.push(&buf[..n]);
                while let Some(Ok(line)) = lines.next_line() {
                    if line.contains("\"pong\"") {
                        record(Seen::Pong);
                        continue;
                    }
                    match session.handle_line(&line) {
                        Some(ServerEvent::AuthorizeRequest { id, user, .. }) => {
                            session.authorize(id, &user, true);
                            let job = Arc::clone(&current.lock().unwrap());
                            session.notify(job);
                        }
                        Some(ServerEvent::Share(_)) if hold.load(Ordering::SeqCst) => {
                            record(Seen::Held);
                        }
                        Some(ServerEvent::Share(c)) => {
                            record(Seen::Accepted { job_id: c.job.job_id.clone() });
                            session.accept(c.id.clone());
                        }
                        Some(ServerEvent::Rejected { job_id, reason, .. }) => {
                            record(Seen::Rejected { job_id, reason: reason.name().to_string() });
                        }
                        _ => {}
                    }
                }
            }
            msg = rx.recv() => match msg {
                Ok(Out::Job(job)) => {
                    if session.is_authorized() {
                        let clean = job.clean_jobs;
                        let job_id = job.job_id.clone();
                        session.notify(job);
                        let mut out = String::new();
                        while let Some(line) = session.poll_transmit() {
                            out.push_str(&line);
                            out.push('\n');
                        }
                        if clean {
                            out.push_str("{\"id\":90000,\"method\":\"mining.ping\",\"params\":[]}\n");
                            record(Seen::CleanSent { job_id });
                        }
                        if stream.write_all(out.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(Out::Raw(bytes)) => {
                    if stream.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Ok(Out::Close) | Err(broadcast::error::RecvError::Closed) => return,
                Err(broadcast::error::RecvError::Lagged(_)) => {}
            }
        }
    }
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `bound` (a liveness
/// bound, generous on purpose: speed is measured by benchmarks, not here).
pub async fn wait_for(what: &str, bound: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < bound, "gave up waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A miner configuration for tests: one CPU thread, API and HTTP on free loopback ports,
/// quick failover.
pub fn miner_config(pools: &[(&str, &str)]) -> hashforge_miner::MinerConfig {
    let mut c = hashforge_miner::MinerConfig::default();
    for (url, user) in pools {
        c.pools.push(hashforge_miner::PoolConfig {
            url: url.parse().unwrap(),
            user: user.to_string(),
            password: "x".into(),
        });
    }
    c.devices = vec![hashforge_miner::DeviceSpec::Cpu { threads: Some(1) }];
    c.api.listen = Some("127.0.0.1:0".parse().unwrap());
    c.http.listen = Some("127.0.0.1:0".parse().unwrap());
    c.failover.failback_after_secs = 1.0;
    c.failover.max_retry_secs = 0.2;
    c.failover.connect_timeout_secs = 1.0;
    c
}

/// One cgminer API request; the reply without its NUL.
pub async fn api(addr: SocketAddr, request: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    assert_eq!(out.last(), Some(&0), "replies end with a NUL");
    out.pop();
    String::from_utf8(out).unwrap()
}

/// One HTTP GET; (status line, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}
