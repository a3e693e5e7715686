//! The C functions this library defines in place of glibc's: `pthread_create` and
//! the `malloc` family. Each one is a thin shell over safe code elsewhere.
//!
//! # Safety
//! Unsafe for three reasons, each written down where it happens:
//! - `#[unsafe(no_mangle)]`: these symbols replace glibc's for the whole process,
//!   so each keeps its C signature and contract exactly (the pointer-taking ones
//!   are `unsafe extern "C" fn`s whose `# Safety` is the C function's);
//! - a thread's start data crosses `pthread_create` as a raw pointer: a
//!   `Box<Start>` leaked for the new thread alone, taken back exactly once (by the
//!   thread, or here when creation failed);
//! - the real definitions found with `dlsym` are called through the function type
//!   of the C declaration they were looked up for (see `real.rs`).
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};

use alloc_policies::cmalloc;

use crate::{place, real, record};

/// What the wrapped thread runs first.
struct Start {
    routine: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
    created: usize,
    slot: Option<usize>,
    /// Made by the monitor (its own helper): no slot, no hooks.
    monitor: bool,
}

/// The new thread's first function: places the thread, then runs the program's
/// start routine. "C-unwind" and with nothing to drop around the call, so that
/// `pthread_exit` and cancellation unwind through it as through C.
extern "C-unwind" fn trampoline(p: *mut c_void) -> *mut c_void {
    // SAFETY: `p` is the Box<Start> leaked by our pthread_create for this thread
    // alone.
    let start = unsafe { Box::from_raw(p.cast::<Start>()) };
    let Start {
        routine,
        arg,
        created,
        slot,
        monitor,
    } = *start;
    if monitor {
        record::enter_monitor_thread();
        place::unplaced();
    } else {
        place::place_current(created, slot);
    }
    routine(arg)
}

/// `pthread_create`: the new thread starts in [`trampoline`].
///
/// # Safety
/// As glibc's `pthread_create`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pthread_create(
    thread: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    routine: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
) -> c_int {
    if crate::passive() {
        // SAFETY: the caller's arguments (function contract).
        return unsafe { real::pthread_create(thread, attr, routine, arg) };
    }
    let monitor = record::in_monitor();
    let (created, slot) = if monitor {
        (usize::MAX, None)
    } else {
        place::next_thread()
    };
    let start = Box::into_raw(Box::new(Start {
        routine,
        arg,
        created,
        slot,
        monitor,
    }));
    // SAFETY: `trampoline` has the C start-routine ABI ("C-unwind" differs only
    // in allowing unwinding); glibc calls it once with `start`.
    let tramp = unsafe {
        std::mem::transmute::<
            extern "C-unwind" fn(*mut c_void) -> *mut c_void,
            extern "C" fn(*mut c_void) -> *mut c_void,
        >(trampoline)
    };
    // SAFETY: the caller's thread and attr (function contract), our routine and arg.
    let ret = unsafe { real::pthread_create(thread, attr, tramp, start.cast()) };
    if ret != 0 {
        // SAFETY: the thread was not created, so `start` is still ours alone.
        drop(unsafe { Box::from_raw(start) });
    }
    ret
}

/// Sets the calling thread's `errno`.
fn set_errno(e: c_int) {
    // SAFETY: __errno_location has no preconditions and returns the calling
    // thread's errno slot.
    let slot = unsafe { libc::__errno_location() };
    // SAFETY: that slot is valid for writes for the thread's life.
    unsafe { slot.write(e) };
}

/// `malloc`.
#[unsafe(no_mangle)]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    let p = cmalloc::malloc(size);
    after_alloc(p, size);
    p
}

/// `calloc`.
#[unsafe(no_mangle)]
pub extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    let p = cmalloc::calloc(n, size);
    after_alloc(p, n.saturating_mul(size));
    p
}

/// `free`.
///
/// # Safety
/// As C's `free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(p: *mut c_void) {
    before_free(p);
    // SAFETY: function contract.
    unsafe { cmalloc::free(p) }
}

