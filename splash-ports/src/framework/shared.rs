//! Shared arrays of a run: [`Shared`], one placed, labelled array that every thread
//! of a [`Machine::run`] may use, SPLASH style, through safe phase-based views;
//! and [`Cell64`], the relaxed-atomic element for arrays read and written
//! element by element across owners within a phase.
//!
//! # Access
//!
//! A run's threads go through phases separated by [`Proc::barrier`]. In a phase,
//! each shared array is used in one mode, set by its first view:
//!
//! - **own**: [`Shared::own_mut`] gives the calling thread its own part (its range
//!   of the array's [`Partition`]) mutably, once per phase;
//! - **read**: [`Shared::read_all`] gives the whole array, read-only, to any
//!   number of threads.
//!
//! A view borrows the thread's [`Proc`], and the barrier takes it mutably, so no
//! view outlives its phase; after the barrier, everything written before it is
//! visible. A view of the other mode in the same phase (a thread reading all of
//! `x` while others write their parts of it) panics, naming the array, the
//! thread and the thread that set the mode. The check costs an atomic load (and a
//! compare-and-swap once per phase, a swap for `own_mut`) per view, never
//! anything per element.
//!
//! Outside runs, [`Shared::get_mut`] (`&mut self`) gives all of it. Arrays whose
//! elements are read by other threads while their owner writes others in the same
//! phase, where no phase split fits, can be viewed as [`Cell64`]s with
//! [`Shared::cells`]: relaxed atomic loads and stores (plain moves on x86-64),
//! ordered by the barriers; that view borrows the array mutably, so no phase view
//! can coexist with it. Cells cost more than plain slices: the compiler neither
//! vectorises, merges nor reuses atomic accesses (Ocean on cells took 1.21x the
//! time of its non-atomic version single-threaded at `-n1026`, 1.15x with two
//! threads). Prefer phase views: Ocean, like the C original, computes on its own
//! blocks (`own_mut`) and makes each halo copy two steps, reading the neighbours'
//! edge points under `read_all` into a private buffer and, after the barrier,
//! writing them into its own ghost ring; it is back within noise of the
//! non-atomic version (0.99x single-threaded, 1.01-1.03x with two threads, though
//! its time steps have four barriers more and its multigrid iterations up to two).
//!
//! ```no_run
//! use splash_ports::framework::{Machine, Partition, RunConfig};
//! let m = Machine::new(&RunConfig::default(), 4)?;
//! let n = 1 << 20;
//! let mut x = m.shared::<f64>("demo.x", n, &Partition::even(n, 4))?;
//! x.get_mut()[0] = 1.0; // no run yet: all of it
//! let sums = std::sync::Mutex::new(vec![0.0; 4]);
//! m.run(|p| {
//!     // Phase 1: each thread fills its own quarter.
//!     let id = p.id() as f64;
//!     x.own_mut(p).fill(id);
//!     p.barrier();
//!     // Phase 2: every thread reads all of it.
//!     let all = x.read_all(p);
//!     sums.lock().unwrap()[p.id()] = all.iter().sum::<f64>();
//! })?;
//! m.finish()?;
//! # Ok::<(), splash_ports::framework::SplashError>(())
//! ```
//!
//! For the ports to come: Water's molecule records are a `Shared<Molecule>` (a
//! `Pod` struct) partitioned by molecule, each thread updating its own molecules
//! in one phase and reading all of them in the next; a per-molecule lock is a
//! `Vec<std::sync::Mutex<..>>` beside the array (safe code already); Barnes' and
//! FMM's trees, rebuilt every step by all threads, are arrays of [`Cell64`] (or of
//! atomics) with locks where the original locks.
//!
//! # Safety
//!
//! The one proof for every unsafe block of this module (it is the only unsafe code
//! of the crate).
//!
//! *The memory.* `ptr` is the start of `len` initialised, aligned `T` owned by
//! `backing` (a [`Region`], zeroed at birth, or a `Vec` for tests), which is never
//! reallocated and lives until the `Shared` drops; `T: Pod` has no invalid bit
//! patterns and no references. Slices and cells are made only within `0..len`.
//!
//! *No data race.* Every reference into the array comes from one of:
//!
//! 1. [`Shared::get_mut`] and [`Shared::cells`], which borrow the `Shared`
//!    mutably for as long as the reference lives: nothing else can view the array
//!    meanwhile. A cell is an `AtomicU64` of `f64`'s size; with `f64`'s alignment
//!    checked, all accesses through cells are atomic, so they never race.
//! 2. [`Shared::own_mut`] and [`Shared::read_all`], which borrow `&self` and a
//!    [`Proc`] of the array's domain. Two such views that are alive at once are
//!    views of the same epoch: a view of thread A in epoch `e` ends before A calls
//!    [`Proc::barrier`] (which takes the `Proc` mutably) or A's closure returns;
//!    a thread in a later epoch has passed the barrier ending `e`, which completes
//!    only after A has arrived at it. Runs of one domain do not overlap (the
//!    domain's lock), all their views end before the run returns, and each run's
//!    epochs are new. Within one epoch, the state word moves to that epoch once
//!    (by compare-and-swap), with the mode of the first view; no view of another
//!    mode is handed out (they panic). In read mode, all views are shared
//!    slices: reads do not race. In own mode, each view is the range of the
//!    calling thread; ranges of distinct threads are disjoint (the partition was
//!    validated), and a thread gets its range once per epoch (its slot's swap),
//!    so the mutable slices never overlap one another, and no read view exists.
//!
//! Views of consecutive epochs are ordered by the barrier between them (its
//! acquire-release chain, see `sync.rs`); views of consecutive runs by the join of
//! the first run's threads.
//!
//! [`Machine::run`]: super::Machine::run
#![allow(unsafe_code)]

