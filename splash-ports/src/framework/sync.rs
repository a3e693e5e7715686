//! Synchronisation of a run: each thread's [`Proc`] (its id, node, barrier and
//! global sums) and the phases that barriers separate.
//!
//! A run's phases are numbered by epoch: a [`Domain`] (one per [`Machine`], or one
//! per test team) hands each run a fresh range of epochs, and every thread's
//! [`Proc`] moves to the next epoch as it leaves a [`Proc::barrier`]. Every thread
//! passes every barrier (a barrier completes only when all have arrived), so all
//! threads that can touch a shared array are in the same epoch; the shared arrays
//! ([`super::shared`]) use that to check, once per acquisition, that a phase's
//! views do not conflict.
//!
//! [`Machine`]: super::Machine

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use rset::{CpuId, NodeId};

/// One thread of a [`Machine::run`](super::Machine::run).
///
/// Views of shared arrays taken in a phase borrow it; [`Proc::barrier`] takes it
/// mutably, so they end before the phase does.
pub struct Proc<'a> {
    id: usize,
    nprocs: usize,
    cpu: CpuId,
    node: NodeId,
    epoch: u64,
    state: &'a RunState,
}

impl fmt::Debug for Proc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proc")
            .field("id", &self.id)
            .field("nprocs", &self.nprocs)
            .field("cpu", &self.cpu)
            .field("node", &self.node)
            .finish()
    }
}

impl Proc<'_> {
    /// This thread's id, `0..nprocs()`.
    pub fn id(&self) -> usize {
        self.id
    }

    /// Threads in the run.
    pub fn nprocs(&self) -> usize {
        self.nprocs
    }

    /// Waits until every thread of the run has arrived (SPLASH `BARRIER`), and
    /// starts the next phase: views of shared arrays taken before it have ended
    /// (they borrow `self`), and what any thread wrote before it is visible to
    /// every thread after it.
    ///
    /// # Panics
    /// After 2^43 barriers in one machine's runs (the epochs would no longer fit the
    /// shared arrays' state words).
    pub fn barrier(&mut self) {
        self.state.barrier.wait();
        self.epoch += 1;
        assert!(
            self.epoch < 1 << EPOCH_BITS,
            "the machine has used up its phases"
        );
    }

    /// The node of this thread's CPU.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// This thread's planned CPU: the one it runs on under `--pin cpu`; under
    /// `--pin node` it may run on any CPU of the RSet on [`Proc::node`].
    pub fn cpu(&self) -> CpuId {
        self.cpu
    }

    /// The sum of every thread's `value`, added in thread order (so the same
    /// inputs give the same bits whatever the timing); every thread must call it,
    /// and gets the sum. Two barriers.
    pub fn sum_f64(&mut self, value: f64) -> f64 {
        self.all_reduce(value, |a, b| a + b)
    }

    /// The largest of every thread's `value` (NaN-ignoring, as `f64::max`); every
    /// thread must call it. Two barriers.
    pub fn max_f64(&mut self, value: f64) -> f64 {
        self.all_reduce(value, f64::max)
    }

    fn all_reduce(&mut self, value: f64, op: impl Fn(f64, f64) -> f64) -> f64 {
        let state = self.state;
        let slots = &state.slots;
        slots[self.id].0.store(value.to_bits(), Ordering::Relaxed);
        self.barrier();
        let mut acc = f64::from_bits(slots[0].0.load(Ordering::Relaxed));
        for s in &slots[1..] {
            acc = op(acc, f64::from_bits(s.0.load(Ordering::Relaxed)));
        }
        // Nobody may overwrite its slot for the next reduction before all have read.
        self.barrier();
        acc
    }

    /// The phase this thread is in: unique in its domain, the same for every
    /// thread between two barriers.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The domain of the run (the arrays it may view carry the same).
    pub(crate) fn domain(&self) -> u64 {
        self.state.domain
    }
}

impl Drop for Proc<'_> {
    fn drop(&mut self) {
        // Also on unwinding: the next run's epochs start after every one used here.
        self.state.last.fetch_max(self.epoch, Ordering::Relaxed);
    }
}

/// Epochs fit in this many bits (the shared arrays pack one with a mode and a
/// thread id into a word).
pub(crate) const EPOCH_BITS: u32 = 44;

/// The threads of one team and its runs, one run at a time. Arrays made for it
/// carry its id, and only its runs' threads may view them.
#[derive(Debug)]
pub(crate) struct Domain {
    id: u64,
    threads: usize,
    /// The last epoch any run used (epoch 0: none).
    last: Mutex<u64>,
}

/// What the threads of one run share.
struct RunState {
    barrier: HybridBarrier,
    slots: Vec<PaddedU64>,
    domain: u64,
    last: AtomicU64,
}

/// A run in progress: the domain's lock (runs of one domain do not overlap) and
/// the state its threads share.
pub(crate) struct Run<'d> {
    last: MutexGuard<'d, u64>,
    state: RunState,
    threads: usize,
}

impl Domain {
    /// A new domain of `threads` threads.
    pub(crate) fn new(threads: usize) -> Domain {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Domain {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            threads,
            last: Mutex::new(0),
        }
    }