/// `realloc`.
///
/// # Safety
/// As C's `realloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if !p.is_null() {
        before_free(p);
    }
    // SAFETY: function contract.
    let q = unsafe { cmalloc::realloc(p, size) };
    if q.is_null() && size != 0 && !p.is_null() {
        // Failed: the old block lives on; watch it again.
        // SAFETY: `p` is still a live block of ours.
        after_alloc(p, unsafe { cmalloc::usable_size(p) });
    } else {
        after_alloc(q, size);
    }
    q
}

/// `reallocarray`.
///
/// # Safety
/// As C's `reallocarray`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: function contract.
        Some(total) => unsafe { realloc(p, total) },
        None => {
            set_errno(libc::ENOMEM);
            std::ptr::null_mut()
        }
    }
}

/// `posix_memalign`.
///
/// # Safety
/// As C's `posix_memalign`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    // SAFETY: function contract.
    let r = unsafe { cmalloc::posix_memalign(out, align, size) };
    if r == 0 {
        // SAFETY: success wrote a pointer to `out`.
        after_alloc(unsafe { *out }, size);
    }
    r
}

/// `aligned_alloc`.
#[unsafe(no_mangle)]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    let p = cmalloc::aligned(align, size);
    after_alloc(p, size);
    p
}

/// `memalign`.
#[unsafe(no_mangle)]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    aligned_alloc(align, size)
}

/// `valloc`: page aligned.
#[unsafe(no_mangle)]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    aligned_alloc(rset::sys::mempolicy::page_size(), size)
}

/// `pvalloc`: page aligned, rounded up to whole pages.
#[unsafe(no_mangle)]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let page = rset::sys::mempolicy::page_size();
    aligned_alloc(page, size.max(1).next_multiple_of(page))
}

/// `malloc_usable_size`.
///
/// # Safety
/// As glibc's `malloc_usable_size`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    // SAFETY: function contract.
    unsafe { cmalloc::usable_size(p) }
}

#[inline]
fn after_alloc(p: *mut c_void, size: usize) {
    if p.is_null() {
        return;
    }
    place::count_block(size);
    record::allocated(p as usize, size);
}

#[inline]
fn before_free(p: *mut c_void) {
    if !p.is_null() {
        record::freeing(p as usize);
    }
}

/// Defines an I/O function that runs with the monitor's pages disarmed (the kernel
/// would return `EFAULT` for an armed buffer instead of faulting), then calls the
/// real one.
macro_rules! paused_io {
    ($(#[$doc:meta])* $name:ident, $cname:literal, fn($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// As the C function.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            static NEXT: real::Next = real::Next::new($cname);
            let _calm = record::on().then(monitor::sampler::pause);
            match NEXT.addr() {
                Some(a) => {
                    // SAFETY: `a` is the next definition of this C function, whose
                    // type is exactly this signature.
                    let f = unsafe {
                        std::mem::transmute::<usize, unsafe extern "C" fn($($ty),*) -> $ret>(a)
                    };
                    // SAFETY: the caller's arguments (function contract).
                    unsafe { f($($arg),*) }
                }
                None => {
                    set_errno(libc::ENOSYS);
                    unsafe_default::<$ret>()
                }
            }
        }
    };
}

/// The failure value of the I/O functions: -1 for counts, null for pointers.
trait Failed {
    fn failed() -> Self;
}
impl Failed for isize {
    fn failed() -> Self {
        -1
    }
}
impl Failed for usize {
    fn failed() -> Self {
        0
    }
}
fn unsafe_default<T: Failed>() -> T {
    T::failed()
}

paused_io!(
    /// `read`.
    read, c"read", fn(fd: c_int, buf: *mut c_void, n: usize) -> isize);
paused_io!(
    /// `write`.
    write, c"write", fn(fd: c_int, buf: *const c_void, n: usize) -> isize);
paused_io!(
    /// `pread`.
    pread, c"pread", fn(fd: c_int, buf: *mut c_void, n: usize, off: libc::off_t) -> isize);
paused_io!(
    /// `pread64`.
    pread64, c"pread64", fn(fd: c_int, buf: *mut c_void, n: usize, off: libc::off64_t) -> isize);
