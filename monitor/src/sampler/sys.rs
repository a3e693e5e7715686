//! The system calls the software sampler needs: `mprotect(2)`, `sigaction(2)` for
//! SIGSEGV, and the async-signal-safe reads it makes inside the handler (`gettid`,
//! `getcpu`, `clock_gettime`).
#![allow(unsafe_code)]

use std::io;

/// `mprotect(addr, len, prot)` over whole pages.
///
/// # Errors
/// `ENOMEM` when part of the range is not mapped (the program unmapped it), `EINVAL`
/// for a misaligned address, `EACCES` for a protection the mapping cannot have.
pub fn mprotect(addr: usize, len: usize, prot: i32) -> io::Result<()> {
    // SAFETY: mprotect changes page permissions only; it never reads or writes the
    // memory. The ranges passed are ones the caller asked us to watch, restored to
    // their original protection afterwards; the kernel validates the range.
    let ret = unsafe { libc::mprotect(addr as *mut libc::c_void, len, prot) };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The same, for use inside the signal handler: returns success only (no errno read).
pub fn mprotect_in_handler(addr: usize, len: usize, prot: i32) -> bool {
    // SAFETY: as `mprotect`; a raw syscall is async-signal-safe.
    unsafe { libc::syscall(libc::SYS_mprotect, addr, len, prot) == 0 }
}

/// `gettid()`, async-signal-safe.
pub fn gettid() -> i32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// `getcpu()`: (cpu, node), async-signal-safe; (0, 0) if the kernel will not say.
pub fn getcpu() -> (u32, u32) {
    let mut cpu: libc::c_uint = 0;
    let mut node: libc::c_uint = 0;
    // SAFETY: `cpu` and `node` are live locals the kernel writes; cache arg NULL.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_getcpu,
            &mut cpu as *mut libc::c_uint,
            &mut node as *mut libc::c_uint,
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    if ret == 0 { (cpu, node) } else { (0, 0) }
}

/// CLOCK_MONOTONIC in nanoseconds, async-signal-safe (POSIX lists clock_gettime).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live timespec the call writes.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The handler signature `SA_SIGINFO` handlers have.
pub type SigInfoHandler = extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void);

/// An all-zero `sigaction`: no handler (SIG_DFL), no flags, empty mask.
fn zeroed_action() -> libc::sigaction {
    // SAFETY: sigaction is plain data (integers, a function-pointer-sized usize, a
    // sigset_t of integers); all-zero bytes are a valid value of it.
    unsafe { std::mem::zeroed() }
}

/// Installs `handler` for `sig` and returns the action it replaces, for chaining.
///
/// SIGSEGV gets `SA_ONSTACK | SA_NODEFER` (a program's stack-overflow handling needs
/// the alternate stack, and our handler chains to it); the other signals run on the
/// thread's own stack. SIGSEGV and SIGTRAP block the park signal while they run, so
/// that no park frame is ever pushed on top of theirs (Rust's alternate stacks are
/// small, and a signal frame with AVX-512 state takes about 3 KiB).
///
/// # Errors
/// The kernel's (should not happen).
pub fn install_handler(sig: i32, handler: SigInfoHandler) -> io::Result<libc::sigaction> {
    let mut new = zeroed_action();
    new.sa_sigaction = handler as *const () as usize;
    new.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
    if sig == libc::SIGSEGV {
        new.sa_flags |= libc::SA_ONSTACK | libc::SA_NODEFER;
    }
    if sig == libc::SIGSEGV || sig == libc::SIGTRAP {
        // SAFETY: `sa_mask` is a live sigset_t inside `new`; sigaddset only sets a bit.
        unsafe { libc::sigaddset(&mut new.sa_mask, park_signal()) };
    }
    let mut old = zeroed_action();
    // SAFETY: `new` and `old` are live sigaction values; the kernel reads one and
    // writes the other.
    let ret = unsafe { libc::sigaction(sig, &new, &mut old) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(old)
}

/// The handler address currently installed for `sig`.
pub fn current_handler(sig: i32) -> usize {
    let mut old = zeroed_action();
    // SAFETY: a NULL new action only queries; `old` is a live out-parameter.
    unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
    old.sa_sigaction
}

/// `tgkill(getpid(), tid, sig)`: true when the signal was queued.
pub fn tgkill(tid: i32, sig: i32) -> bool {
    let pid = std::process::id() as libc::pid_t;
    // SAFETY: sends a signal; no memory is passed.
    unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, sig) == 0 }
}

/// `sched_yield()`.
pub fn yield_cpu() {
    // SAFETY: no arguments; async-signal-safe.
    unsafe { libc::sched_yield() };
}

/// The signal used to park threads while pages are armed: SIGRTMAX - 2, clear of
/// glibc's own real-time signals at the bottom of the range.
pub fn park_signal() -> i32 {
    libc::SIGRTMAX() - 2
}

