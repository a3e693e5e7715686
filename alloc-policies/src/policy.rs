//! The memory policies of the paper and the rules that turn one into a concrete
//! [`Layout`] for a given RSet and allocating thread.
//!
//! | policy | where pages go |
//! | --- | --- |
//! | `Float` | wherever the OS puts them (first touch); no policy is set |
//! | `Local` | the node of the CPU the allocating thread runs on |
//! | `Remote` | the nearest *other* node of the RSet (by distance from the caller's node, ties to the lowest id) |
//! | `RemoteTo(n)` | node `n`, which must be in the RSet and not the caller's |
//! | `Striped { stride_pages: k }` | page `p` on node `(p / k) mod N` of the RSet's nodes in id order |
//! | `Bind(nodes)` | any of `nodes` (`MPOL_BIND`), nearest first |
//! | `Interleave(nodes)` | page by page over `nodes` (`MPOL_INTERLEAVE`) |
//!
//! Nodes always come from the RSet's memory ([`rset::RSet::effective_nodes`]); a
//! node outside it is an error, never silently ignored.

use std::fmt;
use std::num::NonZeroUsize;
use std::str::FromStr;

use rset::{NodeId, NodeSet, RSet};

/// Pages per stripe: never zero (`Stride::new(0)` is an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Stride(NonZeroUsize);

impl Stride {
    /// One page per node in turn: what the kernel's interleave does.
    pub const ONE: Stride = Stride(NonZeroUsize::MIN);

    /// A stride of `pages` pages.
    ///
    /// # Errors
    /// [`PolicyError::ZeroStride`] for 0.
    pub fn new(pages: usize) -> Result<Stride, PolicyError> {
        NonZeroUsize::new(pages)
            .map(Stride)
            .ok_or(PolicyError::ZeroStride)
    }

    /// The stride in pages.
    pub fn pages(self) -> usize {
        self.0.get()
    }
}

impl fmt::Display for Stride {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a region's (or an allocation's) memory comes from. Always relative to an
/// RSet; see the module docs for the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// The OS default: no policy, first touch decides.
    Float,
    /// The node of the allocating thread.
    Local,
    /// The nearest node of the RSet other than the allocating thread's.
    Remote,
    /// This node, which must not be the allocating thread's.
    RemoteTo(NodeId),
    /// Runs of `stride_pages` pages on the RSet's nodes in turn.
    Striped {
        /// Pages per run.
        stride_pages: Stride,
    },
    /// Only these nodes (nearest first).
    Bind(NodeSet),
    /// Page by page over these nodes.
    Interleave(NodeSet),
}

impl Default for Policy {
    /// [`Policy::Local`], the paper's affinity default.
    fn default() -> Self {
        Policy::Local
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::Float => f.write_str("float"),
            Policy::Local => f.write_str("local"),
            Policy::Remote => f.write_str("remote"),
            Policy::RemoteTo(n) => write!(f, "remote:{n}"),
            Policy::Striped { stride_pages } => write!(f, "striped:{stride_pages}"),
            Policy::Bind(nodes) => write!(f, "bind:{nodes}"),
            Policy::Interleave(nodes) => write!(f, "interleave:{nodes}"),
        }
    }
}

impl FromStr for Policy {
    type Err = PolicyError;

    /// `float`, `local`, `remote`, `remote:N`, `striped:K`, `bind:LIST`,
    /// `interleave:LIST` (LIST as in numactl: `0-2,5`).
    fn from_str(s: &str) -> Result<Policy, PolicyError> {
        let bad = || PolicyError::Syntax {
            input: s.to_owned(),
        };
        let nodes = |list: &str| -> Result<NodeSet, PolicyError> {
            let ids = rset::list::parse_list(list).map_err(|_| bad())?;
            Ok(ids.into_iter().map(NodeId).collect())
        };
        let (word, arg) = match s.split_once(':') {
            Some((w, a)) => (w, Some(a)),
            None => (s, None),
        };
        match (word, arg) {
            ("float", None) => Ok(Policy::Float),
            ("local", None) => Ok(Policy::Local),
            ("remote", None) => Ok(Policy::Remote),
            ("remote", Some(n)) => n
                .trim()
                .parse::<u32>()
                .map(|n| Policy::RemoteTo(NodeId(n)))
                .map_err(|_| bad()),
            ("striped", Some(k)) => {
                let k: usize = k.trim().parse().map_err(|_| bad())?;
                Ok(Policy::Striped {
                    stride_pages: Stride::new(k)?,
                })
            }
            ("bind", Some(list)) => Ok(Policy::Bind(nodes(list)?)),
            ("interleave", Some(list)) => Ok(Policy::Interleave(nodes(list)?)),
            _ => Err(bad()),
        }
    }
}

