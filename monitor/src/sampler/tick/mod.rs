//! The tick sampler: time-based sampling of each thread's memory references, with
//! the exact address decoded from the interrupted instruction. Its cost per sample
//! does not depend on how much memory is watched.
//!
//! # How it samples
//!
//! Every thread of the process gets a `task-clock` perf event (software, so it
//! exists in VMs and emulators) that sends the thread itself a synchronous SIGTRAP
//! after a random amount of its own CPU time (one gap drawn every 16 ticks,
//! uniform within [mean/2, 3 mean/2), because changing the period restarts the
//! event's timer, which is dear in a VM; each tick's instant stays random, so no
//! periodic program can alias with it, and a thread's ticks stay proportional to
//! its CPU time, which an exponential gap shared by 16 ticks did not). The
//! handler decodes the instruction the thread was about to run (iced-x86) and
//! computes its memory operands' addresses from the interrupted registers. If one
//! lies in a watched range, that access is the sample: exact address, read or
//! write from the instruction's operand access, CPU and node from `getcpu`,
//! thread, time. If not,
//! the x86 trap flag steps the thread on, one instruction per trap, until an
//! instruction does (at most [`TickConfig::max_steps`]; after that the tick is a
//! miss). No page is protected: system calls on watched memory, `munmap`, and the
//! program's own `mprotect` work as without a monitor.
//!
//! # What the counts estimate
//!
//! A sample is *the first access to watched memory at or after a random instant of
//! a thread's CPU time*. For a thread whose references to watched memory form a
//! stationary stream (any mix of granules, in any order, at a constant time per
//! reference), that access is a draw from the stream: granule *g* is picked with
//! probability r_g / R, its share of the thread's references (`monitor/tests/
//! tick_estimator.rs` checks this on synthetic streams of known rates). Threads are
//! sampled in proportion to their CPU time. So the counts are proportional to
//! references **weighted by the time each takes**:
//! - A phase that spends twice the time per reference (a stalled remote load, say)
//!   gets twice the samples per reference. This is the time-proportional view of
//!   perf's cpu-clock sampling, not the reference count of the paper's card: on a
//!   real NUMA machine, remote references, being slower, are over-represented by
//!   about their latency ratio (in the emulated guests all memory is equally fast).
//! - A thread that burns CPU without touching watched memory costs ticks but adds
//!   no sample (a miss). A thread that sleeps (a blocking barrier) is not sampled
//!   while it sleeps, so the phase after a barrier is not favoured (the page-protect
//!   sampler's first-access-after-arming is).
//! - Interrupts land where the processor lets them (after the instruction that
//!   retired last; under the QEMU emulator at the start of a translated block), so
//!   the instructions at those points are favoured within a loop; stepping to the
//!   first watched access spreads that over the loop's accesses only partly.
//!
//! A share *p* estimated from *n* samples has a standard error of √(p(1−p)/n),
//! the reports' 95% interval, as for the other samplers.
//!
//! # What it costs
//!
//! A tick is a signal: about 10–20 µs in the VMs measured here, a few on bare
//! metal; each step another trap, as much again. At start the sampler measures a
//! trap ([`TickStats::signal_ns`]); the controller adds the measured time in the
//! handler and the steps taken, and lengthens the mean gap so that the cost stays
//! under [`TickConfig::max_overhead`] (2% by default) of each thread's CPU time.
//! The default asks 1000 samples per second of each thread's CPU time.
//!
//! # Living inside someone else's process
//!
//! - New threads are found within 20 ms (from `/proc/self/task`) and sampled from
//!   then on; the sampler's and the session's own threads (`rset-mon-*`) are not.
//! - Traps that are not ours (the program's own SIGTRAP, a debugger's breakpoint)
//!   go to the handler installed before ours; a handler the program installs later
//!   is found within 200 ms and put behind ours (`rset-mon`'s preload does it at
//!   once). The events are removed on `exec`.
//! - Needs Linux 5.13 (`sigtrap` perf events) and `perf_event_paranoid` <= 2 or
//!   CAP_PERFMON; [`TickSampler::start`] says which is missing. x86-64 only.
//!
//! One tick sampler runs per process at a time.

mod config;
mod control;
pub mod decode;
mod event;
mod forward;
mod handler;
mod state;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub use self::config::{TickConfig, TickError, TickStats};
use self::state::{
    ACTIVE, COUNTERS, EPOCH_NS, MAX_STEPS, MEAN_PERIOD_NS, PAGE, RANGES, RUNNING, SAMPLES, SEED,
};
pub use self::state::{MAX_RANGES, MAX_THREADS, RING};
use super::sys;
use crate::sample::{Access, Sample, Sampler, SamplerStats};

/// The tick sampler; see the module docs.
pub struct TickSampler {
    stop: Arc<AtomicBool>,
    controller: Option<JoinHandle<()>>,
    stats: Arc<Mutex<TickStats>>,
    delivered: u64,
    rate_hz: u64,
}

fn check_ranges(ranges: &[(usize, usize)]) -> Result<(), TickError> {
    if ranges.len() > MAX_RANGES {
        return Err(TickError::TooManyRanges {
            count: ranges.len(),
            max: MAX_RANGES,
        });
    }
    match ranges.iter().find(|&&(_, len)| len == 0) {
        Some(&(start, len)) => Err(TickError::EmptyRange { start, len }),
        None => Ok(()),
    }
}

