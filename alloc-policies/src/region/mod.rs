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
//!
//! [`Policy`]: crate::Policy
//! [`RSet`]: rset::RSet
//! [`Policy::resolve`]: crate::Policy::resolve
//! [`Layout`]: crate::Layout
//! [`Layout::node_of_page`]: crate::Layout::node_of_page
//! [`registry`]: crate::registry
mod array;
mod budget;
mod builder;
mod check;
mod error;
mod mechanism;
mod place;

pub use array::{ByteRegion, Region};
pub use builder::{RegionBuilder, global_rset};
pub use check::{MOVE_PAGES_BATCH, locate};
pub use error::RegionError;
pub use rset::sys::mempolicy::PageStatus;