/// A policy that cannot be applied. Carries the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// `striped:0`.
    #[error("a stride of 0 pages: give at least 1")]
    ZeroStride,
    /// A policy string that is not one of the forms.
    #[error(
        "unknown memory policy `{input}` (expected float, local, remote, remote:N, \
         striped:K, bind:LIST or interleave:LIST)"
    )]
    Syntax {
        /// What was given.
        input: String,
    },
    /// A node named by the policy is not memory of the RSet.
    #[error("node {node} is not in the resource set (its memory nodes are {rset_nodes})")]
    NodeOutsideRSet {
        /// The offending node.
        node: NodeId,
        /// The RSet's memory nodes.
        rset_nodes: NodeSet,
    },
    /// `bind:` or `interleave:` with no node (or an RSet without memory).
    #[error("the policy names no memory node")]
    NoNodes,
    /// Local, but the allocating thread's node is not memory of the RSet.
    #[error(
        "Local puts memory on the allocating thread's node {node}, which is not in the \
         resource set (its memory nodes are {rset_nodes})"
    )]
    LocalOutsideRSet {
        /// The caller's node.
        node: NodeId,
        /// The RSet's memory nodes.
        rset_nodes: NodeSet,
    },
    /// Local over an RSet whose memory is only on nodes without CPUs.
    #[error(
        "Local needs memory on the allocating thread's node, but the resource set's \
         memory is only on CPU-less node(s) {nodes}, where no thread runs; use Bind or Remote"
    )]
    LocalCpuLess {
        /// The RSet's (CPU-less) memory nodes.
        nodes: NodeSet,
    },
    /// Remote over an RSet with no node other than the caller's.
    #[error(
        "Remote needs a node other than the allocating thread's node {node}, and the \
         resource set has only {rset_nodes}"
    )]
    RemoteNeedsTwoNodes {
        /// The caller's node.
        node: NodeId,
        /// The RSet's memory nodes.
        rset_nodes: NodeSet,
    },
    /// `remote:N` where N is the caller's own node.
    #[error("remote:{node} is the allocating thread's own node")]
    RemoteIsLocal {
        /// The node.
        node: NodeId,
    },
}

/// A policy resolved for one RSet and one allocating thread: exactly where each page
/// goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// No policy (Float).
    Default,
    /// Every page on this node (Local, Remote, a one-node Bind).
    Node(NodeId),
    /// Any of these nodes (`MPOL_BIND`), nearest to the toucher first.
    Bind(NodeSet),
    /// Page `p` on `nodes[p mod N]`, counted from the region's first page.
    Interleave(Vec<NodeId>),
    /// Page `p` on `nodes[(p / stride) mod N]`.
    Stripes {
        /// Pages per run.
        stride: Stride,
        /// The nodes in turn.
        nodes: Vec<NodeId>,
    },
}

impl Layout {
    /// The node page `page` (counted from the region's start) must be on, when the
    /// layout fixes one; `None` for `Default` and a many-node `Bind`.
    pub fn node_of_page(&self, page: usize) -> Option<NodeId> {
        match self {
            Layout::Default | Layout::Bind(_) => None,
            Layout::Node(n) => Some(*n),
            Layout::Interleave(nodes) => Some(nodes[page % nodes.len()]),
            Layout::Stripes { stride, nodes } => Some(nodes[(page / stride.pages()) % nodes.len()]),
        }
    }

    /// Every node the layout may use (empty for `Default`).
    pub fn nodes(&self) -> NodeSet {
        match self {
            Layout::Default => NodeSet::default(),
            Layout::Node(n) => [*n].into_iter().collect(),
            Layout::Bind(s) => s.clone(),
            Layout::Interleave(v) | Layout::Stripes { nodes: v, .. } => v.iter().copied().collect(),
        }
    }
}

