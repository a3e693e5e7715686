//! `NumaAlloc` as the global allocator of this binary, inside the emulated NUMA
//! guests (`cargo xtask test`): every page of every object is located with
//! `move_pages` after it was written, and must be where the policy says.
//!
//! - Local: objects made by a thread bound to node `n` are on `n`, whoever touches
//!   them first, and follow the thread when it is re-bound to another node.
//! - Remote: never on `n`, and on the nearest other node (lowest id on ties), even
//!   though the bound thread's own memory policy says `n`.
//! - RemoteTo a CPU-less node, Bind, Interleave, Striped (large blocks page by page,
//!   small blocks whole on one node of the set), Float.
//! - allocator-api2 collections placed by a `PolicyAlloc` handle, grown through
//!   the large-block threshold.
//! - Large blocks stay exact while other threads map memory next to them and fault
//!   transparent huge pages in; striped and interleaved blocks keep their layout
//!   when they grow.
//!
//! # Safety
//! One test calls `GlobalAlloc::alloc` directly, with a non-zero-sized layout, to
//! see the null it returns for a policy the machine cannot serve.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use alloc_policies::sys::mman::Mapping;
use alloc_policies::{LARGE_THRESHOLD, NumaAlloc, NumaAllocError, Policy, Stride, with_policy};
use numa_tests::{GuestSpec, page_size};
use rset::bind::bind_current_thread;
use rset::sys::mempolicy::{PageStatus, move_pages_query};
use rset::{NodeId, NodeSet, Topology};

#[global_allocator]
static A: NumaAlloc = NumaAlloc::new();

const MIB: usize = 1 << 20;

/// Object sizes from a small object to a large mapped block.
const SIZES: [usize; 12] = [
    16,
    48,
    200,
    1000,
    4096,
    10_000,
    100_000,
    600_000,
    LARGE_THRESHOLD - 64,
    LARGE_THRESHOLD,
    3 * MIB + 100,
    4 * MIB,
];

fn machine() -> Topology {
    Topology::from_system().expect("hwloc topology of the guest")
}

fn cpu_nodes(topo: &Topology) -> Vec<NodeId> {
    topo.nodes()
        .iter()
        .filter(|n| !n.cpu_less)
        .map(|n| n.id)
        .collect()
}

fn memory_nodes(topo: &Topology) -> Vec<NodeId> {
    topo.global_rset().effective_nodes().iter().collect()
}

/// Where each page of `[ptr, ptr + len)` is.
fn nodes_of(ptr: *const u8, len: usize) -> Vec<PageStatus> {
    let page = page_size();
    let first = ptr as usize / page;
    let last = (ptr as usize + len.max(1) - 1) / page;
    let pages: Vec<*const u8> = (first..=last)
        .map(|p| std::ptr::with_exposed_provenance::<u8>(p * page))
        .collect();
    move_pages_query(&pages).expect("move_pages")
}

/// Asserts every page of the object is on `want`.
fn assert_on(what: &str, ptr: *const u8, len: usize, want: NodeId) {
    let got = nodes_of(ptr, len);
    let bad: Vec<(usize, PageStatus)> = got
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, s)| s != PageStatus::Node(want.0))
        .collect();
    assert!(
        bad.is_empty(),
        "{what} ({len} bytes at {ptr:p}): pages not on node {want}: {bad:?} (of {})",
        got.len()
    );
}

/// The node each page of the object is on (asserting all are present).
fn page_nodes(what: &str, ptr: *const u8, len: usize) -> Vec<u32> {
    nodes_of(ptr, len)
        .into_iter()
        .map(|s| match s {
            PageStatus::Node(n) => n,
            other => panic!("{what}: a page is {other:?}"),
        })
        .collect()
}

/// Runs `f` on a fresh thread bound (CPUs and memory) to node `n`.
fn on_node<R: Send>(topo: &Topology, n: NodeId, f: impl FnOnce() -> R + Send) -> R {
    let rset = topo.rset_of_node(n).expect("node exists");
    std::thread::scope(|s| {
        s.spawn(|| {
            bind_current_thread(&rset).expect("bind to the node");
            f()
        })
        .join()
        .expect("bound thread")
    })
}

