//! What the tick sampler is told ([`TickConfig`]), how it refuses ([`TickError`]),
//! and what it tells back ([`TickStats`]).

use crate::sampler::sys;

/// How to sample.
#[derive(Debug, Clone)]
pub struct TickConfig {
    /// Samples per second of each thread's CPU time (default 1000): the mean of the
    /// random gaps between ticks. 0 means as fast as the budget allows.
    pub rate_hz: u64,
    /// The largest share of each thread's CPU time the ticks may cost (default 0.02);
    /// the tick rate is lowered to keep to it. 0 lifts the limit.
    pub max_overhead: f64,
    /// Instructions a tick may single-step to reach an access to watched memory
    /// when the interrupted instruction is not one (default 16); 0 samples only
    /// ticks that land on such an access.
    pub max_steps: u32,
    /// Seed of the tick-gap generator (default: from the clock).
    pub seed: u64,
}

impl Default for TickConfig {
    fn default() -> Self {
        TickConfig {
            rate_hz: 1000,
            max_overhead: 0.02,
            max_steps: 16,
            seed: sys::monotonic_ns() | 1,
        }
    }
}

/// Why the tick sampler could not start.
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    /// Not an x86-64 machine: the sampler decodes x86-64 instructions.
    #[error("the tick sampler decodes x86-64 instructions; this is {0}")]
    Architecture(&'static str),
    /// The kernel refused a task-clock event with a synchronous signal (Linux 5.13+,
    /// `perf_event_paranoid` <= 2 or CAP_PERFMON).
    #[error(
        "perf_event_open(task-clock, sigtrap) refused: {0} (needs Linux 5.13 or later and \
         kernel.perf_event_paranoid <= 2, or CAP_PERFMON)"
    )]
    Perf(std::io::Error),
    /// Another tick sampler runs in this process.
    #[error("a tick sampler is already running in this process")]
    AlreadyRunning,
    /// More ranges than the sampler holds.
    #[error("{count} ranges to watch; at most {max}")]
    TooManyRanges {
        /// How many were given.
        count: usize,
        /// The most it takes.
        max: usize,
    },
    /// An empty range.
    #[error("range {start:#x}+{len:#x} is empty")]
    EmptyRange {
        /// Its start.
        start: usize,
        /// Its length.
        len: usize,
    },
    /// sigaction failed.
    #[error("cannot install the SIGTRAP handler: {0}")]
    Signal(std::io::Error),
    /// The controller thread could not start.
    #[error("cannot start the sampler thread: {0}")]
    Spawn(std::io::Error),
}

/// Counters of the tick sampler.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TickStats {
    /// Ticks taken (in all threads).
    pub ticks: u64,
    /// Ticks whose interrupted instruction accessed watched memory.
    pub hits_at_tick: u64,
    /// Ticks that reached such an access by single-stepping.
    pub hits_after_steps: u64,
    /// Ticks that found none within `max_steps` instructions.
    pub misses: u64,
    /// Instructions single-stepped.
    pub steps: u64,
    /// Threads given a tick event so far.
    pub threads: u64,
    /// Threads the kernel refused an event for.
    pub refused_threads: u64,
    /// What one signal (a tick or a step) costs here, measured at start, in ns.
    pub signal_ns: u64,
    /// The mean gap between ticks now in force, ns of thread CPU time.
    pub mean_period_ns: u64,
}
