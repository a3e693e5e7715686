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
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::sys;
use crate::sample::{Access, Sample, Sampler, SamplerStats};

/// Ranges the sampler can watch at once.
pub const MAX_RANGES: usize = 1024;
/// Every this many rounds all threads are parked, not only those seen lately.
const PARK_ALL_EVERY: u64 = 32;
/// Samples whose threads are parked in the other rounds.
const RECENT: u64 = 256;
/// Longest the controller waits for threads to park.
const PARK_WAIT: Duration = Duration::from_millis(20);
/// Longest the stepped thread may take to its next watched access (others wait).
const AWAIT_LIMIT_NS: u64 = 5_000_000;
/// Samples buffered between drains; more are counted as lost.
pub const RING: usize = 1 << 14;

const IDLE: u32 = 0;
const ARMING: u32 = 1;
const ARMED: u32 = 2;
const CAPTURED: u32 = 3;
const DISARMING: u32 = 4;
/// The winner's first access runs under the trap flag, its page(s) open.
const STEPPING: u32 = 5;
/// Pages re-armed; waiting for the winner's next access to watched memory.
const AWAIT: u32 = 6;
/// Pages a single instruction may open while stepping (an access across pages).
const MAX_STEP_PAGES: usize = 4;

/// State shared with the signal handler: atomics only, in static memory.
struct Shared {
    /// IDLE ... AWAIT; a futex word (the controller sleeps on it).
    state: AtomicU32,
    /// Incremented at every arming: tells a stale fault from a repeated genuine one.
    generation: AtomicU64,
    nranges: AtomicUsize,
    starts: [AtomicUsize; MAX_RANGES],
    lens: [AtomicUsize; MAX_RANGES],
    /// Ranges of the previous configuration, still recognised for late faults.
    old_n: AtomicUsize,
    old_starts: [AtomicUsize; MAX_RANGES],
    old_lens: [AtomicUsize; MAX_RANGES],
    /// Handlers running now (the controller reconfigures only at zero).
    in_flight: AtomicUsize,
    /// The thread being stepped, and the pages opened for its instruction.
    step_tid: AtomicI32,
    /// When the stepped thread's pages were closed again (AWAIT began).
    step_since: AtomicU64,
    step_n: AtomicUsize,
    step_pages: [AtomicUsize; MAX_STEP_PAGES],
    epoch_ns: AtomicU64,
    head: AtomicU64,
    tail: AtomicU64,
    lost: AtomicU64,
    slot_addr: [AtomicU64; RING],
    slot_time: [AtomicU64; RING],
    slot_who: [AtomicU64; RING],
    slot_where: [AtomicU64; RING],
}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicUsize = AtomicUsize::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const ZERO64: AtomicU64 = AtomicU64::new(0);

