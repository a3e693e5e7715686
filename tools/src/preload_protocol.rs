//! What `rset-run` and `rset-mon` tell the preloaded library (`librset_preload.so`)
//! through the environment, and what the library writes back. Shared by source
//! with the library (`tools/preload`), which includes this file.

use serde::{Deserialize, Serialize};

/// Environment variable holding a [`RunConfig`] as JSON.
pub const RUN_ENV: &str = "RSET_RUN";
/// Environment variable holding a [`MonConfig`] as JSON.
pub const MON_ENV: &str = "RSET_MON";
/// Name of the preloaded library.
pub const LIBRARY: &str = "librset_preload.so";
/// A symbol a program exports (`-Wl,--export-dynamic-symbol=`) to make the library
/// leave it alone: no binding, no policy, no monitor (the rset tools themselves).
pub const PASSIVE_SYMBOL: &str = "rset_preload_passive";

/// One slot of the placement plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// CPU the slot's thread is bound to.
    pub cpu: u32,
    /// That CPU's node.
    pub node: u32,
    /// The slot's memory policy for the allocator (`float`, `local`, `remote:N`,
    /// `striped:K`).
    pub policy: String,
}

/// Placement of an unmodified program's threads and memory (`rset-run`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The plan: thread slot `i` (the main thread is slot 0, then threads in the
    /// order they are created) takes `slots[i mod len]`.
    pub slots: Vec<Slot>,
    /// The RSet's CPUs: where skipped threads may run.
    pub rset_cpus: Vec<u32>,
    /// The RSet's memory nodes: every placed thread's kernel policy is `MPOL_BIND`
    /// over them (nearest first), so stacks and static data stay inside.
    pub rset_nodes: Vec<u32>,
    /// Every memory node of the machine (what `striped:K` stripes over).
    pub memory_nodes: Vec<u32>,
    /// Creation indices (main = 0, first `pthread_create` = 1, ...) of threads that
    /// take no slot and run anywhere in the RSet.
    pub skip: Vec<usize>,
    /// File the library appends [`Record`] lines to (`--report`).
    pub log: Option<String>,
    /// Print each binding to stderr as it happens (`-v`).
    pub verbose: bool,
}

/// Monitoring of an unmodified program (`rset-mon record`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonConfig {
    /// Only the process whose parent has this pid is monitored (the program
    /// `rset-mon` started, not what it forks and execs).
    pub parent: u32,
    /// Where the session file goes.
    pub output: String,
    /// Granularity of the heap blocks' filters, in bytes (a power of two).
    pub granularity: u64,
    /// Heap blocks at least this large are watched.
    pub min_size: u64,
    /// Explicit ranges `(start, size, granularity)`, watched instead of the heap
    /// blocks when not empty... or in addition to them when `heap` is true.
    pub filters: Vec<(u64, u64, u64)>,
    /// Watch heap blocks.
    pub heap: bool,
    /// Refinement: watch only these parts of heap blocks, named by block sequence
    /// number (the n-th watched heap block of the run, from 0): `(seq, offset,
    /// size, granularity)`.
    pub zoom: Vec<(u64, u64, u64, u64)>,
    /// Sampling rounds per second.
    pub rate_hz: u64,
    /// Largest share of the program's time sampling may cost (0: no limit).
    pub max_overhead: f64,
}

/// A line the library appends to [`RunConfig::log`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Record {
    /// A thread bound itself (or, skipped, did not).
    Thread {
        /// Process id.
        pid: u32,
        /// Kernel thread id.
        tid: i32,
        /// Creation index in its process (main = 0).
        created: usize,
        /// The slot it took; `None` when skipped.
        slot: Option<usize>,
        /// The CPU it runs on, read with `getcpu` after binding.
        cpu: u32,
        /// That CPU's node.
        node: u32,
        /// Its memory policy.
        policy: String,
    },
    /// A process ended (`exit`): the memory its allocator placed.
    Exit {
        /// Process id.
        pid: u32,
        /// The program (`/proc/self/exe`).
        exe: String,
        /// Per policy, per node: pages of large heap blocks placed there.
        pages: Vec<PolicyPages>,
        /// Heap blocks the allocator served (small and large).
        blocks: u64,
    },
}

/// Pages placed by one policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyPages {
    /// The policy.
    pub policy: String,
    /// `(node, pages)`; node `None` for first touch (float).
    pub nodes: Vec<(Option<u32>, u64)>,
}
