//! Why a region could not be made, re-placed or checked: [`RegionError`], and the
//! words its messages use.

use std::io;

use rset::sys::mempolicy::PageStatus;
use rset::{NodeId, NodeSet};

use crate::policy::{PolicyError, Stride};

/// Why a region could not be made, re-placed or checked. Every message is one
/// line and names the offending value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegionError {
    /// The policy cannot be applied to the RSet for this thread.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// No element, or elements of size 0.
    #[error(
        "a region needs at least one element of a non-zero size (asked for {elements} \
         element(s) of {element_bytes} bytes)"
    )]
    ZeroSize {
        /// Elements asked for.
        elements: usize,
        /// `size_of::<T>()`.
        element_bytes: usize,
    },
    /// More bytes than the address space holds or the kernel will map.
    #[error("a region of {bytes} bytes ({}) is more than this machine can map", human(*bytes))]
    TooLarge {
        /// Bytes asked for (exact, even beyond `usize`).
        bytes: u128,
    },
    /// A node cannot take the pages the layout puts on it.
    #[error(
        "node {node} cannot take the {} the region puts on it: it can give {} \
         (free memory and page cache, less the kernel's reserve)",
        human(*needed_bytes as u128),
        human(*free_bytes as u128)
    )]
    NodeFull {
        /// The node.
        node: NodeId,
        /// Bytes the region needs there.
        needed_bytes: u64,
        /// Bytes the node can give.
        free_bytes: u64,
    },
    /// A many-node `MPOL_BIND` layout's nodes together cannot take the region.
    #[error(
        "nodes {nodes} together cannot take the {} the region needs: they can give {}",
        human(*needed_bytes as u128),
        human(*free_bytes as u128)
    )]
    NodesFull {
        /// The nodes.
        nodes: NodeSet,
        /// Bytes the region needs.
        needed_bytes: u64,
        /// Bytes they can give.
        free_bytes: u64,
    },
    /// `populate(false)` with stripes of more than one page.
    #[error(
        "stripes of {stride} pages are placed by populating the region when it is built; \
         they cannot be lazy (drop populate(false), or use stride 1)"
    )]
    LazyStripes {
        /// The stride.
        stride: Stride,
    },
    /// The machine's topology (for the default RSet) cannot be read.
    #[error("cannot read the machine's topology for the default RSet: {reason}")]
    Topology {
        /// hwloc's answer.
        reason: String,
    },
    /// `mmap` failed for a reason other than size.
    #[error("cannot map {bytes} bytes: {source}")]
    Mmap {
        /// Bytes asked for.
        bytes: usize,
        /// The kernel's answer.
        source: io::Error,
    },
    /// `mbind` refused the layout.
    #[error("cannot set the region's memory policy ({what}): {source}")]
    Mbind {
        /// The policy, as `MPOL_BIND over nodes 0-1`.
        what: String,
        /// The kernel's answer.
        source: io::Error,
    },
    /// `madvise` refused advice the layout needs.
    #[error("cannot advise the region {advice}: {source}")]
    Advise {
        /// The advice (`MADV_NOHUGEPAGE`).
        advice: &'static str,
        /// The kernel's answer.
        source: io::Error,
    },
    /// The building thread's own policy could not be set or restored.
    #[error("cannot set the calling thread's memory policy ({what}): {source}")]
    ThreadPolicy {
        /// The policy, as `MPOL_BIND over node 2`.
        what: String,
        /// The kernel's answer.
        source: io::Error,
    },
    /// Faulting the pages in failed.
    #[error("cannot populate {} of the region: {source}", human(*bytes as u128))]
    Populate {
        /// Bytes being populated.
        bytes: usize,
        /// The kernel's answer.
        source: io::Error,
    },
    /// `mlock` failed.
    #[error(
        "cannot lock the region's {} in memory ({source}); RLIMIT_MEMLOCK is {}: raise \
         it (ulimit -l) or run with CAP_IPC_LOCK",
        human(*bytes as u128),
        limit.map_or("unlimited".to_owned(), |l| human(l as u128))
    )]
    Lock {
        /// Bytes to lock.
        bytes: usize,
        /// The soft `RLIMIT_MEMLOCK` (`None`: unlimited).
        limit: Option<u64>,
        /// The kernel's answer.
        source: io::Error,
    },
    /// A page range that is not inside the region.
    #[error("pages {}..{} are not inside the region's {total} pages", pages.start, pages.end)]
    PageRange {
        /// The range asked for.
        pages: std::ops::Range<usize>,
        /// The region's pages.
        total: usize,
    },
    /// `move_pages` failed as a whole.
    #[error("move_pages failed: {source}")]
    MovePages {
        /// The kernel's answer.
        source: io::Error,
    },
    /// Pages are not where the layout puts them.
    #[error(
        "{misplaced} of {pages} pages are not where the layout puts them: page {page} \
         should be {expected} and is {}",
        status_text(found)
    )]
    Misplaced {
        /// The first misplaced page.
        page: usize,
        /// Where it should be, in words.
        expected: String,
        /// Where it is.
        found: PageStatus,
        /// How many pages are misplaced.
        misplaced: usize,
        /// Pages in the region.
        pages: usize,
    },
}

/// `64 MiB`, `1.5 GiB`, `12 KiB`, `100 bytes`.
fn human(bytes: u128) -> String {
    const UNITS: [&str; 7] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut unit = 0;
    let mut v = bytes as f64;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else if v.fract() == 0.0 || v >= 100.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn status_text(s: &PageStatus) -> String {
    match s {
        PageStatus::Node(n) => format!("on node {n}"),
        PageStatus::NotPresent => "not present".to_owned(),
        PageStatus::Error(e) => format!("unknown ({})", io::Error::from_raw_os_error(*e)),
    }
}

pub(super) fn nodes_text(nodes: &[u32]) -> String {
    let set: NodeSet = nodes.iter().map(|&n| NodeId(n)).collect();
    if nodes.len() == 1 {
        format!("node {set}")
    } else {
        format!("nodes {set}")
    }
}

pub(super) fn no_huge_pages_error(source: io::Error) -> RegionError {
    RegionError::Advise {
        advice: "MADV_NOHUGEPAGE",
        source,
    }
}

pub(super) fn mmap_error(source: io::Error, bytes: usize) -> RegionError {
    if source.raw_os_error() == Some(libc::ENOMEM) || source.kind() == io::ErrorKind::OutOfMemory {
        RegionError::TooLarge {
            bytes: bytes as u128,
        }
    } else {
        RegionError::Mmap { bytes, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human(100), "100 bytes");
        assert_eq!(human(64 << 20), "64 MiB");
        assert_eq!(human(3 << 29), "1.5 GiB");
    }
}
