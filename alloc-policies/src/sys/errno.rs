//! The calling thread's `errno` (`__errno_location(3)`), which the C `malloc`
//! family sets on failure.
//!
//! # Safety
//! `__errno_location` has no preconditions and returns the calling thread's errno
//! slot, a live, aligned `int` for the thread's whole life; only this thread reads
//! or writes it through the pointer, which never leaves these functions.
//!
//! # References
//! - <https://man7.org/linux/man-pages/man3/errno.3.html>
#![allow(unsafe_code)]

/// The calling thread's errno slot.
fn slot() -> *mut i32 {
    // SAFETY: __errno_location has no preconditions.
    unsafe { libc::__errno_location() }
}

/// The calling thread's `errno`.
pub(crate) fn get() -> i32 {
    // SAFETY: the thread's own errno slot (module docs).
    unsafe { slot().read() }
}

/// Sets the calling thread's `errno`.
pub(crate) fn set(e: i32) {
    // SAFETY: the thread's own errno slot (module docs).
    unsafe { slot().write(e) }
}
