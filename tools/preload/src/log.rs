//! Lines appended to the report log: one `write` per line on an `O_APPEND` file,
//! so that the threads and processes of a run never interleave within a line.
//!
//! # Safety
//! Raw `open(2)` and `write(2)`, not `std::fs`: they run inside any program's
//! threads, from the allocator's hooks and at `exit`, where nothing may allocate
//! behind our back or take a lock. Each passes a NUL-terminated path or a live
//! buffer with its exact length; a failure is ignored (the log is best effort).
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicI32, Ordering};

static FD: AtomicI32 = AtomicI32::new(-1);

/// Opens `path` for appending (close-on-exec: an exec'd program opens it again).
pub fn open(path: &str) {
    let Ok(c) = std::ffi::CString::new(path) else {
        return;
    };
    // SAFETY: a NUL-terminated path; the flags create nothing.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_WRONLY | libc::O_APPEND | libc::O_CLOEXEC,
        )
    };
    FD.store(fd, Ordering::Release);
}

/// Appends `line` and a newline, in one write.
pub fn append(mut line: String) {
    let fd = FD.load(Ordering::Acquire);
    if fd < 0 {
        return;
    }
    line.push('\n');
    // SAFETY: `line` is a live buffer of `line.len()` bytes; `fd` is ours.
    let _ = unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
}

/// Writes `msg` to stderr in one write (verbose mode).
pub fn stderr(msg: &str) {
    // SAFETY: a live buffer of `msg.len()` bytes on fd 2.
    let _ = unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
}
