//! Where a block's pages go: a policy resolved for the calling thread into a
//! [`Placement`] (no allocation), the node whose arena serves a small block, and
//! large blocks mapped with the placement's exact layout.
//!
//! # Large blocks
//! Blocks of [`LARGE_THRESHOLD`](super::class::LARGE_THRESHOLD) bytes or more (or aligned
//! beyond 64 KiB, which an exclusive mimalloc arena cannot serve) are mapped
//! directly and `mbind`-ed with the policy's exact layout, page by page: one node,
//! a node set, interleave (one VMA, its start chosen so that page `p` is on the
//! `p mod N`-th node), or stripes of `k` pages (one `mbind` per stripe). Float
//! blocks get no policy and keep to base pages.
//!
//! # Placed before anyone can touch them
//! Every range (arena or large block) is mapped inaccessible (`PROT_NONE`), given
//! its policy and huge-page advice, and only then opened (`mprotect`): see
//! [`FreshMap`]. Mapped read-write at once, a range without a policy yet may be
//! merged by the kernel into an adjacent anonymous mapping (another thread's
//! stack, mimalloc's memory, a Float block), and a fault there can bring in a
//! transparent huge page that covers the range's first or last pages up to the
//! next 2 MiB boundary, on the faulting thread's node, where `mbind` leaves them.
//! Once open, a range merges only with neighbours of the same policy and advice,
//! so every huge page that covers it follows its own policy; Float blocks, which
//! have no policy to tell them from their neighbours, are advised
//! `MADV_NOHUGEPAGE` so that no neighbour's huge page can ever cover them.

use std::cell::Cell;
use std::fmt;
use std::ptr::NonNull;

use rset::sys::mempolicy::Mode;

use super::enforce::{enforced, mbind, placement_enforced};
use super::machine::{MAX_NODES, Machine, NO_NODE, NodeMask, node_id};
use crate::error::NumaAllocError;
use crate::policy::Policy;
use crate::sys::anon::{FreshMap, no_huge_pages};
use crate::sys::mbind::{bind_marked, is_marked_bind};
use crate::sys::mman::page_size;

/// The most stripes (one VMA each) a single striped block may have; beyond it the
/// allocation fails with [`NumaAllocError::TooManyStripes`] rather than eat into
/// the process's `vm.max_map_count`.
pub(crate) const MAX_STRIPES: usize = 8192;

/// Where a block's pages go: a policy resolved for the calling thread, in a form
/// that needs no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Float: wherever first touch puts them.
    FirstTouch,
    /// Every page on this node.
    Node(u8),
    /// `MPOL_BIND` over these nodes (nearest first).
    Bind(NodeMask),
    /// Page `p` on the `(p mod N)`-th node.
    Interleave(NodeMask),
    /// Page `p` on the `((p / stride) mod N)`-th node.
    Stripes {
        /// Pages per stripe (1 only when an interleave cannot be put in phase).
        stride: usize,
        /// The nodes in turn.
        nodes: NodeMask,
    },
}

impl fmt::Display for Placement {
    /// `float`, `node:1`, `bind:0,2`, `interleave:0,1,2`, `striped:4:0,1`; written
    /// without allocating.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, mask: NodeMask| -> fmt::Result {
            for (i, n) in mask.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{n}")?;
            }
            Ok(())
        };
        match *self {
            Placement::FirstTouch => f.write_str("float"),
            Placement::Node(n) => write!(f, "node:{n}"),
            Placement::Bind(mask) => {
                f.write_str("bind:")?;
                list(f, mask)
            }
            Placement::Interleave(mask) => {
                f.write_str("interleave:")?;
                list(f, mask)
            }
            Placement::Stripes { stride, nodes } => {
                write!(f, "striped:{stride}:")?;
                list(f, nodes)
            }
        }
    }
}