paused_io!(
    /// `pwrite`.
    pwrite, c"pwrite", fn(fd: c_int, buf: *const c_void, n: usize, off: libc::off_t) -> isize);
paused_io!(
    /// `pwrite64`.
    pwrite64, c"pwrite64", fn(fd: c_int, buf: *const c_void, n: usize, off: libc::off64_t) -> isize);
paused_io!(
    /// `readv`.
    readv, c"readv", fn(fd: c_int, iov: *const libc::iovec, n: c_int) -> isize);
paused_io!(
    /// `writev`.
    writev, c"writev", fn(fd: c_int, iov: *const libc::iovec, n: c_int) -> isize);
paused_io!(
    /// `recv`.
    recv, c"recv", fn(fd: c_int, buf: *mut c_void, n: usize, flags: c_int) -> isize);
paused_io!(
    /// `send`.
    send, c"send", fn(fd: c_int, buf: *const c_void, n: usize, flags: c_int) -> isize);
paused_io!(
    /// `recvfrom`.
    recvfrom, c"recvfrom", fn(fd: c_int, buf: *mut c_void, n: usize, flags: c_int,
        addr: *mut libc::sockaddr, len: *mut libc::socklen_t) -> isize);
paused_io!(
    /// `sendto`.
    sendto, c"sendto", fn(fd: c_int, buf: *const c_void, n: usize, flags: c_int,
        addr: *const libc::sockaddr, len: libc::socklen_t) -> isize);
paused_io!(
    /// `fread`.
    fread, c"fread", fn(buf: *mut c_void, size: usize, n: usize, f: *mut libc::FILE) -> usize);
paused_io!(
    /// `fwrite`.
    fwrite, c"fwrite", fn(buf: *const c_void, size: usize, n: usize, f: *mut libc::FILE) -> usize);

/// glibc's `sigaction`.
static SIGACTION: real::Next = real::Next::new(c"sigaction");

/// `sigaction`: while the monitor runs, a program's SIGSEGV and SIGTRAP actions
/// become the actions the sampler's handlers chain to (the program sees its own
/// action when it asks), so that the sampler's handler stays first.
///
/// # Safety
/// As C's `sigaction`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> c_int {
    // SAFETY: C passes null or a valid action (function contract).
    let a = unsafe { act.as_ref() };
    // SAFETY: as above, for the old action, which nothing else references.
    let o = unsafe { old.as_mut() };
    if record::on() && monitor::sampler::chain_action(sig, a, o) {
        return 0;
    }
    match SIGACTION.addr() {
        Some(addr) => {
            type F =
                unsafe extern "C" fn(c_int, *const libc::sigaction, *mut libc::sigaction) -> c_int;
            // SAFETY: the next definition of sigaction has this type.
            let f = unsafe { std::mem::transmute::<usize, F>(addr) };
            // SAFETY: the caller's arguments (function contract).
            unsafe { f(sig, act, old) }
        }
        None => -1,
    }
}

/// `signal`: as [`sigaction`] with `SA_RESTART`, for SIGSEGV and SIGTRAP while the
/// monitor runs; glibc's otherwise.
///
/// # Safety
/// As C's `signal`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    if record::on() && (sig == libc::SIGSEGV || sig == libc::SIGTRAP) {
        // SAFETY: sigaction is plain data; zero is no flags and an empty mask.
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = handler;
        act.sa_flags = libc::SA_RESTART;
        // SAFETY: as above.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        if monitor::sampler::chain_action(sig, Some(&act), Some(&mut old)) {
            return old.sa_sigaction;
        }
    }
    static SIGNAL: real::Next = real::Next::new(c"signal");
    match SIGNAL.addr() {
        Some(addr) => {
            type F = unsafe extern "C" fn(c_int, libc::sighandler_t) -> libc::sighandler_t;
            // SAFETY: the next definition of signal has this type.
            let f = unsafe { std::mem::transmute::<usize, F>(addr) };
            // SAFETY: the caller's arguments (function contract).
            unsafe { f(sig, handler) }
        }
        None => libc::SIG_ERR,
    }
}
