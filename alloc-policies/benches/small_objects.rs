//! Small-object allocation throughput, side by side in one run: glibc malloc
//! (`std::alloc::System`), jemalloc, mimalloc and `NumaAlloc` (Local policy), each
//! called through `GlobalAlloc` directly from the same code, with 1 and 2 threads.
//!
//! Workloads (sizes drawn from a fixed pseudo-random table of 16..=512 bytes):
//! - `lifo`: allocate a batch of 64 blocks, free them newest first; repeat.
//! - `churn`: 1024 live slots; each step frees a random slot and refills it.
//! - `prodcons` (2 threads): one thread allocates, the other frees (cross-thread
//!   frees), handing blocks over in batches of 256.
//!
//! Prints millions of alloc+free pairs per second (best of several interleaved
//! repetitions; timed by each thread's CPU time, so that other processes on a shared
//! machine count less, or by the wall clock with `SMALL_OBJECTS_CLOCK=wall`), the ratios NumaAlloc/mimalloc, NumaAlloc/glibc and
//! NumaAlloc/jemalloc, and the same numbers as CSV.
//!
//! `cargo bench -p alloc-policies --features bench --bench small_objects`
//! (`SMALL_OBJECTS_PAIRS=N` sets the pairs per thread per run, `SMALL_OBJECTS_REPS`
//! the repetitions, `SMALL_OBJECTS_ONLY=lifo1,churn2` a subset of the cases.)
//!
//! # Safety
//! The workloads call each allocator's `GlobalAlloc` methods directly: layouts of
//! 16..=512 bytes, each block written only within its size and freed exactly once
//! with its own layout, by the thread that took it or the one it was handed to;
//! `clock_gettime` writes a live `timespec`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use alloc_policies::NumaAlloc;
use mimalloc::MiMalloc;
use tikv_jemallocator::Jemalloc;

const SIZES: usize = 4096;
const LIFO_BATCH: usize = 64;
const CHURN_SLOTS: usize = 1024;
const HANDOFF: usize = 256;

/// Block layouts of 16..=512 bytes, 8-aligned, from a fixed xorshift sequence.
fn layouts() -> Vec<Layout> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..SIZES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let size = 16 + (x % 497) as usize;
            Layout::from_size_align(size, 8).expect("layout")
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Work {
    Lifo,
    Churn,
    ProdCons,
}

impl Work {
    fn name(self) -> &'static str {
        match self {
            Work::Lifo => "lifo",
            Work::Churn => "churn",
            Work::ProdCons => "prodcons",
        }
    }
}

/// # Safety
/// `a` must be a working allocator; every block is freed with its own layout.
#[inline(never)]
unsafe fn lifo<A: GlobalAlloc>(a: &A, layouts: &[Layout], pairs: usize, seed: usize) {
    let mut live = [std::ptr::null_mut::<u8>(); LIFO_BATCH];
    let mut k = seed;
    for _ in 0..pairs / LIFO_BATCH {
        let start = k;
        for slot in live.iter_mut() {
            let l = layouts[k % SIZES];
            // SAFETY: non-zero size (16..=512).
            let p = unsafe { a.alloc(l) };
            // SAFETY: `p` is a fresh block of at least one byte (null is not
            // expected from any of these allocators at this size).
            unsafe { p.write(k as u8) };
            *slot = black_box(p);
            k += 1;
        }
        for (i, &p) in live.iter().enumerate().rev() {
            // SAFETY: allocated above with this layout.
            unsafe { a.dealloc(p, layouts[(start + i) % SIZES]) };
        }
    }
}

