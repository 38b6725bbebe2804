//! Work dispatch: the current job, cut into [`WorkUnit`]s that never overlap.
//!
//! Every unit is one extranonce2 of one job, so two units (on two devices, or two threads
//! or chips of one device) can never hash the same header; inside a unit a device covers
//! the version and nonce space as its hardware likes. A clean job stops every scan at once
//! through the [`Control`]s the workers registered.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use hashforge_core::{Difficulty, Target};
use hashforge_sha256d::Control;
use hashforge_stratum::Job;

/// One extranonce2 of one job: a device may hash every version and nonce of it.
#[derive(Debug)]
pub struct WorkUnit {
    /// The pool the job came from (its id, stable across reordering).
    pub pool_id: u64,
    pub job: Arc<Job>,
    /// The pool connection's clean-job epoch when the job arrived; a share from an older
    /// epoch is never sent.
    pub epoch: u64,
    /// The dispatch generation this unit belongs to.
    pub generation: u64,
    pub extranonce2: Vec<u8>,
    /// The header with this extranonce2's merkle root, the job's ntime and version, nonce 0.
    pub header: [u8; 80],
    /// The pool's share difficulty for this job.
    pub share_difficulty: Difficulty,
    pub share_target: Target,
}

impl WorkUnit {
    /// The header a device's (version, nonce) stands for.
    pub fn header_for(&self, version: u32, nonce: u32) -> [u8; 80] {
        let mut h = self.header;
        h[0..4].copy_from_slice(&version.to_le_bytes());
        h[76..80].copy_from_slice(&nonce.to_le_bytes());
        h
    }
    pub fn ntime(&self) -> u32 {
        self.job.parts.ntime
    }
}

#[derive(Debug)]
struct Current {
    pool_id: u64,
    job: Arc<Job>,
    epoch: u64,
    share_difficulty: Difficulty,
    next_extranonce2: u64,
}

#[derive(Debug)]
struct Switch {
    generation: u64,
    since: Instant,
    pending: usize,
}

#[derive(Debug, Default)]
struct State {
    generation: u64,
    current: Option<Current>,
    /// The scan each worker is running, by worker slot.
    controls: HashMap<usize, Arc<Control>>,
    /// Which generation each worker last took a unit of.
    worker_generation: HashMap<usize, u64>,
    workers: usize,
    switch: Option<Switch>,
    latencies: Vec<Duration>,
    shutdown: bool,
}

/// Hands out work units of the current job to any number of workers (threads, chains).
#[derive(Debug, Default)]
pub struct WorkFeed {
    state: Mutex<State>,
    cond: Condvar,
}

/// How many clean-switch latencies are kept.
const MAX_LATENCIES: usize = 4096;

