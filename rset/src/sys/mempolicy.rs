//! The NUMA memory-policy system calls: `mbind(2)`, `set_mempolicy(2)`,
//! `get_mempolicy(2)` and `move_pages(2)`.
//!
//! glibc does not wrap these (libnuma does), so they are issued with
//! `libc::syscall`. None of them reads or writes user memory through the
//! addresses it is given: the kernel validates every range and answers `EFAULT`
//! for one that is not mapped. They can move pages and change where future
//! pages come from, never what memory holds, so the functions are safe.
//!
//! # References
//! - <https://man7.org/linux/man-pages/man2/mbind.2.html>
//! - <https://man7.org/linux/man-pages/man2/set_mempolicy.2.html>
//! - <https://man7.org/linux/man-pages/man2/get_mempolicy.2.html>
//! - <https://man7.org/linux/man-pages/man2/move_pages.2.html>
#![allow(unsafe_code)]

use std::ffi::{c_int, c_long, c_ulong, c_void};
use std::io;

/// Bits in the node masks we pass to the kernel. `MAX_NUMNODES` is 1024 on the
/// distribution kernels of every architecture we target (`CONFIG_NODES_SHIFT=10`);
/// the kernel ignores clear bits above its own `nr_node_ids`.
pub const MASK_BITS: usize = 1024;
const WORD_BITS: usize = c_ulong::BITS as usize;
const MASK_WORDS: usize = MASK_BITS / WORD_BITS;

/// A memory-policy mode (`MPOL_*`, `<linux/mempolicy.h>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mode {
    /// `MPOL_DEFAULT`: fall back to the thread's (or the system's) policy.
    Default,
    /// `MPOL_PREFERRED`: try one node first, fall back to others.
    Preferred,
    /// `MPOL_BIND`: only these nodes; fail (or OOM) rather than use others.
    Bind,
    /// `MPOL_INTERLEAVE`: page by page over the nodes.
    Interleave,
    /// `MPOL_LOCAL`: the node of the CPU that faults the page in.
    Local,
    /// `MPOL_PREFERRED_MANY` (Linux 5.15): prefer any of these nodes.
    PreferredMany,
}

impl Mode {
    fn raw(self) -> c_int {
        match self {
            Mode::Default => 0,
            Mode::Preferred => 1,
            Mode::Bind => 2,
            Mode::Interleave => 3,
            Mode::Local => 4,
            Mode::PreferredMany => 5,
        }
    }

    fn from_raw(raw: c_int) -> io::Result<Mode> {
        // The mode word may carry MPOL_F_STATIC_NODES / MPOL_F_RELATIVE_NODES flags.
        Ok(match raw & 0xff {
            0 => Mode::Default,
            1 => Mode::Preferred,
            2 => Mode::Bind,
            3 => Mode::Interleave,
            4 => Mode::Local,
            5 => Mode::PreferredMany,
            other => {
                return Err(io::Error::other(format!(
                    "kernel reported unknown memory policy mode {other}"
                )));
            }
        })
    }
}

/// `mbind` flags (`MPOL_MF_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MbindFlags {
    /// `MPOL_MF_STRICT`: fail with `EIO` if a page already present does not follow the policy.
    pub strict: bool,
    /// `MPOL_MF_MOVE`: move pages of this process that do not follow the policy.
    pub move_pages: bool,
}

impl MbindFlags {
    fn raw(self) -> c_ulong {
        let mut f = 0;
        if self.strict {
            f |= 1;
        }
        if self.move_pages {
            f |= 2;
        }
        f
    }
}

/// A node mask in the kernel's layout (an array of `unsigned long`).
struct RawMask([c_ulong; MASK_WORDS]);

impl RawMask {
    fn from_nodes(nodes: &[u32]) -> io::Result<RawMask> {
        let mut words = [0; MASK_WORDS];
        for &n in nodes {
            let n = n as usize;
            if n >= MASK_BITS {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("node {n} is beyond the {MASK_BITS} nodes the kernel can address"),
                ));
            }
            words[n / WORD_BITS] |= 1 << (n % WORD_BITS);
        }
        Ok(RawMask(words))
    }

    fn nodes(&self) -> Vec<u32> {
        (0..MASK_BITS)
            .filter(|&n| self.0[n / WORD_BITS] & (1 << (n % WORD_BITS)) != 0)
            .map(|n| n as u32)
            .collect()
    }

    /// `maxnode` as the kernel wants it: it decrements the value before use.
    fn maxnode() -> c_ulong {
        MASK_BITS as c_ulong + 1
    }
}

