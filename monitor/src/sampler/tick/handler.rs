//! The tick sampler's SIGTRAP handler: a tick (our task-clock event overflowed in
//! this thread) looks at the interrupted instruction; if it does not access watched
//! memory, the trap flag steps the thread on, one instruction per trap, until one
//! does or the step budget is spent. Also the slots' instruction analysers and the
//! calibration of what one trap costs.
//!
//! # Safety
//!
//! Everything here may run inside a signal handler, on any thread, at any
//! instruction of the program: it touches atomics in [`super::state`], thread-local
//! cells with constant initialisers, and the calling thread's own instruction
//! analyser, and makes async-signal-safe calls (`ioctl`, `clock_gettime`, `getcpu`,
//! `process_vm_readv` on itself to read memory the look-ahead needs).
//! The unsafe blocks read or edit the signal context the kernel passed to the
//! handler (valid for its duration), copy code bytes at the interrupted instruction
//! pointer (mapped and executable: the thread is about to run them), use the
//! analyser whose pointer the controller published for this thread only, and set
//! the trap flag on the controller's own thread to calibrate.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::sync::atomic::Ordering;

use iced_x86::InstructionInfoFactory;

use super::decode::{self, Hit, Regs};
use super::event;
use super::forward;
use super::state::{
    ACTIVE, COUNTERS, EPOCH_NS, IN_FLIGHT, MAX_STEPS, MAX_THREADS, MEAN_PERIOD_NS, PAGE, RANGES,
    SAMPLES, SEED, SIG_DATA, SLOTS,
};
use crate::sample::Access;
use crate::sampler::protect::signal as protect_signal;
use crate::sampler::sys;

/// `si_code` of a perf event's synchronous signal, and of a single-step trap.
const TRAP_PERF: i32 = 6;
const TRAP_TRACE: i32 = 2;
/// Instructions the look-ahead decodes before it gives up.
const LOOK_AHEAD: u32 = 64;
/// The trap flag in RFLAGS.
const TF: i64 = 0x100;
/// A new gap is drawn every this many ticks of a thread: changing an event's period
/// restarts its timer, which costs as much as the tick itself in a virtual machine
/// (11 us here, where a tick's signal costs 12). Each group's first tick falls at an
/// instant made random by the gaps before it, and a group's gap is random, so each
/// tick's instant stays uniform over a program's loops (no aliasing bias). A group's
/// gap is drawn within a factor of 3 ([`gap_of`]), not from an exponential: 16
/// ticks sharing an exponential gap made a thread's count of ticks swing with the
/// draw (the CPU-less CI guest, about 300 samples: one of two equally busy threads
/// got 6 and the other 260).
const REDRAW_EVERY: u32 = 16;

thread_local! {
    /// Instructions this thread may still step looking for a watched access.
    static STEPS_LEFT: Cell<u32> = const { Cell::new(0) };
    /// Steps left of a calibration (the controller thread only).
    static CALIBRATING: Cell<u32> = const { Cell::new(0) };
    /// This thread's slot, as last found.
    static MY_SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
    /// This thread's tick-gap generator (xorshift; 0: not seeded yet).
    static RNG: Cell<u64> = const { Cell::new(0) };
    /// Ticks this thread has taken in its group.
    static TICKS_HERE: Cell<u32> = const { Cell::new(0) };
    /// The gap of this thread's group (0: none drawn yet).
    static GROUP_GAP: Cell<u64> = const { Cell::new(0) };
}

/// The signal context's general registers.
///
/// # Safety
/// `ctx` must be the ucontext the kernel passed to an `SA_SIGINFO` handler.
unsafe fn gregs(ctx: *mut libc::c_void) -> *mut [libc::greg_t; 23] {
    // SAFETY: the third argument of an SA_SIGINFO handler is the interrupted
    // ucontext (caller's contract).
    unsafe { &raw mut (*(ctx as *mut libc::ucontext_t)).uc_mcontext.gregs }
}

/// Sets or clears the trap flag of the interrupted thread.
///
/// # Safety
/// As [`gregs`].
unsafe fn trap_flag(ctx: *mut libc::c_void, on: bool) {
    // SAFETY: caller's contract.
    let p = unsafe { gregs(ctx) };
    // SAFETY: p points into the live ucontext; REG_EFL is an index inside gregs.
    let g = unsafe { &mut *p };
    let efl = &mut g[libc::REG_EFL as usize];
    if on {
        *efl |= TF;
    } else {
        *efl &= !TF;
    }
}