/// Resolves `policy` for a thread on node `caller`, with the rules of
/// [`Policy::resolve`] over the global RSet (every memory node).
///
/// # Errors
/// The [`NumaAllocError`] naming the node or set that cannot be served.
pub(crate) fn resolve(
    m: &Machine,
    policy: &Policy,
    caller: u8,
) -> Result<Placement, NumaAllocError> {
    let single = |mask: NodeMask| {
        if mask.count() == 1 {
            Placement::Node(mask.nth(0))
        } else {
            Placement::Interleave(mask)
        }
    };
    match policy {
        Policy::Float => Ok(Placement::FirstTouch),
        Policy::Local => resolve_local(m, caller),
        Policy::Remote => match m.remote_of.get(caller as usize) {
            Some(&r) if r != NO_NODE => Ok(Placement::Node(r)),
            _ => Err(NumaAllocError::RemoteNeedsTwoNodes {
                node: node_id(caller),
            }),
        },
        Policy::RemoteTo(id) => {
            if id.0 == u32::from(caller) {
                return Err(NumaAllocError::RemoteIsLocal { node: *id });
            }
            m.memory_node(*id).map(Placement::Node)
        }
        Policy::Striped { stride_pages } => {
            if m.memory.count() == 0 {
                return Err(NumaAllocError::NoNodes);
            }
            Ok(match stride_pages.pages() {
                1 => single(m.memory),
                _ if m.memory.count() == 1 => Placement::Node(m.memory.nth(0)),
                stride => Placement::Stripes {
                    stride,
                    nodes: m.memory,
                },
            })
        }
        Policy::Bind(set) => {
            let mask = m.mask_of(set.as_slice())?;
            Ok(if mask.count() == 1 {
                Placement::Node(mask.nth(0))
            } else {
                Placement::Bind(mask)
            })
        }
        Policy::Interleave(set) => m.mask_of(set.as_slice()).map(single),
    }
}

/// Local: the caller's node, which must have memory.
#[inline]
pub(crate) fn resolve_local(m: &Machine, caller: u8) -> Result<Placement, NumaAllocError> {
    if m.memory.contains(caller) {
        Ok(Placement::Node(caller))
    } else {
        Err(NumaAllocError::LocalWithoutMemory {
            node: node_id(caller),
        })
    }
}

thread_local! {
    /// Round-robin position for small blocks under Interleave and Striped.
    static NEXT: Cell<usize> = const { Cell::new(0) };
}

/// The node whose arena serves a small block under `placement`, `None` for
/// mimalloc's default heap (Float). A small block is never split across nodes:
/// under `Bind` it goes to the set's node nearest the caller; under `Interleave`
/// and `Stripes` successive small blocks of a thread go to the set's nodes in turn.
pub(crate) fn small_node(m: &Machine, placement: Placement, caller: u8) -> Option<u8> {
    match placement {
        Placement::FirstTouch => None,
        Placement::Node(n) => Some(n),
        Placement::Bind(mask) => Some(m.nearest(caller, mask)),
        Placement::Interleave(mask) | Placement::Stripes { nodes: mask, .. } => {
            let i = NEXT.with(|c| {
                let i = c.get();
                c.set(i.wrapping_add(1));
                i
            });
            Some(mask.nth(i % mask.count().max(1)))
        }
    }
}

/// Maps a large block of `size` bytes aligned to `align` with `placement` applied
/// page by page. The block starts at the mapping's start and the mapping is
/// `size` rounded up to whole pages.
///
/// # Errors
/// [`NumaAllocError::OutOfMemory`] if the kernel refuses the mapping or the policy,
/// [`NumaAllocError::TooManyStripes`] for a striped block of too many stripes.
pub(crate) fn map_large(
    placement: Placement,
    size: usize,
    align: usize,
) -> Result<NonNull<u8>, NumaAllocError> {
    let oom = NumaAllocError::OutOfMemory { size, align };
    let page = page_size();
    let len = size
        .max(1)
        .checked_next_multiple_of(page)
        .filter(|&l| l <= isize::MAX as usize)
        .ok_or(oom)?;
    let pages = len / page;
    let align_pages = (align / page).max(1);
    if let Placement::Interleave(mask) = placement {
        return map_interleaved(mask, len, align_pages, oom);
    }
    if let Placement::Stripes { stride, .. } = placement {
        let stripes = pages.div_ceil(stride);
        if stripes > MAX_STRIPES {
            return Err(NumaAllocError::TooManyStripes {
                stripes,
                max: MAX_STRIPES,
            });
        }
    }
    let map = FreshMap::new(len, align_pages).ok_or(oom)?;
    apply(placement, map.start(), len, page).map_err(|()| oom)?;
    map.into_raw().ok_or(oom)
}

