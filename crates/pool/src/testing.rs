//! A minimal Stratum V1 miner on the `stratum` crate's `ClientSession` and the `sha256d`
//! scanner, for the pool's tests and load generation: it connects, finds real shares on
//! each job and submits them, and records what the pool answered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hashforge_core::Difficulty;
use hashforge_sha256d::{Scanner, Work};
use hashforge_stratum::{ClientConfig, ClientEvent, ClientSession, Job, LineBuffer, Share};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a test miner saw.
#[derive(Debug, Default, Clone)]
pub struct MinerReport {
    pub accepted: Vec<Share>,
    pub rejected: Vec<(Share, i64)>,
    pub jobs: usize,
    pub authorized: Option<bool>,
    pub events: Vec<String>,
}

/// Mines on `addr` as `user` until `shares` were accepted or `limit` passed.
pub async fn mine(
    addr: std::net::SocketAddr,
    user: &str,
    shares: usize,
    limit: Duration,
) -> std::io::Result<MinerReport> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut config = ClientConfig::new(user, "x");
    config.submit_timeout = Duration::from_secs(10);
    let mut session = ClientSession::new(config);
    let mut framing = LineBuffer::default();
    let mut report = MinerReport::default();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    let mut job: Option<Arc<Job>> = None;
    let mut next_nonce = 0u32;
    let scanner = Scanner::detect();
    while report.accepted.len() < shares && Instant::now() < deadline {
        let mut out = String::new();
        while let Some(line) = session.poll_transmit() {
            out.push_str(&line);
            out.push('\n');
        }
        if !out.is_empty() {
            stream.write_all(out.as_bytes()).await?;
        }
        // Find one share on the current job if there is one, else wait for the pool.
        if let Some(j) = job
            .clone()
            .filter(|_| session.is_ready() && session.shares_in_flight() == 0)
        {
            if let Some(share) = find_share(&scanner, &j, &mut next_nonce) {
                let _ = session.submit(share, Instant::now());
                continue;
            }
        }
        let n = match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await
        {
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(e),
            Err(_) => continue,
        };
        framing.push(&buf[..n]);
        while let Some(Ok(line)) = framing.next_line() {
            for event in session.handle_line(&line) {
                match event {
                    ClientEvent::Job(j) => {
                        report.jobs += 1;
                        next_nonce = 0;
                        job = Some(j);
                    }
                    ClientEvent::Authorized { ok, .. } => report.authorized = Some(ok),
                    ClientEvent::ShareAccepted(s) => report.accepted.push(s),
                    ClientEvent::ShareRejected { share, error } => {
                        report.rejected.push((share, error.code))
                    }
                    other => report.events.push(format!("{other:?}")),
                }
            }
        }
        if report.authorized == Some(false) {
            break;
        }
    }
    Ok(report)
}

/// Scans up to 2^20 nonces of `job` from `next` for a share at its difficulty.
fn find_share(scanner: &Scanner, job: &Job, next: &mut u32) -> Option<Share> {
    let en2 = vec![0u8; job.extranonce2_size];
    let header = job.header(&en2, job.parts.ntime, 0, job.parts.version);
    let target = Difficulty::new(job.difficulty).ok()?.to_target();
    let mut work = Work::new(header.to_bytes(), target)
        .with_nonces(*next, 1 << 20)
        .ok()?;
    if job.version_mask != 0 {
        work = work.with_versions(job.version_mask, 0, 1).ok()?;
    }
    *next = next.wrapping_add(1 << 20);
    let hit = scanner.scan(&work).into_iter().min_by_key(|h| h.nonce)?;
    *next = hit.nonce.wrapping_add(1);
    Some(Share {
        job_id: job.job_id.clone(),
        extranonce2: en2,
        ntime: job.parts.ntime,
        nonce: hit.nonce,
        version: hit.version,
    })
}
