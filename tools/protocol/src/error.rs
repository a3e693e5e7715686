//! What the protocol refuses.

use alloc_policies::Policy;
use rset::{CpuId, NodeId};

/// A configuration that cannot be decoded, or a plan the library cannot follow.
/// Each carries the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Not JSON of the right shape (an unknown policy text lands here too).
    #[error("bad {var}: {message}")]
    Json {
        /// The environment variable.
        var: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// Could not be written as JSON.
    #[error("encoding {var}: {message}")]
    Encode {
        /// The environment variable.
        var: &'static str,
        /// The encoder's message.
        message: String,
    },
    /// The plan has no slots.
    #[error("the plan has no slots")]
    NoSlots,
    /// The RSet has no CPU (skipped threads would have nowhere to run).
    #[error("the RSet has no CPU")]
    NoCpus,
    /// The RSet has no memory node (placed threads bind their memory to them).
    #[error("the RSet has no memory node")]
    NoNodes,
    /// A memory node of the RSet is not one of the machine's.
    #[error("memory node {node} of the RSet is not a memory node of the machine ({machine})")]
    NodeNotOnMachine {
        /// The node.
        node: u32,
        /// The machine's memory nodes (list form).
        machine: String,
    },
    /// A slot's CPU is not a CPU of the RSet.
    #[error("slot {slot}: CPU {cpu} is not in the RSet (its CPUs are {rset})", cpu = cpu.0)]
    CpuOutsideRSet {
        /// The slot.
        slot: usize,
        /// Its CPU.
        cpu: CpuId,
        /// The RSet's CPUs (list form).
        rset: String,
    },
    /// A slot's policy is not one the library applies per thread.
    #[error(
        "slot {slot}: memory policy {policy}: the library takes float, local, remote:N or striped:K"
    )]
    UnsupportedPolicy {
        /// The slot.
        slot: usize,
        /// Its policy.
        policy: Policy,
    },
    /// `remote:N` with N not a memory node of the RSet.
    #[error("slot {slot}: remote:{node} is not a memory node of the RSet ({rset})", node = node.0)]
    RemoteOutsideRSet {
        /// The slot.
        slot: usize,
        /// The node.
        node: NodeId,
        /// The RSet's memory nodes (list form).
        rset: String,
    },
    /// `remote:N` with N the slot's own node.
    #[error("slot {slot}: remote:{node} is the node of the slot's own CPU", node = node.0)]
    RemoteIsLocal {
        /// The slot.
        slot: usize,
        /// The node.
        node: NodeId,
    },
    /// `striped:K` stripes over every memory node of the machine, which the RSet's
    /// memory binding would not allow.
    #[error("{policy} stripes over every memory node ({machine}), but the RSet has only {rset}")]
    StripedPartial {
        /// The policy.
        policy: Policy,
        /// The machine's memory nodes (list form).
        machine: String,
        /// The RSet's memory nodes (list form).
        rset: String,
    },
    /// The skip list is not in increasing order without repeats.
    #[error("skip list {list}: creation indices must be increasing, each once")]
    SkipUnordered {
        /// The list as given.
        list: String,
    },
}
