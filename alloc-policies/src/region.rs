//! Regions: owned, mmap-backed arrays whose every page is placed by a [`Policy`]
//! over an [`RSet`] before anything touches it.
//!
//! ```no_run
//! use alloc_policies::{Policy, Region, Stride};
//!
//! let mut psi = Region::<f64>::builder(1 << 20)
//!     .policy(Policy::Striped { stride_pages: Stride::new(4)? })
//!     .label("ocean.psi")
//!     .build()?;
//! psi[12] = 1.0;
//! psi.verify()?; // every page is on node (p / 4) mod N, checked with move_pages
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How each layout is placed
//!
//! The policy is resolved ([`Policy::resolve`]) for the RSet and the node of the
//! building thread into a [`Layout`], which is made real before the first touch, so
//! placement never depends on which thread touches a page first:
//!
//! | layout | mechanism | VMAs |
//! | --- | --- | --- |
//! | `Default` (Float) | nothing: the thread that populates (or first touches) decides | 1 |
//! | `Node(n)`, `Bind(set)` | one `mbind(MPOL_BIND)` over the region | 1 |
//! | `Interleave(nodes)`, `Stripes` with stride 1 | one `mbind(MPOL_INTERLEAVE)` over the region, which starts where the kernel's interleave is in phase (below) | 1 |
//! | `Stripes` with stride k > 1 | populated node by node: the building thread binds itself (`set_mempolicy(MPOL_BIND, {node})`) and faults in that node's stripes (`MADV_POPULATE_WRITE`), then gets its own policy back; last, one `mbind(MPOL_BIND)` over all stripe nodes, without moving | 1 |
//!
//! **Interleave phase.** The kernel puts page `p` of an interleaved VMA on the
//! `((vm_pgoff + p) mod N)`-th node of the mask, in ascending id order, and an
//! anonymous VMA's `vm_pgoff` is its start address in pages. Linux 6.1 cuts that sum
//! to 32 bits before the `mod` (6.7 and later do not), which for N not a power of
//! two changes the answer, so the phase is measured rather than computed: the region
//! is mapped with N spare pages, interleaved, its first spare page faulted in and
//! located, and the region starts at the first page whose phase is 0, so that page
//! `p` goes to `nodes[p mod N]`, as [`Layout::node_of_page`] says; the spare pages
//! are unmapped. After populating, the first and last N pages are checked (a 6.1
//! phase jumps where the page number crosses a multiple of 2^32, 16 TiB) and every
//! misplaced page is moved should one be off. A lazy (`populate(false)`) interleaved
//! region that straddles such a 16 TiB boundary is off by a constant phase beyond
//! it on 6.1 kernels.
//!
//! A per-stripe `mbind` would be simpler for k > 1, but every call makes its own VMA
//! (mapping): a region of P pages would need P / k of them, and at k = 1 a region of
//! 100 000 pages fails against the default `vm.max_map_count` of 65 530. Populating
//! under a thread policy keeps one VMA whatever the stride.
//!
//! **Exactness.** Stripes with k > 1 are exact while their pages stay where they were
//! faulted in. The VMA's `MPOL_BIND` over the stripe nodes keeps any page that is
//! ever refaulted (after swap-out) within those nodes, but not necessarily on its
//! stripe's node; automatic NUMA balancing does not move pages of an `MPOL_BIND` VMA
//! that are already on one of its nodes; `migratepages` and other processes'
//! `move_pages` can. Lock the region ([`RegionBuilder::lock`]) to rule out paging,
//! as the paper's pinned memory did. [`Region::verify`] checks, page by page.
//!
//! **Population.** A region is populated when it is built ([`RegionBuilder::populate`],
//! on by default): every page is faulted in before `build` returns, so its placement
//! can be checked at once and costs nothing later. `populate(false)` leaves the
//! single-`mbind` layouts to fault in lazily, still exactly (the VMA policy places
//! each page); stripes with k > 1 cannot be lazy and say so
//! ([`RegionError::LazyStripes`]).
//!
//! **Transparent huge pages.** A 2 MiB huge page sits on one node, so it would break
//! any stride that is not a whole number of huge pages: regions whose layout spreads
//! pages over nodes in runs that are not multiples of 512 pages (interleave, stride
//! below or not a multiple of 2 MiB) are advised `MADV_NOHUGEPAGE` before any touch.
//! Single-node and `MPOL_BIND` regions, and strides of whole huge pages (whose
//! regions then start on a 2 MiB boundary), may use huge pages.
//!
//! **Re-placing.** [`Region::replace`] moves the pages of a region already in use
//! to a new layout, keeping their contents and address: it sets the new VMA policy
//! (`mbind` with `MPOL_MF_MOVE` for `MPOL_BIND` layouts, which moves what is off
//! the nodes), faults in what is not present, and moves each remaining misplaced page
//! to its node with `move_pages` (interleave and stripes: `mbind` would leave a page
//! that is on a node of the set but not its own). `move_pages` moves a transparent
//! huge page whole, so a region that had huge pages and is re-placed in stripes
//! narrower than one has them split first: the contents of each affected 2 MiB block
//! are copied out, the block is dropped (`MADV_DONTNEED`, after `munlock` if locked)
//! and written back as base pages, which are then moved.
//!
//! **Running out of memory.** A fault under `MPOL_BIND` on a full node does not fail:
//! the kernel reclaims, then runs the OOM killer. Before populating, the region
//! compares the pages each node must receive with what the node can give
//! ([`crate::sys::meminfo`]: free memory plus page cache less the kernel's reserve)
//! and returns [`RegionError::NodeFull`] when they do not fit. The check races with
//! every other allocation in the system: it narrows the window, it cannot close it.
//!
//! Every region is recorded in the [`registry`] while it lives.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use rset::sys::mempolicy::{self, MbindFlags, Mode};
use rset::{NodeId, NodeSet, RSet, Topology};