/// Objects of every size, each fully written (with non-zero bytes: `vec![0; n]`
/// would take fresh, untouched zero pages): Vecs of bytes and a few Boxes.
fn make_objects(seed: u8) -> (Vec<Vec<u8>>, Vec<Box<[u64; 4]>>) {
    let vecs = SIZES.iter().map(|&s| vec![seed | 0x80; s]).collect();
    let boxes = (0..8).map(|i| Box::new([i + 1; 4])).collect();
    (vecs, boxes)
}

fn assert_objects_on(what: &str, objs: &(Vec<Vec<u8>>, Vec<Box<[u64; 4]>>), want: NodeId) {
    for v in &objs.0 {
        assert_on(what, v.as_ptr(), v.len(), want);
    }
    for b in &objs.1 {
        assert_on(what, b.as_ptr().cast(), 32, want);
    }
}

#[test]
fn local_objects_land_on_the_allocating_threads_node() {
    let topo = machine();
    for n in cpu_nodes(&topo) {
        on_node(&topo, n, || {
            let objs = make_objects(1);
            assert_objects_on(&format!("Local on node {n}"), &objs, n);
            // Explicitly Local inside another policy scope, too.
            with_policy(Policy::Float, || {
                with_policy(Policy::Local, || {
                    let objs = make_objects(2);
                    assert_objects_on(&format!("nested Local on node {n}"), &objs, n);
                })
            });
        });
    }
}

#[test]
fn local_placement_holds_whoever_touches_the_memory_first() {
    let topo = machine();
    let nodes = cpu_nodes(&topo);
    for (i, &n) in nodes.iter().enumerate() {
        let m = nodes[(i + 1) % nodes.len()];
        // A thread on n allocates without touching; a thread on m writes first.
        let (tx, rx) = mpsc::channel::<Vec<Vec<u8>>>();
        on_node(&topo, n, || {
            let untouched: Vec<Vec<u8>> = SIZES.iter().map(|&s| Vec::with_capacity(s)).collect();
            tx.send(untouched).unwrap();
        });
        let objs = rx.recv().unwrap();
        let objs = on_node(&topo, m, move || {
            let mut objs = objs;
            for (v, &s) in objs.iter_mut().zip(&SIZES) {
                v.resize(s, 3);
            }
            objs
        });
        for v in &objs {
            assert_on(
                &format!("allocated on node {n}, first touched on node {m}"),
                v.as_ptr(),
                v.len(),
                n,
            );
        }
    }
}

#[test]
fn local_follows_a_thread_that_is_rebound() {
    let topo = machine();
    let nodes = cpu_nodes(&topo);
    std::thread::scope(|s| {
        s.spawn(|| {
            for round in 0..2 {
                for &n in &nodes {
                    bind_current_thread(&topo.rset_of_node(n).unwrap()).unwrap();
                    let objs = make_objects(round);
                    assert_objects_on(&format!("rebound to node {n}, round {round}"), &objs, n);
                }
            }
        });
    });
}

#[test]
fn remote_objects_are_never_on_the_threads_node() {
    let topo = machine();
    let all = topo.global_rset();
    for n in cpu_nodes(&topo) {
        let want = match Policy::Remote.resolve(&all, n).expect("Remote resolves") {
            alloc_policies::Layout::Node(r) => r,
            other => panic!("Remote resolved to {other:?}"),
        };
        assert_ne!(want, n);
        on_node(&topo, n, || {
            // The thread's own memory policy is MPOL_BIND {n}: the allocator's
            // placement must win over it.
            let objs = with_policy(Policy::Remote, || make_objects(4));
            assert_objects_on(&format!("Remote from node {n}"), &objs, want);
            // Objects made under Remote may be freed and reallocated under Local.
            drop(objs);
            let local = make_objects(5);
            assert_objects_on(&format!("Local after Remote on node {n}"), &local, n);
        });
    }
}

