//! Why the global allocator could not serve an allocation: [`NumaAllocError`].

use rset::NodeId;

/// Why an allocation could not be served. `Copy` and allocation-free, so the
/// allocator can make one from inside itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NumaAllocError {
    /// A node named by the policy has no memory, or is not on this machine (or is
    /// beyond the [`MAX_NODES`](crate::MAX_NODES) the allocator serves).
    #[error("node {node} is not a memory node this allocator can serve")]
    NoSuchNode {
        /// The node.
        node: NodeId,
    },
    /// Local, but the calling thread's node has no memory.
    #[error("Local puts memory on the calling thread's node {node}, which has no memory")]
    LocalWithoutMemory {
        /// The caller's node.
        node: NodeId,
    },
    /// Remote, but no memory node other than the caller's exists.
    #[error(
        "Remote needs a memory node other than the calling thread's node {node}, and \
         the machine has none"
    )]
    RemoteNeedsTwoNodes {
        /// The caller's node.
        node: NodeId,
    },
    /// `RemoteTo(n)` where `n` is the calling thread's own node.
    #[error("remote:{node} is the calling thread's own node")]
    RemoteIsLocal {
        /// The node.
        node: NodeId,
    },
    /// `Bind` or `Interleave` with an empty set.
    #[error("the policy names no memory node")]
    NoNodes,
    /// A striped block would need more stripes (one memory area each) than one
    /// allocation may use.
    #[error(
        "a striped block of {stripes} stripes is more than the {max} one allocation may \
         have: use a larger stride"
    )]
    TooManyStripes {
        /// Stripes the block would need.
        stripes: usize,
        /// The limit.
        max: usize,
    },
    /// The node's arena could not be set up (the kernel refused the mapping or the
    /// `mbind`, or mimalloc the arena).
    #[error("the arena of node {node} could not be set up")]
    ArenaUnavailable {
        /// The node.
        node: NodeId,
    },
    /// No memory for a block of this layout under the policy.
    #[error("out of memory for {size} bytes aligned to {align}")]
    OutOfMemory {
        /// Requested size.
        size: usize,
        /// Requested alignment.
        align: usize,
    },
}
