//! Ground truth in the emulated NUMA machine, in the style of numatop's `mgen`:
//! threads placed on known nodes read and write regions placed on known nodes with
//! known frequencies; the monitor's estimates must match what the threads counted.
//!
//! # Safety
//!
//! The test program itself: its threads reference the watched regions through raw
//! addresses (volatile loads and stores the sampler must see), inside mappings the
//! test owns for the whole run.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use monitor::refine::{line_verdicts, plan_next_round};
use monitor::session::{Session, SessionOutcome};
use monitor::{FilterSpec, Granularity};
use numa_tests::{GuestSpec, Mapping, Rng};
use rset::sys::mempolicy::{self, MbindFlags, Mode};
use rset::{NodeId, Topology};

const LINE: usize = 64;

/// One sampler per process: the tests take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `pages` fresh pages bound to `node` and touched there.
fn region_on(node: u32, pages: usize) -> Mapping {
    let m = Mapping::new(pages);
    mempolicy::mbind(m.ptr, m.len, Mode::Bind, &[node], MbindFlags::default()).unwrap();
    m.touch();
    m
}

/// One access a worker makes: (address, write?), drawn from its own distribution.
type Pick = dyn Fn(&mut Rng) -> (usize, bool) + Sync;

/// Runs one thread per CPU node (bound to it) making accesses drawn by `pick(node)`,
/// counting each access in `truth(node, address)`, while `session` samples, until
/// `samples` samples were counted or a time limit.
fn run_workers(
    nodes: u32,
    pick: &(dyn Fn(u32) -> Box<Pick> + Sync),
    truth: &(dyn Fn(u32, usize, bool) + Sync),
    session: Session,
    done: &dyn Fn(&monitor::Report) -> bool,
) -> SessionOutcome {
    let topo = Topology::from_system().unwrap();
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|s| {
        for node in 0..nodes {
            let (stop, topo) = (&stop, &topo);
            s.spawn(move || {
                let rset = topo.rset_of_node(NodeId(node)).unwrap();
                rset::bind::bind_current_thread(&rset).unwrap();
                let draw = pick(node);
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(node + 1));
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..64 {
                        let (addr, write) = draw(&mut rng);
                        truth(node, addr, write);
                        if write {
                            // SAFETY: `pick` returns addresses inside live mappings.
                            unsafe { std::ptr::write_volatile(addr as *mut u8, 1) };
                        } else {
                            // SAFETY: as above.
                            unsafe { std::ptr::read_volatile(addr as *const u8) };
                        }
                    }
                }
            });
        }
        let limit = Instant::now() + Duration::from_secs(240);
        while !done(&session.snapshot()) && Instant::now() < limit {
            std::thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let outcome = session.stop().unwrap();
    eprintln!(
        "sampled {:?} in {:.1} s",
        outcome.file.sampler,
        started.elapsed().as_secs_f64()
    );
    outcome
}

#[test]
fn remote_share_per_region_is_within_7_points_of_the_truth() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let spec = GuestSpec::from_env();
    let n = spec.nodes;
    let pages = 16;
    let len = pages * 4096;
    // Region 0 on node 0; region 1 on the last node (the CPU-less one where there is
    // one: every reference to it is remote).
    let homes = [0, spec.total_nodes() - 1];
    let regions: Vec<Mapping> = homes.iter().map(|&h| region_on(h, pages)).collect();
    let bases: Vec<usize> = regions.iter().map(|m| m.ptr as usize).collect();
    // The thread on node j references region 0 with probability a_j, else region 1.
    let a = [0.8, 0.3, 0.6, 0.5];
    let truth: Vec<[AtomicU64; 2]> = (0..n)
        .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
        .collect();
    let mut builder = Session::builder().rate_hz(3000).max_overhead(0.0);
    for (k, m) in regions.iter().enumerate() {
        builder = builder.filter(
            FilterSpec::new(m.ptr as u64, len as u64, Granularity::PAGE).name(format!("R{k}")),
        );
    }
    let outcome = run_workers(
        n,
        &|j| {
            let (r0, r1, p) = (bases[0], bases[1], a[j as usize % 4]);
            Box::new(move |rng: &mut Rng| {
                let base = if rng.unit() < p { r0 } else { r1 };
                (
                    base + (rng.next_u64() as usize % len),
                    rng.next_u64().is_multiple_of(8),
                )
            })
        },
        &|j, addr, _| {
            let k = usize::from(addr >= bases[1] && addr < bases[1] + len);
            truth[j as usize][k].fetch_add(1, Ordering::Relaxed);
        },
        builder.start().unwrap(),
        &|report| {
            report
                .regions
                .iter()
                .map(|r| r.totals.all.local + r.totals.all.remote)
                .min()
                .unwrap_or(0)
                >= 900
        },
    );
    let report = outcome.report();
    eprintln!("{}", report.to_text(0));
    assert_eq!(outcome.file.sampler.lost, 0, "lost samples");
    for (k, &home) in homes.iter().enumerate() {
        let total: u64 = truth.iter().map(|t| t[k].load(Ordering::Relaxed)).sum();
        let local = truth
            .get(home as usize)
            .map_or(0, |t| t[k].load(Ordering::Relaxed));
        let truth_share = (total - local) as f64 / total as f64;
        let r = report
            .regions
            .iter()
            .find(|r| r.name == format!("R{k}"))
            .unwrap();
        let (l, rem) = (r.totals.all.local, r.totals.all.remote);
        let measured = rem as f64 / (l + rem) as f64;
        eprintln!(
            "R{k} (node {home}): remote share truth {truth_share:.3}, measured {measured:.3} \
             from {} samples",
            l + rem
        );
        assert!(l + rem >= 900, "R{k}: only {} samples", l + rem);
        // 7 points: the sampling error alone is about +/-3 points at 900+ samples,
        // and under TCG the vCPU threads run in bursts on 2 host cores, which the
        // estimator (proportional to each thread's reference rate at the sampling
        // instants) turns into a bias: 0.656 against 0.599 was seen once in CI.
        assert!(
            (measured - truth_share).abs() <= 0.07,
            "R{k}: remote share {measured:.3}, truth {truth_share:.3}"
        );
    }
}