/// Restores SIGSEGV's default action (so that re-executing a faulting instruction
/// kills the process with the usual core dump).
pub fn reset_segv_default() {
    let dfl = zeroed_action(); // sa_sigaction 0 == SIG_DFL
    // SAFETY: `dfl` is a live sigaction; sigaction is async-signal-safe.
    unsafe { libc::sigaction(libc::SIGSEGV, &dfl, std::ptr::null_mut()) };
}

/// Calls a previously installed handler (its address and `sa_flags`) as the kernel
/// would have.
///
/// # Safety
/// `h` and `flags` must describe the action that was installed for SIGSEGV before
/// ours, and the arguments be those the kernel gave our handler.
pub unsafe fn chain(
    h: usize,
    flags: i32,
    sig: i32,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        // Ignoring a real SIGSEGV would loop forever: fall back to the default.
        reset_segv_default();
        return;
    }
    if flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with SA_SIGINFO, so it has the
        // three-argument signature, and the arguments are the kernel's (caller's contract).
        unsafe {
            let f: SigInfoHandler = std::mem::transmute::<usize, SigInfoHandler>(h);
            f(sig, info, ctx);
        }
    } else {
        // SAFETY: a plain handler takes the signal number only (caller's contract).
        unsafe {
            let f: extern "C" fn(i32) = std::mem::transmute::<usize, extern "C" fn(i32)>(h);
            f(sig);
        }
    }
}

/// The faulting address of a SIGSEGV.
///
/// # Safety
/// `info` must be the siginfo the kernel passed to an `SA_SIGINFO` handler.
pub unsafe fn fault_address(info: *const libc::siginfo_t) -> usize {
    // SAFETY: `info` points to the kernel's siginfo (caller's contract).
    let info = unsafe { &*info };
    // SAFETY: for SIGSEGV the kernel fills the si_addr union member.
    unsafe { info.si_addr() as usize }
}

/// Whether the fault was a write, from the x86-64 page-fault error code
/// (bit 1 of `REG_ERR`); `None` where the architecture does not say.
///
/// # Safety
/// `ctx` must be the ucontext the kernel passed to an `SA_SIGINFO` handler.
#[cfg(target_arch = "x86_64")]
pub unsafe fn fault_is_write(ctx: *const libc::c_void) -> Option<bool> {
    // SAFETY: for a SA_SIGINFO handler the third argument is the interrupted ucontext
    // (caller's contract); REG_ERR holds the page-fault error code.
    let err =
        unsafe { (*(ctx as *const libc::ucontext_t)).uc_mcontext.gregs[libc::REG_ERR as usize] };
    Some(err & 2 != 0)
}

/// Whether the fault was a write: unknown on this architecture.
///
/// # Safety
/// None needed; kept `unsafe` for the same signature on every architecture.
#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn fault_is_write(_ctx: *const libc::c_void) -> Option<bool> {
    None
}

/// Whether single-stepping through the trap flag is available (x86-64).
pub const CAN_STEP: bool = cfg!(target_arch = "x86_64");

/// Sets or clears the x86 trap flag (EFLAGS.TF) in an interrupted context, so that
/// the thread traps (SIGTRAP) after its next instruction.
///
/// # Safety
/// `ctx` must be the ucontext the kernel passed to an `SA_SIGINFO` handler.
#[cfg(target_arch = "x86_64")]
pub unsafe fn set_trap_flag(ctx: *mut libc::c_void, on: bool) {
    const TF: i64 = 0x100;
    // SAFETY: the third handler argument is the interrupted ucontext (caller's
    // contract); REG_EFL holds the saved EFLAGS, restored by sigreturn.
    let efl =
        unsafe { &mut (*(ctx as *mut libc::ucontext_t)).uc_mcontext.gregs[libc::REG_EFL as usize] };
    if on {
        *efl |= TF;
    } else {
        *efl &= !TF;
    }
}

/// No trap flag on this architecture.
///
/// # Safety
/// None needed.
#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn set_trap_flag(_ctx: *mut libc::c_void, _on: bool) {}

/// `futex(FUTEX_WAIT_PRIVATE)`: sleeps while `*word == expected`, at most `timeout`
/// (or until woken). Spurious returns are fine: callers re-check in a loop.
/// Async-signal-safe.
pub fn futex_wait(
    word: &std::sync::atomic::AtomicU32,
    expected: u32,
    timeout: std::time::Duration,
) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `word` is a live, aligned u32 for the duration of the call; `ts` is a
    // live timespec; FUTEX_WAIT_PRIVATE only reads the word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            &ts as *const libc::timespec,
        )
    };
}

/// `futex(FUTEX_WAKE_PRIVATE)`: wakes every waiter on `word`. Async-signal-safe.
pub fn futex_wake(word: &std::sync::atomic::AtomicU32) {
    // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE touches no user memory.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        )
    };
}

/// The page size (`sysconf(_SC_PAGESIZE)`).
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}