use std::fmt;
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use alloc_policies::{PageStatus, Region, RegionError};
use bytemuck::Pod;

use super::partition::Partition;
use super::sync::{Domain, EPOCH_BITS, Proc};

/// The low bits of the state word: the thread that set the mode.
const THREAD_BITS: u32 = 63 - EPOCH_BITS;
const THREAD_MASK: u64 = (1 << THREAD_BITS) - 1;
const OWN: u64 = 0;
const READ: u64 = 1;

/// The memory under a shared array.
enum Backing<T> {
    Region(Region<T>),
    /// For tests; owns the elements `ptr` points into (read only by its drop).
    #[allow(dead_code)]
    Heap(Vec<T>),
}

/// A shared array of a program run: a placed, labelled [`Region`] that every thread
/// may read and write through phase views (see the module docs).
pub struct Shared<T> {
    ptr: NonNull<T>,
    len: usize,
    label: String,
    backing: Backing<T>,
    domain: u64,
    threads: usize,
    /// Each thread's range, or why `own_mut` has none to give.
    owned: Result<Vec<Range<usize>>, String>,
    /// Epoch, mode and first thread of the current phase's views.
    state: AtomicU64,
    /// Per thread: the epoch of its last `own_mut`.
    taken: Box<[AtomicU64]>,
}

// SAFETY: a `Shared` owns its memory (see the module's Safety section); sending it
// sends the elements, which `T: Send` allows.
unsafe impl<T: Pod + Send> Send for Shared<T> {}
// SAFETY: through `&Shared`, threads get disjoint `&mut [T]` or shared `&[T]`,
// never both overlapping (module Safety section): as a `Mutex` needs `T: Send`
// and a shared reference `T: Sync`.
unsafe impl<T: Pod + Send + Sync> Sync for Shared<T> {}

impl<T> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("label", &self.label)
            .field("len", &self.len)
            .field("ptr", &self.ptr)
            .finish()
    }
}

/// Each thread's one range of `parts`, or why there is none.
fn owned_ranges(
    parts: &Partition,
    len: usize,
    threads: usize,
) -> Result<Vec<Range<usize>>, String> {
    parts
        .validate(len, threads)
        .map_err(|e| format!("its partition does not fit it: {e}"))?;
    let mut owned = vec![0..0; threads];
    for (r, t) in parts.ranges() {
        if r.is_empty() {
            continue;
        }
        if !owned[*t].is_empty() {
            return Err(format!(
                "thread {t} owns two ranges of it ({:?} and {r:?})",
                owned[*t]
            ));
        }
        owned[*t] = r.clone();
    }
    Ok(owned)
}

