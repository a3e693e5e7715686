//! Binding threads to RSets: CPU affinity plus a strict memory policy.
//!
//! Binding the calling thread to an RSet sets both halves: its affinity to the
//! RSet's CPUs ([`RSet::effective_cpus`]) and its memory policy to `MPOL_BIND` over
//! the RSet's nodes ([`RSet::effective_nodes`]). A strict bind, unlike hwloc's default
//! (`PREFERRED_MANY`): memory never silently comes from elsewhere; when the nodes are
//! full the allocation fails (the OOM killer acts) rather than spilling over.
//!
//! Linux can set the memory policy of the calling thread only, so binding *another*
//! thread ([`bind_thread_cpus`]) sets its CPUs alone; say so to your users, or bind
//! from inside the thread (as [`crate::thread`] and `rset-run` do).

use std::io;

use crate::rset::RSet;
use crate::set::{CpuId, CpuSet, NodeId, NodeSet};
use crate::sys::affinity::{self, Tid};
use crate::sys::mempolicy::{self, Mode};

/// Why a binding failed, with what was asked for.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The RSet has neither CPUs nor memory.
    #[error("cannot bind to an empty RSet")]
    Empty,
    /// The kernel refused the CPU affinity (CPUs offline, or outside the cpuset
    /// cgroup the thread lives in).
    #[error("cannot run {who} on CPUs {cpus}: {source}")]
    Affinity {
        /// "the calling thread" or "thread TID".
        who: String,
        /// The CPUs asked for.
        cpus: CpuSet,
        /// The kernel's answer.
        source: io::Error,
    },
    /// The kernel refused the memory policy (nodes without memory, or outside the
    /// thread's cpuset `mems`).
    #[error("cannot bind memory to nodes {nodes}: {source}")]
    Memory {
        /// The nodes asked for.
        nodes: NodeSet,
        /// The kernel's answer.
        source: io::Error,
    },
}

/// A thread's memory policy as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryBinding {
    /// No policy of its own: the system default (local allocation).
    Default,
    /// `MPOL_LOCAL`: the node of the CPU that touches the page.
    Local,
    /// `MPOL_BIND`: only these nodes.
    Bind(NodeSet),
    /// `MPOL_INTERLEAVE`: page by page over these nodes.
    Interleave(NodeSet),
    /// `MPOL_PREFERRED`: this node first.
    Preferred(NodeSet),
    /// `MPOL_PREFERRED_MANY`: these nodes first.
    PreferredMany(NodeSet),
}

/// Where a thread may run and allocate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Its CPU affinity.
    pub cpus: CpuSet,
    /// Its memory policy.
    pub memory: MemoryBinding,
}

fn node_set(raw: Vec<u32>) -> NodeSet {
    raw.into_iter().map(NodeId).collect()
}

fn raw_cpus(cpus: &CpuSet) -> Vec<u32> {
    cpus.iter().map(|c| c.0).collect()
}

/// Binds the calling thread to `rset`: it will run only on the RSet's CPUs and
/// allocate only from its nodes (see the module docs for the rules).
///
/// # Errors
/// [`BindError`] with the CPUs or nodes the kernel refused. On a memory-policy
/// error the CPU affinity has already been set.
pub fn bind_current_thread(rset: &RSet) -> Result<(), BindError> {
    if rset.is_empty() {
        return Err(BindError::Empty);
    }
    let cpus = rset.effective_cpus();
    affinity::set_affinity(None, &raw_cpus(&cpus)).map_err(|source| BindError::Affinity {
        who: "the calling thread".into(),
        cpus: cpus.clone(),
        source,
    })?;
    let nodes = rset.effective_nodes();
    let raw: Vec<u32> = nodes.iter().map(|n| n.0).collect();
    mempolicy::set_mempolicy(Mode::Bind, &raw).map_err(|source| BindError::Memory { nodes, source })
}

