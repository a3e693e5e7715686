//! Region creation and population against libnuma, side by side in one run.
//!
//! ```sh
//! cargo bench -p alloc-policies --features bench --bench regions            # 1 GiB
//! cargo bench -p alloc-policies --features bench --bench regions -- --mib 256 --reps 3
//! REGIONS_BENCH_MIB=128 ./regions-HASH --bench                             # in a guest
//! ```
//!
//! Each case times making a region of the given size and faulting in every page:
//! `Region::builder(..).build()` (which populates) against libnuma's
//! `numa_alloc_interleaved` / `numa_alloc_onnode` followed by either a write to
//! every page (what a libnuma program does) or `MADV_POPULATE_WRITE` (the same
//! kernel path a region uses). Freeing is not timed. The calling thread runs on
//! node 0's CPUs throughout, so Local means node 0 on both sides. Medians of the
//! repetitions; ratios are ours / libnuma (below 1: ours is faster).
//!
//! Striped with stride 4 has no libnuma counterpart; it is compared with
//! libnuma's interleave, the nearest thing, to show what exact 4-page stripes cost.
//!
//! # Safety
//! libnuma's `numa_alloc_*` and `numa_free` are declared here and called with the
//! lengths of the blocks they made; writes stay inside those blocks; `madvise` and
//! `clock_gettime` get a block we own and a live `timespec`.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};
use std::time::{Duration, Instant};

use alloc_policies::{Policy, Region, Stride};
use rset::sys::affinity;
use rset::{NodeId, Topology};

#[link(name = "numa")]
unsafe extern "C" {
    fn numa_available() -> c_int;
    fn numa_alloc_interleaved(size: usize) -> *mut c_void;
    fn numa_alloc_onnode(size: usize, node: c_int) -> *mut c_void;
    fn numa_free(start: *mut c_void, size: usize);
}

/// One libnuma allocation, freed on drop.
struct NumaBlock {
    ptr: *mut u8,
    len: usize,
}

impl NumaBlock {
    fn interleaved(len: usize) -> NumaBlock {
        // SAFETY: numa_alloc_interleaved takes a size and returns a fresh mapping
        // or NULL; numa_available() was checked in main.
        let ptr = unsafe { numa_alloc_interleaved(len) };
        NumaBlock::checked(ptr, len, "numa_alloc_interleaved")
    }

    fn on_node(len: usize, node: u32) -> NumaBlock {
        // SAFETY: as above, for numa_alloc_onnode.
        let ptr = unsafe { numa_alloc_onnode(len, node as c_int) };
        NumaBlock::checked(ptr, len, "numa_alloc_onnode")
    }

    fn checked(ptr: *mut c_void, len: usize, what: &str) -> NumaBlock {
        assert!(!ptr.is_null(), "{what}({len}) failed");
        NumaBlock {
            ptr: ptr.cast(),
            len,
        }
    }

    /// Writes one byte in every page from this thread.
    fn touch(&mut self, page: usize) {
        for off in (0..self.len).step_by(page) {
            // SAFETY: off < len, inside the live read-write mapping this block owns,
            // which nothing else accesses.
            unsafe { self.ptr.wrapping_add(off).write_volatile(0) };
        }
    }

    /// `MADV_POPULATE_WRITE` over the whole block; falls back to touching.
    fn populate(&mut self, page: usize) {
        // SAFETY: the range is exactly the mapping this block owns; populating does
        // not change its contents.
        let ret = unsafe { libc::madvise(self.ptr.cast(), self.len, libc::MADV_POPULATE_WRITE) };
        if ret != 0 {
            self.touch(page);
        }
    }
}

