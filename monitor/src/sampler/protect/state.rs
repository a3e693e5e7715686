//! The sampler's state shared with its signal handlers: constants, atomics in static
//! memory (no allocation, no lock: the handlers read and write them), and the range
//! tests the handlers make.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Ranges the sampler can watch at once.
pub const MAX_RANGES: usize = 1024;
/// Every this many rounds all threads are parked, not only those seen lately.
pub(super) const PARK_ALL_EVERY: u64 = 32;
/// Samples whose threads are parked in the other rounds.
pub(super) const RECENT: u64 = 256;
/// Longest the controller waits for threads to park.
pub(super) const PARK_WAIT: Duration = Duration::from_millis(20);
/// Longest the stepped thread may take to its next watched access (others wait).
pub(super) const AWAIT_LIMIT_NS: u64 = 5_000_000;
/// Samples buffered between drains; more are counted as lost.
pub const RING: usize = 1 << 14;

pub(super) const IDLE: u32 = 0;
pub(super) const ARMING: u32 = 1;
pub(super) const ARMED: u32 = 2;
pub(super) const CAPTURED: u32 = 3;
pub(super) const DISARMING: u32 = 4;
/// The winner's first access runs under the trap flag, its page(s) open.
pub(super) const STEPPING: u32 = 5;
/// Pages re-armed; waiting for the winner's next access to watched memory.
pub(super) const AWAIT: u32 = 6;
/// Pages a single instruction may open while stepping (an access across pages).
pub(super) const MAX_STEP_PAGES: usize = 4;

/// State shared with the signal handler: atomics only, in static memory.
pub(super) struct Shared {
    /// IDLE ... AWAIT; a futex word (the controller sleeps on it).
    pub(super) state: AtomicU32,
    /// Incremented at every arming: tells a stale fault from a repeated genuine one.
    pub(super) generation: AtomicU64,
    pub(super) nranges: AtomicUsize,
    pub(super) starts: [AtomicUsize; MAX_RANGES],
    pub(super) lens: [AtomicUsize; MAX_RANGES],
    /// Ranges of the previous configuration, still recognised for late faults.
    pub(super) old_n: AtomicUsize,
    pub(super) old_starts: [AtomicUsize; MAX_RANGES],
    pub(super) old_lens: [AtomicUsize; MAX_RANGES],
    /// Handlers running now (the controller reconfigures only at zero).
    pub(super) in_flight: AtomicUsize,
    /// The thread being stepped, and the pages opened for its instruction.
    pub(super) step_tid: AtomicI32,
    /// When the stepped thread's pages were closed again (AWAIT began).
    pub(super) step_since: AtomicU64,
    pub(super) step_n: AtomicUsize,
    pub(super) step_pages: [AtomicUsize; MAX_STEP_PAGES],
    pub(super) epoch_ns: AtomicU64,
    pub(super) head: AtomicU64,
    pub(super) tail: AtomicU64,
    pub(super) lost: AtomicU64,
    pub(super) slot_addr: [AtomicU64; RING],
    pub(super) slot_time: [AtomicU64; RING],
    pub(super) slot_who: [AtomicU64; RING],
    pub(super) slot_where: [AtomicU64; RING],
}

#[allow(clippy::declare_interior_mutable_const)]
pub(super) const ZERO: AtomicUsize = AtomicUsize::new(0);
#[allow(clippy::declare_interior_mutable_const)]
pub(super) const ZERO64: AtomicU64 = AtomicU64::new(0);

pub(super) static SHARED: Shared = Shared {
    state: AtomicU32::new(IDLE),
    generation: AtomicU64::new(0),
    nranges: AtomicUsize::new(0),
    starts: [ZERO; MAX_RANGES],
    lens: [ZERO; MAX_RANGES],
    old_n: AtomicUsize::new(0),
    old_starts: [ZERO; MAX_RANGES],
    old_lens: [ZERO; MAX_RANGES],
    in_flight: AtomicUsize::new(0),
    step_tid: AtomicI32::new(0),
    step_since: AtomicU64::new(0),
    step_n: AtomicUsize::new(0),
    step_pages: [ZERO; MAX_STEP_PAGES],
    epoch_ns: AtomicU64::new(0),
    head: AtomicU64::new(0),
    tail: AtomicU64::new(0),
    lost: AtomicU64::new(0),
    slot_addr: [ZERO64; RING],
    slot_time: [ZERO64; RING],
    slot_who: [ZERO64; RING],
    slot_where: [ZERO64; RING],
};

/// The SIGSEGV action installed before ours (handler address, flags), for chaining;
/// atomics so the handler can read them and a later re-installation can replace them.
pub(super) static PREV_HANDLER: AtomicUsize = AtomicUsize::new(0);
pub(super) static PREV_FLAGS: AtomicI32 = AtomicI32::new(0);
/// The same for SIGTRAP (we take single-step traps).
pub(super) static PREV_TRAP_HANDLER: AtomicUsize = AtomicUsize::new(0);
pub(super) static PREV_TRAP_FLAGS: AtomicI32 = AtomicI32::new(0);
/// The page size, read once before any handler can run.
pub(super) static PAGE: AtomicUsize = AtomicUsize::new(4096);
pub(super) const RW: i32 = libc::PROT_READ | libc::PROT_WRITE;

pub(super) fn page_size_cached() -> usize {
    PAGE.load(Ordering::Relaxed)
}
/// Truth that our handlers were installed once.
pub(super) static INSTALLED: OnceLock<()> = OnceLock::new();
/// Threads that entered the park handler in the current parking round (reset at
/// the start of each round: a thread released last round but not yet scheduled must
/// not count as parked now).
pub(super) static ARRIVED: AtomicUsize = AtomicUsize::new(0);
/// Parking rounds asked for, and released.
pub(super) static PARK_GEN: AtomicU32 = AtomicU32::new(0);
/// A futex word: parked threads sleep on it.
pub(super) static RELEASE_GEN: AtomicU32 = AtomicU32::new(0);
/// Truth that a sampler owns the shared state.
pub(super) static RUNNING: AtomicBool = AtomicBool::new(false);
/// Pauses in force ([`pause`]).
pub(super) static PAUSED: AtomicI32 = AtomicI32::new(0);

thread_local! {
    /// (address, generation) of this thread's last fault seen while idle.
    pub(super) static LAST_IDLE_FAULT: std::cell::Cell<(usize, u64)> = const { std::cell::Cell::new((0, u64::MAX)) };
}

pub(super) fn in_ranges(
    n: &AtomicUsize,
    starts: &[AtomicUsize],
    lens: &[AtomicUsize],
    addr: usize,
) -> bool {
    let n = n.load(Ordering::Acquire).min(MAX_RANGES);
    (0..n).any(|i| {
        let s = starts[i].load(Ordering::Relaxed);
        addr >= s && addr - s < lens[i].load(Ordering::Relaxed)
    })
}

pub(super) fn ours(addr: usize) -> bool {
    let sh = &SHARED;
    in_ranges(&sh.nranges, &sh.starts, &sh.lens, addr)
        || in_ranges(&sh.old_n, &sh.old_starts, &sh.old_lens, addr)
}
