//! Teams of placed threads: the RSet thread API.
//!
//! A [`Team`] is a plan (thread index -> CPU, node) over an RSet. Each call of
//! [`Team::broadcast`] starts one thread per slot of the plan; every thread binds
//! itself (affinity: its planned CPU, or with [`Pin::Node`] the RSet's CPUs on its
//! planned node; memory: `MPOL_BIND` over the RSet's nodes, which
//! Linux serves from the nearest of them first, so first touch is local) **before**
//! any user code runs, and user code runs only once every thread is bound. The
//! closure may borrow from the caller's stack, as in `std::thread::scope`.
//!
//! ```no_run
//! use rset::{Placement, RSet, Topology};
//! let topo = Topology::from_system()?;
//! let all = topo.global_rset();
//! // One placed thread per CPU; each returns where it ran.
//! let nodes = all.scope(Placement::RoundRobin, 4, |ctx| (ctx.index(), ctx.node()))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Because slot `i` of a plan is always the same CPU, calling `broadcast` twice on one
//! team puts thread `i` on the same CPU both times: initialise data with one broadcast
//! (first touch places each page on the toucher's node) and compute with the next.
//! A panic in any thread is propagated to the caller once all threads have ended;
//! a thread that panics while others wait in [`Ctx::barrier`] leaves them waiting,
//! as with `std::sync::Barrier`.

use std::sync::{Barrier, Condvar, Mutex};

use crate::bind::{self, BindError};
use crate::placement::{self, Pin, Placement, Plan, PlanError, ThreadPlacement};
use crate::rset::RSet;
use crate::set::{CpuId, CpuSet, NodeId, NodeSet};

/// Why a team could not be built or started.
#[derive(Debug, thiserror::Error)]
pub enum TeamError {
    /// The plan could not be made (no CPUs, zero threads, ...).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A thread could not bind itself; no user code ran.
    #[error("thread {thread} could not bind (planned CPU {cpu}): {source}")]
    Bind {
        /// The thread's index.
        thread: usize,
        /// Its planned CPU.
        cpu: CpuId,
        /// What the kernel said.
        source: BindError,
    },
    /// The operating system would not start a thread; no user code ran.
    #[error("could not start thread {thread}: {source}")]
    Spawn {
        /// The thread's index.
        thread: usize,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// Builds a [`Team`]: `Team::builder(&rset).threads(8).placement(Placement::Fill)`.
#[derive(Clone, Debug)]
pub struct TeamBuilder {
    rset: RSet,
    threads: Option<usize>,
    placement: Placement,
    pin: Pin,
    name: Option<String>,
    stack_size: Option<usize>,
}

impl TeamBuilder {
    /// Number of threads (default: one per CPU of the RSet).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n);
        self
    }

    /// Fill or Round-robin (default: Fill).
    pub fn placement(mut self, placement: Placement) -> Self {
        self.placement = placement;
        self
    }

    /// Each thread held to its planned CPU ([`Pin::Cpu`], the default) or to the
    /// RSet's CPUs on its planned node ([`Pin::Node`]).
    pub fn pin(mut self, pin: Pin) -> Self {
        self.pin = pin;
        self
    }

    /// Thread names: `PREFIX-INDEX` (default: unnamed).
    pub fn name(mut self, prefix: impl Into<String>) -> Self {
        self.name = Some(prefix.into());
        self
    }

    /// Stack size of each thread, bytes (default: Rust's).
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Makes the plan.
    ///
    /// # Errors
    /// [`TeamError::Plan`] for an RSet without CPUs or zero threads.
    pub fn build(self) -> Result<Team, TeamError> {
        let threads = self
            .threads
            .unwrap_or_else(|| self.rset.cpus().len().max(1));
        let plan = placement::plan(&self.rset, self.placement, threads)?;
        // What each thread is held to: its CPU, or the RSet's CPUs on its node.
        let held = plan
            .iter()
            .map(|slot| match self.pin {
                Pin::Cpu => [slot.cpu].into_iter().collect(),
                Pin::Node => {
                    let node: NodeSet = [slot.node].into_iter().collect();
                    self.rset
                        .topology()
                        .cpus_of_nodes(&node)
                        .intersection(self.rset.cpus())
                }
            })
            .collect();
        Ok(Team {
            nodes: self.rset.effective_nodes(),
            rset: self.rset,
            plan,
            pin: self.pin,
            held,
            name: self.name,
            stack_size: self.stack_size,
        })
    }
}

/// A plan of placed threads over an RSet; see the module docs.
#[derive(Debug)]
pub struct Team {
    rset: RSet,
    plan: Plan,
    pin: Pin,
    /// The CPUs each thread is held to, by thread index.
    held: Vec<CpuSet>,
    nodes: NodeSet,
    name: Option<String>,
    stack_size: Option<usize>,
}

/// What a team thread knows about itself.
#[derive(Debug)]
pub struct Ctx<'a> {
    slot: ThreadPlacement,
    threads: usize,
    barrier: &'a Barrier,
}

impl Ctx<'_> {
    /// This thread's index in the team, `0..threads()`.
    pub fn index(&self) -> usize {
        self.slot.thread
    }

    /// This thread's planned CPU: the one it is bound to under [`Pin::Cpu`]; under
    /// [`Pin::Node`] it runs on any CPU of the RSet on [`Ctx::node`].
    pub fn cpu(&self) -> CpuId {
        self.slot.cpu
    }

    /// The node of that CPU, which the thread never leaves.
    pub fn node(&self) -> NodeId {
        self.slot.node
    }

    /// Threads in the team.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Waits until every thread of this broadcast has reached the barrier.
    pub fn barrier(&self) {
        self.barrier.wait();
    }
}

