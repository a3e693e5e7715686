//! The controller thread: when to arm (Poisson instants within the overhead budget),
//! arming and disarming the watched ranges with the program's threads parked, and
//! dropping ranges the program unmapped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::sampler::sys;

use super::config::{Counters, ProtectConfig, ProtectError};
use super::signal::{disarm_all, ensure_handlers};
use super::state::{
    ARMED, ARMING, ARRIVED, AWAIT, AWAIT_LIMIT_NS, DISARMING, IDLE, MAX_RANGES, PARK_ALL_EVERY,
    PARK_GEN, PARK_WAIT, PAUSED, RECENT, RELEASE_GEN, RING, SHARED,
};

/// Refuses more than [`MAX_RANGES`] ranges and ranges that are not whole pages.
pub(super) fn check_ranges(ranges: &[(usize, usize)]) -> Result<(), ProtectError> {
    let page = sys::page_size();
    if ranges.len() > MAX_RANGES {
        return Err(ProtectError::TooManyRanges {
            count: ranges.len(),
        });
    }
    match ranges
        .iter()
        .find(|&&(start, len)| len == 0 || start % page != 0 || len % page != 0)
    {
        Some(&(start, len)) => Err(ProtectError::BadRange { start, len }),
        None => Ok(()),
    }
}

/// Publishes a new set of ranges (only while idle and no handler runs), keeping the
/// previous set recognisable for late faults.
pub(super) fn configure(ranges: &[(usize, usize)]) {
    let sh = &SHARED;
    while sh.in_flight.load(Ordering::Acquire) != 0 {
        std::hint::spin_loop();
    }
    let n_old = sh.nranges.load(Ordering::Acquire);
    sh.old_n.store(0, Ordering::Release);
    for i in 0..n_old {
        sh.old_starts[i].store(sh.starts[i].load(Ordering::Relaxed), Ordering::Relaxed);
        sh.old_lens[i].store(sh.lens[i].load(Ordering::Relaxed), Ordering::Relaxed);
    }
    sh.old_n.store(n_old, Ordering::Release);
    sh.nranges.store(0, Ordering::Release);
    for (i, &(s, l)) in ranges.iter().enumerate() {
        sh.starts[i].store(s, Ordering::Relaxed);
        sh.lens[i].store(l, Ordering::Relaxed);
    }
    sh.nranges.store(ranges.len(), Ordering::Release);
}

/// What a round will cost before one was measured: about 120 ns per watched page
/// (arming and disarming), so that even the first round keeps to the budget.
pub(super) fn initial_cost_estimate() -> f64 {
    let sh = &SHARED;
    let n = sh.nranges.load(Ordering::Acquire).min(MAX_RANGES);
    let bytes: usize = (0..n).map(|i| sh.lens[i].load(Ordering::Relaxed)).sum();
    (bytes / sys::page_size()) as f64 * 120e-9
}

/// A small xorshift generator: arming times need no cryptography.
pub(super) struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Parks every other thread of the process, arms every watched range, then releases
/// them: the arming instant is the same for all pages, so no page wins the race for
/// having been armed first. Threads that do not park within a few milliseconds
/// (signal blocked) are counted and the round goes on.
///
/// From the first signal to the release this thread neither allocates nor takes a
/// lock: a thread parked inside `malloc` holds its arena's lock, and one parked while
/// reading the counters would hold theirs; waiting for either would keep every parked
/// thread parked for ever (the CI's Ocean hang: its threads stuck in `realloc`).
pub(super) fn arm_parked(stats: &Counters, round: u64) {
    let me = sys::gettid();
    // Park the threads seen touching watched memory lately; every PARK_ALL_EVERY
    // rounds, and until samples arrive, park them all (that is how new ones are seen).
    // The list is complete before the first signal goes out.
    let mut tids = recent_tids();
    if tids.is_empty() || round.is_multiple_of(PARK_ALL_EVERY) {
        tids = all_tids();
    }
    ARRIVED.store(0, Ordering::Release);
    let gen_now = PARK_GEN.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
    let mut sent = 0;
    for &tid in &tids {
        if tid != me && sys::tgkill(tid, sys::park_signal()) {
            sent += 1;
        }
    }
    let deadline = Instant::now() + PARK_WAIT;
    while ARRIVED.load(Ordering::Acquire) < sent && Instant::now() < deadline {
        sys::yield_cpu();
    }
    if ARRIVED.load(Ordering::Acquire) < sent {
        Counters::bump(&stats.unparked_rounds);
    }
    arm(stats);
    SHARED.state.store(ARMED, Ordering::Release);
    RELEASE_GEN.store(gen_now, Ordering::Release);
    sys::futex_wake(&RELEASE_GEN);
    drop(tids);
}

/// Every thread of the process, from `/proc/self/task`.
fn all_tids() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|t| t.parse::<i32>().ok()))
        .collect()
}

/// Threads of the last [`RECENT`] samples, without repeats.
pub(super) fn recent_tids() -> Vec<i32> {
    let sh = &SHARED;
    let head = sh.head.load(Ordering::Acquire);
    let mut tids: Vec<i32> = (head.saturating_sub(RECENT)..head)
        .map(|i| (sh.slot_who[(i % RING as u64) as usize].load(Ordering::Relaxed) >> 32) as i32)
        .filter(|&t| t > 0)
        .collect();
    tids.sort_unstable();
    tids.dedup();
    tids
}

/// Read-write anonymous-or-file mappings of the process, from `/proc/self/maps`.
pub(super) fn writable_mappings() -> Vec<(usize, usize)> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut out: Vec<(usize, usize)> = Vec::new();
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
            continue;
        };
        // Armed ranges read as ---p right now; only idle ranges are checked.
        if perms.starts_with("rw") {
            match out.last_mut() {
                Some(last) if last.1 == a => last.1 = b,
                _ => out.push((a, b)),
            }
        }
    }
    out
}

