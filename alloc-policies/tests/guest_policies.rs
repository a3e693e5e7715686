//! Regions in the emulated NUMA guests (`cargo xtask test`): every policy, size and
//! stride puts every page on the node it should, checked page by page with
//! `move_pages`; bad input gives typed errors; big regions stay within
//! `vm.max_map_count`; re-placement, locking and the registry work.
//!
//! The expected node of each page comes from the topology the harness asked for
//! ([`GuestSpec`]) and the distances in sysfs, not from `Policy::resolve`.
//!
//! Tests take one lock: they change the calling thread's CPUs and allocate up to
//! hundreds of MiB of 512 MiB nodes, so running them side by side would make the
//! memory checks race each other.

use std::sync::{Mutex, MutexGuard, OnceLock};

use alloc_policies::registry::{self, AllocKind, Label};
use alloc_policies::{
    Layout, PageStatus, Policy, PolicyError, Region, RegionError, Stride, current_node,
};
use numa_tests::{GuestSpec, page_size, sysfs};
use rset::sys::affinity;
use rset::sys::mempolicy::{self, Mode};
use rset::{NodeId, NodeSet, RSet, Topology};

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn topo() -> &'static Topology {
    static T: OnceLock<Topology> = OnceLock::new();
    T.get_or_init(|| Topology::from_system().expect("hwloc topology of the guest"))
}

fn all() -> RSet {
    topo().global_rset()
}

fn nodes(ids: impl IntoIterator<Item = u32>) -> NodeSet {
    ids.into_iter().map(NodeId).collect()
}

fn stride(k: usize) -> Stride {
    Stride::new(k).unwrap()
}

/// Runs the calling thread on the CPUs of `node` only (its memory policy stays
/// the default), and checks that it does.
fn run_on(node: u32) {
    let spec = GuestSpec::from_env();
    affinity::set_affinity(None, &spec.cpus_of(node)).unwrap();
    std::thread::yield_now();
    assert_eq!(current_node(), NodeId(node), "pinned to node {node}");
}

/// Sizes in bytes: 1 page, an odd size, 1000 pages, 64 MiB.
fn sizes(with_64m: bool) -> Vec<usize> {
    let p = page_size();
    let mut v = vec![p, 7 * p + 5, 1000 * p];
    if with_64m {
        v.push(64 << 20);
    }
    v
}

/// What the test expects of each page.
#[derive(Debug, Clone)]
enum Expect {
    /// Present on some node.
    Anywhere,
    /// On one of these nodes.
    OneOf(NodeSet),
    /// Page p on `nodes[(p / k) % nodes.len()]`.
    Stripes(usize, Vec<u32>),
}

impl Expect {
    fn node(n: u32) -> Expect {
        Expect::Stripes(1, vec![n])
    }

    fn check(&self, what: &str, status: &[PageStatus]) {
        for (p, s) in status.iter().enumerate() {
            let PageStatus::Node(n) = *s else {
                panic!("{what}: page {p} is {s:?}, not on a node");
            };
            match self {
                Expect::Anywhere => {}
                Expect::OneOf(set) => {
                    assert!(
                        set.contains(NodeId(n)),
                        "{what}: page {p} on node {n}, not in {set}"
                    )
                }
                Expect::Stripes(k, v) => {
                    let want = v[(p / k) % v.len()];
                    assert_eq!(n, want, "{what}: page {p} of {}", status.len());
                }
            }
        }
    }
}

/// The nearest node of `rset_nodes` other than `caller` by the sysfs distances,
/// lowest id on ties: the paper's Remote.
fn nearest_other(caller: u32, rset_nodes: &[u32]) -> u32 {
    let d = sysfs::node_distances(caller);
    *rset_nodes
        .iter()
        .filter(|&&n| n != caller)
        .min_by_key(|&&n| (d[n as usize], n))
        .expect("a second node")
}