/// Truth that the large block at `ptr` may grow by `mremap`, which gives the grown
/// tail the policy of the block's mapping: right for every layout made of one
/// mapping (one node, a node set, an interleave, whose phase moves with the
/// mapping, Float), wrong for stripes, whose tail must go on striping. A striped
/// block of several stripes spans several mappings, which `mremap` refuses anyway;
/// one no longer than its stride is a single mapping bound to its first node, told
/// from a one-node block by the mark [`apply`] gives every stripe.
pub(crate) fn may_grow_by_remap(ptr: *const u8) -> bool {
    !placement_enforced() || is_marked_bind(ptr) == Ok(false)
}

/// Maps `len` bytes under one `MPOL_INTERLEAVE` over `mask`, starting where the
/// kernel's interleave puts the block's first page on the set's first node.
///
/// The kernel puts page `p` of an interleaved VMA on the `((vm_pgoff + p) mod N)`-th
/// node, and an anonymous VMA's `vm_pgoff` is its address in pages; but Linux 6.1
/// cuts that sum to 32 bits before the modulo and later kernels do not, which
/// differ when N is not a power of two. So the phase is measured, not computed:
/// `N * align` spare pages are mapped before the block, the first one is written
/// and located, and the block starts at the first aligned spare page in phase (the
/// probed page is unmapped with the other spares). Should no aligned start be in
/// phase (an alignment sharing a factor with N), the block is striped one page at
/// a time instead.
fn map_interleaved(
    mask: NodeMask,
    len: usize,
    align_pages: usize,
    oom: NumaAllocError,
) -> Result<NonNull<u8>, NumaAllocError> {
    let page = page_size();
    let n = mask.count();
    let spare = n.checked_mul(align_pages).ok_or(oom)?;
    let total = spare
        .checked_mul(page)
        .and_then(|s| s.checked_add(len))
        .ok_or(oom)?;
    let mut map = FreshMap::new(total, align_pages).ok_or(oom)?;
    apply(Placement::Interleave(mask), map.start(), total, page).map_err(|()| oom)?;
    if !map.open() {
        return Err(oom);
    }
    let Some(first) = map.probe_node(0) else {
        return if placement_enforced() {
            Err(oom)
        } else {
            // No memory policies on this system: nothing to put in phase.
            map.keep(spare * page, len)
                .and_then(FreshMap::into_raw)
                .ok_or(oom)
        };
    };
    let phase = mask
        .iter()
        .position(|node| u32::from(node) == first)
        .ok_or(oom)?;
    // Page s is on the ((phase + s) mod N)-th node.
    match (1..=n)
        .map(|i| i * align_pages)
        .find(|&s| (phase + s) % n == 0)
    {
        Some(s) => map
            .keep(s * page, len)
            .and_then(FreshMap::into_raw)
            .ok_or(oom),
        None => {
            drop(map);
            map_large(
                Placement::Stripes {
                    stride: 1,
                    nodes: mask,
                },
                len,
                align_pages * page,
            )
        }
    }
}