use crate::policy::{Layout, Policy, PolicyError, Stride, current_node};
use crate::registry::{self, AllocId, AllocKind, Allocation, InlineStr, Label};
use crate::sys::meminfo;
use crate::sys::mman::{self, Advice, Mapping};

pub use rset::sys::mempolicy::PageStatus;

/// Pages per `move_pages` call in [`locate`] and when moving pages.
pub const MOVE_PAGES_BATCH: usize = 1024;

/// A transparent huge page (PMD) on x86-64 and most 4 KiB-page machines.
const HUGE_PAGE_BYTES: usize = 2 << 20;

fn huge_page_pages() -> usize {
    (HUGE_PAGE_BYTES / mman::page_size()).max(1)
}

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

fn nodes_text(nodes: &[u32]) -> String {
    let set: NodeSet = nodes.iter().map(|&n| NodeId(n)).collect();
    if nodes.len() == 1 {
        format!("node {set}")
    } else {
        format!("nodes {set}")
    }
}

/// The RSet of the whole machine (`Topology::from_system().global_rset()`), read
/// once: the RSet of regions built without one.
///
/// # Errors
/// [`RegionError::Topology`] when hwloc cannot read the machine.
pub fn global_rset() -> Result<&'static RSet, RegionError> {
    static GLOBAL: OnceLock<Result<RSet, String>> = OnceLock::new();
    GLOBAL
        .get_or_init(|| {
            Topology::from_system()
                .map(|t| t.global_rset())
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|reason| RegionError::Topology {
            reason: reason.clone(),
        })
}

/// Where each page overlapping `[addr, addr + len)` of the calling process is,
/// one [`PageStatus`] per page, asked with `move_pages` in batches of
/// [`MOVE_PAGES_BATCH`]. A page never touched reads as
/// [`PageStatus::NotPresent`] (the kernel says `ENOENT`, or `EFAULT` on 6.1).
/// Nothing is read, written or moved: any address is safe to ask about.
///
/// # Errors
/// The kernel's for a whole call (`ENOMEM`).
pub fn locate(addr: *const u8, len: usize) -> io::Result<Vec<PageStatus>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let page = mman::page_size();
    let first = addr as usize / page;
    let last = (addr as usize).saturating_add(len - 1) / page;
    let mut out = Vec::with_capacity(last - first + 1);
    let mut batch: Vec<*const u8> = Vec::with_capacity(MOVE_PAGES_BATCH);
    let mut p = first;
    while p <= last {
        batch.clear();
        let n = (last - p + 1).min(MOVE_PAGES_BATCH);
        batch.extend((p..p + n).map(|q| (q * page) as *const u8));
        out.extend(mempolicy::move_pages_query(&batch)?);
        p += n;
    }
    Ok(out)
}

fn no_huge_pages_error(source: io::Error) -> RegionError {
    RegionError::Advise {
        advice: "MADV_NOHUGEPAGE",
        source,
    }
}

fn mmap_error(source: io::Error, bytes: usize) -> RegionError {
    if source.raw_os_error() == Some(libc::ENOMEM) || source.kind() == io::ErrorKind::OutOfMemory {
        RegionError::TooLarge {
            bytes: bytes as u128,
        }
    } else {
        RegionError::Mmap { bytes, source }
    }
}

/// Maps `bytes` under one `MPOL_INTERLEAVE` over `nodes` (at least two), starting
/// where the kernel's interleave puts the first page on `nodes[0]`, and a multiple
/// of `align` pages.
///
/// The kernel puts page `p` of the VMA on the `((vm_pgoff + p) mod N)`-th node of
/// the mask; `vm_pgoff` of an anonymous mapping is its address in pages, but the
/// sum is cut to 32 bits before the `mod` on some kernels (6.1) and not on others
/// (6.7+), which differ for N not a power of two. So the phase is measured: map
/// `N * align` pages more than needed, set the policy, fault in the first page,
/// ask where it went, and keep the part that starts in phase.
fn map_interleaved(bytes: usize, nodes: &[u32], align: usize) -> Result<Mapping, RegionError> {
    let page = mman::page_size();
    let n = nodes.len();
    let slack = n * align;
    let total = slack
        .checked_mul(page)
        .and_then(|s| s.checked_add(bytes))
        .ok_or(RegionError::TooLarge {
            bytes: bytes as u128,
        })?;
    let mut map = Mapping::anonymous(total, 1).map_err(|e| mmap_error(e, bytes))?;
    // Before the probe: a huge page would follow another phase (huge-page index).
    map.advise(0, total, Advice::NoHugePage)
        .map_err(no_huge_pages_error)?;
    mbind_region(&map, Mode::Interleave, nodes, false)?;
    populate_range(&mut map, 0, page)?;
    let probe = locate(map.as_ptr(), 1).map_err(|source| RegionError::MovePages { source })?;
    // Page 0 is on nodes[phase], so page s is on nodes[(phase + s) mod n].
    let phase = match probe.first() {
        Some(PageStatus::Node(x)) => nodes.iter().position(|n| n == x),
        _ => None,
    };
    let base_page = map.as_ptr() as usize / page;
    let in_phase = |s: usize| phase.is_none_or(|ph| (ph + s).is_multiple_of(n));
    // Skip page 0 (the probe); the first start that is both aligned and in phase.
    // If none is (N and the alignment share a factor), the region is still placed
    // exactly: populating checks the phase and moves pages.
    let skip = (1..=slack)
        .find(|&s| (base_page + s).is_multiple_of(align) && in_phase(s))
        .or_else(|| (1..=slack).find(|&s| (base_page + s).is_multiple_of(align)))
        .unwrap_or(1);
    Ok(map.trim(skip * page, bytes))
}