/// Builds a byte region, checks every page, and checks the contents are usable.
fn check_region(policy: Policy, rset: &RSet, bytes: usize, expect: &Expect, caller: u32) {
    let what = format!("{policy} over {rset}, {bytes} bytes, caller on node {caller}");
    let mut r = Region::<u8>::builder(bytes)
        .policy(policy.clone())
        .rset(rset)
        .build()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(r.len(), bytes, "{what}");
    assert_eq!(r.pages(), bytes.div_ceil(page_size()), "{what}");
    let status = r.locate().unwrap();
    assert_eq!(status.len(), r.pages(), "{what}");
    expect.check(&what, &status);
    r.verify().unwrap_or_else(|e| panic!("{what}: verify: {e}"));
    // The memory is usable and zeroed.
    assert!(r.iter().all(|&b| b == 0), "{what}");
    let last = r.len() - 1;
    r[last] = 7;
    r[0] = 3;
    assert_eq!((r[0], r[last]), (3, 7));
    if let Policy::Remote | Policy::RemoteTo(_) = policy {
        assert!(
            status.iter().all(|s| *s != PageStatus::Node(caller)),
            "{what}: Remote put a page on the caller's node"
        );
    }
}

/// Every policy of the paper, over `rset`, for a caller on `caller`.
fn policies_and_expectations(rset: &RSet, caller: u32) -> Vec<(Policy, Expect)> {
    let mem: Vec<u32> = rset.effective_nodes().iter().map(|n| n.0).collect();
    let mut v = vec![(Policy::Float, Expect::Anywhere)];
    if mem.contains(&caller) {
        v.push((Policy::Local, Expect::node(caller)));
    }
    if mem.iter().any(|&n| n != caller) {
        v.push((Policy::Remote, Expect::node(nearest_other(caller, &mem))));
    }
    for &n in mem.iter().filter(|&&n| n != caller) {
        v.push((Policy::RemoteTo(NodeId(n)), Expect::node(n)));
    }
    for k in [1, 3, 4, 512] {
        v.push((
            Policy::Striped {
                stride_pages: stride(k),
            },
            Expect::Stripes(k, mem.clone()),
        ));
    }
    v.push((
        Policy::Bind(nodes(mem.clone())),
        Expect::OneOf(nodes(mem.clone())),
    ));
    let last = *mem.last().unwrap();
    v.push((Policy::Bind(nodes([last])), Expect::node(last)));
    v.push((
        Policy::Interleave(nodes(mem.clone())),
        Expect::Stripes(1, mem.clone()),
    ));
    if mem.len() > 2 {
        let tail = mem[1..].to_vec();
        v.push((
            Policy::Interleave(nodes(tail.clone())),
            Expect::Stripes(1, tail),
        ));
    }
    v
}

#[test]
fn every_policy_places_every_page_for_every_size() {
    let _g = serial();
    let spec = GuestSpec::from_env();
    let rset = all();
    for caller in 0..spec.nodes {
        run_on(caller);
        for (policy, expect) in policies_and_expectations(&rset, caller) {
            for bytes in sizes(caller == 0) {
                check_region(policy.clone(), &rset, bytes, &expect, caller);
            }
        }
    }
}

#[test]
fn a_sub_rset_confines_every_policy_to_its_nodes() {
    let _g = serial();
    let spec = GuestSpec::from_env();
    let last = spec.total_nodes() - 1;
    let sub = RSet::parse(&format!("mem:1-{last}"), topo()).unwrap();
    let sub_nodes = sub.effective_nodes();
    run_on(0);
    for (policy, expect) in policies_and_expectations(&sub, 0) {
        for bytes in sizes(false) {
            check_region(policy.clone(), &sub, bytes, &expect, 0);
        }
    }
    // Local for a caller outside the RSet is refused, naming both.
    let e = Region::<u8>::new_in(100, Policy::Local, &sub).unwrap_err();
    assert!(
        matches!(
            e,
            RegionError::Policy(PolicyError::LocalOutsideRSet {
                node: NodeId(0),
                ..
            })
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "Local puts memory on the allocating thread's node 0, which is not in the \
             resource set (its memory nodes are {sub_nodes})"
        )
    );
    // A caller inside it gets its own node.
    run_on(1);
    check_region(Policy::Local, &sub, 5 * page_size(), &Expect::node(1), 1);
}