static SHARED: Shared = Shared {
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
static PREV_HANDLER: AtomicUsize = AtomicUsize::new(0);
static PREV_FLAGS: AtomicI32 = AtomicI32::new(0);
/// The same for SIGTRAP (we take single-step traps).
static PREV_TRAP_HANDLER: AtomicUsize = AtomicUsize::new(0);
static PREV_TRAP_FLAGS: AtomicI32 = AtomicI32::new(0);
/// The page size, read once before any handler can run.
static PAGE: AtomicUsize = AtomicUsize::new(4096);
const RW: i32 = libc::PROT_READ | libc::PROT_WRITE;

fn page_size_cached() -> usize {
    PAGE.load(Ordering::Relaxed)
}
/// Truth that our handlers were installed once.
static INSTALLED: OnceLock<()> = OnceLock::new();
/// Threads that entered the park handler in the current parking round (reset at
/// the start of each round: a thread released last round but not yet scheduled must
/// not count as parked now).
static ARRIVED: AtomicUsize = AtomicUsize::new(0);
/// Parking rounds asked for, and released.
static PARK_GEN: AtomicU32 = AtomicU32::new(0);
/// A futex word: parked threads sleep on it.
static RELEASE_GEN: AtomicU32 = AtomicU32::new(0);
/// Truth that a sampler owns the shared state.
static RUNNING: AtomicBool = AtomicBool::new(false);
/// Pauses in force ([`pause`]).
static PAUSED: AtomicI32 = AtomicI32::new(0);

thread_local! {
    /// (address, generation) of this thread's last fault seen while idle.
    static LAST_IDLE_FAULT: std::cell::Cell<(usize, u64)> = const { std::cell::Cell::new((0, u64::MAX)) };
}

fn in_ranges(n: &AtomicUsize, starts: &[AtomicUsize], lens: &[AtomicUsize], addr: usize) -> bool {
    let n = n.load(Ordering::Acquire).min(MAX_RANGES);
    (0..n).any(|i| {
        let s = starts[i].load(Ordering::Relaxed);
        addr >= s && addr - s < lens[i].load(Ordering::Relaxed)
    })
}

fn ours(addr: usize) -> bool {
    let sh = &SHARED;
    in_ranges(&sh.nranges, &sh.starts, &sh.lens, addr)
        || in_ranges(&sh.old_n, &sh.old_starts, &sh.old_lens, addr)
}

/// Restores read-write access to every watched range (handler and controller).
fn disarm_all() {
    let sh = &SHARED;
    let n = sh.nranges.load(Ordering::Acquire).min(MAX_RANGES);
    for i in 0..n {
        let len = sh.lens[i].load(Ordering::Relaxed);
        if len > 0 {
            sys::mprotect_in_handler(
                sh.starts[i].load(Ordering::Relaxed),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
            );
        }
    }
}

fn record(addr: usize, ctx: *const libc::c_void) {
    let sh = &SHARED;
    let head = sh.head.load(Ordering::Relaxed);
    if head - sh.tail.load(Ordering::Acquire) >= RING as u64 {
        sh.lost.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let (cpu, node) = sys::getcpu();
    let tid = sys::gettid();
    // SAFETY: ctx is the ucontext the kernel passed to our SA_SIGINFO handler.
    let access = match unsafe { sys::fault_is_write(ctx) } {
        Some(true) => 2,
        Some(false) => 1,
        None => 0,
    };
    let i = (head % RING as u64) as usize;
    let now = sys::monotonic_ns().saturating_sub(sh.epoch_ns.load(Ordering::Relaxed));
    sh.slot_addr[i].store(addr as u64, Ordering::Relaxed);
    sh.slot_time[i].store(now, Ordering::Relaxed);
    sh.slot_who[i].store(
        (u64::from(tid as u32) << 32) | u64::from(cpu),
        Ordering::Relaxed,
    );
    sh.slot_where[i].store((u64::from(node) << 8) | access, Ordering::Relaxed);
    sh.head.store(head + 1, Ordering::Release);
}

extern "C" fn on_segv(sig: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let sh = &SHARED;
    sh.in_flight.fetch_add(1, Ordering::AcqRel);
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let addr = unsafe { sys::fault_address(info) };
    let mut genuine = !ours(addr);
    let me = sys::gettid();
    let page = addr & !(page_size_cached() - 1);
    while !genuine {
        // The generation is read *before* the state: a round armed after we saw IDLE
        // then has a larger generation than the one we note, so its fault at the same
        // address is not mistaken for a repeated, genuine one.
        let gen_seen = sh.generation.load(Ordering::SeqCst);
        match sh.state.load(Ordering::SeqCst) {
            ARMED => {
                if sh
                    .state
                    .compare_exchange(ARMED, CAPTURED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    if sys::CAN_STEP {
                        // Let this (length-biased) access run, then catch the next one.
                        sh.step_tid.store(me, Ordering::Release);
                        sh.step_pages[0].store(page, Ordering::Relaxed);
                        sh.step_n.store(1, Ordering::Release);
                        sys::mprotect_in_handler(page, page_size_cached(), RW);
                        // SAFETY: ctx is the kernel's ucontext for this handler.
                        unsafe { sys::set_trap_flag(ctx, true) };
                        sh.state.store(STEPPING, Ordering::Release);
                    } else {
                        record(addr, ctx);
                        disarm_all();
                        sh.state.store(IDLE, Ordering::Release);
                    }
                    break;
                }
            }
            STEPPING if sh.step_tid.load(Ordering::Acquire) == me => {
                // The stepped instruction touches another armed page: open it too.
                let n = sh.step_n.load(Ordering::Acquire);
                if n < MAX_STEP_PAGES {
                    sh.step_pages[n].store(page, Ordering::Relaxed);
                    sh.step_n.store(n + 1, Ordering::Release);
                    sys::mprotect_in_handler(page, page_size_cached(), RW);
                } else {
                    // SAFETY: ctx is the kernel's ucontext for this handler.
                    unsafe { sys::set_trap_flag(ctx, false) };
                    disarm_all();
                    sh.state.store(IDLE, Ordering::Release);
                }
                break;
            }
            AWAIT if sh.step_tid.load(Ordering::Acquire) == me => {
                if sh
                    .state
                    .compare_exchange(AWAIT, CAPTURED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    record(addr, ctx);
                    disarm_all();
                    sh.state.store(IDLE, Ordering::Release);
                    sys::futex_wake(&sh.state);
                    break;
                }
            }
            IDLE => {
                // Disarmed already (we lost the race, or the fault is late): retry the
                // access. The same address faulting twice in one generation while idle
                // is not ours to handle.
                let last = LAST_IDLE_FAULT.with(|c| c.get());
                if last == (addr, gen_seen) {
                    LAST_IDLE_FAULT.with(|c| c.set((0, u64::MAX)));
                    genuine = true;
                } else {
                    LAST_IDLE_FAULT.with(|c| c.set((addr, gen_seen)));
                    break;
                }
            }
            // ARMING, CAPTURED, DISARMING, or another thread's STEPPING/AWAIT: wait.
            _ => sys::yield_cpu(),
        }
    }
    sh.in_flight.fetch_sub(1, Ordering::AcqRel);
    if genuine {
        let (h, flags) = (
            PREV_HANDLER.load(Ordering::Acquire),
            PREV_FLAGS.load(Ordering::Acquire),
        );
        // SAFETY: (h, flags) describe the SIGSEGV action installed before ours; the
        // arguments are the kernel's.
        unsafe { sys::chain(h, flags, sig, info, ctx) };
    }
}

/// The SIGTRAP handler: the stepped instruction ran; close its pages again and wait
/// for the same thread's next access. Traps that are not ours are chained.
extern "C" fn on_trap(sig: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let sh = &SHARED;
    let me = sys::gettid();
    if sh.step_tid.load(Ordering::Acquire) == me {
        // SAFETY: ctx is the kernel's ucontext for this handler.
        unsafe { sys::set_trap_flag(ctx, false) };
        if sh.state.load(Ordering::Acquire) == STEPPING {
            let n = sh.step_n.load(Ordering::Acquire).min(MAX_STEP_PAGES);
            for i in 0..n {
                sys::mprotect_in_handler(
                    sh.step_pages[i].load(Ordering::Relaxed),
                    page_size_cached(),
                    libc::PROT_NONE,
                );
            }
            sh.step_since.store(sys::monotonic_ns(), Ordering::Release);
            sh.state.store(AWAIT, Ordering::Release);
            sys::futex_wake(&sh.state);
        }
        return;
    }
    let (h, flags) = (
        PREV_TRAP_HANDLER.load(Ordering::Acquire),
        PREV_TRAP_FLAGS.load(Ordering::Acquire),
    );
    // SAFETY: (h, flags) describe the SIGTRAP action installed before ours; the
    // arguments are the kernel's.
    unsafe { sys::chain(h, flags, sig, info, ctx) };
}

/// The park handler: hold this thread until the controller has armed the pages, so
/// that no access races with arming (see [`arm_parked`]).
extern "C" fn on_park(_sig: i32, _info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    let gen_now = PARK_GEN.load(Ordering::Acquire);
    ARRIVED.fetch_add(1, Ordering::AcqRel);
    loop {
        let released = RELEASE_GEN.load(Ordering::Acquire);
        // Wrapping comparison: released >= gen_now.
        if released.wrapping_sub(gen_now) < u32::MAX / 2 {
            break;
        }
        sys::futex_wait(&RELEASE_GEN, released, Duration::from_millis(10));
    }
}

/// For a library that interposes `sigaction` in a monitored program (`rset-mon`'s
/// preload): once the sampler's handlers are installed, a program's new SIGSEGV or
/// SIGTRAP action becomes the action ours chain to, instead of replacing ours, and
/// a query returns the program's own action, so the program sees what it set.
/// `old` gets the handler and flags chained to so far (its mask is not kept: a
/// chained handler runs with our handler's mask). Returns false, touching nothing,
/// for other signals or before the sampler ever started: the caller then calls
/// the real `sigaction`.
pub fn chain_action(
    sig: i32,
    act: Option<&libc::sigaction>,
    old: Option<&mut libc::sigaction>,
) -> bool {
    let (handler, flags) = match sig {
        libc::SIGSEGV => (&PREV_HANDLER, &PREV_FLAGS),
        libc::SIGTRAP => (&PREV_TRAP_HANDLER, &PREV_TRAP_FLAGS),
        _ => return false,
    };
    if INSTALLED.get().is_none() {
        return false;
    }
    if let Some(old) = old {
        // SAFETY: sigaction is plain data; all-zero bytes are SIG_DFL, no flags,
        // an empty mask.
        *old = unsafe { std::mem::zeroed() };
        old.sa_sigaction = handler.load(Ordering::Acquire);
        old.sa_flags = flags.load(Ordering::Acquire);
    }
    if let Some(act) = act {
        flags.store(act.sa_flags, Ordering::Release);
        handler.store(act.sa_sigaction, Ordering::Release);
    }
    true
}

/// Installs (or re-installs, if the program replaced it) our SIGSEGV handler,
/// remembering the one it replaces for chaining, and the park handler.
fn ensure_handlers() -> std::io::Result<()> {
    if sys::current_handler(libc::SIGSEGV) != on_segv as *const () as usize {
        let prev = sys::install_handler(libc::SIGSEGV, on_segv)?;
        if prev.sa_sigaction != on_segv as *const () as usize {
            PREV_FLAGS.store(prev.sa_flags, Ordering::Release);
            PREV_HANDLER.store(prev.sa_sigaction, Ordering::Release);
        }
    }
    if INSTALLED.get().is_none() {
        PAGE.store(page_size(), Ordering::Relaxed);
        sys::install_handler(sys::park_signal(), on_park)?;
        let prev = sys::install_handler(libc::SIGTRAP, on_trap)?;
        PREV_TRAP_FLAGS.store(prev.sa_flags, Ordering::Release);
        PREV_TRAP_HANDLER.store(prev.sa_sigaction, Ordering::Release);
        let _ = INSTALLED.set(());
    }
    Ok(())
}

/// A guard that keeps the pages disarmed while it lives (see the module docs).
pub struct Pause(());

/// Disarms the watched pages and holds arming off until the guard drops: wrap
/// system calls that read or write watched memory.
pub fn pause() -> Pause {
    PAUSED.fetch_add(1, Ordering::SeqCst);
    let sh = &SHARED;
    loop {
        match sh.state.load(Ordering::SeqCst) {
            IDLE => break,
            ARMED => {
                // Take the pages back (the handler may win the race: then wait).
                if sh
                    .state
                    .compare_exchange(ARMED, DISARMING, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    disarm_all();
                    sh.state.store(IDLE, Ordering::SeqCst);
                    break;
                }
            }
            _ => sys::yield_cpu(), // ARMING, CAPTURED, DISARMING: wait
        }
    }
    Pause(())
}

impl Drop for Pause {
    fn drop(&mut self) {
        PAUSED.fetch_sub(1, Ordering::AcqRel);
    }
}

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

/// The page-protection sampler; see the module docs.
pub struct ProtectSampler {
    stop: std::sync::Arc<AtomicBool>,
    controller: Option<JoinHandle<()>>,
    stats: std::sync::Arc<Mutex<ProtectStats>>,
    delivered: u64,
    rate_hz: u64,
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// Refuses more than [`MAX_RANGES`] ranges and ranges that are not whole pages.
fn check_ranges(ranges: &[(usize, usize)]) -> Result<(), ProtectError> {
    let page = page_size();
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
fn configure(ranges: &[(usize, usize)]) {
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
        let stats = std::sync::Arc::new(Mutex::new(ProtectStats::default()));
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
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a round will cost before one was measured: about 120 ns per watched page
/// (arming and disarming), so that even the first round keeps to the budget.
fn initial_cost_estimate() -> f64 {
    let sh = &SHARED;
    let n = sh.nranges.load(Ordering::Acquire).min(MAX_RANGES);
    let bytes: usize = (0..n).map(|i| sh.lens[i].load(Ordering::Relaxed)).sum();
    (bytes / page_size()) as f64 * 120e-9
}

/// A small xorshift generator: arming times need no cryptography.
struct Rng(u64);

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
fn arm_parked(stats: &Mutex<ProtectStats>, round: u64) {
    let me = sys::gettid();
    ARRIVED.store(0, Ordering::Release);
    let gen_now = PARK_GEN.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
    // Park the threads seen touching watched memory lately; every PARK_ALL_EVERY
    // rounds, and until samples arrive, park them all (that is how new ones are seen).
    let recent = recent_tids();
    let everyone = recent.is_empty() || round.is_multiple_of(PARK_ALL_EVERY);
    let mut sent = 0;
    let mut send = |tid: i32| {
        if tid != me && sys::tgkill(tid, sys::park_signal()) {
            sent += 1;
        }
    };
    if everyone {
        if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
            for e in dir.flatten() {
                if let Some(tid) = e.file_name().to_str().and_then(|t| t.parse::<i32>().ok()) {
                    send(tid);
                }
            }
        }
    } else {
        recent.iter().copied().for_each(send);
    }
    let deadline = Instant::now() + PARK_WAIT;
    while ARRIVED.load(Ordering::Acquire) < sent && Instant::now() < deadline {
        sys::yield_cpu();
    }
    if ARRIVED.load(Ordering::Acquire) < sent {
        stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unparked_rounds += 1;
    }
    arm(stats);
    SHARED.state.store(ARMED, Ordering::Release);
    RELEASE_GEN.store(gen_now, Ordering::Release);
    sys::futex_wake(&RELEASE_GEN);
}

/// Threads of the last [`RECENT`] samples, without repeats.
fn recent_tids() -> Vec<i32> {
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
fn writable_mappings() -> Vec<(usize, usize)> {
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
fn drop_unmapped(stats: &Mutex<ProtectStats>) {
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
            stats
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .dropped_ranges += 1;
        }
    }
}

/// Arms every watched range; drops (and restores) ranges the program unmapped.
fn arm(stats: &Mutex<ProtectStats>) {
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
            stats
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .dropped_ranges += 1;
        }
    }
}

fn control(config: ProtectConfig, stop: &AtomicBool, stats: &Mutex<ProtectStats>) {
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
        let round = {
            let mut st = stats.lock().unwrap_or_else(|p| p.into_inner());
            st.rounds += 1;
            st.rounds
        };
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
                        stats
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .unfinished_steps += 1;
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
                        stats.lock().unwrap_or_else(|p| p.into_inner()).idle_rounds += 1;
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
