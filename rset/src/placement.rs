//! Fill and Round-robin: which CPU, and so which node, each thread of a team
//! gets inside an [`RSet`].
//!
//! Both policies hand out the RSet's CPUs in a fixed order, computed from
//! plain data (no system call):
//!
//! * nodes by increasing id; nodes with no CPU in the RSet (CPU-less nodes,
//!   `mem:` parts) get no threads;
//! * within a node, distinct physical cores before SMT siblings: the first CPU
//!   (in the RSet) of each core, in core order, then the second CPU of each
//!   core, and so on.
//!
//! **Fill** (the paper's policy 1) gives a node as many threads as it has CPUs
//! in the RSet before moving to the next node. **Round-robin** (policy 2) gives
//! thread `i` to node `i mod N` (`N`: the nodes with CPUs in the RSet), on that
//! node's next free CPU; when nodes have unequal numbers of CPUs, a node whose
//! CPUs are all taken leaves the rotation until every CPU is taken.
//!
//! **Wrap-around:** with more threads than CPUs the order starts again, so
//! thread `t` and thread `t + ncpus` (`ncpus`: the RSet's CPU count) always get
//! the same CPU, under both policies.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::rset::RSet;
use crate::set::{CpuId, NodeId};

/// Most threads [`plan`] accepts.
pub const MAX_THREADS: usize = 1 << 20;

/// How threads are spread over the nodes of an RSet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Fill a node's CPUs before moving to the next node (`fill`).
    Fill,
    /// One thread per node in turn (`round-robin`).
    RoundRobin,
}

/// A placement name that is not `fill` or `round-robin`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown placement `{input}` (expected `fill` or `round-robin`)")]
pub struct ParsePlacementError {
    /// The name that was given.
    pub input: String,
}

impl FromStr for Placement {
    type Err = ParsePlacementError;
    fn from_str(s: &str) -> Result<Self, ParsePlacementError> {
        match s {
            "fill" => Ok(Placement::Fill),
            "round-robin" => Ok(Placement::RoundRobin),
            _ => Err(ParsePlacementError {
                input: s.to_owned(),
            }),
        }
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Placement::Fill => "fill",
            Placement::RoundRobin => "round-robin",
        })
    }
}

/// How tightly a placed thread is held once its slot is planned: to the slot's
/// CPU (`cpu`, the default, as likwid-pin and `OMP_PLACES=threads` do), or to every
/// CPU of the RSet on the slot's node (`node`, as `OMP_PLACES=numa_domains`), where
/// the scheduler may move it between CPUs but never off its node, so its node, and
/// the placement of its memory, stay as planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pin {
    /// The slot's one CPU (`cpu`).
    #[default]
    Cpu,
    /// The RSet's CPUs on the slot's node (`node`).
    Node,
}

/// A pin name that is not `cpu` or `node`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown pinning `{input}` (expected `cpu` or `node`)")]
pub struct ParsePinError {
    /// The name that was given.
    pub input: String,
}

impl FromStr for Pin {
    type Err = ParsePinError;
    fn from_str(s: &str) -> Result<Self, ParsePinError> {
        match s {
            "cpu" => Ok(Pin::Cpu),
            "node" => Ok(Pin::Node),
            _ => Err(ParsePinError {
                input: s.to_owned(),
            }),
        }
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pin::Cpu => "cpu",
            Pin::Node => "node",
        })
    }
}

/// Where one thread goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ThreadPlacement {
    /// The thread's index in its team, from 0.
    pub thread: usize,
    /// The CPU it is bound to.
    pub cpu: CpuId,
    /// The node of that CPU.
    pub node: NodeId,
}

/// A CPU and node for every thread of a team, in thread order. Serializes as
/// `[{"thread":0,"cpu":0,"node":0},...]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Plan {
    threads: Vec<ThreadPlacement>,
}

impl Plan {
    /// Every thread's placement; entry `i` is thread `i`.
    pub fn threads(&self) -> &[ThreadPlacement] {
        &self.threads
    }