#[test]
fn refinement_finds_the_hottest_cache_lines_and_flags_shared_writes() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let spec = GuestSpec::from_env();
    let n = spec.nodes;
    let pages = 8;
    let heap = region_on(0, pages);
    let base = heap.ptr as usize;
    let lines = pages * 4096 / LINE;
    // The ten hottest lines: nine read ones over three pages (6.0% .. 10.7% of all
    // references each) and one that every node writes (10%, false sharing). Far
    // below them: a line only node 0 writes (1%) and a cold background (0.03% a line),
    // so the ten are well defined and sampling noise cannot reorder the boundary.
    let hot: Vec<usize> = (0..9)
        .map(|i| [1usize, 2, 5][i % 3] * 64 + 7 * i + 3)
        .collect();
    let weights: Vec<f64> = (0..9).map(|i| 10.0 + i as f64).collect();
    let hot_total: f64 = weights.iter().sum();
    let shared_line = 3 * 64 + 40;
    let private_line = 6 * 64 + 9;
    let truth: Vec<AtomicU64> = (0..lines).map(|_| AtomicU64::new(0)).collect();
    let writers: Vec<AtomicU64> = (0..lines).map(|_| AtomicU64::new(0)).collect();
    let pick = |j: u32| -> Box<Pick> {
        let (hot, weights) = (hot.clone(), weights.clone());
        Box::new(move |rng: &mut Rng| {
            let u = rng.unit();
            let line = if u < 0.75 {
                // a hot line, by weight
                let mut x = rng.unit() * hot_total;
                let mut pick = hot[8];
                for (l, w) in hot.iter().zip(&weights) {
                    if x < *w {
                        pick = *l;
                        break;
                    }
                    x -= w;
                }
                pick
            } else if u < 0.85 {
                return (base + shared_line * LINE + 8 * j as usize, true);
            } else if u < 0.86 {
                return (base + private_line * LINE, j == 0);
            } else {
                rng.next_u64() as usize % lines
            };
            (base + line * LINE + rng.next_u64() as usize % LINE, false)
        })
    };
    let count = |_j: u32, addr: usize, write: bool| {
        let line = (addr - base) / LINE;
        truth[line].fetch_add(1, Ordering::Relaxed);
        if write {
            writers[line].fetch_add(1, Ordering::Relaxed);
        }
    };
    // Round 1: every page of the heap at page granularity.
    let round1 = run_workers(
        n,
        &pick,
        &count,
        Session::builder()
            .rate_hz(3000)
            .max_overhead(0.0)
            .filter(FilterSpec::new(base as u64, heap.len as u64, Granularity::PAGE).name("heap"))
            .start()
            .unwrap(),
        &|r| r.card.matched >= 600,
    );
    let next = plan_next_round(&round1.report(), 5, Granularity::LINE);
    assert!(!next.is_empty(), "round 1 found no hot page");
    // Round 2: the five hottest pages at cache-line granularity.
    let mut builder = Session::builder().rate_hz(3000).max_overhead(0.0);
    for f in next {
        builder = builder.filter(f);
    }
    let round2 = run_workers(n, &pick, &count, builder.start().unwrap(), &|r| {
        r.card.matched >= 1500
    });
    let report = round2.report();
    let mut found: Vec<(u64, usize)> = report
        .top_granules(10)
        .iter()
        .map(|g| {
            (
                g.totals.local + g.totals.remote,
                (g.addr as usize - base) / LINE,
            )
        })
        .collect();
    found.sort_unstable();
    let found: Vec<usize> = found.into_iter().map(|(_, l)| l).collect();
    let mut truth_top: Vec<(u64, usize)> = (0..lines)
        .map(|l| (truth[l].load(Ordering::Relaxed), l))
        .collect();
    truth_top.sort_unstable_by(|a, b| b.cmp(a));
    let truth_top: Vec<usize> = truth_top.iter().take(10).map(|&(_, l)| l).collect();
    let overlap = truth_top.iter().filter(|l| found.contains(l)).count();
    eprintln!("hottest lines: truth {truth_top:?}, found {found:?}");
    assert!(overlap >= 9, "found {overlap} of the 10 hottest lines");

    let verdicts = line_verdicts(&report);
    let verdict = |line: usize| {
        verdicts
            .iter()
            .find(|v| v.addr as usize == base + line * LINE)
    };
    if n >= 2 {
        let shared = verdict(shared_line).expect("the shared line was sampled");
        assert!(shared.write_shared, "{shared:?}");
        assert!(shared.writers.len() >= 2, "{shared:?}");
    }
    if let Some(private) = verdict(private_line) {
        assert!(!private.write_shared, "{private:?}");
    }
}