impl Drop for NumaBlock {
    fn drop(&mut self) {
        // SAFETY: frees exactly the block libnuma returned, used by nobody else.
        unsafe { numa_free(self.ptr.cast(), self.len) };
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`): page faults and
/// zeroing are charged to it, time spent waiting for a CPU on a loaded machine
/// is not.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live timespec the call writes and nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Median wall-clock and thread CPU time of one run.
#[derive(Clone, Copy)]
struct Times {
    wall: Duration,
    cpu: Duration,
}

/// Times each of `runs` `reps` times, taking turns (one of each, then again) so
/// that drift in the machine (other load, the hypervisor backing fresh memory)
/// spreads over all of them; returns the medians.
fn time_in_turns(
    reps: usize,
    runs: &mut [&mut dyn FnMut() -> Box<dyn std::any::Any>],
) -> Vec<Times> {
    let mut wall = vec![Vec::with_capacity(reps); runs.len()];
    let mut cpu = vec![Vec::with_capacity(reps); runs.len()];
    for _ in 0..reps {
        for (i, run) in runs.iter_mut().enumerate() {
            let (w, c) = (Instant::now(), thread_cpu_time());
            let keep = run();
            cpu[i].push(thread_cpu_time().saturating_sub(c));
            wall[i].push(w.elapsed());
            drop(keep); // freeing is not timed
        }
    }
    wall.into_iter()
        .zip(cpu)
        .map(|(w, c)| Times {
            wall: median(w),
            cpu: median(c),
        })
        .collect()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn ratio(ours: Duration, theirs: Duration) -> String {
    format!("{:.2}", ours.as_secs_f64() / theirs.as_secs_f64())
}

fn arg_or_env(args: &[String], flag: &str, env: &str, default: usize) -> usize {
    let from_args = args
        .iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{flag} {v}: not a number"))
        });
    let from_env = std::env::var(env).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{env}={v}: not a number"))
    });
    from_args.or(from_env).unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mib = arg_or_env(&args, "--mib", "REGIONS_BENCH_MIB", 1024);
    let reps = arg_or_env(&args, "--reps", "REGIONS_BENCH_REPS", 5).max(1);
    let bytes = mib << 20;
    let page = numa_tests::page_size();

    // SAFETY: numa_available has no preconditions; it must be called first.
    if unsafe { numa_available() } < 0 {
        eprintln!("libnuma says NUMA is not available here; nothing to compare");
        return;
    }
    let topo = Topology::from_system().expect("hwloc topology");
    let node0 = topo.rset_of_node(NodeId(0)).expect("node 0");
    let cpus: Vec<u32> = node0.cpus().iter().map(|c| c.0).collect();
    affinity::set_affinity(None, &cpus).expect("run on node 0");
    let nodes = topo.nodes().len();

    let striped = |k: usize| Policy::Striped {
        stride_pages: Stride::new(k).unwrap(),
    };
    let cases: Vec<(&str, Policy, bool)> = vec![
        ("striped:1 vs interleaved", striped(1), true),
        ("striped:4 vs interleaved", striped(4), true),
        (
            "bind:0 vs onnode(0)",
            Policy::Bind(node0.nodes().clone()),
            false,
        ),
        ("local (node 0) vs onnode(0)", Policy::Local, false),
    ];

    let header = || {
        println!(
            "{:<28} {:>11} {:>15} {:>6} {:>18} {:>6}",
            "case", "ours", "libnuma+touch", "ratio", "libnuma+populate", "ratio"
        )
    };
    let row = |name: &str, ours: Duration, touch: Duration, populate: Duration| {
        println!(
            "{:<28} {:>11} {:>15} {:>6} {:>18} {:>6}",
            name,
            ms(ours),
            ms(touch),
            ratio(ours, touch),
            ms(populate),
            ratio(ours, populate)
        )
    };
    let mut results = Vec::new();
    for (name, policy, interleaved) in cases {
        // Once untimed: check that every page is where the policy says.
        let r = Region::<u8>::builder(bytes)
            .policy(policy.clone())
            .build()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        r.verify().unwrap_or_else(|e| panic!("{name}: {e}"));
        drop(r);

        let alloc = || {
            if interleaved {
                NumaBlock::interleaved(bytes)
            } else {
                NumaBlock::on_node(bytes, 0)
            }
        };
        let mut ours = || -> Box<dyn std::any::Any> {
            Box::new(
                Region::<u8>::builder(bytes)
                    .policy(policy.clone())
                    .build()
                    .unwrap(),
            )
        };
        let mut touch = || -> Box<dyn std::any::Any> {
            let mut b = alloc();
            b.touch(page);
            Box::new(b)
        };
        let mut populate = || -> Box<dyn std::any::Any> {
            let mut b = alloc();
            b.populate(page);
            Box::new(b)
        };
        let t = time_in_turns(reps, &mut [&mut ours, &mut touch, &mut populate]);
        results.push((name, t[0], t[1], t[2]));
    }
    println!(
        "region creation + population: {mib} MiB, {nodes} node(s), median of {reps}; \
         ratio = ours / libnuma"
    );
    println!("wall-clock time:");
    header();
    for (name, ours, touch, populate) in &results {
        row(name, ours.wall, touch.wall, populate.wall);
    }
    println!("CPU time of the allocating thread (not counting waits for a CPU):");
    header();
    for (name, ours, touch, populate) in &results {
        row(name, ours.cpu, touch.cpu, populate.cpu);
    }
}
