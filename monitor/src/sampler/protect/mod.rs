//! The software sampler: page protection inside the process.
//!
//! # How it samples, and why the counts are proportional to references
//!
//! At random instants (a Poisson process of the requested rate, so that no periodic
//! program can alias with it) the controller thread *arms* every watched page at once
//! (`mprotect(PROT_NONE)`). The first access to any of them, by any thread, faults; the
//! handler records that one access (exact address, thread, CPU and node from
//! `getcpu`, read or write from the page-fault error code, time) and disarms every
//! page, and the access proceeds. Other threads that fault meanwhile wait until the
//! pages are disarmed and proceed unrecorded.
//!
//! Which access wins is the point. The thread that faults first after a random instant
//! is chosen with probability proportional to how often it references watched memory.
//! But the access it faulted on is *length-biased*: the first access after a random
//! instant is likelier to be one that follows a long gap (a mispredicted branch, a
//! slow load). So the sampler does not record it: it lets that one instruction run
//! (the page opened, the x86 trap flag set, one SIGTRAP later the page closed again)
//! and records the *next* access of the same thread to watched memory, which is
//! distributed as that thread's references are. The product — thread by its reference
//! rate, then an access from its own reference stream — gives each granule an expected
//! count proportional to how often it is referenced: a region read twice as often
//! scores twice as high, unlike "first touch after arming" schemes that only say
//! whether a page was touched. (Without a trap flag, on other architectures, the first
//! access is recorded and the length bias stays; the stats say which.) Each round is one multinomial draw, so a share *p*
//! estimated from *n* samples has a standard error of √(p(1−p)/n): ±1.6 percentage
//! points at 1000 samples, ±5 at 100 (reports print the 95% interval).
//!
//! # What it costs
//!
//! Arming parks the threads seen touching watched memory lately (all threads every
//! 32nd round, which is how new ones are found) with a real-time signal
//! (SIGRTMAX−2) for the few microseconds it takes, so that every page is armed at
//! the same instant; a thread that touches watched memory for the first time during
//! an arming can win that one round unfairly, and no other.
//!
//! Each round costs two `mprotect` calls per watched range — a page-table walk and a
//! TLB shoot-down, measured here at about 60 ns per watched page (1 ms for 16 MiB) —
//! plus two faults and a trap (~5–10 µs). The controller measures that cost and
//! spaces rounds so that it stays under [`ProtectConfig::max_overhead`] (1% by
//! default) of the program's time: a few thousand pages sample at the full rate,
//! hundreds of megabytes only a few times a second. Refinement rounds watch only the
//! hot pages and so sample fast.
//!
//! # Living inside someone else's process
//!
//! - **Other SIGSEGVs** (not at a watched address) go to the handler that was installed
//!   before ours, as the kernel would have called it (`SA_SIGINFO` or not), or to the
//!   default action. Install your own handler *before* starting the sampler; one
//!   installed later replaces ours (`rset-mon`'s preload keeps ours first).
//! - **munmap of a watched page**: arming a range that is no longer mapped fails with
//!   `ENOMEM`; the range is restored where it still exists, dropped from the watch list
//!   and counted ([`ProtectStats::dropped_ranges`]). Every ten rounds the controller
//!   also checks `/proc/self/maps` ([`ProtectConfig::check_every`]) and drops ranges no longer mapped read-write, so a
//!   new mapping at a reused address (read-only, say) is left alone; between two checks
//!   such a mapping could be armed once, which is why `rset-mon`'s preload unwatches on
//!   `munmap` itself.
//! - **System calls** that read or write an armed page (`read(fd, buf)` into it) return
//!   `EFAULT` instead of faulting. An armed window lasts at most until the first
//!   access or [`ProtectConfig::window`]; code that passes watched memory to the kernel
//!   wraps the call in [`pause`] (`rset-mon`'s preload does so for the read/write
//!   family), which disarms and holds arming off until the guard drops.
//!
//! One protect sampler runs per process at a time (the signal handler is global).

mod config;
mod round;
pub(in crate::sampler) mod signal;
mod state;

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use super::sys;
use crate::sample::{Access, Sample, Sampler, SamplerStats};

use self::config::Counters;
pub use self::config::{ProtectConfig, ProtectError, ProtectStats};
use self::round::{check_ranges, configure, control};
use self::signal::ensure_handlers;
pub use self::signal::{Pause, chain_action, pause};
pub use self::state::{MAX_RANGES, RING};
use self::state::{RUNNING, SHARED};