/// # Safety
/// As [`lifo`].
#[inline(never)]
unsafe fn churn<A: GlobalAlloc>(a: &A, layouts: &[Layout], pairs: usize, seed: usize) {
    let mut slots = vec![(std::ptr::null_mut::<u8>(), 0usize); CHURN_SLOTS];
    for (i, s) in slots.iter_mut().enumerate() {
        let idx = (seed + i) % SIZES;
        // SAFETY: non-zero size.
        *s = (unsafe { a.alloc(layouts[idx]) }, idx);
    }
    let mut x = (seed as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
    for k in 0..pairs {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let slot = &mut slots[(x % CHURN_SLOTS as u64) as usize];
        // SAFETY: the slot holds a live block of its recorded layout.
        unsafe { a.dealloc(slot.0, layouts[slot.1]) };
        let idx = (seed + k) % SIZES;
        // SAFETY: non-zero size.
        let p = unsafe { a.alloc(layouts[idx]) };
        // SAFETY: fresh block of at least one byte.
        unsafe { p.write(k as u8) };
        *slot = (black_box(p), idx);
    }
    for s in slots {
        // SAFETY: live blocks of their recorded layouts.
        unsafe { a.dealloc(s.0, layouts[s.1]) };
    }
}

/// A one-slot mailbox of `HANDOFF` block pointers between two threads.
struct Mailbox {
    full: AtomicUsize,
    blocks: [AtomicPtr<u8>; HANDOFF],
}

/// Spins until `ready`, yielding the CPU now and then (the machine may have fewer
/// free cores than the benchmark has threads).
fn wait_until(ready: impl Fn() -> bool) {
    let mut spins = 0u32;
    while !ready() {
        spins += 1;
        if spins.is_multiple_of(64) {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// # Safety
/// As [`lifo`]; `producer` allocates, the other side frees.
#[inline(never)]
unsafe fn prodcons<A: GlobalAlloc>(
    a: &A,
    layouts: &[Layout],
    pairs: usize,
    producer: bool,
    mb: &Mailbox,
) {
    let rounds = pairs / HANDOFF;
    for r in 0..rounds {
        if producer {
            wait_until(|| mb.full.load(Ordering::Acquire) == 0);
            for (i, slot) in mb.blocks.iter().enumerate() {
                // SAFETY: non-zero size.
                let p = unsafe { a.alloc(layouts[(r * HANDOFF + i) % SIZES]) };
                // SAFETY: fresh block of at least one byte.
                unsafe { p.write(i as u8) };
                slot.store(p, Ordering::Relaxed);
            }
            mb.full.store(1, Ordering::Release);
        } else {
            wait_until(|| mb.full.load(Ordering::Acquire) != 0);
            for (i, slot) in mb.blocks.iter().enumerate() {
                let p = slot.load(Ordering::Relaxed);
                // SAFETY: the producer allocated it with this layout and gave it up.
                unsafe { a.dealloc(p, layouts[(r * HANDOFF + i) % SIZES]) };
            }
            mb.full.store(0, Ordering::Release);
        }
    }
}

/// The calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live timespec the call writes.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Whether runs are timed by each thread's CPU time (the default: on a shared
/// machine it leaves out the time other processes hold the CPU) or by the wall
/// clock (`SMALL_OBJECTS_CLOCK=wall`).
fn cpu_clock() -> bool {
    std::env::var("SMALL_OBJECTS_CLOCK").map_or(true, |c| c != "wall")
}

/// Runs `work` on `threads` threads; returns alloc+free pairs per second of the
/// slowest thread's time.
fn measure<A: GlobalAlloc + Sync>(a: &A, work: Work, threads: usize, pairs: usize) -> f64 {
    let layouts = layouts();
    let barrier = Barrier::new(threads);
    let mb = Arc::new(Mailbox {
        full: AtomicUsize::new(0),
        blocks: [const { AtomicPtr::new(std::ptr::null_mut()) }; HANDOFF],
    });
    let times: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (layouts, barrier, mb) = (&layouts, &barrier, mb.clone());
                s.spawn(move || {
                    // Warm this thread's caches up first.
                    // SAFETY: the allocators under test work; blocks freed with their layouts.
                    unsafe { lifo(a, layouts, 4096, t) };
                    barrier.wait();
                    let start = (Instant::now(), thread_cpu_time());
                    match work {
                        // SAFETY: as above.
                        Work::Lifo => unsafe { lifo(a, layouts, pairs, t * 7) },
                        // SAFETY: as above.
                        Work::Churn => unsafe { churn(a, layouts, pairs, t * 7) },
                        // SAFETY: as above; one producer (thread 0), one consumer.
                        Work::ProdCons => unsafe { prodcons(a, layouts, pairs, t == 0, &mb) },
                    }
                    if cpu_clock() {
                        thread_cpu_time().saturating_sub(start.1)
                    } else {
                        start.0.elapsed()
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .collect()
    });
    let slowest = times.into_iter().max().unwrap_or_default();
    let total = match work {
        Work::ProdCons => (pairs / HANDOFF) * HANDOFF,
        Work::Lifo => (pairs / LIFO_BATCH) * LIFO_BATCH * threads,
        Work::Churn => pairs * threads,
    };
    total as f64 / slowest.as_secs_f64()
}

const NAMES: [&str; 4] = ["glibc", "jemalloc", "mimalloc", "NumaAlloc"];

fn measure_nth(i: usize, work: Work, threads: usize, pairs: usize) -> f64 {
    static NUMA: NumaAlloc = NumaAlloc::new();
    match i {
        0 => measure(&System, work, threads, pairs),
        1 => measure(&Jemalloc, work, threads, pairs),
        2 => measure(&MiMalloc, work, threads, pairs),
        _ => measure(&NUMA, work, threads, pairs),
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let pairs = env_usize("SMALL_OBJECTS_PAIRS", 2_000_000);
    let reps = env_usize("SMALL_OBJECTS_REPS", 7).max(1);
    let cases = [
        (Work::Lifo, 1),
        (Work::Churn, 1),
        (Work::Lifo, 2),
        (Work::Churn, 2),
        (Work::ProdCons, 2),
    ];
    println!(
        "small objects (16..=512 B), {pairs} alloc+free pairs per thread, best of {reps}, \
         Mops/s = million pairs per second of the slowest thread's {} time\n",
        if cpu_clock() { "CPU" } else { "wall-clock" }
    );
    println!(
        "{:<10} {:>3} {:>9} {:>9} {:>9} {:>9}  {:>8} {:>8} {:>8}",
        "workload", "thr", NAMES[0], NAMES[1], NAMES[2], NAMES[3], "/mimal", "/glibc", "/jemal"
    );
    let mut csv = String::from(
        "workload,threads,glibc_mops,jemalloc_mops,mimalloc_mops,numaalloc_mops,numa_over_mimalloc,numa_over_glibc,numa_over_jemalloc\n",
    );
    let mut geo = [0f64; 3];
    let only = std::env::var("SMALL_OBJECTS_ONLY").unwrap_or_default();
    let cases: Vec<_> = cases
        .into_iter()
        .filter(|(w, t)| {
            only.is_empty() || only.split(',').any(|c| c == format!("{}{t}", w.name()))
        })
        .collect();
    for &(work, threads) in &cases {
        let mut best = [0f64; 4];
        for _ in 0..reps {
            // Interleave the allocators so that drift in the machine hits all alike.
            for (i, b) in best.iter_mut().enumerate() {
                *b = b.max(measure_nth(i, work, threads, pairs) / 1e6);
            }
        }
        let r = [best[3] / best[2], best[3] / best[0], best[3] / best[1]];
        for (g, v) in geo.iter_mut().zip(r) {
            *g += v.ln();
        }
        println!(
            "{:<10} {:>3} {:>9.1} {:>9.1} {:>9.1} {:>9.1}  {:>8.3} {:>8.3} {:>8.3}",
            work.name(),
            threads,
            best[0],
            best[1],
            best[2],
            best[3],
            r[0],
            r[1],
            r[2]
        );
        csv.push_str(&format!(
            "{},{},{:.2},{:.2},{:.2},{:.2},{:.4},{:.4},{:.4}\n",
            work.name(),
            threads,
            best[0],
            best[1],
            best[2],
            best[3],
            r[0],
            r[1],
            r[2]
        ));
    }
    let n = cases.len() as f64;
    println!(
        "\ngeometric mean of ratios: NumaAlloc/mimalloc {:.3}, NumaAlloc/glibc {:.3}, \
         NumaAlloc/jemalloc {:.3}\n",
        (geo[0] / n).exp(),
        (geo[1] / n).exp(),
        (geo[2] / n).exp()
    );
    print!("{csv}");
}
