//! How a layout is made real on a fresh mapping ([`Mechanism`], see the module
//! docs of [`crate::region`]): one `mbind`, an interleave put in phase, or stripes
//! populated node by node under a thread policy.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use rset::NodeId;
use rset::sys::mempolicy::{self, MbindFlags, Mode, PageStatus};

use super::check::locate;
use super::error::{RegionError, mmap_error, no_huge_pages_error, nodes_text};
use crate::policy::Layout;
use crate::sys::mman::{self, Advice, Mapping};

/// A transparent huge page (PMD) on x86-64 and most 4 KiB-page machines.
const HUGE_PAGE_BYTES: usize = 2 << 20;

pub(super) fn huge_page_pages() -> usize {
    (HUGE_PAGE_BYTES / mman::page_size()).max(1)
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
pub(super) fn map_interleaved(
    bytes: usize,
    nodes: &[u32],
    align: usize,
) -> Result<Mapping, RegionError> {
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
pub(super) enum Mechanism {
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
    pub(super) fn of(layout: &Layout) -> Mechanism {
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
    pub(super) fn needs_base_pages(&self) -> bool {
        match self {
            Mechanism::Default | Mechanism::Bind(_) => false,
            Mechanism::Interleave(_) => true,
            Mechanism::Stripes { stride, .. } => !stride.is_multiple_of(huge_page_pages()),
        }
    }

    /// The page multiple the region's start must be.
    pub(super) fn start_alignment(&self, pages: usize) -> usize {
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

pub(super) fn lcm(a: usize, b: usize) -> usize {
    a / gcd(a, b) * b
}

pub(super) fn mbind_region(
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
pub(super) fn populate_range(
    map: &mut Mapping,
    offset: usize,
    len: usize,
) -> Result<(), RegionError> {
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
/// [`Region::prefault`](super::Region::prefault)).
pub(super) fn prefault_pages(
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
pub(super) fn populate_stripes(
    map: &mut Mapping,
    stride: usize,
    nodes: &[u32],
) -> Result<(), RegionError> {
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

/// `Stripes` of `k` pages over `nodes`, for the tests.
#[cfg(test)]
pub(super) fn stripes(k: usize, nodes: &[u32]) -> Layout {
    Layout::Stripes {
        stride: crate::policy::Stride::new(k).unwrap(),
        nodes: nodes.iter().map(|&n| NodeId(n)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