fn check(ret: c_long) -> io::Result<c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `mbind(addr, len, mode, nodes, flags)`: set the memory policy of the pages in
/// `[addr, addr + len)`. `addr` must be page aligned. Pages not yet faulted in will
/// come from `nodes` as `mode` says; pages already present are moved only with
/// [`MbindFlags::move_pages`].
///
/// # Errors
/// The kernel's: `EFAULT` for an unmapped range, `EINVAL` for a misaligned address or
/// a node set the mode does not accept, `EIO` with `strict` when present pages are
/// misplaced, `ENOMEM`.
pub fn mbind(
    addr: *const u8,
    len: usize,
    mode: Mode,
    nodes: &[u32],
    flags: MbindFlags,
) -> io::Result<()> {
    let mask = RawMask::from_nodes(nodes)?;
    // SAFETY:
    // - `mask.0` is a live array of MASK_WORDS words and maxnode - 1 == MASK_BITS
    //   bits, so the kernel reads only inside it.
    // - The kernel only changes policy (and possibly moves, preserving contents) for
    //   `[addr, addr+len)`; it validates the range itself and never writes through it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mbind,
            addr as *mut c_void,
            len as c_ulong,
            mode.raw() as c_ulong,
            mask.0.as_ptr(),
            RawMask::maxnode(),
            flags.raw() as libc::c_uint,
        )
    };
    check(ret).map(drop)
}

/// `set_mempolicy(mode, nodes)`: set the calling thread's default memory policy.
///
/// # Errors
/// `EINVAL` when the node set does not suit the mode (empty for `Bind`, say) or
/// names nodes without memory.
pub fn set_mempolicy(mode: Mode, nodes: &[u32]) -> io::Result<()> {
    let mask = RawMask::from_nodes(nodes)?;
    let (ptr, maxnode) = if nodes.is_empty() {
        (std::ptr::null(), 0)
    } else {
        (mask.0.as_ptr(), RawMask::maxnode())
    };
    // SAFETY: `ptr` is null with maxnode 0, or points to MASK_WORDS live words
    // covering maxnode - 1 bits; the kernel only reads it.
    let ret = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode.raw(), ptr, maxnode) };
    check(ret).map(drop)
}

/// `get_mempolicy(&mode, nodes, maxnode, NULL, 0)`: the calling thread's policy and
/// its node set (empty for `Default` and `Local`).
///
/// # Errors
/// The kernel's, which should not happen for this query.
pub fn get_mempolicy() -> io::Result<(Mode, Vec<u32>)> {
    let mut mode: c_int = 0;
    let mut mask = RawMask([0; MASK_WORDS]);
    // SAFETY: `mode` is a live c_int and `mask.0` MASK_WORDS live words covering
    // maxnode - 1 bits; the kernel writes only those; addr is NULL with flags 0.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_get_mempolicy,
            &mut mode as *mut c_int,
            mask.0.as_mut_ptr(),
            RawMask::maxnode(),
            std::ptr::null_mut::<c_void>(),
            0 as c_ulong,
        )
    };
    check(ret)?;
    Ok((Mode::from_raw(mode)?, mask.nodes()))
}

/// `get_mempolicy(&node, NULL, 0, addr, MPOL_F_NODE | MPOL_F_ADDR)`: the node that
/// holds the page at `addr`. Unlike `move_pages` this faults the page in if it was
/// never touched, so prefer [`move_pages_query`] for verification.
///
/// # Errors
/// `EFAULT` when `addr` is not mapped.
pub fn node_of_address(addr: *const u8) -> io::Result<u32> {
    const MPOL_F_NODE: c_ulong = 1;
    const MPOL_F_ADDR: c_ulong = 2;
    let mut node: c_int = -1;
    // SAFETY: `node` is a live c_int the kernel writes; no mask is passed
    // (NULL, maxnode 0); the kernel validates `addr` itself.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_get_mempolicy,
            &mut node as *mut c_int,
            std::ptr::null_mut::<c_ulong>(),
            0 as c_ulong,
            addr as *mut c_void,
            MPOL_F_NODE | MPOL_F_ADDR,
        )
    };
    check(ret)?;
    Ok(node as u32)
}

