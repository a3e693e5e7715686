//! The memory budget: the pages a layout puts on each node, against what each node
//! can still give ([`crate::sys::meminfo`]), checked before a region is populated
//! so that a fault under `MPOL_BIND` on a full node (which does not fail: the
//! kernel reclaims, then runs the OOM killer) is refused as
//! [`RegionError::NodeFull`] instead.

use std::collections::BTreeMap;

use rset::sys::mempolicy::PageStatus;
use rset::{NodeId, NodeSet};

use super::error::RegionError;
use crate::policy::Layout;
use crate::sys::meminfo;
use crate::sys::mman;

/// What a layout needs from each node, in pages.
pub(super) enum Need {
    /// Nothing: the layout places no page itself (Float).
    Nothing,
    /// So many pages on each node.
    PerNode(BTreeMap<NodeId, u64>),
    /// So many pages on the nodes of a set, together (`MPOL_BIND`).
    Pooled(NodeSet, u64),
}

/// Pages the layout puts on each node, for `pages` pages of which those whose
/// `status` is already right need nothing.
pub(super) fn need(layout: &Layout, pages: usize, status: Option<&[PageStatus]>) -> Need {
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
pub(super) fn check_memory(need: Need) -> Result<(), RegionError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::mechanism::stripes;

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
}