#[test]
fn cpuless_nodes_take_bind_stripes_and_remote_to() {
    let _g = serial();
    let spec = GuestSpec::from_env();
    if spec.cpuless_nodes == 0 {
        eprintln!("no CPU-less node in this guest; covered by the CPU-less guest");
        return;
    }
    let cpuless = spec.nodes; // the first memory-only node
    run_on(0);
    let rset = all();
    let mem: Vec<u32> = (0..spec.total_nodes()).collect();
    for bytes in sizes(true) {
        check_region(
            Policy::Bind(nodes([cpuless])),
            &rset,
            bytes,
            &Expect::node(cpuless),
            0,
        );
        check_region(
            Policy::RemoteTo(NodeId(cpuless)),
            &rset,
            bytes,
            &Expect::node(cpuless),
            0,
        );
        for k in [1, 3, 4, 512] {
            check_region(
                Policy::Striped {
                    stride_pages: stride(k),
                },
                &rset,
                bytes,
                &Expect::Stripes(k, mem.clone()),
                0,
            );
        }
    }
    // Local over memory only on a CPU-less node: no thread can be local to it.
    let only = RSet::parse(&format!("mem:{cpuless}"), topo()).unwrap();
    let e = Region::<u8>::new_in(100, Policy::Local, &only).unwrap_err();
    assert!(
        matches!(e, RegionError::Policy(PolicyError::LocalCpuLess { .. })),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "Local needs memory on the allocating thread's node, but the resource set's \
             memory is only on CPU-less node(s) {cpuless}, where no thread runs; use Bind \
             or Remote"
        )
    );
    // Remote from node 0 over {0, cpuless} goes to the CPU-less node.
    let two = RSet::parse(&format!("mem:0,{cpuless}"), topo()).unwrap();
    check_region(
        Policy::Remote,
        &two,
        3 * page_size(),
        &Expect::node(cpuless),
        0,
    );
}

#[test]
fn bad_input_is_a_typed_error_with_a_one_line_message() {
    let _g = serial();
    let spec = GuestSpec::from_env();
    run_on(0);
    let rset = all();
    let one_line = |e: &RegionError| {
        let s = e.to_string();
        assert!(!s.contains('\n') && !s.is_empty(), "{s:?}");
        s
    };

    let e = Region::<u8>::builder(10).striped(0).build().unwrap_err();
    assert!(
        matches!(e, RegionError::Policy(PolicyError::ZeroStride)),
        "{e}"
    );
    assert_eq!(one_line(&e), "a stride of 0 pages: give at least 1");

    let outside = spec.total_nodes() + 3;
    let e = Region::<u8>::new(10, Policy::Bind(nodes([outside]))).unwrap_err();
    assert!(
        matches!(
            e,
            RegionError::Policy(PolicyError::NodeOutsideRSet { node, .. }) if node == NodeId(outside)
        ),
        "{e}"
    );
    assert_eq!(
        one_line(&e),
        format!(
            "node {outside} is not in the resource set (its memory nodes are 0-{})",
            spec.total_nodes() - 1
        )
    );
    let e = Region::<u8>::new(10, Policy::RemoteTo(NodeId(outside))).unwrap_err();
    assert!(
        matches!(e, RegionError::Policy(PolicyError::NodeOutsideRSet { .. })),
        "{e}"
    );

    let e = Region::<u8>::new(10, Policy::RemoteTo(NodeId(0))).unwrap_err();
    assert!(
        matches!(
            e,
            RegionError::Policy(PolicyError::RemoteIsLocal { node: NodeId(0) })
        ),
        "{e}"
    );
    assert_eq!(one_line(&e), "remote:0 is the allocating thread's own node");

    let node0 = topo().rset_of_node(NodeId(0)).unwrap();
    let e = Region::<u8>::new_in(10, Policy::Remote, &node0).unwrap_err();
    assert!(
        matches!(
            e,
            RegionError::Policy(PolicyError::RemoteNeedsTwoNodes { .. })
        ),
        "{e}"
    );
    assert_eq!(
        one_line(&e),
        "Remote needs a node other than the allocating thread's node 0, and the resource \
         set has only 0"
    );

    let e = Region::<u8>::builder(0).build().unwrap_err();
    assert!(
        matches!(
            e,
            RegionError::ZeroSize {
                elements: 0,
                element_bytes: 1
            }
        ),
        "{e}"
    );
    assert_eq!(
        one_line(&e),
        "a region needs at least one element of a non-zero size (asked for 0 element(s) of \
         1 bytes)"
    );
    let e = Region::<()>::builder(5).build().unwrap_err();
    assert!(
        matches!(
            e,
            RegionError::ZeroSize {
                elements: 5,
                element_bytes: 0
            }
        ),
        "{e}"
    );

    let e = Region::<f64>::builder(usize::MAX).build().unwrap_err();
    let want = usize::MAX as u128 * 8;
    assert!(
        matches!(e, RegionError::TooLarge { bytes } if bytes == want),
        "{e}"
    );
    assert_eq!(
        one_line(&e),
        format!("a region of {want} bytes (128 EiB) is more than this machine can map")
    );
    // Fits usize, but not the kernel: mmap says ENOMEM.
    let e = Region::<u8>::new(1 << 50, Policy::Float).unwrap_err();
    assert!(
        matches!(e, RegionError::TooLarge { bytes } if bytes == 1 << 50),
        "{e}"
    );
    assert_eq!(
        one_line(&e),
        "a region of 1125899906842624 bytes (1 PiB) is more than this machine can map"
    );
    // Placed on a node, the node says no first.
    let e = Region::<u8>::new(1 << 50, Policy::Local).unwrap_err();
    assert!(
        matches!(
            e,
            RegionError::NodeFull {
                node: NodeId(0),
                ..
            }
        ),
        "{e}"
    );

    let e = Region::<u8>::builder(10)
        .striped(4)
        .populate(false)
        .build()
        .unwrap_err();
    assert!(matches!(e, RegionError::LazyStripes { .. }), "{e}");
    one_line(&e);

    let e = Region::<u8>::builder(10)
        .policy(Policy::Interleave(NodeSet::default()))
        .rset(&rset)
        .build()
        .unwrap_err();
    assert!(
        matches!(e, RegionError::Policy(PolicyError::NoNodes)),
        "{e}"
    );
}

