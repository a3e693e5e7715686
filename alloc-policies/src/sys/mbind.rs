//! The two memory-policy calls the global allocator makes itself, with raw `errno`
//! results and no allocation: `mbind(2)` with a mark the kernel keeps and reports
//! back (`MPOL_F_STATIC_NODES`), and `get_mempolicy(2)` of an address to read it.
//! Every other policy call is [`rset::sys::mempolicy`]'s.
//!
//! # Safety
//! Both calls get pointers only to live locals of ours (the node mask, the mode);
//! the address range they name is validated by the kernel, which never reads or
//! writes through it.
//!
//! # References
//! - <https://man7.org/linux/man-pages/man2/mbind.2.html>
//! - <https://man7.org/linux/man-pages/man2/get_mempolicy.2.html>
#![allow(unsafe_code)]

use std::ffi::{c_int, c_ulong, c_void};
use std::ptr;

/// `MPOL_BIND` (`<linux/mempolicy.h>`).
const MPOL_BIND: c_int = 2;
/// `MPOL_F_STATIC_NODES`: a mode flag that keeps the node set as given when the
/// task's cpuset changes. For a range we bind once, to one node we serve, it
/// places pages exactly as a plain `MPOL_BIND`; we use it as a mark that the
/// kernel keeps with the range and reports back (see [`bind_marked`]).
const MPOL_F_STATIC_NODES: c_int = 1 << 15;
/// `MPOL_F_ADDR` for `get_mempolicy`: the policy of the mapping at an address.
const MPOL_F_ADDR: c_ulong = 2;

/// The `errno` of the last failed call.
fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `mbind(ptr, len, MPOL_BIND | MPOL_F_STATIC_NODES, {node}, 0)`: binds the range
/// to `node` (below 64) like a plain `MPOL_BIND`, and marks it so that
/// [`is_marked_bind`] can tell it from one. `Err(errno)` if the kernel refuses.
pub(crate) fn bind_marked(ptr: *const u8, len: usize, node: u8) -> Result<(), i32> {
    const BITS: usize = c_ulong::BITS as usize;
    if node >= 64 {
        return Err(libc::EINVAL);
    }
    let mut mask = [0 as c_ulong; 64 / BITS];
    mask[node as usize / BITS] = 1 << (node as usize % BITS);
    // SAFETY: `mask` is live and holds 64 bits, which is maxnode - 1, so the kernel
    // reads only inside it; mbind only changes the policy of `[ptr, ptr + len)`,
    // which it validates, and never reads or writes through it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mbind,
            ptr.cast_mut().cast::<c_void>(),
            len as c_ulong,
            (MPOL_BIND | MPOL_F_STATIC_NODES) as c_ulong,
            mask.as_ptr(),
            65 as c_ulong,
            0 as c_ulong,
        )
    };
    if ret == 0 { Ok(()) } else { Err(errno()) }
}

/// Truth that the mapping holding `ptr` has a policy set by [`bind_marked`]
/// (`get_mempolicy(&mode, NULL, 0, ptr, MPOL_F_ADDR)`). `Err(errno)` if the kernel
/// refuses (`EFAULT` where nothing is mapped).
pub(crate) fn is_marked_bind(ptr: *const u8) -> Result<bool, i32> {
    let mut mode: c_int = 0;
    // SAFETY: `mode` is a live c_int the kernel writes; no mask is passed (NULL,
    // maxnode 0); the kernel only looks up the mapping at `ptr`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_get_mempolicy,
            &mut mode as *mut c_int,
            ptr::null_mut::<c_ulong>(),
            0 as c_ulong,
            ptr.cast_mut().cast::<c_void>(),
            MPOL_F_ADDR,
        )
    };
    if ret == 0 {
        Ok(mode & 0xff == MPOL_BIND && mode & MPOL_F_STATIC_NODES != 0)
    } else {
        Err(errno())
    }
}