/// Stops watching ranges that are no longer entirely mapped read-write (the program
/// unmapped them, perhaps mapping something else there): they are never armed again,
/// so nothing of the program's new mapping is touched. Runs while idle.
pub(super) fn drop_unmapped(stats: &Counters) {
    let sh = &SHARED;
    if sh.state.load(Ordering::Acquire) != IDLE {
        return;
    }
    let maps = writable_mappings();
    let n = sh.nranges.load(Ordering::Acquire).min(MAX_RANGES);
    for i in 0..n {
        let (s, l) = (
            sh.starts[i].load(Ordering::Relaxed),
            sh.lens[i].load(Ordering::Relaxed),
        );
        if l == 0 {
            continue;
        }
        let covered = maps.iter().any(|&(a, b)| a <= s && s + l <= b);
        if !covered {
            sh.lens[i].store(0, Ordering::Relaxed);
            Counters::bump(&stats.dropped_ranges);
        }
    }
}

/// Arms every watched range; drops (and restores) ranges the program unmapped.
pub(super) fn arm(stats: &Counters) {
    let sh = &SHARED;
    let n = sh.nranges.load(Ordering::Acquire).min(MAX_RANGES);
    for i in 0..n {
        let (s, l) = (
            sh.starts[i].load(Ordering::Relaxed),
            sh.lens[i].load(Ordering::Relaxed),
        );
        if l == 0 {
            continue;
        }
        if sys::mprotect(s, l, libc::PROT_NONE).is_err() {
            // Unmapped (in part): give back what is still there, stop watching it.
            let _ = sys::mprotect(s, l, libc::PROT_READ | libc::PROT_WRITE);
            sh.lens[i].store(0, Ordering::Relaxed);
            Counters::bump(&stats.dropped_ranges);
        }
    }
}

pub(super) fn control(config: ProtectConfig, stop: &AtomicBool, stats: &Counters) {
    let sh = &SHARED;
    let mut rng = Rng(config.seed | 1);
    let mean = if config.rate_hz == 0 {
        0.0
    } else {
        1.0 / config.rate_hz as f64
    };
    let mut rounds_since_check = 0;
    // What a round costs the program (arming and disarming every watched page, the
    // parking), smoothed; with a budget, rounds are spaced so that cost / gap stays
    // under it.
    let mut cost = initial_cost_estimate();
    while !stop.load(Ordering::Acquire) {
        let mean = if config.max_overhead > 0.0 {
            mean.max(cost / config.max_overhead)
        } else {
            mean
        };
        // Exponential gaps: arming instants form a Poisson process.
        let gap = -mean * (1.0 - rng.next_f64()).ln();
        let wake = Instant::now() + Duration::from_secs_f64(gap.min(60.0));
        while Instant::now() < wake && !stop.load(Ordering::Acquire) {
            std::thread::sleep((wake - Instant::now()).min(Duration::from_millis(20)));
        }
        if stop.load(Ordering::Acquire) || PAUSED.load(Ordering::SeqCst) > 0 {
            continue;
        }
        rounds_since_check += 1;
        if rounds_since_check >= config.check_every.max(1) {
            // A handler installed by the program after us would swallow our faults,
            // and a range it unmapped and mapped again must not be touched.
            let _ = ensure_handlers();
            drop_unmapped(stats);
            rounds_since_check = 0;
        }
        if sh
            .state
            .compare_exchange(IDLE, ARMING, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            continue;
        }
        // Dekker with `pause`: it raises PAUSED then reads the state; we set ARMING
        // then read PAUSED. One of us sees the other.
        if PAUSED.load(Ordering::SeqCst) > 0 {
            sh.state.store(IDLE, Ordering::SeqCst);
            continue;
        }
        sh.generation.fetch_add(1, Ordering::SeqCst);
        let armed_at = Instant::now();
        let round = Counters::bump(&stats.rounds);
        arm_parked(stats, round);
        // Disarming costs about what arming did.
        let this = 2.0 * armed_at.elapsed().as_secs_f64();
        cost = if cost == 0.0 {
            this
        } else {
            0.8 * cost + 0.2 * this
        };

        let deadline = Instant::now() + config.window;
        loop {
            match sh.state.load(Ordering::Acquire) {
                IDLE => break, // captured and disarmed by the handler (or a pause)
                AWAIT => {
                    // The stepped thread may not touch watched memory again soon (it
                    // left for a system call, say): others wait meanwhile, so give up
                    // after a short while.
                    let since = sh.step_since.load(Ordering::Acquire);
                    if sys::monotonic_ns().saturating_sub(since) > AWAIT_LIMIT_NS
                        && sh
                            .state
                            .compare_exchange(AWAIT, DISARMING, Ordering::AcqRel, Ordering::Acquire)
                            .is_ok()
                    {
                        disarm_all();
                        sh.state.store(IDLE, Ordering::Release);
                        Counters::bump(&stats.unfinished_steps);
                        break;
                    }
                    sys::futex_wait(&sh.state, AWAIT, Duration::from_micros(500));
                }
                ARMED if Instant::now() >= deadline || stop.load(Ordering::Acquire) => {
                    if sh
                        .state
                        .compare_exchange(ARMED, DISARMING, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        disarm_all();
                        sh.state.store(IDLE, Ordering::Release);
                        Counters::bump(&stats.idle_rounds);
                        break;
                    }
                }
                st => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    sys::futex_wait(
                        &sh.state,
                        st,
                        left.clamp(Duration::from_micros(50), Duration::from_millis(2)),
                    );
                }
            }
        }
    }
}