#[test]
fn a_region_larger_than_its_node_is_refused_not_oom_killed() {
    let _g = serial();
    let spec = GuestSpec::from_env();
    run_on(0);
    let node_bytes = spec.mem_per_node_mib << 20;
    let too_big = (node_bytes + (node_bytes >> 3)) as usize; // 1.125 x the node
    for policy in [Policy::Bind(nodes([1])), Policy::RemoteTo(NodeId(1))] {
        let e = Region::<u8>::new(too_big, policy.clone()).unwrap_err();
        match e {
            RegionError::NodeFull {
                node,
                needed_bytes,
                free_bytes,
            } => {
                assert_eq!(node, NodeId(1), "{policy}");
                assert_eq!(needed_bytes, too_big as u64, "{policy}");
                assert!(free_bytes < node_bytes, "{policy}: {free_bytes}");
            }
            other => panic!("{policy}: {other}"),
        }
        assert!(e_msg(&policy, too_big).starts_with("node 1 cannot take the 576 MiB the region"));
    }
    let e = Region::<u8>::new(too_big, Policy::Local).unwrap_err();
    assert!(
        matches!(
            e,
            RegionError::NodeFull {
                node: NodeId(0),
                ..
            }
        ),
        "{e}"
    );
    // Stripes over every node: each gets its share, too big for each.
    let total = spec.total_nodes() as usize;
    let e = Region::<u8>::builder(too_big * total)
        .striped(4)
        .build()
        .unwrap_err();
    assert!(matches!(e, RegionError::NodeFull { .. }), "{e}");
    // A many-node bind pools its nodes.
    let e = Region::<u8>::new(too_big * total, Policy::Bind(all().effective_nodes())).unwrap_err();
    assert!(matches!(e, RegionError::NodesFull { .. }), "{e}");
    // And the process is still alive, with nothing left mapped.
    assert!(registry::snapshot().iter().all(|a| a.len < too_big));
}

fn e_msg(policy: &Policy, bytes: usize) -> String {
    Region::<u8>::new(bytes, policy.clone())
        .unwrap_err()
        .to_string()
}

/// Lines of /proc/self/maps, and how many of them overlap `[start, end)`.
fn vmas(start: usize, end: usize) -> (usize, usize) {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mut overlapping = 0;
    for line in maps.lines() {
        let range = line.split_whitespace().next().unwrap();
        let (a, b) = range.split_once('-').unwrap();
        let a = usize::from_str_radix(a, 16).unwrap();
        let b = usize::from_str_radix(b, 16).unwrap();
        if a < end && b > start {
            overlapping += 1;
        }
    }
    (maps.lines().count(), overlapping)
}

