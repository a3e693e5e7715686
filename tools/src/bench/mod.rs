//! Memory latency and bandwidth kernels for `rset-bench`: the synthetic tests of the
//! IBM ccNUMA paper (section 6, Fig. 5-7) on resource sets and placement policies.
//! The command that drives them (parsing, progress, tables, JSON, plots) is
//! [`cmd`].
//!
//! # Latency: a dependent pointer chase ([`chase`])
//!
//! The buffer is cut into 64-byte lines; the first word of each line holds the index
//! of the next line to visit. The order is one random cycle through *every* line
//! (Sattolo's algorithm), so:
//!
//! - each load's address is the value of the previous load: the core cannot issue
//!   the next load before the last one returns, and no two misses overlap;
//! - consecutive addresses have no stride, so the hardware prefetchers (next-line,
//!   stride, stream) have nothing to predict; one line is used per load, so each
//!   load past the caches is a full memory access;
//! - the cycle covers the whole buffer, so its size alone decides which cache level
//!   (or memory) serves the loads, and a sweep of sizes shows the cache steps.
//!
//! With 4 KiB pages a random walk over a large buffer also misses the TLB on almost
//! every load, so memory latency includes a page walk. With transparent huge pages
//! ([`HugePages::On`], `madvise(MADV_HUGEPAGE)` before the first touch) the TLB covers
//! far more memory, and the difference between the two runs is the TLB cost.
//!
//! # Bandwidth: STREAM-style kernels ([`stream`])
//!
//! Each team thread, bound to its planned CPU, owns its buffer (placed by the
//! policy, built on that thread, so `local` means the thread's node). Bytes are
//! counted as STREAM and likwid-bench count them: `read` counts the bytes read,
//! `write` the bytes written, `copy` the bytes read plus the bytes written (twice
//! the bytes copied). Write-allocate traffic (a store that misses first reads its
//! line) is not counted, as in both. Threads start each repetition together (a
//! barrier); a repetition's time runs from the earliest start to the latest end,
//! and the rate is all threads' bytes over that time.

pub mod cache;
pub mod chase;
pub mod cmd;
pub mod huge;
pub mod machine;
pub mod plot;
pub mod run;
pub mod size;
pub mod stream;

pub use chase::{ChaseSample, chase_latency};
pub use huge::HugePages;
pub use machine::Machine;
pub use run::{BwPoint, BwSpec, LatPoint, LatSpec, MemSpec, RunError};
pub use size::{format_size, parse_size};
pub use stream::Op;