/// Opens once every thread is bound (or one failed).
struct Gate {
    state: Mutex<GateState>,
    cv: Condvar,
}

#[derive(Default)]
struct GateState {
    bound: usize,
    error: Option<TeamError>,
    open: bool,
}

impl Team {
    /// A builder over `rset`.
    pub fn builder(rset: &RSet) -> TeamBuilder {
        TeamBuilder {
            rset: rset.clone(),
            threads: None,
            placement: Placement::Fill,
            pin: Pin::Cpu,
            name: None,
            stack_size: None,
        }
    }

    /// How tightly each thread is held ([`TeamBuilder::pin`]).
    pub fn pin(&self) -> Pin {
        self.pin
    }

    /// The CPUs thread `thread` is held to: its planned CPU, or under [`Pin::Node`]
    /// the RSet's CPUs on its node. `None` for a thread the team does not have.
    pub fn held_cpus(&self, thread: usize) -> Option<&CpuSet> {
        self.held.get(thread)
    }

    /// The plan: thread index -> CPU, node.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The RSet the team runs in.
    pub fn rset(&self) -> &RSet {
        &self.rset
    }

    /// Threads in the team.
    pub fn len(&self) -> usize {
        self.plan.len()
    }

    /// Truth that the team has no threads (never, once built).
    pub fn is_empty(&self) -> bool {
        self.plan.is_empty()
    }

    /// Runs `f` once on every thread of the team, each bound to its planned CPU,
    /// concurrently, and returns the results in thread order.
    ///
    /// # Errors
    /// [`TeamError::Bind`] or [`TeamError::Spawn`]: then `f` ran nowhere.
    ///
    /// # Panics
    /// Re-raises the first panic of a thread running `f`.
    pub fn broadcast<R, F>(&self, f: F) -> Result<Vec<R>, TeamError>
    where
        R: Send,
        F: Fn(&Ctx<'_>) -> R + Sync,
    {
        let n = self.plan.len();
        let gate = Gate {
            state: Mutex::new(GateState::default()),
            cv: Condvar::new(),
        };
        let barrier = Barrier::new(n);
        let (gate, barrier, f, nodes, held) = (&gate, &barrier, &f, &self.nodes, &self.held);
        std::thread::scope(|s| {
            let mut handles = Vec::with_capacity(n);
            for &slot in self.plan.iter() {
                let mut b = std::thread::Builder::new();
                if let Some(name) = &self.name {
                    b = b.name(format!("{name}-{}", slot.thread));
                }
                if let Some(size) = self.stack_size {
                    b = b.stack_size(size);
                }
                let spawned = b.spawn_scoped(s, move || {
                    let bound = bind::bind_current_thread_to_cpus(&held[slot.thread], nodes);
                    if !gate.arrive(bound.map_err(|source| TeamError::Bind {
                        thread: slot.thread,
                        cpu: slot.cpu,
                        source,
                    })) {
                        return None;
                    }
                    let ctx = Ctx {
                        slot,
                        threads: n,
                        barrier,
                    };
                    Some(f(&ctx))
                });
                match spawned {
                    Ok(h) => handles.push(h),
                    Err(source) => {
                        gate.abort(TeamError::Spawn {
                            thread: slot.thread,
                            source,
                        });
                        break;
                    }
                }
            }
            gate.wait_and_open(n);
            let mut results = Vec::with_capacity(n);
            for h in handles {
                match h.join() {
                    Ok(r) => results.extend(r),
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            match gate.take_error() {
                Some(e) => Err(e),
                None => Ok(results),
            }
        })
    }
}

impl Gate {
    /// A thread reports its binding; returns whether user code may run.
    fn arrive(&self, bound: Result<(), TeamError>) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match bound {
            Ok(()) => st.bound += 1,
            Err(e) => {
                st.error.get_or_insert(e);
            }
        }
        self.cv.notify_all();
        while !st.open {
            st = self.cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.error.is_none()
    }

    fn abort(&self, e: TeamError) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.error.get_or_insert(e);
        st.open = true;
        self.cv.notify_all();
    }

    /// Opens the gate once all `n` threads are bound, or at the first failure.
    fn wait_and_open(&self, n: usize) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while st.bound < n && st.error.is_none() && !st.open {
            st = self.cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.open = true;
        self.cv.notify_all();
    }

    fn take_error(&self) -> Option<TeamError> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .error
            .take()
    }
}

impl RSet {
    /// A [`TeamBuilder`] over this RSet.
    pub fn team(&self) -> TeamBuilder {
        Team::builder(self)
    }

    /// Runs `f` on `threads` threads placed by `placement` over this RSet, each bound
    /// before `f` runs, and returns the results in thread order. The closure may
    /// borrow from the caller's stack.
    ///
    /// # Errors
    /// As [`TeamBuilder::build`] and [`Team::broadcast`].
    pub fn scope<R, F>(
        &self,
        placement: Placement,
        threads: usize,
        f: F,
    ) -> Result<Vec<R>, TeamError>
    where
        R: Send,
        F: Fn(&Ctx<'_>) -> R + Sync,
    {
        self.team()
            .threads(threads)
            .placement(placement)
            .build()?
            .broadcast(f)
    }
}