impl<T: Pod> Shared<T> {
    /// An array over `region`'s elements for the threads of `domain`, thread `t`
    /// owning its range of `parts` (a partition that does not fit leaves `own_mut`
    /// nothing to give; the orig layout accepts it).
    pub(crate) fn new(
        mut region: Region<T>,
        label: &str,
        parts: &Partition,
        domain: &Domain,
    ) -> Shared<T> {
        let len = region.len();
        let ptr = NonNull::new(region.as_mut_ptr()).expect("a region is mapped");
        Shared::with_backing(ptr, len, Backing::Region(region), label, parts, domain)
    }

    /// An array over `data` on the heap (no placement, no mapping): for tests.
    #[cfg(test)]
    pub(crate) fn on_heap(
        mut data: Vec<T>,
        label: &str,
        parts: &Partition,
        domain: &Domain,
    ) -> Shared<T> {
        assert!(!data.is_empty(), "arrays have at least one element");
        let len = data.len();
        let ptr = NonNull::new(data.as_mut_ptr()).expect("a Vec's pointer is not null");
        Shared::with_backing(ptr, len, Backing::Heap(data), label, parts, domain)
    }

    fn with_backing(
        ptr: NonNull<T>,
        len: usize,
        backing: Backing<T>,
        label: &str,
        parts: &Partition,
        domain: &Domain,
    ) -> Shared<T> {
        let threads = domain.threads();
        Shared {
            ptr,
            len,
            label: label.to_owned(),
            backing,
            domain: domain.id(),
            threads,
            owned: owned_ranges(parts, len, threads),
            state: AtomicU64::new(0),
            taken: (0..threads).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Truth that the array has no element (never: arrays have at least one).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The label it was made with.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The first element's address (for the monitor's filters and reports; reading
    /// or writing through it is the caller's business, and unsafe).
    pub fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    /// Bytes mapped (whole pages; 0 for a heap array).
    pub fn mapped_bytes(&self) -> usize {
        match &self.backing {
            Backing::Region(r) => r.mapped_bytes(),
            Backing::Heap(_) => 0,
        }
    }

    /// Where each page of the array is, page 0 first (`move_pages`; nothing for a
    /// heap array).
    ///
    /// # Errors
    /// The kernel's refusal, as [`RegionError::MovePages`].
    pub fn locate(&self) -> Result<Vec<PageStatus>, RegionError> {
        match &self.backing {
            Backing::Region(r) => r.locate(),
            Backing::Heap(_) => Ok(Vec::new()),
        }
    }

    /// The range thread `thread` owns (empty when it owns nothing).
    ///
    /// # Panics
    /// If the array's partition gives threads no single range (see
    /// [`Shared::own_mut`]) or `thread` is not one of the team's.
    pub fn own_range(&self, thread: usize) -> Range<usize> {
        match &self.owned {
            Ok(owned) => owned.get(thread).cloned().unwrap_or_else(|| {
                panic!(
                    "array `{}`: no thread {thread} in a team of {}",
                    self.label, self.threads
                )
            }),
            Err(why) => panic!("array `{}` has no parts to own: {why}", self.label),
        }
    }

    /// All of it, mutably: no run can be using it (`&mut self`).
    pub fn get_mut(&mut self) -> &mut [T] {
        // SAFETY: module Safety section, case 1: exclusive for the borrow of `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The calling thread's own part (its range of the partition, empty if it owns
    /// none), mutably, until its next barrier. Sets the array's mode for this
    /// phase to *own*.
    ///
    /// # Panics
    /// If the array is in read mode in this phase, if this thread already took its
    /// part in this phase, if `p` is not a thread of the array's machine, or if the
    /// partition gives threads no single range (it does not fit the array or the
    /// team, possible only under the orig layout, or a thread owns two ranges).
    #[allow(clippy::mut_from_ref)]
    pub fn own_mut<'s>(&'s self, p: &'s Proc<'_>) -> &'s mut [T] {
        self.enter(p, OWN);
        let range = self.own_range(p.id());
        if self.taken[p.id()].swap(p.epoch(), Ordering::Relaxed) == p.epoch() {
            panic!(
                "array `{}`: thread {} takes its part twice in one phase",
                self.label,
                p.id()
            );
        }
        // `own_range` is within `0..len` (the partition was validated).
        let start = self.ptr.as_ptr().wrapping_add(range.start);
        // SAFETY: module Safety section, case 2 (own mode): this thread's range,
        // once in this epoch.
        unsafe { std::slice::from_raw_parts_mut(start, range.len()) }
    }

    /// All of it, read-only, until this thread's next barrier. Sets the array's
    /// mode for this phase to *read*.
    ///
    /// # Panics
    /// If a thread took its own part of the array in this phase, or if `p` is not
    /// a thread of the array's machine.
    pub fn read_all<'s>(&'s self, p: &'s Proc<'_>) -> &'s [T] {
        self.enter(p, READ);
        // SAFETY: module Safety section, case 2 (read mode): only shared views of
        // the array exist in this epoch.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// Records this phase's mode, or checks it; panics on a conflict.
    fn enter(&self, p: &Proc<'_>, mode: u64) {
        assert!(
            p.domain() == self.domain && p.id() < self.threads,
            "array `{}` is viewed by a thread of another machine's run",
            self.label
        );
        let epoch = p.epoch();
        let want =
            (epoch << (THREAD_BITS + 1)) | (mode << THREAD_BITS) | (p.id() as u64).min(THREAD_MASK);
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if cur >> (THREAD_BITS + 1) == epoch {
                if (cur >> THREAD_BITS) & 1 == mode {
                    return;
                }
                self.conflict(p.id(), mode, cur & THREAD_MASK);
            }
            match self
                .state
                .compare_exchange_weak(cur, want, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }

    #[cold]
    fn conflict(&self, thread: usize, mode: u64, first: u64) -> ! {
        let (wants, set) = if mode == READ {
            ("read all of it", "write their own parts")
        } else {
            ("write its own part", "read all of it")
        };
        panic!(
            "array `{}`: thread {thread} asks to {wants} in a phase where threads {set} (since thread {first}); a barrier must separate the two",
            self.label
        );
    }
}

/// One `f64` of a shared array seen as cells ([`Shared::cells`]): relaxed atomic
/// loads and stores, ordered between threads by the barriers.
#[repr(transparent)]
pub struct Cell64(AtomicU64);

impl fmt::Debug for Cell64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

impl Cell64 {
    /// Reads the element.
    #[inline(always)]
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    /// Writes the element.
    #[inline(always)]
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed)
    }
}

