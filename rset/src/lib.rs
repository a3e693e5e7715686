//! Resource sets for NUMA machines.
//!
//! An [RSet] in the sense of the IBM ccNUMA paper is a set of CPUs plus a set of
//! memory nodes: a thread bound to it runs only on its CPUs and allocates only from
//! its nodes. This crate builds them from the real topology and binds threads to them.
//!
//! The raw system calls live in [`sys`], one module per syscall family; the rest of
//! the crate is safe code.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod bind;
pub mod list;
pub mod placement;
pub mod rset;
pub mod set;
pub mod spec;
pub mod sys;
pub mod thread;
pub mod topology;

pub use bind::{BindError, Binding, MemoryBinding};
pub use placement::{Pin, Placement, Plan, PlanError, ThreadPlacement, plan};
pub use rset::{RSet, RSetError};
pub use set::{CpuId, CpuSet, IdSet, NodeId, NodeSet};
pub use spec::SpecError;
pub use thread::{Ctx, Team, TeamBuilder, TeamError};
pub use topology::{Topology, TopologyError};