/// Sets the memory policy and huge-page advice of the fresh range
/// `[start, start + len)`, before it is opened. Stripes are bound with
/// [`bind_marked`], so that [`may_grow_by_remap`] can tell a striped
/// block from a one-node one.
fn apply(placement: Placement, start: NonNull<u8>, len: usize, page: usize) -> Result<(), ()> {
    let mut buf = [0u32; MAX_NODES];
    let bind = mbind;
    let p = start.as_ptr().cast_const();
    match placement {
        Placement::FirstTouch => {
            no_huge_pages(p, len);
            Ok(())
        }
        Placement::Node(n) => bind(p, len, Mode::Bind, &[n.into()]),
        Placement::Bind(mask) => bind(p, len, Mode::Bind, mask.raw(&mut buf)),
        Placement::Interleave(mask) => {
            no_huge_pages(p, len);
            bind(p, len, Mode::Interleave, mask.raw(&mut buf))
        }
        Placement::Stripes { stride, nodes } => {
            no_huge_pages(p, len);
            let run = stride * page;
            let count = nodes.count();
            for (i, off) in (0..len).step_by(run).enumerate() {
                let node = nodes.nth(i % count);
                enforced(bind_marked(p.wrapping_add(off), run.min(len - off), node))?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rset::NodeId;

    /// Nodes 0 and 1 with memory, node 2 with a CPU and no memory.
    fn machine() -> Machine {
        Machine::synthetic(&[&[10, 20, 30], &[20, 10, 30], &[30, 30, 10]], &[2], 1)
    }

    fn mask(nodes: &[u8]) -> NodeMask {
        nodes.iter().fold(NodeMask::default(), |m, &n| m.with(n))
    }

    fn set(nodes: &[u32]) -> rset::NodeSet {
        nodes.iter().map(|&n| NodeId(n)).collect()
    }

    #[test]
    fn policies_resolve_over_the_memory_nodes() {
        let m = machine();
        let both = mask(&[0, 1]);
        assert_eq!(resolve(&m, &Policy::Local, 0), Ok(Placement::Node(0)));
        assert_eq!(
            resolve(&m, &Policy::Local, 2),
            Err(NumaAllocError::LocalWithoutMemory { node: NodeId(2) })
        );
        assert_eq!(resolve(&m, &Policy::Remote, 0), Ok(Placement::Node(1)));
        assert_eq!(resolve(&m, &Policy::Remote, 2), Ok(Placement::Node(0)));
        assert_eq!(
            resolve(&m, &Policy::RemoteTo(NodeId(0)), 0),
            Err(NumaAllocError::RemoteIsLocal { node: NodeId(0) })
        );
        assert_eq!(
            resolve(&m, &Policy::RemoteTo(NodeId(2)), 0),
            Err(NumaAllocError::NoSuchNode { node: NodeId(2) })
        );
        let striped = |k| Policy::Striped {
            stride_pages: crate::Stride::new(k).unwrap(),
        };
        assert_eq!(resolve(&m, &striped(1), 0), Ok(Placement::Interleave(both)));
        assert_eq!(
            resolve(&m, &striped(4), 0),
            Ok(Placement::Stripes {
                stride: 4,
                nodes: both
            })
        );
        assert_eq!(
            resolve(&m, &Policy::Bind(set(&[1])), 0),
            Ok(Placement::Node(1))
        );
        assert_eq!(
            resolve(&m, &Policy::Bind(set(&[0, 1])), 0),
            Ok(Placement::Bind(both))
        );
        assert_eq!(
            resolve(&m, &Policy::Bind(set(&[])), 0),
            Err(NumaAllocError::NoNodes)
        );
        assert_eq!(
            resolve(&m, &Policy::Interleave(set(&[0])), 1),
            Ok(Placement::Node(0))
        );
        assert_eq!(resolve(&m, &Policy::Float, 1), Ok(Placement::FirstTouch));
        let one = Machine::synthetic(&[&[10]], &[], 1);
        assert_eq!(
            resolve(&one, &Policy::Remote, 0),
            Err(NumaAllocError::RemoteNeedsTwoNodes { node: NodeId(0) })
        );
        assert_eq!(resolve(&one, &striped(4), 0), Ok(Placement::Node(0)));
    }

    #[test]
    fn small_blocks_go_to_one_node_of_the_placement() {
        let m = machine();
        let both = mask(&[0, 1]);
        assert_eq!(small_node(&m, Placement::FirstTouch, 0), None);
        assert_eq!(small_node(&m, Placement::Node(1), 0), Some(1));
        assert_eq!(small_node(&m, Placement::Bind(both), 1), Some(1));
        assert_eq!(small_node(&m, Placement::Bind(both), 2), Some(0));
        let turns: Vec<_> = (0..4)
            .filter_map(|_| small_node(&m, Placement::Interleave(both), 0))
            .collect();
        assert!(turns == [0, 1, 0, 1] || turns == [1, 0, 1, 0], "{turns:?}");
    }

    #[test]
    fn large_blocks_too_big_or_of_too_many_stripes_are_refused_before_mapping() {
        let page = page_size();
        let stripes = Placement::Stripes {
            stride: 2,
            nodes: mask(&[0, 1]),
        };
        assert_eq!(
            map_large(stripes, (2 * MAX_STRIPES + 1) * page, 8),
            Err(NumaAllocError::TooManyStripes {
                stripes: MAX_STRIPES + 1,
                max: MAX_STRIPES
            })
        );
        assert_eq!(
            map_large(Placement::Node(0), usize::MAX, 8),
            Err(NumaAllocError::OutOfMemory {
                size: usize::MAX,
                align: 8
            })
        );
    }

    #[test]
    fn placements_print_without_allocating_helpers() {
        let texts = [
            Placement::FirstTouch,
            Placement::Node(1),
            Placement::Bind(mask(&[0, 2])),
            Placement::Interleave(mask(&[0, 1, 2])),
        ]
        .map(|p| p.to_string());
        assert_eq!(texts, ["float", "node:1", "bind:0,2", "interleave:0,1,2"]);
    }
}
