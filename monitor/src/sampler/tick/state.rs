//! The tick sampler's state shared with its signal handler: atomics in static memory
//! (no allocation and no lock in the handler), the watched ranges in address order,
//! the sample ring (many threads record at once), and one slot per sampled thread.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

/// Ranges the sampler can watch at once.
pub const MAX_RANGES: usize = 4096;
/// Threads the sampler can give a tick event at once.
pub const MAX_THREADS: usize = 1024;
/// Samples buffered between drains; more are counted as lost.
pub const RING: usize = 1 << 14;
/// Marks our perf events' signals (`perf_event_attr.sig_data`).
pub(super) const SIG_DATA: u64 = 0x7469_636b_7273_6574;

#[allow(clippy::declare_interior_mutable_const)]
const ZU: AtomicUsize = AtomicUsize::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const Z64: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const ZI: AtomicI32 = AtomicI32::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const NEG: AtomicI32 = AtomicI32::new(-1);
#[allow(clippy::declare_interior_mutable_const)]
const NOPTR: AtomicPtr<iced_x86::InstructionInfoFactory> = AtomicPtr::new(std::ptr::null_mut());

/// Watched ranges, sorted by start and not overlapping. The controller rewrites
/// them only after setting `n` to 0 and waiting for handlers in flight to finish.
pub(super) struct Ranges {
    pub(super) n: AtomicUsize,
    pub(super) starts: [AtomicUsize; MAX_RANGES],
    pub(super) ends: [AtomicUsize; MAX_RANGES],
}

pub(super) static RANGES: Ranges = Ranges {
    n: AtomicUsize::new(0),
    starts: [ZU; MAX_RANGES],
    ends: [ZU; MAX_RANGES],
};