#[test]
fn a_region_of_more_pages_than_max_map_count_is_one_vma() {
    let _g = serial();
    run_on(0);
    let limit: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // More one-page stripes than the kernel allows mappings (65 530 by default: about
    // 70 000 pages, 270 MiB), yet small enough to fit two 512 MiB guest nodes next to
    // the in-memory root file system.
    let pages = limit + limit / 16;
    let mem: Vec<u32> = all().effective_nodes().iter().map(|n| n.0).collect();
    for k in [1, 3, 4] {
        let (before, _) = vmas(0, 0);
        let r = Region::<u8>::builder(pages * page_size())
            .striped(k)
            .label("max_map_count")
            .build()
            .unwrap_or_else(|e| panic!("stride {k}: {e}"));
        let start = r.as_ptr() as usize;
        let (after, own) = vmas(start, start + r.mapped_bytes());
        assert_eq!(own, 1, "stride {k}: the region is one VMA");
        // Other test threads may start meanwhile (a stack is two VMAs): allow a
        // few, against the 17 000 to 70 000 a mapping per stripe would add.
        assert!(
            after < before + 64,
            "stride {k}: {before} VMAs before, {after} after"
        );
        assert!(after < limit);
        eprintln!("stride {k}: {before} VMAs before, {after} after, the region is {own}");
        Expect::Stripes(k, mem.clone())
            .check(&format!("{pages} pages, stride {k}"), &r.locate().unwrap());
    }
}

/// Why stripes are not made with one `mbind` per stripe: each makes a VMA, and
/// 100 000 one-page stripes pass the default `vm.max_map_count` (65 530).
#[test]
fn one_mbind_per_stripe_would_exceed_max_map_count() {
    let _g = serial();
    let limit: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pages = 100_000;
    let m = numa_tests::Mapping::new(pages);
    let mem: Vec<u32> = all().effective_nodes().iter().map(|n| n.0).collect();
    let failed_at = (0..pages).find(|&p| {
        let node = mem[p % mem.len()];
        mempolicy::mbind(
            m.page(p),
            page_size(),
            Mode::Bind,
            &[node],
            Default::default(),
        )
        .is_err()
    });
    let (total, own) = vmas(m.ptr as usize, m.ptr as usize + m.len);
    eprintln!("one mbind per page: failed at page {failed_at:?}, {own} VMAs ({total} in all)");
    assert!(failed_at.is_some(), "{pages} mbinds made {own} VMAs");
    assert!(total >= limit - 2, "{total}");
}

#[test]
fn placement_does_not_depend_on_who_touches_first() {
    let _g = serial();
    let spec = GuestSpec::from_env();
    run_on(0);
    let rset = all();
    let mem: Vec<u32> = rset.effective_nodes().iter().map(|n| n.0).collect();
    let p = page_size();
    for (policy, expect) in [
        (Policy::Local, Expect::node(0)),
        (Policy::RemoteTo(NodeId(1)), Expect::node(1)),
        (
            Policy::Interleave(nodes(mem.clone())),
            Expect::Stripes(1, mem.clone()),
        ),
        (
            Policy::Striped {
                stride_pages: Stride::ONE,
            },
            Expect::Stripes(1, mem.clone()),
        ),
    ] {
        let mut r = Region::<u8>::builder(97 * p)
            .policy(policy.clone())
            .populate(false)
            .build()
            .unwrap();
        // Untouched: not present.
        assert!(
            r.locate()
                .unwrap()
                .iter()
                .all(|s| *s == PageStatus::NotPresent),
            "{policy}"
        );
        r.verify().unwrap();
        // Touched from a thread on the last CPU node.
        let toucher = spec.nodes - 1;
        std::thread::scope(|s| {
            s.spawn(|| {
                run_on(toucher);
                for i in (0..r.len()).step_by(p) {
                    r[i] = 1;
                }
            });
        });
        expect.check(
            &format!("{policy}, touched from node {toucher}"),
            &r.locate().unwrap(),
        );

        // Faulted in by parts from threads on two nodes, then populated.
        let mut r = Region::<u8>::builder(97 * p)
            .policy(policy.clone())
            .populate(false)
            .build()
            .unwrap();
        std::thread::scope(|s| {
            let r = &r;
            s.spawn(move || {
                run_on(toucher);
                r.prefault(0..40).unwrap();
            });
            s.spawn(move || {
                run_on(0);
                r.prefault(60..97).unwrap();
            });
        });
        r.populate().unwrap();
        assert!(r.is_populated());
        expect.check(
            &format!("{policy}, prefaulted from nodes {toucher} and 0"),
            &r.locate().unwrap(),
        );
        r.verify().unwrap();
    }
}