impl Shared<f64> {
    /// All of it as cells, for element-wise sharing across owners, for as long as
    /// the array stays borrowed (no phase view meanwhile).
    pub fn cells(&mut self) -> &[Cell64] {
        assert!(
            self.ptr.as_ptr().cast::<AtomicU64>().is_aligned(),
            "array `{}` is not aligned for atomic cells",
            self.label
        );
        // SAFETY: module Safety section, case 1: `Cell64` is a transparent
        // `AtomicU64`, of `f64`'s size, alignment checked above; the array stays
        // mutably borrowed while the cells live, and every access is atomic.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<Cell64>(), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array(len: usize, threads: usize) -> (Domain, Shared<u64>) {
        let d = Domain::new(threads);
        let x = Shared::on_heap(
            vec![0u64; len],
            "test.x",
            &Partition::even(len, threads),
            &d,
        );
        (d, x)
    }

    #[test]
    fn shared_own_parts_then_read_all() {
        let (d, mut x) = array(10, 3);
        assert_eq!(x.own_range(1), 3..6);
        for round in 1..3u64 {
            d.run_scoped(|p| {
                let id = p.id() as u64;
                for v in x.own_mut(p) {
                    *v += round * 10 + id;
                }
                p.barrier();
                let all = x.read_all(p);
                let want: Vec<u64> = (0..10)
                    .map(|i| {
                        let t = if i < 3 {
                            0
                        } else if i < 6 {
                            1
                        } else {
                            2
                        };
                        (1..=round).map(|r| r * 10 + t).sum()
                    })
                    .collect();
                assert_eq!(all, &want[..]);
                // Reading own part and reading all are both read mode.
                assert_eq!(x.read_all(p).len(), 10);
            });
        }
        assert_eq!(x.get_mut()[9], 10 + 2 + 20 + 2);
    }