/// Binds the calling thread to one CPU and a strict memory policy over `nodes`:
/// what a placed thread of a team gets.
///
/// # Errors
/// As [`bind_current_thread`].
pub fn bind_current_thread_to_cpu(cpu: CpuId, nodes: &NodeSet) -> Result<(), BindError> {
    bind_current_thread_to_cpus(&[cpu].into_iter().collect(), nodes)
}

/// Binds the calling thread to the CPUs `cpus` and a strict memory policy over
/// `nodes`: what a team thread pinned to its node gets.
///
/// # Errors
/// As [`bind_current_thread`]; [`BindError::Empty`] for no CPUs.
pub fn bind_current_thread_to_cpus(cpus: &CpuSet, nodes: &NodeSet) -> Result<(), BindError> {
    if cpus.is_empty() {
        return Err(BindError::Empty);
    }
    affinity::set_affinity(None, &raw_cpus(cpus)).map_err(|source| BindError::Affinity {
        who: "the calling thread".into(),
        cpus: cpus.clone(),
        source,
    })?;
    let raw: Vec<u32> = nodes.iter().map(|n| n.0).collect();
    mempolicy::set_mempolicy(Mode::Bind, &raw).map_err(|source| BindError::Memory {
        nodes: nodes.clone(),
        source,
    })
}

/// Restricts another thread of any process to the RSet's CPUs. Its memory policy
/// cannot be set from outside (Linux has no such call): see the module docs.
///
/// # Errors
/// [`BindError::Affinity`] (`ESRCH` for a thread that does not exist, `EPERM` for
/// another user's).
pub fn bind_thread_cpus(tid: Tid, rset: &RSet) -> Result<(), BindError> {
    if rset.is_empty() {
        return Err(BindError::Empty);
    }
    let cpus = rset.effective_cpus();
    affinity::set_affinity(Some(tid), &raw_cpus(&cpus)).map_err(|source| BindError::Affinity {
        who: format!("thread {tid}"),
        cpus,
        source,
    })
}

/// Undoes [`bind_current_thread`]: every CPU of `rset`'s machine, default memory
/// policy.
///
/// # Errors
/// As [`bind_current_thread`].
pub fn unbind_current_thread(rset: &RSet) -> Result<(), BindError> {
    let cpus = rset.topology().cpu_ids().clone();
    affinity::set_affinity(None, &raw_cpus(&cpus)).map_err(|source| BindError::Affinity {
        who: "the calling thread".into(),
        cpus,
        source,
    })?;
    mempolicy::set_mempolicy(Mode::Default, &[]).map_err(|source| BindError::Memory {
        nodes: NodeSet::default(),
        source,
    })
}

/// The calling thread's binding, as the kernel reports it.
///
/// # Errors
/// The kernel's, which should not happen.
pub fn current_binding() -> io::Result<Binding> {
    let cpus = affinity::get_affinity(None)?
        .into_iter()
        .map(CpuId)
        .collect();
    Ok(Binding {
        cpus,
        memory: current_memory_binding()?,
    })
}

/// Another thread's CPU affinity (its memory policy is private to it).
///
/// # Errors
/// `ESRCH` for a thread that does not exist.
pub fn thread_cpus(tid: Tid) -> io::Result<CpuSet> {
    Ok(affinity::get_affinity(Some(tid))?
        .into_iter()
        .map(CpuId)
        .collect())
}

fn current_memory_binding() -> io::Result<MemoryBinding> {
    let (mode, nodes) = mempolicy::get_mempolicy()?;
    let nodes = node_set(nodes);
    Ok(match mode {
        Mode::Bind => MemoryBinding::Bind(nodes),
        Mode::Interleave => MemoryBinding::Interleave(nodes),
        Mode::Preferred => MemoryBinding::Preferred(nodes),
        Mode::PreferredMany => MemoryBinding::PreferredMany(nodes),
        Mode::Local => MemoryBinding::Local,
        _ => MemoryBinding::Default,
    })
}