#[test]
fn building_keeps_the_threads_own_policy() {
    let _g = serial();
    let node1 = topo().rset_of_node(NodeId(1)).unwrap();
    rset::bind::bind_current_thread(&node1).unwrap();
    let mem: Vec<u32> = all().effective_nodes().iter().map(|n| n.0).collect();
    let r = Region::<u64>::builder(10_000)
        .striped(3)
        .rset(&all())
        .build()
        .unwrap();
    Expect::Stripes(3, mem).check(
        "striped:3 from a thread bound to node 1",
        &r.locate().unwrap(),
    );
    assert_eq!(mempolicy::get_mempolicy().unwrap(), (Mode::Bind, vec![1]));
    // Float follows the thread's own policy.
    let f = Region::<u8>::new(50 * page_size(), Policy::Float).unwrap();
    Expect::node(1).check("float from a thread bound to node 1", &f.locate().unwrap());
    rset::bind::unbind_current_thread(&all()).unwrap();
}

#[test]
fn replace_moves_touched_pages_and_keeps_contents() {
    let _g = serial();
    run_on(0);
    let rset = all();
    let mem: Vec<u32> = rset.effective_nodes().iter().map(|n| n.0).collect();
    let p = page_size();
    // 64 MiB Local may be backed by transparent huge pages (the guest's THP is
    // "always"): re-placing it in small stripes has to split them.
    for bytes in [1000 * p + 5, 64 << 20] {
        let mut r = Region::<u32>::builder(bytes / 4)
            .label("replace")
            .build()
            .unwrap();
        for (i, x) in r.iter_mut().enumerate() {
            *x = i as u32;
        }
        Expect::node(0).check("before", &r.locate().unwrap());
        let steps: Vec<(Policy, Expect)> = vec![
            (
                Policy::Striped {
                    stride_pages: stride(3),
                },
                Expect::Stripes(3, mem.clone()),
            ),
            (Policy::RemoteTo(NodeId(1)), Expect::node(1)),
            (
                Policy::Interleave(nodes(mem.clone())),
                Expect::Stripes(1, mem.clone()),
            ),
            (
                Policy::Striped {
                    stride_pages: stride(4),
                },
                Expect::Stripes(4, mem.clone()),
            ),
            (Policy::Local, Expect::node(0)),
            (Policy::Bind(nodes([1])), Expect::node(1)),
        ];
        for (policy, expect) in steps {
            r.replace(policy.clone(), &rset)
                .unwrap_or_else(|e| panic!("replace to {policy}: {e}"));
            assert_eq!(r.policy(), &policy);
            expect.check(
                &format!("{bytes} bytes replaced to {policy}"),
                &r.locate().unwrap(),
            );
            assert!(
                r.iter().enumerate().all(|(i, &x)| x == i as u32),
                "contents after {policy}"
            );
            let rec = registry::get(r.id()).unwrap();
            assert_eq!(rec.policy.as_str(), policy.to_string());
        }
    }
    // A lazy region is populated by re-placing it.
    let mut r = Region::<u8>::builder(40 * p)
        .policy(Policy::Local)
        .populate(false)
        .build()
        .unwrap();
    r[5 * p] = 9;
    r.replace(
        Policy::Striped {
            stride_pages: stride(4),
        },
        &rset,
    )
    .unwrap();
    assert!(r.is_populated());
    Expect::Stripes(4, mem.clone()).check("lazy, replaced", &r.locate().unwrap());
    assert_eq!(r[5 * p], 9);
    // A bad policy leaves the region as it was.
    let e = r.replace(Policy::RemoteTo(NodeId(0)), &rset).unwrap_err();
    assert!(
        matches!(e, RegionError::Policy(PolicyError::RemoteIsLocal { .. })),
        "{e}"
    );
    assert!(matches!(r.layout(), Layout::Stripes { .. }));
}

