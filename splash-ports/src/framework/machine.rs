//! [`Machine`]: a placed team of threads over an RSet, the shared arrays of one
//! program run (placed by the layout), and its runs.

use std::fmt;
use std::sync::Mutex;

use alloc_policies::registry::{self, InlineStr};
use alloc_policies::{Policy, Region, RegionError};
use bytemuck::Pod;
use rset::sys::mempolicy::{self, MbindFlags, Mode};
use rset::{NodeId, Plan, RSet, Team, Topology};

use super::config::{DataLayout, RunConfig};
use super::error::SplashError;
use super::partition::Partition;
use super::recording::{Recorder, Watched};
use super::shared::Shared;
use super::sync::{Domain, Proc};

/// A placed team of threads over an RSet, and the shared arrays of one program run.
pub struct Machine {
    rset: RSet,
    team: Team,
    layout: DataLayout,
    recorder: Recorder,
    arrays: Mutex<Vec<Watched>>,
    /// The team's runs and the arrays they may view.
    domain: Domain,
    /// Threads may spin at barriers only if each has a CPU of its own.
    spin: bool,
}

impl fmt::Debug for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Machine")
            .field("threads", &self.team.len())
            .field("rset", &self.rset)
            .field("layout", &self.layout)
            .field("monitor", &self.recorder.path)
            .finish()
    }
}

impl Machine {
    /// Reads the topology, resolves `cfg.rset` and plans `threads` threads on it by
    /// `cfg.placement`. More threads than CPUs share CPUs (thread `t` and
    /// `t + ncpus` on one CPU).
    ///
    /// With [`RunConfig::monitor_zoom`], the previous run's session is read and
    /// planned here, so that a bad one is refused before the program runs.
    ///
    /// # Errors
    /// [`SplashError::Topology`], [`SplashError::Rset`], [`SplashError::Team`]
    /// (no CPUs in the RSet, zero threads); [`SplashError::Usage`] for a zoom
    /// without `--monitor`, [`SplashError::SessionFile`] and [`SplashError::Zoom`]
    /// for a previous session that cannot be read or zoomed into.
    pub fn new(cfg: &RunConfig, threads: usize) -> Result<Machine, SplashError> {
        let recorder = Recorder::new(cfg)?;
        let topo = Topology::from_system().map_err(|e| SplashError::Topology(e.to_string()))?;
        let rset = RSet::parse(&cfg.rset, &topo).map_err(|e| SplashError::Rset {
            spec: cfg.rset.clone(),
            reason: e.to_string(),
        })?;
        if rset.effective_nodes().is_empty() {
            return Err(SplashError::Rset {
                spec: cfg.rset.clone(),
                reason: "the RSet has no memory node to place the arrays on".into(),
            });
        }
        let team = rset
            .team()
            .threads(threads)
            .placement(cfg.placement)
            .pin(cfg.pin)
            .name("splash")
            .build()?;
        let spin = threads <= rset.cpus().len();
        Ok(Machine {
            domain: Domain::new(team.len()),
            rset,
            team,
            layout: cfg.layout,
            recorder,
            arrays: Mutex::new(Vec::new()),
            spin,
        })
    }

    /// Threads in the team.
    pub fn threads(&self) -> usize {
        self.team.len()
    }

    /// The RSet the team runs in and the arrays are placed over.
    pub fn rset(&self) -> &RSet {
        &self.rset
    }

    /// Where each thread runs.
    pub fn plan(&self) -> &Plan {
        self.team.plan()
    }

    /// The layout of the shared arrays.
    pub fn layout(&self) -> DataLayout {
        self.layout
    }

    /// The node a reorg array puts thread `thread`'s pages on: the thread's node if
    /// the RSet has its memory, else the RSet's nearest memory node (ties to the
    /// lowest id). `None` for a thread the team does not have.
    pub fn home_node(&self, thread: usize) -> Option<NodeId> {
        let node = self.team.plan().get(thread)?.node;
        let nodes = self.rset.effective_nodes();
        if nodes.contains(node) {
            return Some(node);
        }
        let topo = self.rset.topology();
        nodes
            .iter()
            .min_by_key(|&n| (topo.distance(node, n).unwrap_or(u64::MAX), n.0))
    }