    /// Its id.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Its threads.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Starts a run (waiting for one in progress to end); `spin`: barriers may spin
    /// before they sleep.
    pub(crate) fn begin(&self, spin: bool) -> Run<'_> {
        // A run that panicked still recorded its epochs (see `Proc`'s drop).
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let first = *last + 1;
        assert!(
            first < 1 << (EPOCH_BITS - 1),
            "the domain has used up its epochs"
        );
        Run {
            state: RunState {
                barrier: HybridBarrier::new(self.threads, spin),
                slots: (0..self.threads).map(|_| PaddedU64::default()).collect(),
                domain: self.id,
                last: AtomicU64::new(first),
            },
            last,
            threads: self.threads,
        }
    }

    /// Runs `f` once on each of the domain's threads, as plain scoped threads (no
    /// placement): for tests of the shared arrays, Miri included.
    #[cfg(test)]
    pub(crate) fn run_scoped<F: Fn(&mut Proc<'_>) + Sync>(&self, f: F) {
        let run = self.begin(true);
        std::thread::scope(|s| {
            let threads: Vec<_> = (0..self.threads)
                .map(|id| {
                    let (run, f) = (&run, &f);
                    s.spawn(move || f(&mut run.proc(id, CpuId(0), NodeId(0))))
                })
                .collect();
            // A thread's panic is the run's, with its message.
            for t in threads {
                if let Err(e) = t.join() {
                    std::panic::resume_unwind(e);
                }
            }
        });
    }
}

impl Run<'_> {
    /// Thread `id`'s handle, in the run's first epoch.
    pub(crate) fn proc(&self, id: usize, cpu: CpuId, node: NodeId) -> Proc<'_> {
        Proc {
            id,
            nprocs: self.threads,
            cpu,
            node,
            epoch: *self.last + 1,
            state: &self.state,
        }
    }
}

impl Drop for Run<'_> {
    /// Ends the run (also when it panicked): the next starts after the epochs this
    /// one used.
    fn drop(&mut self) {
        *self.last = self.state.last.load(Ordering::Relaxed);
    }
}

/// Per-thread reduction slot on its own cache lines.
#[derive(Default)]
#[repr(align(128))]
struct PaddedU64(AtomicU64);

/// A barrier that spins for a while (when every thread has its own CPU), then
/// sleeps on a condition variable.
struct HybridBarrier {
    n: usize,
    spin: bool,
    count: AtomicUsize,
    generation: AtomicUsize,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
}

/// Spin iterations before sleeping (a few tens of microseconds).
const SPIN_LIMIT: u32 = 1 << 14;

impl HybridBarrier {
    fn new(n: usize, spin: bool) -> HybridBarrier {
        HybridBarrier {
            n,
            spin,
            count: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            cv: Condvar::new(),
        }
    }

    /// Returns once all `n` threads have called it; what each did before its call
    /// happens before what any does after its return (the arrivals are one chain
    /// of acquire-release read-modify-writes, and the last one releases the
    /// generation that the others acquire).
    fn wait(&self) {
        // The generation cannot move before this thread arrives.
        let generation = self.generation.load(Ordering::Acquire);
        if self.count.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            self.count.store(0, Ordering::Relaxed);
            self.generation
                .store(generation.wrapping_add(1), Ordering::SeqCst);
            if self.sleepers.load(Ordering::SeqCst) > 0 {
                let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
                self.cv.notify_all();
            }
            return;
        }
        if self.spin {
            for _ in 0..SPIN_LIMIT {
                if self.generation.load(Ordering::Acquire) != generation {
                    return;
                }
                std::hint::spin_loop();
            }
        }
        let mut g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        while self.generation.load(Ordering::SeqCst) == generation {
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn barriers_and_sums_are_exact_over_many_rounds() {
        for spin in [true, false] {
            let n = 4;
            let b = HybridBarrier::new(n, spin);
            let counter = AtomicUsize::new(0);
            std::thread::scope(|s| {
                for _ in 0..n {
                    s.spawn(|| {
                        for round in 0..200 {
                            counter.fetch_add(1, Ordering::Relaxed);
                            b.wait();
                            assert_eq!(counter.load(Ordering::Relaxed), (round + 1) * n);
                            b.wait();
                        }
                    });
                }
            });
        }
    }

    #[test]
    fn every_thread_is_in_the_same_epoch_and_runs_get_fresh_ones() {
        let d = Domain::new(3);
        let seen = Mutex::new(Vec::new());
        for _ in 0..2 {
            d.run_scoped(|p| {
                let first = p.epoch();
                p.barrier();
                let s = p.sum_f64(1.0);
                assert_eq!(s, 3.0);
                seen.lock().unwrap().push((first, p.epoch()));
            });
        }
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.len(), 6);
        let (a, b) = (&seen[..3], &seen[3..]);
        assert!(a.iter().all(|&e| e == a[0]) && b.iter().all(|&e| e == b[0]));
        // One barrier and a sum's two: three phases later; the next run after them.
        assert_eq!(a[0].1, a[0].0 + 3);
        assert!(b[0].0 > a[0].1, "{seen:?}");
    }
}