/// Issue 15's check, with the tick sampler at its default rate: four threads placed
/// round-robin (thread i on node i) stream over one shared array first touched on
/// node 0 and over a private array each, placed on the thread's node, for three
/// seconds. The shared array's remote share must be within 0.05 of the truth (the
/// threads count the bytes they read), every private array must be sampled, with
/// its own thread's node dominant.
#[test]
fn tick_sampler_measures_shared_and_private_arrays_in_three_seconds() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let spec = GuestSpec::from_env();
    if spec.nodes != 4 || spec.cpuless_nodes != 0 {
        eprintln!("skipped: the check is made in the 4-node guest");
        return;
    }
    let n = spec.nodes;
    let shared = region_on(0, 512); // 2 MiB, every page on node 0
    let private: Vec<Mapping> = (0..n).map(|j| region_on(j, 128)).collect(); // 512 KiB
    // The default rate; no budget: under the emulator a trap costs what hundreds
    // of emulated instructions do, so a budget in guest time would leave few samples.
    let mut builder = Session::builder()
        .software(monitor::session::Software::Tick)
        .max_overhead(0.0)
        .filter(
            FilterSpec::new(shared.ptr as u64, shared.len as u64, Granularity::PAGE).name("shared"),
        );
    for (j, m) in private.iter().enumerate() {
        builder = builder.filter(
            FilterSpec::new(m.ptr as u64, m.len as u64, Granularity::PAGE)
                .name(format!("private{j}")),
        );
    }
    let session = builder.start().unwrap();
    let topo = Topology::from_system().unwrap();
    let shared_words = shared.len / 8;
    // Addresses as integers: the mappings outlive the threads.
    let shared_at = shared.ptr as usize;
    let private_at: Vec<(usize, usize)> = private
        .iter()
        .map(|m| (m.ptr as usize, m.len / 8))
        .collect();
    let read_shared: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for j in 0..n {
            let (stop, topo, counted) = (&stop, &topo, &read_shared[j as usize]);
            let (mine, mine_words) = private_at[j as usize];
            s.spawn(move || {
                rset::bind::bind_current_thread(&topo.rset_of_node(NodeId(j)).unwrap()).unwrap();
                let mut sum = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for w in 0..mine_words {
                        // SAFETY: inside the thread's own live mapping.
                        sum = sum.wrapping_add(unsafe {
                            std::ptr::read_volatile((mine as *const u64).wrapping_add(w))
                        });
                    }
                    for w in 0..shared_words {
                        // SAFETY: inside the shared live mapping.
                        sum = sum.wrapping_add(unsafe {
                            std::ptr::read_volatile((shared_at as *const u64).wrapping_add(w))
                        });
                    }
                    counted.fetch_add(shared_words as u64, Ordering::Relaxed);
                }
                std::hint::black_box(sum);
            });
        }
        std::thread::sleep(Duration::from_secs(3));
        stop.store(true, Ordering::Relaxed);
    });
    let outcome = session.stop().unwrap();
    let report = outcome.report();
    eprintln!("{}", report.to_text(0));
    eprintln!("sampler {:?}", outcome.file.sampler);
    let all: u64 = read_shared.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    let truth = 1.0 - read_shared[0].load(Ordering::Relaxed) as f64 / all as f64;
    let region = |name: &str| report.regions.iter().find(|r| r.name == name).unwrap();
    let sh = &region("shared").totals.all;
    let samples = sh.local + sh.remote;
    let measured = sh.remote as f64 / samples as f64;
    eprintln!(
        "shared: remote share truth {truth:.3}, measured {measured:.3} from {samples} samples"
    );
    assert!(samples >= 200, "only {samples} samples on the shared array");
    assert!(
        (measured - truth).abs() <= 0.05,
        "shared: remote share {measured:.3}, truth {truth:.3}"
    );
    for j in 0..n {
        let r = region(&format!("private{j}"));
        let dominant = r
            .totals
            .by_node
            .iter()
            .max_by_key(|(_, c)| c.local + c.remote)
            .map(|(&node, c)| (node, c.local + c.remote));
        eprintln!("private{j}: {:?}", r.totals.by_node);
        assert_eq!(
            dominant.map(|d| d.0),
            Some(j),
            "private{j}: {:?}",
            r.totals.by_node
        );
    }
}