    /// A shared array of `len` zeroed elements labelled `label`, placed by the
    /// layout (see the module docs); `parts` says who owns what under reorg.
    ///
    /// # Errors
    /// [`SplashError::Partition`] for a partition that does not fit `len` or the
    /// team; [`SplashError::Alloc`] and [`SplashError::Bind`] for memory that
    /// cannot be had or placed.
    pub fn shared<T: Pod>(
        &self,
        label: &str,
        len: usize,
        parts: &Partition,
    ) -> Result<Shared<T>, SplashError> {
        let alloc_err = |source| SplashError::Alloc {
            label: label.to_owned(),
            source,
        };
        let mut region = match self.layout {
            DataLayout::Orig => Region::<T>::builder(len)
                .striped(1)
                .populate(false)
                .rset(&self.rset)
                .label(label)
                .build()
                .map_err(alloc_err)?,
            DataLayout::Reorg => {
                parts
                    .validate(len, self.threads())
                    .map_err(|source| SplashError::Partition {
                        label: label.to_owned(),
                        source,
                    })?;
                let mut region = Region::<T>::builder(len)
                    .policy(Policy::Float)
                    .populate(false)
                    .rset(&self.rset)
                    .label(label)
                    .build()
                    .map_err(alloc_err)?;
                self.place_reorg(&mut region, label, parts)?;
                region
            }
        };
        self.populate(&mut region).map_err(alloc_err)?;
        let shared = Shared::new(region, label, parts, &self.domain);
        self.arrays.lock().unwrap_or_else(|p| p.into_inner()).push((
            label.to_owned(),
            shared.as_ptr() as usize,
            shared.mapped_bytes(),
        ));
        Ok(shared)
    }

    /// Binds each run of pages to its owner's node, then faults every page in.
    fn place_reorg<T: Pod>(
        &self,
        region: &mut Region<T>,
        label: &str,
        parts: &Partition,
    ) -> Result<(), SplashError> {
        let page = mempolicy::page_size();
        let owners = parts.page_owners(region.len(), size_of::<T>(), page);
        let homes: Vec<NodeId> = (0..self.threads())
            .map(|t| self.home_node(t).expect("every team thread has a node"))
            .collect();
        let base = region.as_ptr().cast::<u8>();
        let mut start = 0;
        while start < owners.len() {
            let node = homes[owners[start]];
            let mut end = start + 1;
            while end < owners.len() && homes[owners[end]] == node {
                end += 1;
            }
            let addr = base.wrapping_add(start * page);
            mempolicy::mbind(
                addr,
                (end - start) * page,
                Mode::Bind,
                &[node.0],
                MbindFlags::default(),
            )
            .map_err(|source| SplashError::Bind {
                label: label.to_owned(),
                pages: start..end,
                node,
                source,
            })?;
            start = end;
        }
        registry::set_policy(region.id(), InlineStr::new("reorg: owners' nodes"));
        Ok(())
    }

    /// Faults every page of a lazy region in under its policy before `shared`
    /// returns: after the memory check, the team does it, thread `t` the `t`-th of
    /// `n` even shares of the pages, as the C programs' workers fault in their own
    /// parts in parallel; then the main thread fills any hole and checks the
    /// interleave phase ([`Region::populate_with`]). Placement does not depend on
    /// who faults a page in (every page has its policy already).
    fn populate<T: Pod>(&self, region: &mut Region<T>) -> Result<(), RegionError> {
        let n = self.threads();
        region.populate_with(|pages, fault| {
            if n < 2 || pages < n {
                return Ok(());
            }
            match self.team.broadcast(|ctx| {
                let t = ctx.index();
                fault(t * pages / n..(t + 1) * pages / n)
            }) {
                Ok(results) => results.into_iter().collect(),
                // A team that cannot start here will not start for the run either;
                // the run reports it. The main thread does the work alone meanwhile.
                Err(_) => Ok(()),
            }
        })
    }

    /// Runs `f` once on every placed thread (thread `i` always on the same node) and
    /// returns when all have ended; a second run of the machine from another
    /// thread waits for this one. The first call starts the `--monitor` session.
    ///
    /// # Errors
    /// [`SplashError::Team`] when the threads cannot start or bind (then `f` ran
    /// nowhere); [`SplashError::Monitor`] when the session cannot start.
    ///
    /// # Panics
    /// Re-raises a panic of `f`.
    pub fn run<F: Fn(&mut Proc<'_>) + Sync>(&self, f: F) -> Result<(), SplashError> {
        self.recorder
            .start(&self.arrays.lock().unwrap_or_else(|p| p.into_inner()))?;
        let run = self.domain.begin(self.spin);
        self.team.broadcast(|ctx| {
            f(&mut run.proc(ctx.index(), ctx.cpu(), ctx.node()));
        })?;
        Ok(())
    }

    /// Stops the `--monitor` session, if any, and writes its session file (and,
    /// for granules finer than a page, the line verdicts in `FILE.lines`, see
    /// [`lines_path`](super::lines_path)).
    ///
    /// # Errors
    /// [`SplashError::Monitor`] when the session fails;
    /// [`SplashError::SessionFile`] or [`SplashError::Output`] when a file cannot
    /// be written; [`SplashError::NothingToMonitor`] when `--monitor` was given but
    /// no `run` ever started.
    pub fn finish(self) -> Result<(), SplashError> {
        self.recorder.finish(self.rset.topology())
    }
}
