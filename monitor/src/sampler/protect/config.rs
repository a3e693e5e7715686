//! What the sampler is told ([`ProtectConfig`]), how it refuses ([`ProtectError`]),
//! and what it tells back ([`ProtectStats`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::state::MAX_RANGES;
use crate::sampler::sys;

/// How to sample.
#[derive(Debug, Clone)]
pub struct ProtectConfig {
    /// Arming rounds per second (default 100). 0 means back to back.
    pub rate_hz: u64,
    /// Longest an armed round waits for an access before giving up (default 20 ms).
    pub window: Duration,
    /// Seed of the arming-time generator (default: from the clock).
    pub seed: u64,
    /// Check `/proc/self/maps` for unmapped ranges every this many rounds (default 10).
    pub check_every: u32,
    /// The largest share of the program's time the rounds may cost (default 0.01):
    /// arming costs a page-table walk per watched page, so large watched ranges get
    /// fewer rounds than `rate_hz`. 0 lifts the limit.
    pub max_overhead: f64,
}

impl Default for ProtectConfig {
    fn default() -> Self {
        ProtectConfig {
            rate_hz: 100,
            window: Duration::from_millis(20),
            seed: sys::monotonic_ns() | 1,
            check_every: 10,
            max_overhead: 0.01,
        }
    }
}

/// Why the sampler could not start or watch a range.
#[derive(Debug, thiserror::Error)]
pub enum ProtectError {
    /// Another protect sampler runs in this process.
    #[error("a page-protection sampler is already running in this process")]
    AlreadyRunning,
    /// More ranges than [`MAX_RANGES`].
    #[error("{count} ranges to watch; at most {MAX_RANGES}")]
    TooManyRanges {
        /// How many were given.
        count: usize,
    },
    /// A range that is not page aligned or is empty.
    #[error("range {start:#x}+{len:#x} is not a non-empty run of whole pages")]
    BadRange {
        /// Its start.
        start: usize,
        /// Its length.
        len: usize,
    },
    /// sigaction failed.
    #[error("cannot install the SIGSEGV handler: {0}")]
    Signal(std::io::Error),
    /// The controller thread could not start.
    #[error("cannot start the sampler thread: {0}")]
    Spawn(std::io::Error),
}

/// Counters of the protect sampler.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProtectStats {
    /// Rounds armed.
    pub rounds: u64,
    /// Rounds that timed out without an access.
    pub idle_rounds: u64,
    /// Ranges dropped because the program unmapped them.
    pub dropped_ranges: u64,
    /// Rounds armed while some thread had not parked (its signal blocked).
    pub unparked_rounds: u64,
    /// Rounds whose stepped thread did not reach watched memory again in time.
    pub unfinished_steps: u64,
}

/// The controller's counters, kept as atomics: the controller bumps them while the
/// program's threads are parked, and a parked thread may be one that was reading
/// them, so no lock may guard them (a lock held by a parked reader would stop the
/// controller, and with it every parked thread).
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) rounds: AtomicU64,
    pub(super) idle_rounds: AtomicU64,
    pub(super) dropped_ranges: AtomicU64,
    pub(super) unparked_rounds: AtomicU64,
    pub(super) unfinished_steps: AtomicU64,
}

impl Counters {
    /// Adds one to `counter` (a field of `self`).
    pub(super) fn bump(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The counters now.
    pub(super) fn snapshot(&self) -> ProtectStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ProtectStats {
            rounds: get(&self.rounds),
            idle_rounds: get(&self.idle_rounds),
            dropped_ranges: get(&self.dropped_ranges),
            unparked_rounds: get(&self.unparked_rounds),
            unfinished_steps: get(&self.unfinished_steps),
        }
    }
}