impl WorkFeed {
    pub fn new() -> WorkFeed {
        WorkFeed::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a worker; returns its slot (used to stop its scan and time switches).
    pub fn add_worker(&self) -> usize {
        let mut s = self.lock();
        s.workers += 1;
        s.workers - 1
    }

    /// Makes `job` the work. `clean` stops every running scan at once (a clean notify, a
    /// pool switch); otherwise workers move over when their current piece ends.
    /// `received` is when the job's line arrived, for the switch latency.
    pub fn set_job(
        &self,
        pool_id: u64,
        job: Arc<Job>,
        epoch: u64,
        share_difficulty: Difficulty,
        clean: bool,
        received: Instant,
    ) -> u64 {
        let mut s = self.lock();
        s.generation += 1;
        s.current = Some(Current {
            pool_id,
            job,
            epoch,
            share_difficulty,
            next_extranonce2: 0,
        });
        if clean {
            for c in s.controls.values() {
                c.stop();
            }
            s.controls.clear();
            let workers = s.workers;
            let generation = s.generation;
            s.switch = Some(Switch {
                generation,
                since: received,
                pending: workers,
            });
        }
        let g = s.generation;
        drop(s);
        self.cond.notify_all();
        g
    }

    /// No pool to mine on: every worker stops and waits.
    pub fn clear(&self) {
        let mut s = self.lock();
        s.generation += 1;
        s.current = None;
        for c in s.controls.values() {
            c.stop();
        }
        s.controls.clear();
        s.switch = None;
    }

    /// Ends the feed: every waiting worker returns `None`.
    pub fn shutdown(&self) {
        let mut s = self.lock();
        s.shutdown = true;
        for c in s.controls.values() {
            c.stop();
        }
        drop(s);
        self.cond.notify_all();
    }

    pub fn is_shutdown(&self) -> bool {
        self.lock().shutdown
    }

    /// The current generation (changes with every job).
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// The next unit for `worker`, waiting up to `wait` for a job. The returned [`Control`]
    /// is stopped when the work must be abandoned.
    pub fn next_unit(
        &self,
        worker: usize,
        wait: Duration,
    ) -> Option<(Arc<WorkUnit>, Arc<Control>)> {
        let mut s = self.lock();
        if s.current.is_none() && !s.shutdown {
            s = self
                .cond
                .wait_timeout_while(s, wait, |s| s.current.is_none() && !s.shutdown)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if s.shutdown {
            return None;
        }
        let generation = s.generation;
        let cur = s.current.as_mut()?;
        let size = cur.job.extranonce2_size.min(8);
        let counter = cur.next_extranonce2;
        cur.next_extranonce2 = cur.next_extranonce2.wrapping_add(1);
        let extranonce2 = counter.to_be_bytes()[8 - size..].to_vec();
        let mut extranonce2 = extranonce2;
        // Pools may ask for more than 8 bytes: pad in front.
        while extranonce2.len() < cur.job.extranonce2_size {
            extranonce2.insert(0, 0);
        }
        let job = Arc::clone(&cur.job);
        let header = job
            .header(&extranonce2, job.parts.ntime, 0, job.parts.version)
            .to_bytes();
        let unit = Arc::new(WorkUnit {
            pool_id: cur.pool_id,
            epoch: cur.epoch,
            generation,
            extranonce2,
            header,
            share_difficulty: cur.share_difficulty,
            share_target: cur.share_difficulty.to_target(),
            job,
        });
        let control = Arc::new(Control::new());
        s.controls.insert(worker, Arc::clone(&control));
        let first_of_generation =
            s.worker_generation.insert(worker, generation) != Some(generation);
        if first_of_generation {
            if let Some(sw) = s.switch.as_mut().filter(|sw| sw.generation <= generation) {
                sw.pending = sw.pending.saturating_sub(1);
                if sw.pending == 0 {
                    let latency = sw.since.elapsed();
                    s.switch = None;
                    if s.latencies.len() >= MAX_LATENCIES {
                        s.latencies.remove(0);
                    }
                    s.latencies.push(latency);
                }
            }
        }
        Some((unit, control))
    }

    /// For each clean switch: the time from the job's arrival until every worker was
    /// hashing it (oldest first).
    pub fn switch_latencies(&self) -> Vec<Duration> {
        self.lock().latencies.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashforge_core::{CompactTarget, JobParts, StratumPrevHash};

    pub(crate) fn job(id: &str, en2_size: usize) -> Arc<Job> {
        Arc::new(Job {
            job_id: id.into(),
            parts: JobParts {
                prevhash: StratumPrevHash([1; 32]),
                coinb1: vec![1, 2, 3],
                coinb2: vec![4, 5],
                merkle_branch: vec![],
                version: 0x2000_0000,
                nbits: CompactTarget(0x207fffff),
                ntime: 1_700_000_000,
            },
            clean_jobs: true,
            difficulty: 1.0,
            extranonce1: vec![9, 9, 9, 9],
            extranonce2_size: en2_size,
            version_mask: 0x1fffe000,
        })
    }

    #[test]
    fn units_never_share_an_extranonce2_and_clean_jobs_stop_scans() {
        let feed = WorkFeed::new();
        let a = feed.add_worker();
        let b = feed.add_worker();
        assert!(feed.next_unit(a, Duration::ZERO).is_none());
        feed.set_job(7, job("1", 4), 0, Difficulty::ONE, true, Instant::now());
        let (u1, c1) = feed.next_unit(a, Duration::ZERO).unwrap();
        let (u2, _c2) = feed.next_unit(b, Duration::ZERO).unwrap();
        assert_ne!(u1.extranonce2, u2.extranonce2);
        assert_eq!(u1.extranonce2.len(), 4);
        assert_ne!(u1.header, u2.header);
        assert_eq!(feed.switch_latencies().len(), 1);
        feed.set_job(7, job("2", 4), 0, Difficulty::ONE, false, Instant::now());
        assert!(!c1.is_stopped());
        feed.set_job(7, job("3", 4), 1, Difficulty::ONE, true, Instant::now());
        assert!(c1.is_stopped());
        let (u3, _) = feed.next_unit(a, Duration::ZERO).unwrap();
        assert_eq!(u3.job.job_id, "3");
        assert_eq!(u3.epoch, 1);
        feed.shutdown();
        assert!(feed.next_unit(a, Duration::ZERO).is_none());
    }
}