impl Ranges {
    /// Whether `addr` lies in a watched range (binary search).
    pub(super) fn contains(&self, addr: usize) -> bool {
        let n = self.n.load(Ordering::Acquire).min(MAX_RANGES);
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.starts[mid].load(Ordering::Relaxed) <= addr {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo > 0 && addr < self.ends[lo - 1].load(Ordering::Relaxed)
    }

    /// Publishes `ranges` (any order; merged where they overlap or touch).
    pub(super) fn set(&self, ranges: &[(usize, usize)]) {
        let mut v: Vec<(usize, usize)> = ranges.iter().map(|&(s, l)| (s, s + l)).collect();
        v.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(v.len());
        for (s, e) in v {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.n.store(0, Ordering::Release);
        while IN_FLIGHT.load(Ordering::Acquire) != 0 {
            std::hint::spin_loop();
        }
        for (i, &(s, e)) in merged.iter().enumerate().take(MAX_RANGES) {
            self.starts[i].store(s, Ordering::Relaxed);
            self.ends[i].store(e, Ordering::Relaxed);
        }
        self.n
            .store(merged.len().min(MAX_RANGES), Ordering::Release);
    }
}

/// Handlers running now that read the ranges.
pub(super) static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// The sample ring: a slot is claimed by moving `head`, filled, then published by
/// writing its sequence number (`claimed index + 1`); the drain reads in order and
/// stops at the first slot not yet published.
pub(super) struct Ring {
    pub(super) head: AtomicU64,
    pub(super) tail: AtomicU64,
    pub(super) lost: AtomicU64,
    pub(super) seq: [AtomicU64; RING],
    pub(super) addr: [AtomicU64; RING],
    pub(super) time: [AtomicU64; RING],
    pub(super) who: [AtomicU64; RING],
    pub(super) place: [AtomicU64; RING],
}

pub(super) static SAMPLES: Ring = Ring {
    head: AtomicU64::new(0),
    tail: AtomicU64::new(0),
    lost: AtomicU64::new(0),
    seq: [Z64; RING],
    addr: [Z64; RING],
    time: [Z64; RING],
    who: [Z64; RING],
    place: [Z64; RING],
};

impl Ring {
    /// Records one sample; counts it lost when the ring is full.
    pub(super) fn push(&self, addr: u64, time: u64, who: u64, place: u64) {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            if head.wrapping_sub(self.tail.load(Ordering::Acquire)) >= RING as u64 {
                self.lost.fetch_add(1, Ordering::Relaxed);
                return;
            }
            match self.head.compare_exchange_weak(
                head,
                head + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
        let i = (head % RING as u64) as usize;
        self.addr[i].store(addr, Ordering::Relaxed);
        self.time[i].store(time, Ordering::Relaxed);
        self.who[i].store(who, Ordering::Relaxed);
        self.place[i].store(place, Ordering::Relaxed);
        self.seq[i].store(head + 1, Ordering::Release);
    }
}

/// One sampled thread: its id, its perf event's descriptor, and the instruction
/// analyser its handler uses (made by the controller: the handler must not allocate).
pub(super) struct Slot {
    pub(super) tid: AtomicI32,
    pub(super) fd: AtomicI32,
    pub(super) factory: AtomicPtr<iced_x86::InstructionInfoFactory>,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_SLOT: Slot = Slot {
    tid: ZI,
    fd: NEG,
    factory: NOPTR,
};

pub(super) static SLOTS: [Slot; MAX_THREADS] = [EMPTY_SLOT; MAX_THREADS];

/// Truth that handlers may sample (cleared first when the sampler stops).
pub(super) static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Truth that a tick sampler owns this state.
pub(super) static RUNNING: AtomicBool = AtomicBool::new(false);
/// Mean tick gap in ns of thread CPU time (the controller sets it; handlers draw
/// each thread's next gap from it).
pub(super) static MEAN_PERIOD_NS: AtomicU64 = AtomicU64::new(1_000_000);
/// Instructions a tick may step (from the config).
pub(super) static MAX_STEPS: AtomicU64 = AtomicU64::new(16);
/// Monotonic time the session's clock starts at.
pub(super) static EPOCH_NS: AtomicU64 = AtomicU64::new(0);
/// The page size, read once before any handler runs.
pub(super) static PAGE: AtomicUsize = AtomicUsize::new(4096);
/// Seed mixed into each thread's generator.
pub(super) static SEED: AtomicU64 = AtomicU64::new(1);

/// Counters the handler keeps (see [`super::TickStats`]).
pub(super) struct Counters {
    pub(super) ticks: AtomicU64,
    pub(super) hits_at_tick: AtomicU64,
    pub(super) hits_after_steps: AtomicU64,
    pub(super) misses: AtomicU64,
    pub(super) steps: AtomicU64,
    /// Time spent inside our handler, ns (the signal delivery itself is not seen).
    pub(super) handler_ns: AtomicU64,
}

pub(super) static COUNTERS: Counters = Counters {
    ticks: AtomicU64::new(0),
    hits_at_tick: AtomicU64::new(0),
    hits_after_steps: AtomicU64::new(0),
    misses: AtomicU64::new(0),
    steps: AtomicU64::new(0),
    handler_ns: AtomicU64::new(0),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_answer_membership() {
        static R: Ranges = Ranges {
            n: AtomicUsize::new(0),
            starts: [ZU; MAX_RANGES],
            ends: [ZU; MAX_RANGES],
        };
        R.set(&[
            (0x5000, 0x1000),
            (0x1000, 0x2000),
            (0x2000, 0x2000),
            (0x9000, 0x10),
        ]);
        assert_eq!(R.n.load(Ordering::Relaxed), 3);
        for (addr, inside) in [
            (0xfff, false),
            (0x1000, true),
            (0x3fff, true),
            (0x4000, false),
            (0x5000, true),
            (0x5fff, true),
            (0x6000, false),
            (0x900f, true),
            (0x9010, false),
        ] {
            assert_eq!(R.contains(addr), inside, "{addr:#x}");
        }
        R.set(&[]);
        assert!(!R.contains(0x1000));
    }
}