/// Where one page is, as `move_pages` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PageStatus {
    /// The page is present on this node.
    Node(u32),
    /// The page was never touched (or is the shared zero page): the kernel says
    /// `ENOENT` (6.x) or `EFAULT` (older kernels and some 6.1 paths).
    NotPresent,
    /// Any other per-page error, as a positive errno.
    Error(i32),
}

impl PageStatus {
    fn from_raw(raw: c_int) -> PageStatus {
        match raw {
            n if n >= 0 => PageStatus::Node(n as u32),
            e if -e == libc::ENOENT || -e == libc::EFAULT => PageStatus::NotPresent,
            e => PageStatus::Error(-e),
        }
    }
}

/// `move_pages(0, n, pages, NULL, status, 0)`: where each page of the calling
/// process is, without moving anything. `pages` are addresses inside the pages of
/// interest (they need not be aligned).
///
/// # Errors
/// Errors for the whole call (`ENOMEM`, `E2BIG`); per-page errors are in the result.
#[doc(alias = "move_pages")]
pub fn move_pages_query(pages: &[*const u8]) -> io::Result<Vec<PageStatus>> {
    let mut status: Vec<c_int> = vec![i32::MIN; pages.len()];
    // SAFETY: `pages` and `status` are live arrays of pages.len() elements; with a
    // NULL node array the kernel only reads `pages` and writes `status`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_pages,
            0 as c_int,
            pages.len() as c_ulong,
            pages.as_ptr(),
            std::ptr::null::<c_int>(),
            status.as_mut_ptr(),
            0 as c_int,
        )
    };
    check(ret)?;
    Ok(status.into_iter().map(PageStatus::from_raw).collect())
}

/// `move_pages(0, n, pages, nodes, status, MPOL_MF_MOVE)`: move each page of the
/// calling process to its node; the result says where each page is afterwards.
///
/// # Errors
/// `EINVAL` when the slices differ in length; the kernel's errors for the call.
/// Pages that could not move report it in the result.
pub fn move_pages_to(pages: &[*const u8], nodes: &[u32]) -> io::Result<Vec<PageStatus>> {
    if pages.len() != nodes.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "move_pages: {} pages but {} target nodes",
                pages.len(),
                nodes.len()
            ),
        ));
    }
    let nodes: Vec<c_int> = nodes.iter().map(|&n| n as c_int).collect();
    let mut status: Vec<c_int> = vec![i32::MIN; pages.len()];
    const MPOL_MF_MOVE: c_int = 2;
    // SAFETY: `pages`, `nodes` and `status` are live arrays of the same length; the
    // kernel reads the first two and writes `status`; moving preserves contents.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_pages,
            0 as c_int,
            pages.len() as c_ulong,
            pages.as_ptr(),
            nodes.as_ptr(),
            status.as_mut_ptr(),
            MPOL_MF_MOVE,
        )
    };
    check(ret)?;
    Ok(status.into_iter().map(PageStatus::from_raw).collect())
}

/// The base page size (`sysconf(_SC_PAGESIZE)`).
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 { v as usize } else { 4096 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_round_trips_node_lists() {
        let m = RawMask::from_nodes(&[0, 3, 64, 1023]).unwrap();
        assert_eq!(m.nodes(), vec![0, 3, 64, 1023]);
    }

    #[test]
    fn mask_rejects_node_beyond_limit() {
        let err = RawMask::from_nodes(&[1024]).err().unwrap();
        assert!(err.to_string().contains("node 1024"), "{err}");
    }

    #[test]
    fn page_status_decodes_errors() {
        assert_eq!(PageStatus::from_raw(2), PageStatus::Node(2));
        assert_eq!(PageStatus::from_raw(-libc::ENOENT), PageStatus::NotPresent);
        assert_eq!(PageStatus::from_raw(-libc::EFAULT), PageStatus::NotPresent);
        assert_eq!(
            PageStatus::from_raw(-libc::EBUSY),
            PageStatus::Error(libc::EBUSY)
        );
    }

    #[test]
    fn mismatched_move_lengths_are_rejected() {
        let x = 0u8;
        let err = move_pages_to(&[&x as *const u8], &[]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