/// How a layout is made real (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mechanism {
    /// No policy.
    Default,
    /// One `MPOL_BIND` over these nodes.
    Bind(Vec<u32>),
    /// One `MPOL_INTERLEAVE` over these nodes (at least two).
    Interleave(Vec<u32>),
    /// Populate node by node under a thread policy, then `MPOL_BIND` over all.
    Stripes { stride: usize, nodes: Vec<u32> },
}

impl Mechanism {
    fn of(layout: &Layout) -> Mechanism {
        let raw = |v: &[NodeId]| v.iter().map(|n| n.0).collect::<Vec<_>>();
        match layout {
            Layout::Default => Mechanism::Default,
            Layout::Node(n) => Mechanism::Bind(vec![n.0]),
            Layout::Bind(set) => Mechanism::Bind(set.to_raw()),
            Layout::Interleave(v) if v.len() > 1 => Mechanism::Interleave(raw(v)),
            Layout::Interleave(v) => Mechanism::Bind(raw(v)),
            Layout::Stripes { nodes, .. } if nodes.len() == 1 => Mechanism::Bind(raw(nodes)),
            Layout::Stripes { stride, nodes } if stride.pages() == 1 => {
                Mechanism::Interleave(raw(nodes))
            }
            Layout::Stripes { stride, nodes } => Mechanism::Stripes {
                stride: stride.pages(),
                nodes: raw(nodes),
            },
        }
    }

    /// Whether huge pages would break the layout.
    fn needs_base_pages(&self) -> bool {
        match self {
            Mechanism::Default | Mechanism::Bind(_) => false,
            Mechanism::Interleave(_) => true,
            Mechanism::Stripes { stride, .. } => !stride.is_multiple_of(huge_page_pages()),
        }
    }

    /// The page multiple the region's start must be.
    fn start_alignment(&self, pages: usize) -> usize {
        let hp = huge_page_pages();
        match self {
            Mechanism::Interleave(_) => 1,
            Mechanism::Stripes { stride, .. } if stride.is_multiple_of(hp) => hp,
            Mechanism::Stripes { .. } => 1,
            Mechanism::Default | Mechanism::Bind(_) if pages >= hp => hp,
            Mechanism::Default | Mechanism::Bind(_) => 1,
        }
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn lcm(a: usize, b: usize) -> usize {
    a / gcd(a, b) * b
}

/// What a layout needs from each node, in pages.
enum Need {
    Nothing,
    PerNode(BTreeMap<NodeId, u64>),
    Pooled(NodeSet, u64),
}

/// Pages the layout puts on each node, for `pages` pages of which those whose
/// `status` is already right need nothing.
fn need(layout: &Layout, pages: usize, status: Option<&[PageStatus]>) -> Need {
    match (layout, status) {
        (Layout::Default, _) => Need::Nothing,
        (Layout::Bind(set), None) => Need::Pooled(set.clone(), pages as u64),
        (Layout::Bind(set), Some(st)) => Need::Pooled(
            set.clone(),
            st.iter()
                .filter(|s| !matches!(s, PageStatus::Node(n) if set.contains(NodeId(*n))))
                .count() as u64,
        ),
        (layout, None) => {
            // Closed form: N cycles of k pages per node, then the remainder.
            let (k, nodes) = match layout {
                Layout::Node(n) => (pages, vec![*n]),
                Layout::Interleave(v) => (1, v.clone()),
                Layout::Stripes { stride, nodes } => (stride.pages(), nodes.clone()),
                Layout::Default | Layout::Bind(_) => unreachable!("matched above"),
            };
            let cycle = k * nodes.len();
            let (full, rem) = (pages / cycle, pages % cycle);
            let mut m = BTreeMap::new();
            for (i, n) in nodes.iter().enumerate() {
                let extra = rem.saturating_sub(i * k).min(k);
                *m.entry(*n).or_insert(0) += (full * k + extra) as u64;
            }
            Need::PerNode(m)
        }
        (layout, Some(st)) => {
            let mut m = BTreeMap::new();
            for (p, s) in st.iter().enumerate() {
                if let Some(t) = layout.node_of_page(p) {
                    if *s != PageStatus::Node(t.0) {
                        *m.entry(t).or_insert(0) += 1;
                    }
                }
            }
            Need::PerNode(m)
        }
    }
}

/// Refuses when a node cannot take what the layout puts on it. Best effort: a
/// node whose meminfo cannot be read (a kernel without NUMA sysfs) is not checked.
fn check_memory(need: Need) -> Result<(), RegionError> {
    let page = mman::page_size() as u64;
    let usable = |n: NodeId| meminfo::node_memory(n).ok().map(|m| m.usable_bytes());
    match need {
        Need::Nothing => Ok(()),
        Need::PerNode(m) => {
            for (node, pages) in m {
                let needed_bytes = pages * page;
                if let Some(free_bytes) = usable(node) {
                    if needed_bytes > free_bytes {
                        return Err(RegionError::NodeFull {
                            node,
                            needed_bytes,
                            free_bytes,
                        });
                    }
                }
            }
            Ok(())
        }
        Need::Pooled(nodes, pages) => {
            let needed_bytes = pages * page;
            let mut free_bytes = 0;
            for n in &nodes {
                match usable(n) {
                    Some(f) => free_bytes += f,
                    None => return Ok(()),
                }
            }
            if needed_bytes > free_bytes {
                return Err(RegionError::NodesFull {
                    nodes,
                    needed_bytes,
                    free_bytes,
                });
            }
            Ok(())
        }
    }
}

fn mbind_region(
    map: &Mapping,
    mode: Mode,
    nodes: &[u32],
    move_pages: bool,
) -> Result<(), RegionError> {
    let flags = MbindFlags {
        strict: false,
        move_pages,
    };
    mempolicy::mbind(map.as_ptr(), map.len(), mode, nodes, flags).map_err(|source| {
        RegionError::Mbind {
            what: mode_text(mode, nodes),
            source,
        }
    })
}

fn mode_text(mode: Mode, nodes: &[u32]) -> String {
    let name = match mode {
        Mode::Default => return "MPOL_DEFAULT".to_owned(),
        Mode::Bind => "MPOL_BIND",
        Mode::Interleave => "MPOL_INTERLEAVE",
        Mode::Preferred => "MPOL_PREFERRED",
        Mode::Local => return "MPOL_LOCAL".to_owned(),
        Mode::PreferredMany => "MPOL_PREFERRED_MANY",
        _ => "a policy",
    };
    format!("{name} over {}", nodes_text(nodes))
}

/// Whether `MADV_POPULATE_WRITE` works here (Linux 5.14+); cleared on `EINVAL`.
static POPULATE_WRITE: AtomicBool = AtomicBool::new(true);

/// Faults in `[offset, offset + len)` under the policy in force.
fn populate_range(map: &mut Mapping, offset: usize, len: usize) -> Result<(), RegionError> {
    if populate_write(map, offset, len)? {
        return Ok(());
    }
    map.touch(offset, len)
        .map_err(|source| RegionError::Populate { bytes: len, source })
}

/// `MADV_POPULATE_WRITE` over `[offset, offset + len)`: `Ok(false)` when the kernel
/// lacks it (before Linux 5.14; remembered), and nothing was done.
fn populate_write(map: &Mapping, offset: usize, len: usize) -> Result<bool, RegionError> {
    while POPULATE_WRITE.load(Ordering::Relaxed) {
        match map.advise(offset, len, Advice::PopulateWrite) {
            Ok(()) => return Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                POPULATE_WRITE.store(false, Ordering::Relaxed);
            }
            Err(source) => return Err(RegionError::Populate { bytes: len, source }),
        }
    }
    Ok(false)
}

/// Faults in the pages `pages` of a mapping of `total` pages (see
/// [`Region::prefault`]).
fn prefault_pages(
    map: &Mapping,
    total: usize,
    pages: std::ops::Range<usize>,
) -> Result<(), RegionError> {
    if pages.start > pages.end || pages.end > total {
        return Err(RegionError::PageRange { pages, total });
    }
    let page = mman::page_size();
    if !pages.is_empty() {
        populate_write(map, pages.start * page, pages.len() * page)?;
    }
    Ok(())
}

/// The calling thread's memory policy, put back on drop (or by `restore`, which
/// reports failure).
struct SavedThreadPolicy {
    mode: Mode,
    nodes: Vec<u32>,
    restored: bool,
}

impl SavedThreadPolicy {
    fn save() -> Result<SavedThreadPolicy, RegionError> {
        let (mode, nodes) =
            mempolicy::get_mempolicy().map_err(|source| RegionError::ThreadPolicy {
                what: "reading it".to_owned(),
                source,
            })?;
        Ok(SavedThreadPolicy {
            mode,
            nodes,
            restored: false,
        })
    }