/// The interrupted registers, in the encoding order [`Regs`] wants.
///
/// # Safety
/// As [`gregs`].
unsafe fn regs(ctx: *mut libc::c_void) -> Regs {
    // SAFETY: caller's contract.
    let p = unsafe { gregs(ctx) };
    // SAFETY: p points into the live ucontext.
    let g = unsafe { &*p };
    let r = |i: i32| g[i as usize] as u64;
    Regs {
        gpr: [
            r(libc::REG_RAX),
            r(libc::REG_RCX),
            r(libc::REG_RDX),
            r(libc::REG_RBX),
            r(libc::REG_RSP),
            r(libc::REG_RBP),
            r(libc::REG_RSI),
            r(libc::REG_RDI),
            r(libc::REG_R8),
            r(libc::REG_R9),
            r(libc::REG_R10),
            r(libc::REG_R11),
            r(libc::REG_R12),
            r(libc::REG_R13),
            r(libc::REG_R14),
            r(libc::REG_R15),
        ],
        rip: r(libc::REG_RIP),
    }
}

/// This thread's slot index, if the controller gave it one.
fn my_slot(tid: i32) -> Option<usize> {
    let cached = MY_SLOT.with(Cell::get);
    if cached < MAX_THREADS && SLOTS[cached].tid.load(Ordering::Acquire) == tid {
        return Some(cached);
    }
    let found = (0..MAX_THREADS).find(|&i| SLOTS[i].tid.load(Ordering::Acquire) == tid)?;
    MY_SLOT.with(|c| c.set(found));
    Some(found)
}

