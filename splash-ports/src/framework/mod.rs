//! The SPLASH-2 run-time on RSets: placed threads, barriers, global sums, and shared
//! arrays laid out as the paper's "orig" or "reorg".
//!
//! The SPLASH-2 programs were written against the PARMACS macros (`CREATE`,
//! `BARRIER`, `LOCK`, `G_MALLOC`, ...). Here:
//!
//! | PARMACS | here |
//! | --- | --- |
//! | `CREATE(proc)` x P, `WAIT_FOR_END` | [`Machine::run`]: `f` once on each of P placed threads |
//! | process id (`Global->id++` under a lock) | [`Proc::id`] (thread `i` is always on the same node) |
//! | `BARRIER(bar, P)` | [`Proc::barrier`] (spins briefly, then sleeps; ends the phase's views of shared arrays) |
//! | `LOCK`/`UNLOCK` around a global sum | [`Proc::sum_f64`], [`Proc::max_f64`]: in thread order, so results do not depend on timing; `std::sync::Mutex` for other critical sections |
//! | `G_MALLOC(bytes)` | [`Machine::shared`]: a labelled, placed [`Shared`] array, used through safe phase views ([`shared`]) |
//! | `CLOCK(t)` | `std::time::Instant` |
//!
//! # Layouts
//!
//! Every shared array is an [`alloc_policies::Region`] with a label (`fft.x`,
//! `ocean.psi`, ...), so the allocation registry, and through it the monitor's
//! reports, name it.
//!
//! - [`DataLayout::Orig`], the paper's base case: every array striped one page per
//!   node over the RSet's memory nodes (`Policy::Striped { stride_pages: 1 }`):
//!   page `p` on the `(p mod N)`-th node in id order, whoever uses it.
//! - [`DataLayout::Reorg`]: each element range of the array's [`Partition`] on the
//!   node of the thread that owns it, page by page. A page holding elements of two
//!   or more owners goes to the node of the lowest-numbered of those threads;
//!   pages holding no owned element (padding) go with the nearest owned page
//!   before them (or after, at the start). Mechanism: the region is mapped without
//!   a policy and not populated; each run of consecutive pages bound for one node
//!   gets one `mbind(MPOL_BIND, {node})` (so the kernel makes one mapping per run,
//!   not per page); then every page is faulted in, before any thread touches it.
//!   Placement therefore never depends on who touches first, and it is checked at
//!   once ([`Shared::locate`]). A thread whose node is not among the RSet's memory
//!   nodes gets the nearest of them (by distance, ties to the lowest id).
//!
//! Both layouts fault every page in before [`Machine::shared`] returns, by the
//! team in parallel (each thread an even share of the pages, as the C programs'
//! workers fault in their parts), so no fault falls in a timed phase.
//!
//! # Monitoring
//!
//! With [`RunConfig::monitor`] set, the first [`Machine::run`] starts a
//! [`monitor::session::Session`] with one filter per shared array (named by its
//! label; page granules unless [`RunConfig::monitor_granularity`] says otherwise)
//! and the registry's labels; [`Machine::finish`] stops it and writes the session
//! file, which `rset-mon report FILE` turns into the paper's table of data areas
//! with references from each node. Arrays made after the first `run` are not
//! watched.
//!
//! Successive refinement ([`RunConfig::monitor_zoom`]): the run watches only the
//! hottest granules of a previous run's session (those with the most remote
//! references), at a finer granularity (cache lines unless said otherwise), found
//! in this run's arrays by label and offset ([`crate::refine`]). A run at finer than
//! page granularity also writes `FILE.lines`: the report and a verdict for every
//! touched line (its dominant node; lines written from two or more nodes flagged).
//!
//! # Modules
//!
//! - `config`: the common flags ([`RunConfig`], [`DataLayout`], [`Zoom`]) and the
//!   monitor's sampling options;
//! - [`args`]: the programs' own SPLASH flags, read with clap as `getopt` read them;
//! - `error`: [`SplashError`];
//! - `partition`: [`Partition`], who owns which elements;
//! - `machine`: [`Machine`], the placed team, its arrays and its runs;
//! - `recording`: the `--monitor` session of a machine's runs;
//! - `sync`: [`Proc`], the barrier that ends a phase, global sums;
//! - [`shared`]: the shared arrays and their safe phase views, the crate's one
//!   module with unsafe code (its proof in one `# Safety` section).
//!
//! ```no_run
//! use splash_ports::framework::{Machine, Partition, RunConfig};
//! let cfg = RunConfig::default();
//! let m = Machine::new(&cfg, 4)?;
//! let n = 1 << 20;
//! let x = m.shared::<f64>("demo.x", n, &Partition::even(n, 4))?;
//! m.run(|p| {
//!     let id = p.id() as f64;
//!     // This thread's range of the partition, for this phase.
//!     x.own_mut(p).fill(id);
//!     p.barrier();
//! })?;
//! m.finish()?;
//! # Ok::<(), splash_ports::framework::SplashError>(())
//! ```

pub mod args;
mod config;
mod error;
mod machine;
mod partition;
mod recording;
pub mod shared;
mod sync;

pub use args::parse_flags;
pub use bytemuck::Pod;
pub use config::{DataLayout, MonitorOptions, RunConfig, Zoom, set_monitor_options};
pub use error::SplashError;
pub use machine::Machine;
pub use partition::{Partition, PartitionError};
pub use recording::lines_path;
pub use shared::{Cell64, Shared};
pub use sync::Proc;

/// SPLASH `CLOCK`: microseconds since the Unix epoch.
pub fn clock_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_parse_and_print() {
        assert_eq!("orig".parse::<DataLayout>().unwrap(), DataLayout::Orig);
        assert_eq!("reorg".parse::<DataLayout>().unwrap(), DataLayout::Reorg);
        assert_eq!(DataLayout::Reorg.to_string(), "reorg");
        let e = "striped".parse::<DataLayout>().unwrap_err();
        assert!(e.to_string().contains("`striped`"), "{e}");
    }
}