    fn put_back(&self) -> io::Result<()> {
        mempolicy::set_mempolicy(self.mode, &self.nodes)
    }

    fn restore(mut self) -> Result<(), RegionError> {
        self.restored = true;
        self.put_back().map_err(|source| RegionError::ThreadPolicy {
            what: format!("restoring {}", mode_text(self.mode, &self.nodes)),
            source,
        })
    }
}

impl Drop for SavedThreadPolicy {
    fn drop(&mut self) {
        if !self.restored {
            // An error is already on its way out; restoring is best effort.
            let _ = self.put_back();
        }
    }
}

/// Populates stripes of `stride` pages node by node under a thread `MPOL_BIND`.
/// The region must have no VMA policy (it would override the thread's).
fn populate_stripes(map: &mut Mapping, stride: usize, nodes: &[u32]) -> Result<(), RegionError> {
    let page = mman::page_size();
    let pages = map.len() / page;
    let saved = SavedThreadPolicy::save()?;
    for (i, &node) in nodes.iter().enumerate() {
        mempolicy::set_mempolicy(Mode::Bind, &[node]).map_err(|source| {
            RegionError::ThreadPolicy {
                what: mode_text(Mode::Bind, &[node]),
                source,
            }
        })?;
        let mut first = i * stride;
        while first < pages {
            let n = stride.min(pages - first);
            populate_range(map, first * page, n * page)?;
            first += stride * nodes.len();
        }
    }
    saved.restore()
}

/// Builds a [`Region`]: `Region::<f64>::builder(len).policy(..).rset(..).build()`.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until build() is called"]
pub struct RegionBuilder<T> {
    len: usize,
    policy: Result<Policy, PolicyError>,
    rset: Option<RSet>,
    label: Option<InlineStr>,
    lock: bool,
    populate: bool,
    _elements: PhantomData<fn() -> T>,
}

impl<T: bytemuck::Pod> RegionBuilder<T> {
    /// The placement policy (default [`Policy::Local`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Ok(policy);
        self
    }

    /// Shorthand for `Policy::Striped` with `stride_pages` pages per stripe; 0 is
    /// reported by `build` as [`PolicyError::ZeroStride`].
    pub fn striped(mut self, stride_pages: usize) -> Self {
        self.policy =
            Stride::new(stride_pages).map(|stride_pages| Policy::Striped { stride_pages });
        self
    }

    /// The RSet whose nodes the policy uses (default: the machine's,
    /// [`global_rset`]).
    pub fn rset(mut self, rset: &RSet) -> Self {
        self.rset = Some(rset.clone());
        self
    }

    /// The name the registry and the monitor show (default: the source location
    /// of `build`). Cut to [`registry::INLINE_STR_BYTES`] bytes.
    pub fn label(mut self, label: &str) -> Self {
        self.label = Some(InlineStr::new(label));
        self
    }

