//! The resource set: some CPUs plus some memory nodes of one topology.

use std::fmt;
use std::ops::{Add, BitAnd, BitOr, Sub};

use serde::Serialize;

use crate::set::{CpuId, CpuSet, NodeId, NodeSet};
use crate::topology::Topology;

/// A set of CPUs plus a set of memory nodes, checked against a [`Topology`].
///
/// A thread bound to an RSet runs only on its CPUs and allocates only from its
/// nodes. The two halves are independent (`cpu:0-3` has CPUs and no memory
/// node, `mem:2` memory and no CPU), and binding reads them through two rules:
///
/// * **CPUs without memory use local memory.** An RSet with CPUs but no memory
///   node allocates from the nodes its CPUs belong to:
///   [`effective_nodes`](RSet::effective_nodes).
/// * **Memory without CPUs runs anywhere.** An RSet with memory nodes but no
///   CPU restricts memory only; its threads may run on every CPU of the machine,
///   as `numactl --membind` does: [`effective_cpus`](RSet::effective_cpus).
///   Placing threads ([`crate::placement::plan`]) still needs CPUs and refuses it.
/// * An RSet with neither CPUs nor memory is empty ([`is_empty`](RSet::is_empty))
///   and cannot be bound.
///
/// The algebra (`|` or `+` union, `&` intersection, `-` difference, also as
/// methods) works on both halves separately. Combining RSets of different
/// topologies reads the right-hand side's ids on the left-hand side's topology,
/// dropping those it does not have; [`RSet::same_topology`] tells whether that
/// happens.
///
/// RSets form a hierarchy ([`RSet::children`]): the global RSet, one per node,
/// one per core, one per PU.
#[derive(Clone)]
pub struct RSet {
    topology: Topology,
    cpus: CpuSet,
    nodes: NodeSet,
}

/// An id given to [`RSet::new`] that the topology does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RSetError {
    /// A CPU the machine does not have.
    #[error("CPU {cpu} is not in this machine (CPUs {available})")]
    UnknownCpu {
        /// The offending CPU.
        cpu: CpuId,
        /// The CPUs the machine has.
        available: CpuSet,
    },
    /// A node the machine does not have.
    #[error("node {node} is not in this machine (nodes {available})")]
    UnknownNode {
        /// The offending node.
        node: NodeId,
        /// The nodes the machine has.
        available: NodeSet,
    },
}

impl RSet {
    /// An RSet of these CPUs and memory nodes.
    ///
    /// # Errors
    /// [`RSetError`] naming the first CPU or node the topology does not have.
    pub fn new(topology: &Topology, cpus: CpuSet, nodes: NodeSet) -> Result<Self, RSetError> {
        if let Some(cpu) = cpus.difference(topology.cpu_ids()).first() {
            return Err(RSetError::UnknownCpu {
                cpu,
                available: topology.cpu_ids().clone(),
            });
        }
        if let Some(node) = nodes.difference(topology.node_ids()).first() {
            return Err(RSetError::UnknownNode {
                node,
                available: topology.node_ids().clone(),
            });
        }
        Ok(Self::from_checked(topology, cpus, nodes))
    }

    /// For callers that already checked the ids against `topology`.
    pub(crate) fn from_checked(topology: &Topology, cpus: CpuSet, nodes: NodeSet) -> Self {
        RSet {
            topology: topology.clone(),
            cpus,
            nodes,
        }
    }

    /// The empty RSet of `topology`.
    pub fn empty(topology: &Topology) -> Self {
        Self::from_checked(topology, CpuSet::new(), NodeSet::new())
    }

    /// The topology the RSet was checked against.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Its CPUs, as given.
    pub fn cpus(&self) -> &CpuSet {
        &self.cpus
    }

    /// Its memory nodes, as given (may be empty; see [`RSet::effective_nodes`]).
    pub fn nodes(&self) -> &NodeSet {
        &self.nodes
    }

    /// The nodes to allocate from: its memory nodes, or, when it has none, the
    /// nodes its CPUs belong to.
    pub fn effective_nodes(&self) -> NodeSet {
        if self.nodes.is_empty() {
            self.topology.nodes_of_cpus(&self.cpus)
        } else {
            self.nodes.clone()
        }
    }

    /// The CPUs to run on: its CPUs, or, when it has none but has memory, every
    /// CPU of the machine. Empty for the empty RSet.
    pub fn effective_cpus(&self) -> CpuSet {
        if self.cpus.is_empty() && !self.nodes.is_empty() {
            self.topology.cpu_ids().clone()
        } else {
            self.cpus.clone()
        }
    }

    /// Truth that it has neither CPUs nor memory nodes.
    pub fn is_empty(&self) -> bool {
        self.cpus.is_empty() && self.nodes.is_empty()
    }

    /// Truth that both halves are subsets of `other`'s (ids compared as
    /// numbers, whatever the topologies).
    pub fn is_subset_of(&self, other: &RSet) -> bool {
        self.cpus.is_subset(&other.cpus) && self.nodes.is_subset(&other.nodes)
    }

    /// Truth that both RSets were checked against equal topologies.
    pub fn same_topology(&self, other: &RSet) -> bool {
        self.topology == other.topology
    }

    /// CPUs and nodes that are in `self` or `other`.
    pub fn union(&self, other: &RSet) -> RSet {
        let (cpus, nodes) = self.comparable(other);
        self.with(self.cpus.union(&cpus), self.nodes.union(&nodes))
    }