/// The next gap of `tid`'s group of ticks: [`gap_of`] the controller's `mean`.
fn next_gap(tid: i32, mean: u64) -> u64 {
    let mut x = RNG.with(Cell::get);
    if x == 0 {
        x = (SEED.load(Ordering::Relaxed) ^ (tid as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1;
    }
    let (x, u) = draw(x);
    RNG.with(|c| c.set(x));
    gap_of(mean.max(1) as f64, u)
}

/// One xorshift step from state `x`: the new state and a number uniform in [0, 1).
fn draw(mut x: u64) -> (u64, f64) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    (x, (x >> 11) as f64 / (1u64 << 53) as f64)
}

/// Whether a group's `gap` is still one [`gap_of`] the controller's `mean` could
/// give. When the mean moved past it, the group ends at once: a thread must not
/// run 16 ticks on a gap drawn before the controller changed its mind, or its
/// count parts from its CPU time.
fn fits(gap: u64, mean: u64) -> bool {
    gap >= mean / 2 && gap <= mean / 2 * 3
}

/// A group's gap for `u` uniform in [0, 1): uniform in [mean/2, 3 mean/2), so the
/// mean holds and a thread's ticks stay proportional to its CPU time with a spread
/// close to a Poisson count's.
fn gap_of(mean: f64, u: f64) -> u64 {
    (mean * (0.5 + u)) as u64
}

/// Copies the code at `ip`: to the end of its page, or all 15 bytes when `all`
/// (the instruction continues on the next page, which is then mapped too).
fn read_code(ip: u64, all: bool, buf: &mut [u8; 15]) -> usize {
    let page = PAGE.load(Ordering::Relaxed);
    let ip = ip as usize;
    let n = if all { 15 } else { (page - ip % page).min(15) };
    // SAFETY: the look-ahead asks only for code the thread is about to run (the
    // interrupted instruction, then those it will reach): mapped and readable
    // (x86-64 without protection keys has no execute-only pages).
    unsafe { std::ptr::copy_nonoverlapping(ip as *const u8, buf.as_mut_ptr(), n) };
    n
}

/// Reads this process's memory as it is now with `process_vm_readv(2)`, which
/// returns an error for an address that is not mapped instead of faulting.
fn read_mem(addr: u64, buf: &mut [u8]) -> bool {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let pid = std::process::id() as libc::pid_t;
    // SAFETY: the kernel writes at most buf.len() bytes into `buf` (live and
    // exclusive) and reads the remote range itself, checking it.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    n == buf.len() as isize
}

/// The first watched access the thread will make from the interrupted point, if
/// the look-ahead can tell.
///
/// # Safety
/// As [`gregs`].
unsafe fn examine(ctx: *mut libc::c_void, factory: &mut InstructionInfoFactory) -> Option<Hit> {
    // SAFETY: caller's contract.
    let regs = unsafe { regs(ctx) };
    // SAFETY: caller's contract.
    let p = unsafe { gregs(ctx) };
    // SAFETY: p points into the live ucontext; REG_EFL is an index inside gregs.
    let rflags = unsafe { (*p)[libc::REG_EFL as usize] } as u64;
    let watched = |a: usize| RANGES.contains(a);
    forward::first_watched_access(
        &regs,
        rflags,
        &mut read_code,
        &mut read_mem,
        factory,
        &watched,
        LOOK_AHEAD,
    )
}

fn record(tid: i32, addr: usize, access: Access) {
    let (cpu, node) = sys::getcpu();
    let now = sys::monotonic_ns().saturating_sub(EPOCH_NS.load(Ordering::Relaxed));
    let code = match access {
        Access::Read => 1,
        Access::Write => 2,
        Access::Unknown => 0,
    };
    SAMPLES.push(
        addr as u64,
        now,
        (u64::from(tid as u32) << 32) | u64::from(cpu),
        (u64::from(node) << 8) | code,
    );
}

/// Examines the instruction at the interrupted point and records a hit; returns
/// whether it was one (false also when the sampler stopped meanwhile).
///
/// # Safety
/// As [`gregs`].
unsafe fn try_sample(ctx: *mut libc::c_void, tid: i32, slot: usize) -> Option<bool> {
    IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    let result = if ACTIVE.load(Ordering::SeqCst) {
        let f = SLOTS[slot].factory.load(Ordering::Acquire);
        if f.is_null() {
            None
        } else {
            // SAFETY: the controller made this analyser for this thread alone and
            // frees it only after ACTIVE is false and IN_FLIGHT is back to 0, or
            // once the thread has ended; signals of one kind do not nest here.
            let factory = unsafe { &mut *f };
            // SAFETY: caller's contract.
            match unsafe { examine(ctx, factory) } {
                Some(h) => {
                    record(tid, h.addr, h.access);
                    Some(true)
                }
                None => Some(false),
            }
        }
    } else {
        None
    };
    IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    result
}

/// Our SIGTRAP handler; traps that are not ours go to the protect sampler's
/// handler (its own steps) and from there to the program's.
pub(super) extern "C" fn on_trap(sig: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let code = unsafe { (*info).si_code };
    if code == TRAP_PERF {
        // SAFETY: for TRAP_PERF the kernel fills si_perf_data, the first word of
        // the union after si_addr (offset 24 on x86-64).
        let at = (info as *const u8).wrapping_add(24) as *const u64;
        // SAFETY: as above: `at` is inside the kernel's siginfo, 8-aligned.
        let data = unsafe { *at };
        if data == SIG_DATA {
            // SAFETY: ctx is the kernel's ucontext for this handler.
            unsafe { tick(ctx) };
            return;
        }
    }
    if code == TRAP_TRACE {
        let calibrating = CALIBRATING.with(Cell::get);
        if calibrating > 0 {
            CALIBRATING.with(|c| c.set(calibrating - 1));
            if calibrating == 1 {
                // SAFETY: ctx is the kernel's ucontext for this handler.
                unsafe { trap_flag(ctx, false) };
            }
            return;
        }
        if STEPS_LEFT.with(Cell::get) > 0 {
            // One instruction ran; if the protect sampler was stepping it too (it
            // faulted on one of its pages while we stepped), the trap is also its
            // own: it closes its pages and clears the flag, and `step` sets the flag
            // again if we go on.
            if protect_signal::steps_this_thread() {
                protect_signal::on_trap(sig, info, ctx);
            }
            // SAFETY: as above.
            unsafe { step(ctx) };
            return;
        }
    }
    protect_signal::on_trap(sig, info, ctx);
}

/// Whether the instruction the thread runs next enters the kernel (see
/// [`decode::enters_kernel`]); an instruction cut off by the end of its page
/// counts as one (the caller stops stepping).
///
/// # Safety
/// As [`gregs`].
unsafe fn at_kernel_entry(ctx: *mut libc::c_void) -> bool {
    // SAFETY: caller's contract.
    let rip = unsafe { regs(ctx) }.rip;
    let mut buf = [0u8; 15];
    let n = read_code(rip, false, &mut buf);
    decode::enters_kernel(&buf[..n], rip)
}

/// A tick: sample the interrupted instruction or start stepping.
///
/// # Safety
/// As [`gregs`].
unsafe fn tick(ctx: *mut libc::c_void) {
    let t0 = sys::monotonic_ns();
    COUNTERS.ticks.fetch_add(1, Ordering::Relaxed);
    let tid = sys::gettid();
    let Some(slot) = my_slot(tid) else {
        return;
    };
    let fd = SLOTS[slot].fd.load(Ordering::Acquire);
    let n = TICKS_HERE.with(Cell::get);
    TICKS_HERE.with(|c| c.set(n.wrapping_add(1)));
    let mean = MEAN_PERIOD_NS.load(Ordering::Relaxed);
    if fd >= 0 && (n.is_multiple_of(REDRAW_EVERY) || !fits(GROUP_GAP.with(Cell::get), mean)) {
        let gap = next_gap(tid, mean);
        event::set_period(fd, gap);
        GROUP_GAP.with(|c| c.set(gap));
        TICKS_HERE.with(|c| c.set(1));
    }
    if STEPS_LEFT.with(Cell::get) == 0 {
        // SAFETY: caller's contract.
        match unsafe { try_sample(ctx, tid, slot) } {
            Some(true) => {
                COUNTERS.hits_at_tick.fetch_add(1, Ordering::Relaxed);
            }
            Some(false) => {
                let steps = MAX_STEPS.load(Ordering::Relaxed) as u32;
                // SAFETY: caller's contract.
                if steps > 0 && !unsafe { at_kernel_entry(ctx) } {
                    STEPS_LEFT.with(|c| c.set(steps));
                    // SAFETY: caller's contract.
                    unsafe { trap_flag(ctx, true) };
                } else {
                    COUNTERS.misses.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {}
        }
    }
    COUNTERS
        .handler_ns
        .fetch_add(sys::monotonic_ns().saturating_sub(t0), Ordering::Relaxed);
}

/// One stepped instruction ran: look at the next.
///
/// # Safety
/// As [`gregs`].
unsafe fn step(ctx: *mut libc::c_void) {
    let t0 = sys::monotonic_ns();
    COUNTERS.steps.fetch_add(1, Ordering::Relaxed);
    let tid = sys::gettid();
    let left = STEPS_LEFT.with(Cell::get);
    let hit = match my_slot(tid) {
        // SAFETY: caller's contract.
        Some(slot) => unsafe { try_sample(ctx, tid, slot) },
        None => None,
    };
    match hit {
        Some(true) => {
            COUNTERS.hits_after_steps.fetch_add(1, Ordering::Relaxed);
            STEPS_LEFT.with(|c| c.set(0));
        }
        // SAFETY: caller's contract.
        Some(false) if left > 1 && !unsafe { at_kernel_entry(ctx) } => {
            STEPS_LEFT.with(|c| c.set(left - 1));
        }
        _ => {
            if hit.is_some() {
                COUNTERS.misses.fetch_add(1, Ordering::Relaxed);
            }
            STEPS_LEFT.with(|c| c.set(0));
        }
    }
    let go_on = STEPS_LEFT.with(Cell::get) > 0;
    // SAFETY: caller's contract.
    unsafe { trap_flag(ctx, go_on) };
    COUNTERS
        .handler_ns
        .fetch_add(sys::monotonic_ns().saturating_sub(t0), Ordering::Relaxed);
}

/// What one trap costs on this machine (delivery, our handler, return), in ns:
/// the calling thread steps `n` instructions of a spin loop under the trap flag.
/// Call only with our handler installed.
pub(super) fn calibrate(n: u32) -> u64 {
    CALIBRATING.with(|c| c.set(n));
    let t0 = sys::monotonic_ns();
    // SAFETY: sets the trap flag of this thread; our SIGTRAP handler is installed
    // and clears it after `n` traps (CALIBRATING), which the loop below waits for.
    unsafe {
        std::arch::asm!("pushfq", "or qword ptr [rsp], 0x100", "popfq");
    }
    let deadline = t0 + 1_000_000_000;
    while CALIBRATING.with(Cell::get) > 0 && sys::monotonic_ns() < deadline {
        std::hint::spin_loop();
    }
    let left = CALIBRATING.with(Cell::get);
    if left > 0 {
        CALIBRATING.with(|c| c.set(1)); // the next trap clears the flag
    }
    let took = sys::monotonic_ns().saturating_sub(t0);
    // The loop runs several instructions per check; each of them trapped.
    took / u64::from((n - left).max(1))
}

/// Gives `tid` a slot with a fresh analyser (made and warmed here, outside any
/// handler); the event's descriptor is filled in later with [`set_slot_fd`].
pub(super) fn claim_slot(tid: i32) -> Option<usize> {
    let i = (0..MAX_THREADS).find(|&i| {
        SLOTS[i]
            .tid
            .compare_exchange(0, -1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    })?;
    let mut f = Box::new(InstructionInfoFactory::new());
    decode::warm_up(&mut f);
    SLOTS[i].factory.store(Box::into_raw(f), Ordering::Release);
    SLOTS[i].fd.store(-1, Ordering::Release);
    SLOTS[i].tid.store(tid, Ordering::Release);
    Some(i)
}

/// Records the event's descriptor of slot `i`.
pub(super) fn set_slot_fd(i: usize, fd: i32) {
    SLOTS[i].fd.store(fd, Ordering::Release);
}

/// Frees slot `i`: closes its event and drops its analyser. Call only once its
/// thread has ended, or after the sampler stopped with no handler in flight.
pub(super) fn free_slot(i: usize) {
    let fd = SLOTS[i].fd.swap(-1, Ordering::AcqRel);
    if fd >= 0 {
        event::close(fd);
    }
    SLOTS[i].tid.store(-1, Ordering::Release);
    let f = SLOTS[i]
        .factory
        .swap(std::ptr::null_mut(), Ordering::AcqRel);
    if !f.is_null() {
        // SAFETY: the pointer came from Box::into_raw in claim_slot and was swapped
        // out, so nothing else frees it; its thread ended or no handler runs
        // (caller's contract), so nothing uses it.
        drop(unsafe { Box::from_raw(f) });
    }
    SLOTS[i].tid.store(0, Ordering::Release);
}

/// Installs our SIGTRAP handler in front of the protect sampler's (which keeps the
/// chain to the program's), re-installing it if the program replaced it.
pub(super) fn ensure_handler() -> std::io::Result<()> {
    protect_signal::ensure_handlers()?;
    let current = sys::current_handler(libc::SIGTRAP);
    if current != on_trap as *const () as usize {
        let prev = sys::install_handler(libc::SIGTRAP, on_trap)?;
        protect_signal::chain_trap_behind(prev);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{REDRAW_EVERY, draw, gap_of};

    /// Ticks in `cpu` ns of a thread's CPU time, a new gap from `gap(u)` every
    /// [`REDRAW_EVERY`] ticks; `x` is the xorshift state the draws come from.
    fn ticks_in(cpu: f64, x: &mut u64, gap: impl Fn(f64) -> f64) -> u64 {
        let (mut t, mut n, mut g) = (0.0, 0u64, 0.0);
        loop {
            if n.is_multiple_of(u64::from(REDRAW_EVERY)) {
                let u;
                (*x, u) = draw(*x);
                g = gap(u);
            }
            t += g;
            if t > cpu {
                return n;
            }
            n += 1;
        }
    }

    /// Mean and coefficient of variation of the tick count over 4000 threads of
    /// 400 mean gaps of CPU time each.
    fn spread(gap: impl Fn(f64) -> f64) -> (f64, f64) {
        let mut x = 0x2545_f491_4f6c_dd1d;
        let counts: Vec<f64> = (0..4000)
            .map(|_| ticks_in(400_000.0, &mut x, &gap) as f64)
            .collect();
        let mean = counts.iter().sum::<f64>() / counts.len() as f64;
        let var = counts.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / counts.len() as f64;
        (mean, var.sqrt() / mean)
    }

    #[test]
    fn a_threads_ticks_follow_its_cpu_time_closely() {
        // A mean gap of 1000 ns: 400 ticks expected; a Poisson count spreads 5 %.
        let (mean, cv) = spread(|u| gap_of(1000.0, u) as f64);
        eprintln!("uniform groups: mean {mean:.1} cv {cv:.3}");
        assert!((mean - 400.0).abs() < 4.0, "mean {mean}");
        assert!(cv < 0.08, "spread {cv}");
        // The exponential group gap it replaced spreads about 20 %: 25 groups.
        let (mean, cv) = spread(|u| -1000.0 * (1.0 - u).ln());
        eprintln!("exponential groups: mean {mean:.1} cv {cv:.3}");
        assert!((mean - 400.0).abs() < 16.0, "mean {mean}");
        assert!(cv > 0.15, "exponential spread {cv}");
    }
}