    /// Lock the pages in memory (`mlock`) once placed: never paged out, so never
    /// refaulted elsewhere. Implies populating.
    pub fn lock(mut self, lock: bool) -> Self {
        self.lock = lock;
        self
    }

    /// Fault every page in when building (default true). See the module docs.
    pub fn populate(mut self, populate: bool) -> Self {
        self.populate = populate;
        self
    }

    /// Maps, places, populates (and locks) the region and records it in the
    /// registry. The policy is resolved for the node the calling thread runs on.
    ///
    /// # Errors
    /// [`RegionError`]: bad sizes and policies before anything is mapped; then
    /// memory that does not fit its nodes, and the kernel's refusals.
    #[track_caller]
    pub fn build(self) -> Result<Region<T>, RegionError> {
        let caller = Location::caller();
        let policy = self.policy?;
        let elem = size_of::<T>();
        if self.len == 0 || elem == 0 {
            return Err(RegionError::ZeroSize {
                elements: self.len,
                element_bytes: elem,
            });
        }
        let page = mman::page_size();
        let too_large = RegionError::TooLarge {
            bytes: self.len as u128 * elem as u128,
        };
        let bytes = self
            .len
            .checked_mul(elem)
            .filter(|&b| b <= isize::MAX as usize - page)
            .ok_or(too_large)?;
        let pages = bytes.div_ceil(page);
        let map_bytes = pages * page;

        let rset = match &self.rset {
            Some(r) => r,
            None => global_rset()?,
        };
        let node = current_node();
        let layout = policy.resolve(rset, node)?;
        let mech = Mechanism::of(&layout);
        let populate = self.populate || self.lock;
        if let (Mechanism::Stripes { .. }, Layout::Stripes { stride, .. }) = (&mech, &layout) {
            if !populate {
                return Err(RegionError::LazyStripes { stride: *stride });
            }
        }

        if populate {
            check_memory(need(&layout, pages, None))?;
        }
        let align = lcm(mech.start_alignment(pages), align_of::<T>().div_ceil(page));
        let map = match &mech {
            Mechanism::Interleave(nodes) => map_interleaved(map_bytes, nodes, align)?,
            _ => Mapping::anonymous(map_bytes, align).map_err(|e| mmap_error(e, map_bytes))?,
        };

        let label = match self.label {
            Some(name) => Label::Name(name),
            None => Label::Caller(caller),
        };
        let mut region = Region {
            map,
            len: self.len,
            layout,
            policy,
            populated: false,
            locked: false,
            id: AllocId(0),
            _elements: PhantomData,
        };
        region.place(&mech, populate, false)?;
        if self.lock {
            region.lock_pages()?;
        }
        let record = Allocation::here(
            AllocKind::Region,
            label,
            region.map.as_ptr() as usize,
            region.map.len(),
        )
        .with_node(node);
        region.id = registry::register(Allocation {
            policy: InlineStr::display(&region.policy),
            ..record
        });
        Ok(region)
    }
}

/// An owned array of `len` elements of `T` in its own anonymous mapping (a whole
/// number of pages), every page placed by a policy before first touch (see the
/// module docs). Derefs to `[T]`; unmapped and unregistered on drop.
///
/// `T` is [`bytemuck::Pod`]: the memory starts as zeros, which must be a valid `T`.
pub struct Region<T> {
    map: Mapping,
    len: usize,
    layout: Layout,
    policy: Policy,
    populated: bool,
    locked: bool,
    id: AllocId,
    _elements: PhantomData<T>,
}

/// A region of bytes.
pub type ByteRegion = Region<u8>;

impl<T: bytemuck::Pod> Region<T> {
    /// A builder for a region of `len` elements (policy Local over the machine's
    /// RSet until told otherwise).
    pub fn builder(len: usize) -> RegionBuilder<T> {
        RegionBuilder {
            len,
            policy: Ok(Policy::Local),
            rset: None,
            label: None,
            lock: false,
            populate: true,
            _elements: PhantomData,
        }
    }

    /// `len` elements placed by `policy` over the machine's RSet, populated,
    /// labelled with the caller's source location.
    ///
    /// # Errors
    /// As [`RegionBuilder::build`].
    #[track_caller]
    pub fn new(len: usize, policy: Policy) -> Result<Region<T>, RegionError> {
        Region::builder(len).policy(policy).build()
    }

    /// `len` elements placed by `policy` over `rset`, populated.
    ///
    /// # Errors
    /// As [`RegionBuilder::build`].
    #[track_caller]
    pub fn new_in(len: usize, policy: Policy, rset: &RSet) -> Result<Region<T>, RegionError> {
        Region::builder(len).policy(policy).rset(rset).build()
    }

    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        bytemuck::cast_slice(&self.map.bytes()[..self.len * size_of::<T>()])
    }

    /// The elements, writable.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        let n = self.len * size_of::<T>();
        bytemuck::cast_slice_mut(&mut self.map.bytes_mut()[..n])
    }

    /// The first element.
    pub fn as_ptr(&self) -> *const T {
        self.map.as_ptr().cast()
    }

    /// The first element, for writing.
    pub fn as_mut_ptr(&mut self) -> *mut T {
        self.map.bytes_mut().as_mut_ptr().cast()
    }
}