    /// CPUs and nodes that are in both.
    pub fn intersection(&self, other: &RSet) -> RSet {
        self.with(
            self.cpus.intersection(&other.cpus),
            self.nodes.intersection(&other.nodes),
        )
    }

    /// CPUs and nodes of `self` that are not in `other`.
    pub fn difference(&self, other: &RSet) -> RSet {
        self.with(
            self.cpus.difference(&other.cpus),
            self.nodes.difference(&other.nodes),
        )
    }

    /// `other`'s sets, restricted to this topology's ids when the topologies
    /// differ.
    fn comparable(&self, other: &RSet) -> (CpuSet, NodeSet) {
        if self.same_topology(other) {
            (other.cpus.clone(), other.nodes.clone())
        } else {
            (
                other.cpus.intersection(self.topology.cpu_ids()),
                other.nodes.intersection(self.topology.node_ids()),
            )
        }
    }

    fn with(&self, cpus: CpuSet, nodes: NodeSet) -> RSet {
        Self::from_checked(&self.topology, cpus, nodes)
    }

    /// The next level of the hierarchy, split at the coarsest level that
    /// divides this RSet:
    ///
    /// 1. if it touches several nodes (through its CPUs or its memory), one
    ///    child per node: that node's CPUs and memory within this RSet;
    /// 2. otherwise, if its CPUs span several cores, one child per core;
    /// 3. otherwise, if it has several CPUs, one child per CPU;
    /// 4. otherwise no children.
    ///
    /// Below levels 2 and 3 a child keeps the RSet's memory nodes. Children are
    /// never empty and always strictly smaller, so walking the tree ends. For
    /// the global RSet this gives one RSet per node, then per core, then per PU.
    pub fn children(&self) -> Vec<RSet> {
        let topo = &self.topology;
        let touched = self.nodes.union(&topo.nodes_of_cpus(&self.cpus));
        if touched.len() > 1 {
            return touched
                .iter()
                .filter_map(|id| topo.node(id))
                .map(|node| {
                    let mut mem = NodeSet::new();
                    if self.nodes.contains(node.id) {
                        mem.insert(node.id);
                    }
                    self.with(self.cpus.intersection(&node.cpus), mem)
                })
                .collect();
        }
        let per_core: Vec<CpuSet> = topo
            .cores()
            .iter()
            .map(|core| {
                core.pus
                    .iter()
                    .copied()
                    .filter(|&c| self.cpus.contains(c))
                    .collect()
            })
            .filter(|cpus: &CpuSet| !cpus.is_empty())
            .collect();
        if per_core.len() > 1 {
            return per_core
                .into_iter()
                .map(|cpus| self.with(cpus, self.nodes.clone()))
                .collect();
        }
        if self.cpus.len() > 1 {
            return self
                .cpus
                .iter()
                .map(|cpu| self.with(std::iter::once(cpu).collect(), self.nodes.clone()))
                .collect();
        }
        Vec::new()
    }
}

impl Topology {
    /// The RSet of every CPU and every node of the machine.
    pub fn global_rset(&self) -> RSet {
        RSet::from_checked(self, self.cpu_ids().clone(), self.node_ids().clone())
    }

    /// The RSet of one node: its CPUs and its memory. `None` if the machine has
    /// no such node.
    pub fn rset_of_node(&self, id: NodeId) -> Option<RSet> {
        let node = self.node(id)?;
        let nodes = std::iter::once(id).collect();
        Some(RSet::from_checked(self, node.cpus.clone(), nodes))
    }
}

impl PartialEq for RSet {
    /// Same CPUs, same memory nodes, equal topologies.
    fn eq(&self, other: &Self) -> bool {
        self.cpus == other.cpus && self.nodes == other.nodes && self.same_topology(other)
    }
}

impl Eq for RSet {}

impl fmt::Debug for RSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RSet({self})")
    }
}

impl fmt::Display for RSet {
    /// A spec that parses back to the same RSet: `all`, `node:LIST`, or
    /// `cpu:LIST+mem:LIST` (either half left out when empty); `(empty)` for the
    /// empty RSet.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let topo = &self.topology;
        if self.is_empty() {
            f.write_str("(empty)")
        } else if &self.cpus == topo.cpu_ids() && &self.nodes == topo.node_ids() {
            f.write_str("all")
        } else if self.cpus.is_empty() {
            write!(f, "mem:{}", self.nodes)
        } else if self.nodes.is_empty() {
            write!(f, "cpu:{}", self.cpus)
        } else if self.cpus == topo.cpus_of_nodes(&self.nodes) {
            write!(f, "node:{}", self.nodes)
        } else {
            write!(f, "cpu:{}+mem:{}", self.cpus, self.nodes)
        }
    }
}

impl Serialize for RSet {
    /// `{"cpus": [..], "nodes": [..]}`: the sets as given, without topology.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("RSet", 2)?;
        st.serialize_field("cpus", &self.cpus)?;
        st.serialize_field("nodes", &self.nodes)?;
        st.end()
    }
}

macro_rules! rset_op {
    ($trait:ident, $method:ident, $via:ident) => {
        impl $trait<&RSet> for &RSet {
            type Output = RSet;
            fn $method(self, rhs: &RSet) -> RSet {
                self.$via(rhs)
            }
        }
        impl $trait for RSet {
            type Output = RSet;
            fn $method(self, rhs: RSet) -> RSet {
                self.$via(&rhs)
            }
        }
    };
}

rset_op!(BitOr, bitor, union);
rset_op!(Add, add, union);
rset_op!(BitAnd, bitand, intersection);
rset_op!(Sub, sub, difference);