impl Policy {
    /// Resolves the policy for an allocating thread on node `caller` (see the module
    /// docs for the rules). Pure: the tests call it with any node.
    ///
    /// # Errors
    /// [`PolicyError`] naming the offending node or RSet.
    pub fn resolve(&self, rset: &RSet, caller: NodeId) -> Result<Layout, PolicyError> {
        let rset_nodes = rset.effective_nodes();
        let inside = |nodes: &NodeSet| -> Result<(), PolicyError> {
            if nodes.is_empty() {
                return Err(PolicyError::NoNodes);
            }
            match nodes.difference(&rset_nodes).first() {
                Some(node) => Err(PolicyError::NodeOutsideRSet {
                    node,
                    rset_nodes: rset_nodes.clone(),
                }),
                None => Ok(()),
            }
        };
        match self {
            Policy::Float => Ok(Layout::Default),
            Policy::Local => {
                if rset_nodes.contains(caller) {
                    return Ok(Layout::Node(caller));
                }
                let topo = rset.topology();
                let all_cpuless = !rset_nodes.is_empty()
                    && rset_nodes
                        .iter()
                        .all(|n| topo.node(n).is_some_and(|node| node.cpu_less));
                if all_cpuless {
                    Err(PolicyError::LocalCpuLess { nodes: rset_nodes })
                } else {
                    Err(PolicyError::LocalOutsideRSet {
                        node: caller,
                        rset_nodes,
                    })
                }
            }
            Policy::Remote => {
                let topo = rset.topology();
                rset_nodes
                    .iter()
                    .filter(|&n| n != caller)
                    .min_by_key(|&n| (topo.distance(caller, n).unwrap_or(u64::MAX), n))
                    .map(Layout::Node)
                    .ok_or(PolicyError::RemoteNeedsTwoNodes {
                        node: caller,
                        rset_nodes: rset_nodes.clone(),
                    })
            }
            Policy::RemoteTo(node) => {
                if *node == caller {
                    return Err(PolicyError::RemoteIsLocal { node: *node });
                }
                inside(&[*node].into_iter().collect())?;
                Ok(Layout::Node(*node))
            }
            Policy::Striped { stride_pages } => {
                if rset_nodes.is_empty() {
                    return Err(PolicyError::NoNodes);
                }
                Ok(Layout::Stripes {
                    stride: *stride_pages,
                    nodes: rset_nodes.iter().collect(),
                })
            }
            Policy::Bind(nodes) => {
                inside(nodes)?;
                Ok(match nodes.as_slice() {
                    [one] => Layout::Node(*one),
                    _ => Layout::Bind(nodes.clone()),
                })
            }
            Policy::Interleave(nodes) => {
                inside(nodes)?;
                Ok(Layout::Interleave(nodes.iter().collect()))
            }
        }
    }

    /// Resolves the policy for the calling thread, on the node it runs on now.
    ///
    /// # Errors
    /// As [`Policy::resolve`].
    pub fn resolve_here(&self, rset: &RSet) -> Result<Layout, PolicyError> {
        self.resolve(rset, current_node())
    }
}

