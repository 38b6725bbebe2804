//! Work dispatch: the current job, cut into [`WorkUnit`]s that never overlap.
//!
//! Every unit is one (extranonce2, ntime) of one job, so two units (on two devices, or two
//! threads or chips of one device) can never hash the same header; inside a unit a device
//! covers the version and nonce space as its hardware likes. A clean job stops every scan at
//! once through the [`Control`]s the workers registered.
//!
//! A pool may give a short extranonce2 (1 or 2 bytes: 256 or 65536 units). When every
//! extranonce2 of a job is out, the feed rolls ntime one second forward and starts the
//! extranonce2s again, as cgminer rolls ntime, up to [`MAX_NTIME_ROLL`] seconds past the
//! job's; past that it hands out nothing more of the job and warns, and the workers wait
//! for the pool's next job. A repeated header would only earn duplicate-share rejections.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use hashforge_core::{Difficulty, Target};
use hashforge_sha256d::Control;
use hashforge_stratum::Job;

/// How far past its job's ntime the feed rolls a unit's ntime: the window a pool accepts a
/// share's ntime in (cgminer's and ckpool's 7000 s).
pub const MAX_NTIME_ROLL: u32 = hashforge_stratum::MAX_NTIME_AHEAD;

/// One (extranonce2, ntime) of one job: a device may hash every version and nonce of it.
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
    /// The job's ntime, or later when the job's extranonce2s ran out (see [`MAX_NTIME_ROLL`]);
    /// a share from this unit is submitted with it.
    pub ntime: u32,
    /// The header with this extranonce2's merkle root, this unit's ntime, the job's version
    /// and nonce 0.
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
}

#[derive(Debug)]
struct Current {
    pool_id: u64,
    job: Arc<Job>,
    epoch: u64,
    share_difficulty: Difficulty,
    /// The next extranonce2 to hand out at `ntime_roll` seconds past the job's ntime.
    next_extranonce2: u64,
    ntime_roll: u32,
    /// Every (extranonce2, ntime) allowed has been handed out.
    exhausted: bool,
}

impl Current {
    fn new(pool_id: u64, job: Arc<Job>, epoch: u64, share_difficulty: Difficulty) -> Current {
        Current {
            pool_id,
            job,
            epoch,
            share_difficulty,
            next_extranonce2: 0,
            ntime_roll: 0,
            exhausted: false,
        }
    }

    /// The next (extranonce2 counter, ntime) not handed out yet, if any is left within
    /// `max_roll` seconds past the job's ntime.
    fn take(&mut self, max_roll: u32) -> Option<(u64, u32)> {
        if self.exhausted {
            return None;
        }
        // Past 8 bytes the counter fills only the low 8 (2^64 units: it never runs out).
        let bits = 8 * self.job.extranonce2_size.min(8);
        if bits < 64 && self.next_extranonce2 >> bits != 0 {
            if self.ntime_roll >= max_roll {
                return self.run_out();
            }
            self.ntime_roll += 1;
            self.next_extranonce2 = 0;
            tracing::debug!(
                pool = self.pool_id,
                job = %self.job.job_id,
                "every extranonce2 of the job is out; ntime rolled {} s forward",
                self.ntime_roll
            );
        }
        let Some(ntime) = self.job.parts.ntime.checked_add(self.ntime_roll) else {
            return self.run_out();
        };
        let counter = self.next_extranonce2;
        self.next_extranonce2 += 1;
        Some((counter, ntime))
    }

    fn run_out(&mut self) -> Option<(u64, u32)> {
        self.exhausted = true;
        tracing::warn!(
            pool = self.pool_id,
            job = %self.job.job_id,
            "every header of the job has been handed out (a {}-byte extranonce2 at every ntime \
             up to {} s past the job's); devices wait for the pool's next job",
            self.job.extranonce2_size,
            self.ntime_roll
        );
        None
    }
}

#[derive(Debug)]
struct Switch {
    generation: u64,
    since: Instant,
    pending: usize,
}

#[derive(Debug)]
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
    max_ntime_roll: u32,
}

impl Default for State {
    fn default() -> State {
        State {
            generation: 0,
            current: None,
            controls: HashMap::new(),
            worker_generation: HashMap::new(),
            workers: 0,
            switch: None,
            latencies: Vec::new(),
            shutdown: false,
            max_ntime_roll: MAX_NTIME_ROLL,
        }
    }
}

impl State {
    /// Whether a worker has nothing to take (no job, or every header of it is out).
    fn idle(&self) -> bool {
        !self.shutdown && self.current.as_ref().is_none_or(|c| c.exhausted)
    }
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