#[test]
fn remote_to_a_cpu_less_node() {
    let spec = GuestSpec::from_env();
    let topo = machine();
    let cpuless: Vec<NodeId> = topo
        .nodes()
        .iter()
        .filter(|n| n.cpu_less)
        .map(|n| n.id)
        .collect();
    assert_eq!(cpuless.len() as u32, spec.cpuless_nodes);
    let targets: Vec<NodeId> = if cpuless.is_empty() {
        // Without a CPU-less node: RemoteTo the last node from every other node.
        vec![*memory_nodes(&topo).last().unwrap()]
    } else {
        cpuless
    };
    for &target in &targets {
        for n in cpu_nodes(&topo) {
            if n == target {
                continue;
            }
            on_node(&topo, n, || {
                let objs = with_policy(Policy::RemoteTo(target), || make_objects(6));
                assert_objects_on(&format!("RemoteTo({target}) from node {n}"), &objs, target);
                // The same through a PolicyAlloc handle, grown past the threshold.
                let mut v =
                    allocator_api2::vec::Vec::new_in(NumaAlloc::with(Policy::RemoteTo(target)));
                for i in 0..(3 * MIB / 8) as u64 {
                    v.push(i);
                }
                assert_on(
                    &format!("PolicyAlloc RemoteTo({target}) from node {n}"),
                    v.as_ptr().cast(),
                    v.len() * 8,
                    target,
                );
                assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64));
                v.truncate(100);
                v.shrink_to_fit();
                assert_on("shrunk PolicyAlloc vec", v.as_ptr().cast(), 800, target);
                // Its own node is refused with a typed error.
                let e = NumaAlloc::with(Policy::RemoteTo(n))
                    .try_allocate(std::alloc::Layout::new::<[u8; 64]>())
                    .unwrap_err();
                assert_eq!(e, NumaAllocError::RemoteIsLocal { node: n });
            });
        }
    }
}

#[test]
fn striped_large_blocks_follow_the_stride_page_by_page() {
    let topo = machine();
    let all = topo.global_rset();
    let nodes = memory_nodes(&topo);
    let n0 = cpu_nodes(&topo)[0];
    for k in [1, 2, 3, 8] {
        let policy = Policy::Striped {
            stride_pages: Stride::new(k).unwrap(),
        };
        let layout = policy.resolve(&all, n0).unwrap();
        on_node(&topo, n0, || {
            for size in [LARGE_THRESHOLD, 4 * MIB + 4096 * 3 + 17] {
                let v = with_policy(policy.clone(), || vec![9u8; size]);
                let got = page_nodes(&format!("striped:{k} {size}"), v.as_ptr(), v.len());
                for (p, &node) in got.iter().enumerate() {
                    assert_eq!(
                        NodeId(node),
                        layout.node_of_page(p).unwrap(),
                        "striped:{k}, page {p} of {} (nodes {nodes:?})",
                        got.len()
                    );
                }
            }
            // Small blocks: each whole on one node, successive ones over all nodes.
            let small: Vec<Vec<u8>> = with_policy(policy.clone(), || {
                (0..4 * nodes.len()).map(|_| vec![1u8; 100]).collect()
            });
            let mut seen = NodeSet::new();
            for v in &small {
                let got = page_nodes("small striped", v.as_ptr(), v.len());
                assert!(got.iter().all(|&x| x == got[0]), "one node per small block");
                seen.insert(NodeId(got[0]));
            }
            assert_eq!(
                seen.len(),
                nodes.len(),
                "small striped blocks over {nodes:?}"
            );
        });
    }
}