    #[test]
    fn shared_modes_alternate_over_phases() {
        let (d, x) = array(64, 2);
        d.run_scoped(|p| {
            for i in 0..20u64 {
                if i % 2 == 0 {
                    x.own_mut(p).fill(i);
                } else {
                    assert!(x.read_all(p).iter().all(|&v| v == i - 1));
                }
                p.barrier();
            }
        });
    }

    #[test]
    #[should_panic(
        expected = "array `test.x`: thread 0 asks to read all of it in a phase where threads write their own parts"
    )]
    fn shared_refuses_reading_all_while_parts_are_written() {
        let (d, x) = array(8, 1);
        d.run_scoped(|p| {
            let mine = x.own_mut(p);
            mine[0] = 1;
            let _all = x.read_all(p);
        });
    }

    #[test]
    #[should_panic(expected = "takes its part twice in one phase")]
    fn shared_refuses_a_second_own_part_in_one_phase() {
        let (d, x) = array(8, 1);
        d.run_scoped(|p| {
            let _a = x.own_mut(p);
            let _b = x.own_mut(p);
        });
    }

    #[test]
    fn shared_conflicts_across_threads_name_both() {
        let (d, x) = array(8, 2);
        let msg = std::sync::Mutex::new(None);
        d.run_scoped(|p| {
            if p.id() == 1 {
                let _ = x.read_all(p);
            } else {
                // Once thread 1 has set read mode, thread 0 asks for its part.
                while x.state.load(Ordering::Acquire) >> (THREAD_BITS + 1) != p.epoch() {
                    std::hint::spin_loop();
                }
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let _ = x.own_mut(p);
                }));
                *msg.lock().unwrap() = r.err().and_then(|e| e.downcast_ref::<String>().cloned());
            }
        });
        let msg = msg.into_inner().unwrap().expect("thread 0 was refused");
        assert!(
            msg.contains("array `test.x`: thread 0 asks to write its own part")
                && msg.contains("(since thread 1)"),
            "{msg}"
        );
    }

    #[test]
    #[should_panic(expected = "viewed by a thread of another machine's run")]
    fn shared_refuses_threads_of_another_domain() {
        let (_d, x) = array(8, 1);
        Domain::new(1).run_scoped(|p| {
            let _ = x.read_all(p);
        });
    }

    #[test]
    fn shared_partitions_that_do_not_fit_leave_nothing_to_own() {
        let d = Domain::new(2);
        let x = Shared::on_heap(
            vec![0u8; 10],
            "test.bad",
            &Partition::by_thread(vec![(0..10, 7)]),
            &d,
        );
        let r = std::panic::catch_unwind(|| x.own_range(0));
        let e = r.unwrap_err();
        let msg = e.downcast_ref::<String>().unwrap();
        assert!(
            msg.contains("`test.bad` has no parts to own") && msg.contains("thread 7"),
            "{msg}"
        );
        let two = Shared::on_heap(
            vec![0u8; 10],
            "test.two",
            &Partition::by_thread(vec![(0..2, 0), (2..5, 1), (5..10, 0)]),
            &d,
        );
        let e = std::panic::catch_unwind(|| two.own_range(1)).unwrap_err();
        assert!(
            e.downcast_ref::<String>()
                .unwrap()
                .contains("thread 0 owns two ranges")
        );
    }

    #[test]
    fn shared_cells_are_shared_element_by_element() {
        let d = Domain::new(2);
        let mut x = Shared::on_heap(vec![0.0f64; 4], "test.cells", &Partition::even(4, 2), &d);
        let cells = x.cells();
        d.run_scoped(|p| {
            // Each writes one element of the other's half, then reads its own.
            let other = if p.id() == 0 { 3 } else { 0 };
            cells[other].set(p.id() as f64 + 1.0);
            p.barrier();
            let mine = if p.id() == 0 { 0 } else { 3 };
            assert_eq!(cells[mine].get(), (1 - p.id()) as f64 + 1.0);
        });
        assert_eq!(x.get_mut(), &[2.0, 0.0, 0.0, 1.0]);
    }
}