impl<T> Region<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a region has at least one element.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Number of pages mapped.
    pub fn pages(&self) -> usize {
        self.map.len() / mman::page_size()
    }

    /// Bytes mapped (whole pages; at least `len * size_of::<T>()`).
    pub fn mapped_bytes(&self) -> usize {
        self.map.len()
    }

    /// The layout its pages follow.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The policy it was made (or last re-placed) with.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Its id in the [`registry`].
    pub fn id(&self) -> AllocId {
        self.id
    }

    /// Whether its pages are locked in memory.
    pub fn is_locked(&self) -> bool {
        self.locked
    }

    /// Whether every page was faulted in (at build or by [`Region::replace`]).
    pub fn is_populated(&self) -> bool {
        self.populated
    }

    /// Faults in the region's pages `pages` (page indices) under its policy from the
    /// calling thread, without changing their contents. A head start for
    /// [`Region::populate`] that several threads can share, each taking its own
    /// part (the kernel zeroes a new page on the CPU that faults it in), so that a
    /// big lazy region is populated in parallel. Does nothing on kernels without
    /// `MADV_POPULATE_WRITE` (before Linux 5.14); `populate` then does all the work.
    ///
    /// # Errors
    /// [`RegionError::PageRange`] for pages outside the region;
    /// [`RegionError::Populate`] when the kernel cannot fault a page in (no memory
    /// left on the nodes the policy allows).
    pub fn prefault(&self, pages: std::ops::Range<usize>) -> Result<(), RegionError> {
        prefault_pages(&self.map, self.pages(), pages)
    }

    /// Populates a region built with `populate(false)`: faults in every page not
    /// yet present under the region's policy, from the calling thread, and checks
    /// an interleaved region's phase as `build` does, so that afterwards
    /// [`Region::is_populated`] holds and [`Region::verify`] wants every page
    /// present. Pages already present ([`Region::prefault`], first touches) stay as
    /// they are. Does nothing for a populated region.
    ///
    /// # Errors
    /// [`RegionError::NodeFull`] and [`RegionError::NodesFull`] when the pages
    /// still to come cannot fit their nodes; [`RegionError::Populate`] and
    /// [`RegionError::MovePages`] as for `build`.
    pub fn populate(&mut self) -> Result<(), RegionError> {
        self.populate_with(|_, _| Ok(()))
    }

    /// [`Region::populate`] with the faulting shared out: after the memory check,
    /// `spread(pages, fault)` may run `fault(range)` ([`Region::prefault`] of a
    /// page range) on as many threads as it likes, each its own range of the
    /// region's `pages`; then the calling thread fills what is left. The check
    /// comes first, so that a region too big for its nodes is refused before any
    /// thread faults a page in.
    ///
    /// # Errors
    /// As [`Region::populate`], and the first error of `spread`.
    pub fn populate_with<F>(&mut self, spread: F) -> Result<(), RegionError>
    where
        F: FnOnce(
            usize,
            &(dyn Fn(std::ops::Range<usize>) -> Result<(), RegionError> + Sync),
        ) -> Result<(), RegionError>,
    {
        if self.populated {
            return Ok(());
        }
        if !matches!(self.layout, Layout::Default) {
            let status = self.locate()?;
            check_memory(need(&self.layout, self.pages(), Some(&status)))?;
        }
        let (map, total) = (&self.map, self.pages());
        spread(total, &|pages| prefault_pages(map, total, pages))?;
        let mech = Mechanism::of(&self.layout);
        self.place(&mech, true, false)
    }

    /// Where each page is, page 0 first (see [`locate`]).
    ///
    /// # Errors
    /// [`RegionError::MovePages`] when the kernel refuses the query.
    pub fn locate(&self) -> Result<Vec<PageStatus>, RegionError> {
        locate(self.map.as_ptr(), self.map.len())
            .map_err(|source| RegionError::MovePages { source })
    }

    /// How many pages each node holds (pages not present are left out).
    ///
    /// # Errors
    /// As [`Region::locate`].
    pub fn pages_per_node(&self) -> Result<BTreeMap<NodeId, usize>, RegionError> {
        let mut m = BTreeMap::new();
        for s in self.locate()? {
            if let PageStatus::Node(n) = s {
                *m.entry(NodeId(n)).or_insert(0) += 1;
            }
        }
        Ok(m)
    }

    /// Checks every page against the layout: on its node (`Node`, `Interleave`,
    /// `Stripes`), on one of the nodes (`Bind`), anywhere (`Default`); present,
    /// if the region was populated.
    ///
    /// # Errors
    /// [`RegionError::Misplaced`] naming the first misplaced page and the count.
    pub fn verify(&self) -> Result<(), RegionError> {
        let status = self.locate()?;
        let mut first = None;
        let mut misplaced = 0;
        for (p, s) in status.iter().enumerate() {
            let ok = match (s, &self.layout) {
                (PageStatus::NotPresent, _) => !self.populated,
                (PageStatus::Error(_), _) => false,
                (PageStatus::Node(_), Layout::Default) => true,
                (PageStatus::Node(n), Layout::Bind(set)) => set.contains(NodeId(*n)),
                (PageStatus::Node(n), layout) => layout.node_of_page(p) == Some(NodeId(*n)),
            };
            if !ok {
                misplaced += 1;
                first.get_or_insert((p, *s));
            }
        }
        match first {
            None => Ok(()),
            Some((page, found)) => Err(RegionError::Misplaced {
                page,
                expected: self.expected_text(page),
                found,
                misplaced,
                pages: status.len(),
            }),
        }
    }

    fn expected_text(&self, page: usize) -> String {
        match &self.layout {
            Layout::Default => "present".to_owned(),
            Layout::Bind(set) => format!("on one of nodes {set}"),
            layout => match layout.node_of_page(page) {
                Some(n) => format!("on node {n}"),
                None => "present".to_owned(),
            },
        }
    }

    /// Moves the present pages that are not on the node the layout gives them;
    /// returns how many it asked to move.
    fn fix_misplaced(&self, status: &[PageStatus]) -> Result<usize, RegionError> {
        let page = mman::page_size();
        let base = self.map.as_ptr() as usize;
        let mut addrs = Vec::with_capacity(MOVE_PAGES_BATCH);
        let mut targets = Vec::with_capacity(MOVE_PAGES_BATCH);
        let mut moved = 0;
        let mut flush = |addrs: &mut Vec<*const u8>, targets: &mut Vec<u32>| {
            if addrs.is_empty() {
                return Ok(());
            }
            mempolicy::move_pages_to(addrs, targets)
                .map_err(|source| RegionError::MovePages { source })?;
            moved += addrs.len();
            addrs.clear();
            targets.clear();
            Ok::<(), RegionError>(())
        };
        for (p, s) in status.iter().enumerate() {
            let Some(target) = self.layout.node_of_page(p) else {
                continue;
            };
            if matches!(s, PageStatus::Node(n) if *n != target.0) {
                addrs.push((base + p * page) as *const u8);
                targets.push(target.0);
                if addrs.len() == MOVE_PAGES_BATCH {
                    flush(&mut addrs, &mut targets)?;
                }
            }
        }
        flush(&mut addrs, &mut targets)?;
        Ok(moved)
    }

    fn lock_pages(&mut self) -> Result<(), RegionError> {
        self.map.lock().map_err(|source| RegionError::Lock {
            bytes: self.map.len(),
            limit: mman::memlock_limit().ok().flatten(),
            source,
        })?;
        self.locked = true;
        self.populated = true;
        Ok(())
    }

    /// Makes the layout real: VMA policy, huge-page advice, population, and, when
    /// re-placing, moving the pages already present.
    fn place(
        &mut self,
        mech: &Mechanism,
        populate: bool,
        replacing: bool,
    ) -> Result<(), RegionError> {
        let len = self.map.len();
        if mech.needs_base_pages() {
            self.map
                .advise(0, len, Advice::NoHugePage)
                .map_err(no_huge_pages_error)?;
        }
        match mech {
            Mechanism::Default => {
                if replacing {
                    mbind_region(&self.map, Mode::Default, &[], false)?;
                }
            }
            Mechanism::Bind(nodes) => mbind_region(&self.map, Mode::Bind, nodes, replacing)?,
            Mechanism::Interleave(nodes) => {
                mbind_region(&self.map, Mode::Interleave, nodes, false)?
            }
            Mechanism::Stripes { stride, nodes } => {
                if replacing {
                    // A VMA policy would override the thread policy that places stripes.
                    mbind_region(&self.map, Mode::Default, &[], false)?;
                }
                populate_stripes(&mut self.map, *stride, nodes)?;
                self.populated = true;
                mbind_region(&self.map, Mode::Bind, nodes, false)?;
            }
        }
        if populate && !self.populated {
            populate_range(&mut self.map, 0, len)?;
            self.populated = true;
        }
        if replacing {
            self.move_into_place(mech)
        } else if let (Mechanism::Interleave(nodes), true) = (mech, self.populated) {
            // map_interleaved put page 0 in phase; check the first and the last N
            // pages (the phase of a 6.1 kernel jumps where the page number crosses
            // a multiple of 2^32) and repair the whole region should one be off.
            let page = mman::page_size();
            let n = nodes.len().min(self.pages());
            let tail = self.pages() - n;
            let head = locate(self.map.as_ptr(), n * page);
            let last = locate(self.map.as_ptr().wrapping_add(tail * page), n * page);
            let (head, last) = head
                .and_then(|h| Ok((h, last?)))
                .map_err(|source| RegionError::MovePages { source })?;
            let wrong = |first: usize, st: &[PageStatus]| {
                st.iter().enumerate().any(|(i, s)| {
                    !matches!(s, PageStatus::Node(x) if Some(NodeId(*x)) == self.layout.node_of_page(first + i))
                })
            };
            let off = wrong(0, &head) || wrong(tail, &last);
            if off {
                self.move_into_place(mech)
            } else {
                Ok(())
            }
        } else {
            Ok(())
        }
    }

    /// Moves misplaced present pages to their nodes; splits transparent huge pages
    /// that hold pages of several stripes (by copying their contents out, dropping
    /// them and writing the contents back as base pages) when moving alone cannot.
    fn move_into_place(&mut self, mech: &Mechanism) -> Result<(), RegionError> {
        if matches!(self.layout, Layout::Default | Layout::Bind(_)) {
            return Ok(()); // mbind(MPOL_MF_MOVE) did it.
        }
        let mut status = self.locate()?;
        let start = self.map.as_ptr() as usize;
        if mech.needs_base_pages()
            && meminfo::anon_huge_bytes(start, start + self.map.len()).unwrap_or(0) > 0
        {
            // move_pages would move each huge page whole (to the node of whichever
            // of its pages it meets last): split them first.
            self.split_huge_blocks(&status)?;
            status = self.locate()?;
        }
        if self.fix_misplaced(&status)? == 0 || !mech.needs_base_pages() {
            return Ok(());
        }
        // Huge pages the check above missed (khugepaged meanwhile, or no /proc).
        let status = self.locate()?;
        if self.split_huge_blocks(&status)? {
            let status = self.locate()?;
            self.fix_misplaced(&status)?;
        }
        Ok(())
    }

    /// Rewrites as base pages every 2 MiB block that holds a misplaced page: copies
    /// its contents out, drops it (`MADV_DONTNEED`) and writes the contents back.
    /// Returns whether there was any.
    fn split_huge_blocks(&mut self, status: &[PageStatus]) -> Result<bool, RegionError> {
        let page = mman::page_size();
        let hp = huge_page_pages();
        let base_page = self.map.as_ptr() as usize / page;
        let mut blocks: Vec<usize> = status
            .iter()
            .enumerate()
            .filter(|(p, s)| {
                matches!(s, PageStatus::Node(n) if self.layout.node_of_page(*p) != Some(NodeId(*n)))
            })
            .map(|(p, _)| (base_page + p) / hp)
            .collect();
        blocks.dedup();
        if blocks.is_empty() {
            return Ok(false);
        }
        let lock_error = |source| RegionError::Lock {
            bytes: self.map.len(),
            limit: mman::memlock_limit().ok().flatten(),
            source,
        };
        if self.locked {
            // MADV_DONTNEED refuses locked pages.
            self.map.unlock().map_err(lock_error)?;
        }
        let pages = self.pages();
        let mut saved = Vec::new();
        let mut result = Ok(true);
        for b in blocks {
            let first = (b * hp).max(base_page) - base_page;
            let end = ((b + 1) * hp - base_page).min(pages);
            let (off, len) = (first * page, (end - first) * page);
            saved.clear();
            saved.extend_from_slice(&self.map.bytes()[off..off + len]);
            if let Err(source) = self.map.discard(off, len) {
                result = Err(RegionError::Populate { bytes: len, source });
                break;
            }
            self.map.bytes_mut()[off..off + len].copy_from_slice(&saved);
        }
        if self.locked {
            self.map.lock().map_err(|source| RegionError::Lock {
                bytes: self.map.len(),
                limit: mman::memlock_limit().ok().flatten(),
                source,
            })?;
        }
        result
    }
}

