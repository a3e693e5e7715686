//! The controller thread: gives every thread of the process a tick event (and takes
//! it back when the thread ends), and sets the mean tick gap so that ticks and steps
//! cost at most the budget of each thread's CPU time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::config::{TickConfig, TickStats};
use super::event;
use super::handler::{claim_slot, ensure_handler, free_slot, set_slot_fd};
use super::state::{ACTIVE, COUNTERS, IN_FLIGHT, MEAN_PERIOD_NS, SIG_DATA};
use crate::sampler::sys;

/// How often new threads are looked for.
const SCAN_EVERY: Duration = Duration::from_millis(20);
/// How often the budget is re-computed.
const BUDGET_EVERY: Duration = Duration::from_millis(100);
/// The shortest mean gap, whatever is asked: 20 us.
const MIN_PERIOD_NS: f64 = 20_000.0;

/// The mean gap for a tick that costs `cost_ns`: the requested rate, lengthened
/// until `cost / gap` is within the budget.
pub(super) fn mean_period(config: &TickConfig, cost_ns: f64) -> u64 {
    let by_rate = if config.rate_hz == 0 {
        0.0
    } else {
        1e9 / config.rate_hz as f64
    };
    let by_budget = if config.max_overhead > 0.0 {
        cost_ns / config.max_overhead
    } else {
        0.0
    };
    by_rate.max(by_budget).max(MIN_PERIOD_NS) as u64
}

/// Threads of this process now, but the controller itself.
fn program_threads(me: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|t| t.parse::<i32>().ok()))
        .filter(|&tid| tid != me)
        .collect()
}

/// Whether `tid` is one of the monitor's own threads (named `rset-mon*`): read once,
/// when the thread is new.
fn ours(tid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
        .is_ok_and(|comm| comm.starts_with("rset-mon"))
}

struct Snapshot {
    ticks: u64,
    steps: u64,
    handler_ns: u64,
}

fn snapshot() -> Snapshot {
    Snapshot {
        ticks: COUNTERS.ticks.load(Ordering::Relaxed),
        steps: COUNTERS.steps.load(Ordering::Relaxed),
        handler_ns: COUNTERS.handler_ns.load(Ordering::Relaxed),
    }
}

pub(super) fn control(
    config: TickConfig,
    signal_ns: u64,
    stop: &AtomicBool,
    stats: &Mutex<TickStats>,
) {
    let me = sys::gettid();
    // tid -> slot (None: a thread we do not sample, or one the kernel refused).
    let mut known: HashMap<i32, Option<usize>> = HashMap::new();
    let mut last = snapshot();
    let mut last_budget = Instant::now();
    let mut rounds = 0u64;
    loop {
        let stopping = stop.load(Ordering::Acquire);
        if !stopping {
            if rounds.is_multiple_of(10) {
                // A handler the program installed after us would swallow our ticks.
                let _ = ensure_handler();
            }
            rounds += 1;
            let now = program_threads(me);
            for &tid in &now {
                if known.contains_key(&tid) {
                    continue;
                }
                if ours(tid) {
                    known.insert(tid, None);
                    continue;
                }
                let slot = claim_slot(tid).and_then(|i| {
                    let gap = MEAN_PERIOD_NS.load(Ordering::Relaxed);
                    match event::open_task_clock(tid, gap, SIG_DATA) {
                        Ok(fd) => {
                            set_slot_fd(i, fd);
                            Some(i)
                        }
                        Err(_) => {
                            free_slot(i);
                            None
                        }
                    }
                });
                let mut st = stats.lock().unwrap_or_else(|p| p.into_inner());
                match slot {
                    Some(_) => st.threads += 1,
                    None => st.refused_threads += 1,
                }
                known.insert(tid, slot);
            }
            // Threads that ended: their events are dead, their analysers unused.
            known.retain(|tid, slot| {
                let alive = now.contains(tid);
                if !alive && let Some(i) = *slot {
                    free_slot(i);
                }
                alive
            });
        }
        if last_budget.elapsed() >= BUDGET_EVERY || stopping {
            let s = snapshot();
            let ticks = s.ticks - last.ticks;
            if ticks > 0 {
                let traps = (ticks + (s.steps - last.steps)) as f64;
                let cost = (signal_ns as f64 * traps + (s.handler_ns - last.handler_ns) as f64)
                    / ticks as f64;
                let target = mean_period(&config, cost) as f64;
                let old = MEAN_PERIOD_NS.load(Ordering::Relaxed) as f64;
                // Quick to slow down (at most twice the gap per round: one round's
                // cost under an emulator can include a host's time slice, and the
                // thread that draws its gap then keeps it), slower to speed up.
                let next = if target > old {
                    target.min(2.0 * old)
                } else {
                    0.7 * old + 0.3 * target
                };
                MEAN_PERIOD_NS.store(next as u64, Ordering::Relaxed);
            }
            last = s;
            last_budget = Instant::now();
            let mut st = stats.lock().unwrap_or_else(|p| p.into_inner());
            st.ticks = COUNTERS.ticks.load(Ordering::Relaxed);
            st.hits_at_tick = COUNTERS.hits_at_tick.load(Ordering::Relaxed);
            st.hits_after_steps = COUNTERS.hits_after_steps.load(Ordering::Relaxed);
            st.misses = COUNTERS.misses.load(Ordering::Relaxed);
            st.steps = COUNTERS.steps.load(Ordering::Relaxed);
            st.mean_period_ns = MEAN_PERIOD_NS.load(Ordering::Relaxed);
        }
        if stopping {
            break;
        }
        std::thread::sleep(SCAN_EVERY);
    }
    // Stop: no handler samples from now on; once none is in flight, the analysers
    // are unused and the events can go.
    ACTIVE.store(false, Ordering::SeqCst);
    while IN_FLIGHT.load(Ordering::SeqCst) != 0 {
        std::hint::spin_loop();
    }
    for slot in known.into_values().flatten() {
        free_slot(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gap_keeps_the_rate_unless_the_budget_needs_longer() {
        let c = TickConfig {
            rate_hz: 1000,
            max_overhead: 0.02,
            ..TickConfig::default()
        };
        // 10 us a tick at 1000 Hz is 1 %: the rate holds.
        assert_eq!(mean_period(&c, 10_000.0), 1_000_000);
        // 40 us a tick needs a 2 ms gap to stay at 2 %.
        assert_eq!(mean_period(&c, 40_000.0), 2_000_000);
        let free = TickConfig {
            max_overhead: 0.0,
            ..c.clone()
        };
        assert_eq!(mean_period(&free, 40_000.0), 1_000_000);
        let flat_out = TickConfig {
            rate_hz: 0,
            max_overhead: 0.0,
            ..c
        };
        assert_eq!(mean_period(&flat_out, 1.0), 20_000);
    }
}