#[test]
fn interleave_and_bind_follow_their_node_sets() {
    let topo = machine();
    let all = topo.global_rset();
    let nodes = memory_nodes(&topo);
    let n0 = cpu_nodes(&topo)[0];
    // Every subset of two or more nodes that fits.
    let sets: Vec<NodeSet> = (1u32..(1 << nodes.len()))
        .map(|bits| {
            nodes
                .iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .map(|(_, &n)| n)
                .collect::<NodeSet>()
        })
        .filter(|s| s.len() >= 2)
        .collect();
    on_node(&topo, n0, || {
        for set in &sets {
            let policy = Policy::Interleave(set.clone());
            let layout = policy.resolve(&all, n0).unwrap();
            let v = with_policy(policy.clone(), || vec![5u8; 2 * MIB + 4096 * 5]);
            let got = page_nodes(&format!("{policy}"), v.as_ptr(), v.len());
            for (p, &node) in got.iter().enumerate() {
                assert_eq!(
                    NodeId(node),
                    layout.node_of_page(p).unwrap(),
                    "{policy} page {p}"
                );
            }

            let policy = Policy::Bind(set.clone());
            let objs = with_policy(policy.clone(), || make_objects(7));
            for v in &objs.0 {
                for node in page_nodes(&format!("{policy}"), v.as_ptr(), v.len()) {
                    assert!(set.contains(NodeId(node)), "{policy}: page on node {node}");
                }
            }
            if set.contains(n0) {
                // Small blocks come from the arena of the set's node nearest the
                // caller: its own. (Large ones are MPOL_BIND over the set, where the
                // kernel prefers the local node but may use another of the set when
                // the local one runs low, so only the set is checked for them.)
                for v in objs.0.iter().filter(|v| v.len() < LARGE_THRESHOLD) {
                    assert_on(&format!("{policy} from node {n0}"), v.as_ptr(), v.len(), n0);
                }
                for b in &objs.1 {
                    assert_on(
                        &format!("{policy} from node {n0}"),
                        b.as_ptr().cast(),
                        32,
                        n0,
                    );
                }
            }
        }
    });
}

#[test]
fn float_follows_first_touch_and_the_threads_own_policy() {
    let topo = machine();
    for n in cpu_nodes(&topo) {
        on_node(&topo, n, || {
            let objs = with_policy(Policy::Float, || make_objects(8));
            // The bound thread's MPOL_BIND {n} decides where Float memory goes.
            for v in &objs.0 {
                if v.len() >= LARGE_THRESHOLD {
                    assert_on(&format!("Float large on node {n}"), v.as_ptr(), v.len(), n);
                }
            }
        });
    }
}

#[test]
fn bad_policies_get_typed_errors_in_the_guest_too() {
    let topo = machine();
    let n0 = cpu_nodes(&topo)[0];
    let layout = std::alloc::Layout::from_size_align(64, 8).unwrap();
    assert!(
        NumaAlloc::placement_enforced(),
        "the guest kernel accepts memory policies"
    );
    on_node(&topo, n0, || {
        // A striped block of more stripes than one allocation may have.
        let striped = Policy::Striped {
            stride_pages: Stride::new(2).unwrap(),
        };
        let big = std::alloc::Layout::from_size_align(80 * MIB, 4096).unwrap();
        let pages = 80 * MIB / page_size();
        assert!(matches!(
            NumaAlloc::with(striped).try_allocate(big),
            Err(NumaAllocError::TooManyStripes { stripes, .. }) if stripes == pages / 2
        ));
        let missing = NodeId(40);
        assert_eq!(
            NumaAlloc::with(Policy::RemoteTo(missing))
                .try_allocate(layout)
                .unwrap_err(),
            NumaAllocError::NoSuchNode { node: missing }
        );
        // The global allocator returns null rather than aborting.
        let p = with_policy(Policy::RemoteTo(n0), || {
            use std::alloc::GlobalAlloc;
            // SAFETY: non-zero size.
            unsafe { A.alloc(layout) }
        });
        assert!(p.is_null());
    });
}

