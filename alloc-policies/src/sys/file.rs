//! Reading small files (sysfs) into caller-provided buffers with `open(2)`,
//! `read(2)` and `close(2)`: no allocation, so the global allocator can read the
//! machine's topology from inside itself.
//!
//! # Safety
//! `open` gets a NUL-terminated path that lives for the call; `read` gets a live,
//! writable part of the caller's buffer and its exact length; the descriptor is
//! ours and closed exactly once.
//!
//! # References
//! - <https://man7.org/linux/man-pages/man2/open.2.html>
//! - <https://man7.org/linux/man-pages/man2/read.2.html>
#![allow(unsafe_code)]

use std::ffi::CStr;

/// Reads the file at `path` into `buf` with raw `open`/`read` (no allocation).
/// Returns the bytes read; `None` if it cannot be opened or read. Files longer than
/// `buf` are cut.
pub(crate) fn read_file<'b>(path: &CStr, buf: &'b mut [u8]) -> Option<&'b [u8]> {
    // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let mut filled = 0;
    let ok = loop {
        if filled == buf.len() {
            break true;
        }
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is a live, writable buffer of `rest.len()` bytes.
        let n = unsafe { libc::read(fd, rest.as_mut_ptr().cast(), rest.len()) };
        match n {
            0 => break true,
            n if n > 0 => filled += n as usize,
            _ if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => {}
            _ => break false,
        }
    };
    // SAFETY: `fd` is the descriptor opened above, closed exactly once.
    unsafe { libc::close(fd) };
    ok.then_some(&buf[..filled])
}