fn vm_lck_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmLck:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn locked_regions_are_resident_placed_and_movable() {
    let _g = serial();
    run_on(0);
    let rset = all();
    let mem: Vec<u32> = rset.effective_nodes().iter().map(|n| n.0).collect();
    let before = vm_lck_kib();
    let mut r = Region::<u8>::builder(300 * page_size())
        .striped(3)
        .lock(true)
        .label("locked")
        .build()
        .unwrap();
    assert!(r.is_locked());
    assert_eq!(vm_lck_kib() - before, (r.mapped_bytes() / 1024) as u64);
    Expect::Stripes(3, mem.clone()).check("locked striped:3", &r.locate().unwrap());
    r.replace(Policy::RemoteTo(NodeId(1)), &rset).unwrap();
    assert!(r.is_locked());
    Expect::node(1).check("locked, replaced", &r.locate().unwrap());
    r.replace(Policy::Interleave(nodes(mem.clone())), &rset)
        .unwrap();
    Expect::Stripes(1, mem).check("locked, interleaved", &r.locate().unwrap());
    drop(r);
    assert_eq!(vm_lck_kib(), before);
}

#[test]
fn the_registry_records_and_forgets_regions() {
    let _g = serial();
    run_on(1);
    let tid = affinity::gettid();
    let r = Region::<f64>::builder(1000)
        .policy(Policy::Local)
        .label("ocean.psi")
        .build()
        .unwrap();
    let addr = r.as_ptr() as usize;
    let rec = registry::find(addr + 100).expect("recorded");
    assert_eq!(rec.id, r.id());
    assert_eq!(rec.label, Label::name("ocean.psi"));
    assert_eq!(rec.label.to_string(), "ocean.psi");
    assert_eq!(rec.addr, addr);
    assert_eq!(rec.len, r.mapped_bytes());
    assert!(rec.len >= 8000);
    assert_eq!(rec.thread, tid);
    assert_eq!(rec.node, NodeId(1));
    assert_eq!(rec.kind, AllocKind::Region);
    assert_eq!(rec.policy.as_str(), "local");
    assert!(registry::snapshot().iter().any(|a| a.id == r.id()));

    // Without a label: where it was built.
    let line = line!() + 1;
    let unnamed = Region::<u8>::new(10, Policy::Float).unwrap();
    let rec = registry::get(unnamed.id()).unwrap();
    let text = rec.label.to_string();
    assert!(
        text.ends_with(&format!("guest_policies.rs:{line}")),
        "{text}"
    );

    // Made on another thread: that thread and its node.
    let other = std::thread::spawn(|| {
        run_on(0);
        let r = Region::<u8>::new(10, Policy::Local).unwrap();
        (r, affinity::gettid())
    });
    let (r0, tid0) = other.join().unwrap();
    let rec = registry::get(r0.id()).unwrap();
    assert_eq!((rec.thread, rec.node), (tid0, NodeId(0)));

    let id = r.id();
    drop(r);
    assert!(registry::get(id).is_none());
    assert!(registry::find(addr + 100).is_none_or(|a| a.id != id));
}

#[test]
fn typed_views_and_free_locate_work() {
    let _g = serial();
    run_on(0);
    #[derive(Clone, Copy, bytemuck::Zeroable, bytemuck::Pod)]
    #[repr(C)]
    struct Cell {
        u: f64,
        v: f64,
        n: u32,
        pad: u32,
    }
    let mut r = Region::<Cell>::new(12345, Policy::RemoteTo(NodeId(1))).unwrap();
    assert_eq!(r.len(), 12345);
    assert_eq!(r.as_ptr() as usize % page_size(), 0);
    r[12344].n = 5;
    r.as_mut_slice()[0].u = 1.5;
    assert_eq!(r.as_slice()[12344].n, 5);
    assert_eq!(r.iter().map(|c| c.u).sum::<f64>(), 1.5);
    let bytes = r.len() * size_of::<Cell>();
    let st = alloc_policies::locate(r.as_ptr().cast(), bytes).unwrap();
    assert_eq!(st.len(), bytes.div_ceil(page_size()));
    Expect::node(1).check("free locate", &st);
    // An address range that was never touched reads as not present.
    let m = numa_tests::Mapping::new(3);
    let st = alloc_policies::locate(m.ptr, m.len).unwrap();
    assert_eq!(st, vec![PageStatus::NotPresent; 3]);
    let counts = r.pages_per_node().unwrap();
    assert_eq!(counts.get(&NodeId(1)), Some(&r.pages()));
}