/// The page-protection sampler; see the module docs.
pub struct ProtectSampler {
    stop: std::sync::Arc<AtomicBool>,
    controller: Option<JoinHandle<()>>,
    stats: std::sync::Arc<Counters>,
    delivered: u64,
    rate_hz: u64,
}

impl ProtectSampler {
    /// Starts sampling references to `ranges` (page-aligned `(start, len)` of memory
    /// mapped read-write).
    ///
    /// # Errors
    /// [`ProtectError`] naming the offending range or condition.
    pub fn start(
        ranges: &[(usize, usize)],
        config: ProtectConfig,
    ) -> Result<ProtectSampler, ProtectError> {
        check_ranges(ranges)?;
        if RUNNING
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(ProtectError::AlreadyRunning);
        }
        if let Err(e) = ensure_handlers() {
            RUNNING.store(false, Ordering::Release);
            return Err(ProtectError::Signal(e));
        }
        let sh = &SHARED;
        sh.epoch_ns.store(sys::monotonic_ns(), Ordering::Relaxed);
        sh.lost.store(0, Ordering::Relaxed);
        sh.tail
            .store(sh.head.load(Ordering::Acquire), Ordering::Release);
        configure(ranges);

        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stats = std::sync::Arc::new(Counters::default());
        let (stop2, stats2) = (stop.clone(), stats.clone());
        let rate_hz = config.rate_hz;
        let controller = std::thread::Builder::new()
            .name("rset-mon-sampler".into())
            .spawn(move || control(config, &stop2, &stats2))
            .map_err(|e| {
                configure(&[]);
                RUNNING.store(false, Ordering::Release);
                ProtectError::Spawn(e)
            })?;
        Ok(ProtectSampler {
            stop,
            controller: Some(controller),
            stats,
            delivered: 0,
            rate_hz,
        })
    }

    /// Replaces the watched ranges (successive refinement) without stopping.
    ///
    /// # Errors
    /// As [`ProtectSampler::start`] for the ranges.
    pub fn rewatch(&mut self, ranges: &[(usize, usize)]) -> Result<(), ProtectError> {
        check_ranges(ranges)?;
        let _hold = pause();
        configure(ranges);
        Ok(())
    }

    /// The sampler's own counters.
    pub fn protect_stats(&self) -> ProtectStats {
        self.stats.snapshot()
    }
}

impl Sampler for ProtectSampler {
    fn watch(&mut self, ranges: &[(usize, usize)]) -> Result<(), String> {
        self.rewatch(ranges).map_err(|e| e.to_string())
    }

    fn drain(&mut self, into: &mut Vec<Sample>) {
        let sh = &SHARED;
        let head = sh.head.load(Ordering::Acquire);
        let mut tail = sh.tail.load(Ordering::Acquire);
        while tail < head {
            let i = (tail % RING as u64) as usize;
            let who = sh.slot_who[i].load(Ordering::Relaxed);
            let at = sh.slot_where[i].load(Ordering::Relaxed);
            into.push(Sample {
                addr: sh.slot_addr[i].load(Ordering::Relaxed),
                tid: (who >> 32) as i32,
                cpu: who as u32,
                node: (at >> 8) as u32,
                time_ns: sh.slot_time[i].load(Ordering::Relaxed),
                access: match at & 0xff {
                    1 => Access::Read,
                    2 => Access::Write,
                    _ => Access::Unknown,
                },
                source: None,
            });
            tail += 1;
            self.delivered += 1;
        }
        sh.tail.store(tail, Ordering::Release);
    }

    fn stats(&self) -> SamplerStats {
        let p = self.protect_stats();
        SamplerStats {
            name: "protect".into(),
            samples: self.delivered,
            lost: SHARED.lost.load(Ordering::Relaxed),
            idle_rounds: p.idle_rounds,
            rate_hz: self.rate_hz,
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.controller.take() {
            let _ = h.join();
        }
        // The controller disarmed its last round; make sure, then forget the ranges.
        let _hold = pause();
        configure(&[]);
        RUNNING.store(false, Ordering::Release);
    }
}

impl Drop for ProtectSampler {
    fn drop(&mut self) {
        if self.controller.is_some() {
            Sampler::stop(self);
        }
    }
}