    /// The placement of thread `thread`, if the team has it.
    pub fn get(&self, thread: usize) -> Option<&ThreadPlacement> {
        self.threads.get(thread)
    }

    /// The number of threads.
    pub fn len(&self) -> usize {
        self.threads.len()
    }

    /// Always false: a plan has at least one thread.
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// The placements in thread order.
    pub fn iter(&self) -> std::slice::Iter<'_, ThreadPlacement> {
        self.threads.iter()
    }
}

impl<'a> IntoIterator for &'a Plan {
    type Item = &'a ThreadPlacement;
    type IntoIter = std::slice::Iter<'a, ThreadPlacement>;
    fn into_iter(self) -> Self::IntoIter {
        self.threads.iter()
    }
}

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The RSet has no CPU to put threads on.
    #[error("the resource set `{rset}` has no CPUs to place threads on")]
    NoCpus {
        /// The RSet, as a spec.
        rset: String,
    },
    /// A team of zero threads.
    #[error("cannot place 0 threads")]
    ZeroThreads,
    /// More threads than [`MAX_THREADS`].
    #[error("cannot place {threads} threads (at most {max})")]
    TooManyThreads {
        /// The number asked for.
        threads: usize,
        /// The limit.
        max: usize,
    },
}

/// Gives each of `threads` threads a CPU of `rset` and its node, following
/// `placement` (rules in the [module docs](self)).
///
/// # Errors
/// [`PlanError`] when the RSet has no CPUs, or `threads` is 0 or above
/// [`MAX_THREADS`].
pub fn plan(rset: &RSet, placement: Placement, threads: usize) -> Result<Plan, PlanError> {
    if threads == 0 {
        return Err(PlanError::ZeroThreads);
    }
    if threads > MAX_THREADS {
        return Err(PlanError::TooManyThreads {
            threads,
            max: MAX_THREADS,
        });
    }
    let order = cpu_order(rset, placement);
    if order.is_empty() {
        return Err(PlanError::NoCpus {
            rset: rset.to_string(),
        });
    }
    let threads = (0..threads)
        .map(|thread| {
            let (cpu, node) = order[thread % order.len()];
            ThreadPlacement { thread, cpu, node }
        })
        .collect();
    Ok(Plan { threads })
}

/// One period of the placement: every CPU of the RSet once, in the order
/// threads get them.
fn cpu_order(rset: &RSet, placement: Placement) -> Vec<(CpuId, NodeId)> {
    let by_node = cpus_by_node(rset);
    match placement {
        Placement::Fill => by_node
            .into_iter()
            .flat_map(|(node, cpus)| cpus.into_iter().map(move |cpu| (cpu, node)))
            .collect(),
        Placement::RoundRobin => {
            let rounds = by_node.iter().map(|(_, cpus)| cpus.len()).max();
            let mut order = Vec::new();
            for round in 0..rounds.unwrap_or(0) {
                for (node, cpus) in &by_node {
                    if let Some(&cpu) = cpus.get(round) {
                        order.push((cpu, *node));
                    }
                }
            }
            order
        }
    }
}

/// The RSet's CPUs grouped by node (ascending), each group with distinct cores
/// before SMT siblings.
fn cpus_by_node(rset: &RSet) -> Vec<(NodeId, Vec<CpuId>)> {
    let topo = rset.topology();
    // (node, rank of the CPU among its core's CPUs in the RSet, core, cpu)
    let mut picks = Vec::new();
    for core in topo.cores() {
        let in_rset = core.pus.iter().filter(|&&cpu| rset.cpus().contains(cpu));
        for (rank, &cpu) in in_rset.enumerate() {
            if let Some(pu) = topo.pu(cpu) {
                picks.push((pu.node, rank, core.index, cpu));
            }
        }
    }
    picks.sort_unstable();
    let mut groups: Vec<(NodeId, Vec<CpuId>)> = Vec::new();
    for (node, _, _, cpu) in picks {
        match groups.last_mut() {
            Some((n, cpus)) if *n == node => cpus.push(cpu),
            _ => groups.push((node, vec![cpu])),
        }
    }
    groups
}