#[test]
fn large_blocks_stay_exact_while_neighbours_fault_huge_pages() {
    let topo = machine();
    let all = topo.global_rset();
    let nodes = cpu_nodes(&topo);
    let stop = AtomicBool::new(false);
    let results = std::thread::scope(|s| {
        // On every CPU node, a thread that keeps mapping plain anonymous memory
        // (read-write, no policy, no advice: as a library that bypasses the
        // allocator, or a thread stack) and writing it page by page. The kernel puts
        // such mappings right next to the allocator's and may merge them with a
        // neighbour that has no policy; a write there faults in a 2 MiB huge page on
        // this thread's node, which covers whatever else lies in that 2 MiB.
        for &m in &nodes {
            let (topo, stop) = (&topo, &stop);
            s.spawn(move || {
                bind_current_thread(&topo.rset_of_node(m).unwrap()).unwrap();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let len = (3 * MIB + (i % 7 + 1) * page_size()).next_multiple_of(page_size());
                    let mut map = Mapping::anonymous(len, 1).expect("foreign mapping");
                    map.touch(0, len).unwrap();
                    i += 1;
                }
            });
        }
        let checkers: Vec<_> = nodes
            .iter()
            .map(|&n| {
                let (topo, all) = (&topo, &all);
                s.spawn(move || {
                    bind_current_thread(&topo.rset_of_node(n).unwrap()).unwrap();
                    let remote = match Policy::Remote.resolve(all, n).unwrap() {
                        alloc_policies::Layout::Node(r) => r,
                        other => panic!("Remote resolved to {other:?}"),
                    };
                    for round in 0..30 {
                        let size = [3 * MIB + 100, LARGE_THRESHOLD + 3 * 4096, 4 * MIB][round % 3];
                        let local = vec![1u8; size];
                        let far = with_policy(Policy::Remote, || vec![2u8; size]);
                        let float = with_policy(Policy::Float, || vec![3u8; size]);
                        assert_on(
                            &format!("round {round}: Local on node {n}"),
                            local.as_ptr(),
                            size,
                            n,
                        );
                        assert_on(
                            &format!("round {round}: Remote from node {n}"),
                            far.as_ptr(),
                            size,
                            remote,
                        );
                        // The thread's own MPOL_BIND {n} places Float pages.
                        assert_on(
                            &format!("round {round}: Float on node {n}"),
                            float.as_ptr(),
                            size,
                            n,
                        );
                    }
                })
            })
            .collect();
        let results: Vec<_> = checkers.into_iter().map(|c| c.join()).collect();
        stop.store(true, Ordering::Relaxed);
        results
    });
    for r in results {
        if let Err(panic) = r {
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
fn striped_and_interleaved_blocks_keep_their_layout_when_they_grow() {
    let topo = machine();
    let all = topo.global_rset();
    let n0 = cpu_nodes(&topo)[0];
    let pages_per_mib = MIB / page_size();
    on_node(&topo, n0, || {
        // A striped block no longer than its stride is one stripe, all on the first
        // node; grown past the stride, its new pages must go on striping.
        for (policy, first) in [
            (
                Policy::Striped {
                    stride_pages: Stride::new(2 * pages_per_mib).unwrap(),
                },
                LARGE_THRESHOLD,
            ),
            (
                Policy::Striped {
                    stride_pages: Stride::new(3).unwrap(),
                },
                LARGE_THRESHOLD,
            ),
            (
                Policy::Interleave(memory_nodes(&topo).into_iter().collect()),
                LARGE_THRESHOLD + 4096,
            ),
        ] {
            let layout = policy.resolve(&all, n0).unwrap();
            with_policy(policy.clone(), || {
                let mut v = vec![7u8; first];
                for target in [3 * MIB + 100, 6 * MIB + 5 * 4096] {
                    v.resize(target, 8);
                    let got =
                        page_nodes(&format!("{policy} grown to {target}"), v.as_ptr(), v.len());
                    for (p, &node) in got.iter().enumerate() {
                        assert_eq!(
                            NodeId(node),
                            layout.node_of_page(p).unwrap(),
                            "{policy} grown from {first} to {target} bytes: page {p} of {}",
                            got.len()
                        );
                    }
                }
                assert!(v[..first].iter().all(|&b| b == 7) && v[first..].iter().all(|&b| b == 8));
            });
        }
    });
}