impl<T: bytemuck::Pod> Region<T> {
    /// Re-places the region under `policy` over `rset` (resolved for the calling
    /// thread's node): sets the new VMA policy, faults in any page not yet present,
    /// and moves every present page that is not where the new layout puts it
    /// (`mbind(MPOL_MF_MOVE)` for `MPOL_BIND` layouts, `move_pages` page by page
    /// for interleave and stripes); contents are kept. Afterwards every page is
    /// present (except under Float). The address does not change; a locked region
    /// stays locked.
    ///
    /// # Errors
    /// [`RegionError`]: the policy, nodes that cannot take the pages moving onto
    /// them, the kernel's refusals, and [`RegionError::Misplaced`] if pages could
    /// not be moved.
    pub fn replace(&mut self, policy: Policy, rset: &RSet) -> Result<(), RegionError> {
        let layout = policy.resolve(rset, current_node())?;
        let mech = Mechanism::of(&layout);
        let status = self.locate()?;
        check_memory(need(&layout, self.pages(), Some(&status)))?;
        let old = std::mem::replace(&mut self.layout, layout);
        let populate = !matches!(mech, Mechanism::Default);
        if let Err(e) = self.place(&mech, populate, true) {
            // Pages may have moved already; the layout is the new one only if
            // placing succeeded.
            self.layout = old;
            return Err(e);
        }
        self.policy = policy;
        registry::set_policy(self.id, InlineStr::display(&self.policy));
        self.verify()
    }
}