/// Whether this kernel gives a thread a task-clock event with a synchronous signal
/// (the check [`TickSampler::start`] makes).
///
/// # Errors
/// [`TickError::Perf`] with the kernel's reason.
pub fn available() -> Result<(), TickError> {
    if !cfg!(target_arch = "x86_64") {
        return Err(TickError::Architecture(std::env::consts::ARCH));
    }
    // A gap of an hour: the probe never fires.
    let fd =
        event::open_task_clock(sys::gettid(), 3_600_000_000_000, 0).map_err(TickError::Perf)?;
    event::close(fd);
    Ok(())
}

impl TickSampler {
    /// Starts sampling references to `ranges` (`(start, len)`, any alignment).
    ///
    /// # Errors
    /// [`TickError`] naming what is missing or refused.
    pub fn start(ranges: &[(usize, usize)], config: TickConfig) -> Result<TickSampler, TickError> {
        check_ranges(ranges)?;
        available()?;
        if RUNNING
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(TickError::AlreadyRunning);
        }
        let fail = |e: TickError| {
            RUNNING.store(false, Ordering::Release);
            e
        };
        PAGE.store(sys::page_size(), Ordering::Relaxed);
        EPOCH_NS.store(sys::monotonic_ns(), Ordering::Relaxed);
        SEED.store(config.seed | 1, Ordering::Relaxed);
        MAX_STEPS.store(u64::from(config.max_steps), Ordering::Relaxed);
        for c in [
            &COUNTERS.ticks,
            &COUNTERS.hits_at_tick,
            &COUNTERS.hits_after_steps,
            &COUNTERS.misses,
            &COUNTERS.steps,
            &COUNTERS.handler_ns,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        SAMPLES.lost.store(0, Ordering::Relaxed);
        SAMPLES
            .tail
            .store(SAMPLES.head.load(Ordering::Acquire), Ordering::Release);
        RANGES.set(ranges);
        handler::ensure_handler().map_err(|e| fail(TickError::Signal(e)))?;
        // What a trap costs here, then a first gap as if each tick took two.
        let signal_ns = handler::calibrate(200).max(500);
        MEAN_PERIOD_NS.store(
            control::mean_period(&config, 2.0 * signal_ns as f64),
            Ordering::Relaxed,
        );
        ACTIVE.store(true, Ordering::SeqCst);
        let stats = Arc::new(Mutex::new(TickStats {
            signal_ns,
            ..TickStats::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, stats2) = (stop.clone(), stats.clone());
        let rate_hz = config.rate_hz;
        let controller = std::thread::Builder::new()
            .name("rset-mon-ticks".into())
            .spawn(move || control::control(config, signal_ns, &stop2, &stats2))
            .map_err(|e| {
                ACTIVE.store(false, Ordering::SeqCst);
                RANGES.set(&[]);
                fail(TickError::Spawn(e))
            })?;
        Ok(TickSampler {
            stop,
            controller: Some(controller),
            stats,
            delivered: 0,
            rate_hz,
        })
    }

    /// Replaces the watched ranges without stopping.
    ///
    /// # Errors
    /// As [`TickSampler::start`] for the ranges.
    pub fn rewatch(&mut self, ranges: &[(usize, usize)]) -> Result<(), TickError> {
        check_ranges(ranges)?;
        RANGES.set(ranges);
        Ok(())
    }

    /// The sampler's own counters.
    pub fn tick_stats(&self) -> TickStats {
        let mut s = *self.stats.lock().unwrap_or_else(|p| p.into_inner());
        s.ticks = COUNTERS.ticks.load(Ordering::Relaxed);
        s.hits_at_tick = COUNTERS.hits_at_tick.load(Ordering::Relaxed);
        s.hits_after_steps = COUNTERS.hits_after_steps.load(Ordering::Relaxed);
        s.misses = COUNTERS.misses.load(Ordering::Relaxed);
        s.steps = COUNTERS.steps.load(Ordering::Relaxed);
        s
    }
}

impl Sampler for TickSampler {
    fn watch(&mut self, ranges: &[(usize, usize)]) -> Result<(), String> {
        self.rewatch(ranges).map_err(|e| e.to_string())
    }

    fn drain(&mut self, into: &mut Vec<Sample>) {
        let r = &SAMPLES;
        let first = into.len();
        let mut tail = r.tail.load(Ordering::Acquire);
        loop {
            let i = (tail % RING as u64) as usize;
            if r.seq[i].load(Ordering::Acquire) != tail + 1 {
                break;
            }
            let who = r.who[i].load(Ordering::Relaxed);
            let at = r.place[i].load(Ordering::Relaxed);
            into.push(Sample {
                addr: r.addr[i].load(Ordering::Relaxed),
                tid: (who >> 32) as i32,
                cpu: who as u32,
                node: (at >> 8) as u32,
                time_ns: r.time[i].load(Ordering::Relaxed),
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
        r.tail.store(tail, Ordering::Release);
        // Threads record concurrently: put this batch in time order.
        into[first..].sort_by_key(|s| s.time_ns);
    }

    fn stats(&self) -> SamplerStats {
        let t = self.tick_stats();
        SamplerStats {
            name: "tick".into(),
            samples: self.delivered,
            lost: SAMPLES.lost.load(Ordering::Relaxed),
            idle_rounds: t.misses,
            rate_hz: self.rate_hz,
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.controller.take() {
            let _ = h.join();
        }
        RANGES.set(&[]);
        RUNNING.store(false, Ordering::Release);
    }
}

impl Drop for TickSampler {
    fn drop(&mut self) {
        if self.controller.is_some() {
            Sampler::stop(self);
        }
    }
}