    /// A feed that rolls ntime at most `seconds` (tests reach the end without millions of
    /// units).
    #[cfg(test)]
    fn with_max_ntime_roll(self, seconds: u32) -> WorkFeed {
        self.lock().max_ntime_roll = seconds;
        self
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
        s.current = Some(Current::new(pool_id, job, epoch, share_difficulty));
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

    /// The next unit for `worker`, waiting up to `wait` for a job (or for the next one, when
    /// every header of the current one is out). The returned [`Control`] is stopped when the
    /// work must be abandoned.
    pub fn next_unit(
        &self,
        worker: usize,
        wait: Duration,
    ) -> Option<(Arc<WorkUnit>, Arc<Control>)> {
        let mut s = self.lock();
        if s.idle() {
            s = self
                .cond
                .wait_timeout_while(s, wait, |s| s.idle())
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if s.shutdown {
            return None;
        }
        let generation = s.generation;
        let max_roll = s.max_ntime_roll;
        let cur = s.current.as_mut()?;
        let (counter, ntime) = cur.take(max_roll)?;
        let size = cur.job.extranonce2_size.min(8);
        let mut extranonce2 = counter.to_be_bytes()[8 - size..].to_vec();
        // Pools may ask for more than 8 bytes: pad in front.
        while extranonce2.len() < cur.job.extranonce2_size {
            extranonce2.insert(0, 0);
        }
        let job = Arc::clone(&cur.job);
        let header = job
            .header(&extranonce2, ntime, 0, job.parts.version)
            .to_bytes();
        let unit = Arc::new(WorkUnit {
            pool_id: cur.pool_id,
            epoch: cur.epoch,
            generation,
            extranonce2,
            ntime,
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
pub(crate) mod tests {
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
            difficulty: Difficulty::ONE,
            extranonce1: vec![9, 9, 9, 9],
            extranonce2_size: en2_size,
            version_mask: 0x1fffe000,
        })
    }

    #[test]
    fn a_one_byte_extranonce2_rolls_ntime_instead_of_repeating_a_header() {
        let feed = WorkFeed::new();
        let a = feed.add_worker();
        let b = feed.add_worker();
        let job = job("1", 1);
        feed.set_job(
            7,
            Arc::clone(&job),
            0,
            Difficulty::ONE,
            true,
            Instant::now(),
        );
        let mut seen = std::collections::HashSet::new();
        let mut headers = std::collections::HashSet::new();
        for i in 0..256 * 3 + 17 {
            let worker = if i % 2 == 0 { a } else { b };
            let (u, _) = feed.next_unit(worker, Duration::ZERO).unwrap();
            assert_eq!(u.extranonce2.len(), 1);
            assert!(
                seen.insert((u.extranonce2.clone(), u.ntime)),
                "unit {i} repeats extranonce2 {:02x?} at ntime {}",
                u.extranonce2,
                u.ntime
            );
            // The header a device hashes carries the unit's ntime, so the share says it.
            assert_eq!(u.header[68..72], u.ntime.to_le_bytes());
            assert!(headers.insert(u.header), "unit {i} repeats a header");
            assert!(u.ntime >= job.parts.ntime && u.ntime - job.parts.ntime <= 3);
        }
        // The first 256 units keep the pool's ntime: rolling starts only when it must.
        let at_job_ntime = seen.iter().filter(|(_, t)| *t == job.parts.ntime).count();
        assert_eq!(at_job_ntime, 256);
    }

    #[test]
    fn when_every_header_of_a_job_is_out_workers_wait_for_the_next_job() {
        let feed = WorkFeed::new().with_max_ntime_roll(2);
        let a = feed.add_worker();
        feed.set_job(7, job("1", 1), 0, Difficulty::ONE, true, Instant::now());
        let units: Vec<_> = std::iter::from_fn(|| feed.next_unit(a, Duration::ZERO))
            .take(10_000)
            .collect();
        // 256 extranonce2s at the job's ntime and at each of 2 rolled seconds.
        assert_eq!(units.len(), 256 * 3);
        assert!(feed.next_unit(a, Duration::from_millis(10)).is_none());
        feed.set_job(7, job("2", 1), 0, Difficulty::ONE, false, Instant::now());
        let (u, _) = feed.next_unit(a, Duration::ZERO).unwrap();
        assert_eq!(
            (u.job.job_id.as_str(), u.extranonce2.as_slice()),
            ("2", &[0][..])
        );
        assert_eq!(u.ntime, u.job.parts.ntime);
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
