//! The signal side of the sampler: the SIGSEGV handler that takes a sample, the
//! SIGTRAP handler that steps over the faulting instruction, the park handler, and the
//! program's own handlers chained behind ours ([`chain_action`]), plus [`pause`].
//!
//! # Safety
//!
//! Everything here may run inside a signal handler, on any thread, at any instruction
//! of the program: it only touches atomics in [`super::state`] and makes
//! async-signal-safe calls through [`crate::sampler::sys`]. The unsafe blocks are of two
//! kinds: reading or editing the interrupted thread's signal context (`siginfo_t`,
//! `ucontext_t`) that the kernel passed to the handler, valid for the handler's
//! duration; and calling a chained handler with the arguments the kernel gave us, as
//! the kernel would have called it.
#![allow(unsafe_code)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::sampler::sys;

use super::state::{
    ARMED, ARRIVED, AWAIT, CAPTURED, DISARMING, IDLE, INSTALLED, LAST_IDLE_FAULT, MAX_RANGES,
    MAX_STEP_PAGES, PAGE, PARK_GEN, PAUSED, PREV_FLAGS, PREV_HANDLER, PREV_TRAP_FLAGS,
    PREV_TRAP_HANDLER, RELEASE_GEN, RING, RW, SHARED, STEPPING, ours, page_size_cached,
};

/// Restores read-write access to every watched range (handler and controller).
pub(super) fn disarm_all() {
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

pub(super) fn record(addr: usize, ctx: *const libc::c_void) {
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

pub(super) extern "C" fn on_segv(sig: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
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
pub(in crate::sampler) extern "C" fn on_trap(
    sig: i32,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
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

/// Whether this sampler is stepping the calling thread over an access to one of its
/// pages (its SIGTRAP is then due after the thread's next instruction).
pub(in crate::sampler) fn steps_this_thread() -> bool {
    SHARED.step_tid.load(Ordering::Acquire) == sys::gettid()
}

/// The park handler: hold this thread until the controller has armed the pages, so
/// that no access races with arming (see [`arm_parked`]).
pub(super) extern "C" fn on_park(_sig: i32, _info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
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
pub(in crate::sampler) fn ensure_handlers() -> std::io::Result<()> {
    if sys::current_handler(libc::SIGSEGV) != on_segv as *const () as usize {
        let prev = sys::install_handler(libc::SIGSEGV, on_segv)?;
        if prev.sa_sigaction != on_segv as *const () as usize {
            PREV_FLAGS.store(prev.sa_flags, Ordering::Release);
            PREV_HANDLER.store(prev.sa_sigaction, Ordering::Release);
        }
    }
    if INSTALLED.get().is_none() {
        PAGE.store(sys::page_size(), Ordering::Relaxed);
        sys::install_handler(sys::park_signal(), on_park)?;
        let prev = sys::install_handler(libc::SIGTRAP, on_trap)?;
        PREV_TRAP_FLAGS.store(prev.sa_flags, Ordering::Release);
        PREV_TRAP_HANDLER.store(prev.sa_sigaction, Ordering::Release);
        let _ = INSTALLED.set(());
    }
    Ok(())
}

/// For the tick sampler, whose SIGTRAP handler sits in front of ours: `prev` is the
/// action it replaced; unless that was ours, the program installed it after us, so
/// our handler chains to it from now on.
pub(in crate::sampler) fn chain_trap_behind(prev: libc::sigaction) {
    if prev.sa_sigaction != on_trap as *const () as usize {
        PREV_TRAP_FLAGS.store(prev.sa_flags, Ordering::Release);
        PREV_TRAP_HANDLER.store(prev.sa_sigaction, Ordering::Release);
    }
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