/// The node of the CPU the calling thread runs on now (node 0 if the kernel will
/// not say).
pub fn current_node() -> NodeId {
    NodeId(rset::sys::affinity::getcpu().map_or(0, |(_, node)| node))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rset::Topology;

    fn topo() -> Topology {
        Topology::from_synthetic("pack:2 numa:2 core:2 pu:1").unwrap()
    }

    fn rset(spec: &str) -> RSet {
        RSet::parse(spec, &topo()).unwrap()
    }

    #[test]
    fn policies_parse_and_print_back() {
        for s in [
            "float",
            "local",
            "remote",
            "remote:2",
            "striped:4",
            "bind:0-1",
            "interleave:0,2",
        ] {
            let p: Policy = s.parse().unwrap();
            assert_eq!(p.to_string(), s);
        }
    }

    #[test]
    fn bad_policy_strings_are_named() {
        assert_eq!("striped:0".parse::<Policy>(), Err(PolicyError::ZeroStride));
        assert_eq!(
            "stripped:4".parse::<Policy>().unwrap_err().to_string(),
            "unknown memory policy `stripped:4` (expected float, local, remote, remote:N, \
             striped:K, bind:LIST or interleave:LIST)"
        );
        assert!("striped:".parse::<Policy>().is_err());
        assert!("bind:x".parse::<Policy>().is_err());
        assert!("local:1".parse::<Policy>().is_err());
    }

    #[test]
    fn stride_zero_is_unrepresentable() {
        assert_eq!(Stride::new(0), Err(PolicyError::ZeroStride));
        assert_eq!(Stride::new(3).unwrap().pages(), 3);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // hwloc builds the synthetic topology
    fn local_is_the_callers_node() {
        assert_eq!(
            Policy::Local.resolve(&rset("all"), NodeId(2)),
            Ok(Layout::Node(NodeId(2)))
        );
        assert_eq!(
            Policy::Local.resolve(&rset("node:1"), NodeId(0)),
            Err(PolicyError::LocalOutsideRSet {
                node: NodeId(0),
                rset_nodes: [NodeId(1)].into_iter().collect()
            })
        );
    }

    #[test]
    #[cfg_attr(miri, ignore)] // hwloc builds the synthetic topology
    fn remote_is_the_nearest_other_node_lowest_id_on_ties() {
        assert_eq!(
            Policy::Remote.resolve(&rset("all"), NodeId(0)),
            Ok(Layout::Node(NodeId(1)))
        );
        assert_eq!(
            Policy::Remote.resolve(&rset("all"), NodeId(1)),
            Ok(Layout::Node(NodeId(0)))
        );
        assert_eq!(
            Policy::Remote.resolve(&rset("node:2-3"), NodeId(3)),
            Ok(Layout::Node(NodeId(2)))
        );
        let e = Policy::Remote
            .resolve(&rset("node:1"), NodeId(1))
            .unwrap_err();
        assert!(matches!(e, PolicyError::RemoteNeedsTwoNodes { .. }), "{e}");
        assert_eq!(
            Policy::RemoteTo(NodeId(1)).resolve(&rset("all"), NodeId(1)),
            Err(PolicyError::RemoteIsLocal { node: NodeId(1) })
        );
    }

    #[test]
    fn remote_prefers_the_nearest_by_distance() {
        use rset::CpuId;
        use rset::topology::NodeLayout;
        let layout = (0..3)
            .map(|n| NodeLayout {
                id: NodeId(n),
                memory_bytes: 1 << 30,
                cores: vec![vec![CpuId(n)]],
            })
            .collect();
        let d = vec![vec![10, 30, 20], vec![30, 10, 20], vec![20, 20, 10]];
        let t = Topology::from_layout(layout, Some(d)).unwrap();
        let all = t.global_rset();
        assert_eq!(
            Policy::Remote.resolve(&all, NodeId(0)),
            Ok(Layout::Node(NodeId(2)))
        );
    }

    #[test]
    #[cfg_attr(miri, ignore)] // hwloc builds the synthetic topology
    fn striped_pages_follow_the_stride() {
        let l = Policy::Striped {
            stride_pages: Stride::new(3).unwrap(),
        }
        .resolve(&rset("node:1-3"), NodeId(0))
        .unwrap();
        let nodes: Vec<u32> = (0..12).map(|p| l.node_of_page(p).unwrap().0).collect();
        assert_eq!(nodes, vec![1, 1, 1, 2, 2, 2, 3, 3, 3, 1, 1, 1]);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // hwloc builds the synthetic topology
    fn nodes_outside_the_rset_are_refused() {
        let e = Policy::Bind([NodeId(3)].into_iter().collect())
            .resolve(&rset("node:0-1"), NodeId(0))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "node 3 is not in the resource set (its memory nodes are 0-1)"
        );
        assert_eq!(
            Policy::Interleave(NodeSet::default()).resolve(&rset("all"), NodeId(0)),
            Err(PolicyError::NoNodes)
        );
    }

    /// Four nodes (node 3 CPU-less), built by hand (no hwloc, so Miri runs it).
    fn hand_made() -> Topology {
        use rset::CpuId;
        use rset::topology::NodeLayout;
        let layout = (0..4)
            .map(|n| NodeLayout {
                id: NodeId(n),
                memory_bytes: 1 << 30,
                cores: if n < 3 { vec![vec![CpuId(n)]] } else { vec![] },
            })
            .collect();
        Topology::from_layout(layout, None).unwrap()
    }

    #[test]
    fn every_policy_resolves_over_a_hand_made_machine() {
        let all = hand_made().global_rset();
        let set = |ids: &[u32]| ids.iter().map(|&n| NodeId(n)).collect::<NodeSet>();
        let stripes = Policy::Striped {
            stride_pages: Stride::new(2).unwrap(),
        }
        .resolve(&all, NodeId(1))
        .unwrap();
        let pages: Vec<u32> = (0..10)
            .map(|p| stripes.node_of_page(p).unwrap().0)
            .collect();
        assert_eq!(pages, vec![0, 0, 1, 1, 2, 2, 3, 3, 0, 0]);
        assert_eq!(stripes.nodes(), set(&[0, 1, 2, 3]));
        let inter = Policy::Interleave(set(&[1, 3]))
            .resolve(&all, NodeId(0))
            .unwrap();
        assert_eq!(
            (0..4).map(|p| inter.node_of_page(p)).collect::<Vec<_>>(),
            [1, 3, 1, 3].map(|n| Some(NodeId(n)))
        );
        assert_eq!(
            Policy::Bind(set(&[2])).resolve(&all, NodeId(0)),
            Ok(Layout::Node(NodeId(2)))
        );
        let bind = Policy::Bind(set(&[0, 2])).resolve(&all, NodeId(0)).unwrap();
        assert_eq!(bind, Layout::Bind(set(&[0, 2])));
        assert_eq!(bind.node_of_page(5), None);
        assert_eq!(Policy::Float.resolve(&all, NodeId(0)), Ok(Layout::Default));
        assert_eq!(Layout::Default.nodes(), NodeSet::default());
        assert_eq!(
            Policy::Local.resolve(&all, NodeId(1)),
            Ok(Layout::Node(NodeId(1)))
        );
        assert_eq!(
            Policy::RemoteTo(NodeId(3)).resolve(&all, NodeId(0)),
            Ok(Layout::Node(NodeId(3)))
        );
        assert!(matches!(
            Policy::RemoteTo(NodeId(7)).resolve(&all, NodeId(0)),
            Err(PolicyError::NodeOutsideRSet {
                node: NodeId(7),
                ..
            })
        ));
    }
}