impl<T> Drop for Region<T> {
    fn drop(&mut self) {
        registry::unregister(self.id);
        // The mapping unmaps itself.
    }
}

impl<T: bytemuck::Pod> Deref for Region<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: bytemuck::Pod> DerefMut for Region<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T: bytemuck::Pod> AsRef<[T]> for Region<T> {
    fn as_ref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: bytemuck::Pod> AsMut<[T]> for Region<T> {
    fn as_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T> fmt::Debug for Region<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("addr", &self.map.as_ptr())
            .field("len", &self.len)
            .field("pages", &self.pages())
            .field("policy", &self.policy)
            .field("layout", &self.layout)
            .field("populated", &self.populated)
            .field("locked", &self.locked)
            .field("id", &self.id)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripes(k: usize, nodes: &[u32]) -> Layout {
        Layout::Stripes {
            stride: Stride::new(k).unwrap(),
            nodes: nodes.iter().map(|&n| NodeId(n)).collect(),
        }
    }

    #[test]
    fn mechanisms_follow_the_layout() {
        assert_eq!(
            Mechanism::of(&stripes(1, &[0, 1])),
            Mechanism::Interleave(vec![0, 1])
        );
        assert_eq!(Mechanism::of(&stripes(4, &[2])), Mechanism::Bind(vec![2]));
        assert_eq!(
            Mechanism::of(&stripes(4, &[0, 1])),
            Mechanism::Stripes {
                stride: 4,
                nodes: vec![0, 1]
            }
        );
        assert_eq!(
            Mechanism::of(&Layout::Node(NodeId(3))),
            Mechanism::Bind(vec![3])
        );
        let hp = huge_page_pages();
        assert!(Mechanism::of(&stripes(3, &[0, 1])).needs_base_pages());
        assert!(!Mechanism::of(&stripes(hp, &[0, 1])).needs_base_pages());
        assert_eq!(
            Mechanism::of(&stripes(1, &[0, 1, 2])).start_alignment(10),
            1
        );
        assert_eq!(
            Mechanism::of(&stripes(2 * hp, &[0, 1])).start_alignment(10),
            hp
        );
    }

    #[test]
    fn needs_count_each_nodes_pages() {
        let Need::PerNode(m) = need(&stripes(3, &[0, 1]), 10, None) else {
            panic!()
        };
        // pages 0-2 -> 0, 3-5 -> 1, 6-8 -> 0, 9 -> 1
        assert_eq!(m[&NodeId(0)], 6);
        assert_eq!(m[&NodeId(1)], 4);
        let st = vec![PageStatus::Node(0); 10];
        let Need::PerNode(m) = need(&stripes(3, &[0, 1]), 10, Some(&st)) else {
            panic!()
        };
        assert_eq!(m.get(&NodeId(0)), None);
        assert_eq!(m[&NodeId(1)], 4);
        let Need::PerNode(m) = need(&Layout::Node(NodeId(1)), 7, None) else {
            panic!()
        };
        assert_eq!(m[&NodeId(1)], 7);
    }

    #[test]
    fn regions_cross_threads_like_their_elements() {
        fn send_sync<X: Send + Sync>() {}
        send_sync::<Region<f64>>();
        send_sync::<RegionBuilder<u8>>();
        send_sync::<RegionError>();
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human(100), "100 bytes");
        assert_eq!(human(64 << 20), "64 MiB");
        assert_eq!(human(3 << 29), "1.5 GiB");
    }
}
