//! Regions on whatever machine runs `cargo test` (one node is enough): the
//! single-node layouts land on their node page by page, bad input gives typed
//! errors, the registry follows regions. The many-node cases run in the emulated
//! guests (`guest_policies`).

use alloc_policies::registry::{self, AllocKind, Label};
use alloc_policies::{Layout, PageStatus, Policy, PolicyError, Region, RegionError, current_node};
use numa_tests::page_size;
use rset::sys::affinity;
use rset::{NodeId, RSet, Topology};

/// Pins the calling thread to the CPUs of the node it runs on; returns the node and
/// that node's RSet.
fn pin_here() -> (NodeId, RSet) {
    let topo = Topology::from_system().expect("hwloc topology");
    let node = current_node();
    let rset = topo.rset_of_node(node).expect("the current node");
    let cpus: Vec<u32> = rset.cpus().iter().map(|c| c.0).collect();
    affinity::set_affinity(None, &cpus).unwrap();
    (current_node(), rset)
}

fn all_on(node: NodeId, status: &[PageStatus]) -> bool {
    status.iter().all(|s| *s == PageStatus::Node(node.0))
}

#[test]
fn single_node_layouts_place_every_page() {
    let (node, rset) = pin_here();
    let p = page_size();
    for policy in [
        Policy::Local,
        Policy::Float,
        Policy::Bind(rset.effective_nodes()),
        Policy::Interleave(rset.effective_nodes()),
        "striped:1".parse().unwrap(),
        "striped:3".parse().unwrap(),
    ] {
        for bytes in [1, p, 7 * p + 5, 1000 * p] {
            let r = Region::<u8>::new_in(bytes, policy.clone(), &rset)
                .unwrap_or_else(|e| panic!("{policy}, {bytes} bytes: {e}"));
            assert_eq!(r.len(), bytes);
            assert_eq!(r.pages(), bytes.div_ceil(p));
            assert!(r.is_populated());
            let st = r.locate().unwrap();
            assert_eq!(st.len(), r.pages());
            assert!(all_on(node, &st), "{policy}, {bytes} bytes: {st:?}");
            r.verify().unwrap();
        }
    }
}

#[test]
fn lazy_regions_fault_in_where_the_policy_says() {
    let (node, rset) = pin_here();
    let p = page_size();
    let mut r = Region::<u8>::builder(10 * p)
        .rset(&rset)
        .populate(false)
        .build()
        .unwrap();
    assert!(!r.is_populated());
    assert!(
        r.locate()
            .unwrap()
            .iter()
            .all(|s| *s == PageStatus::NotPresent)
    );
    r.verify().unwrap();
    r[3 * p] = 1;
    let st = r.locate().unwrap();
    assert_eq!(st[3], PageStatus::Node(node.0));
    assert_eq!(st[2], PageStatus::NotPresent);
    // Re-placing populates it.
    r.replace(Policy::Local, &rset).unwrap();
    assert!(r.is_populated());
    assert!(all_on(node, &r.locate().unwrap()));
    assert_eq!(r[3 * p], 1);
}

#[test]
fn lazy_regions_are_populated_in_parts_then_whole_keeping_contents() {
    let (node, rset) = pin_here();
    let p = page_size();
    for policy in [
        Policy::Float,
        Policy::Local,
        Policy::Interleave(rset.effective_nodes()),
    ] {
        let mut r = Region::<u8>::builder(9 * p + 1)
            .policy(policy.clone())
            .rset(&rset)
            .populate(false)
            .build()
            .unwrap();
        r[9 * p] = 7;
        // Two threads fault in their parts; the main thread fills the hole.
        std::thread::scope(|s| {
            let r = &r;
            s.spawn(move || r.prefault(0..3).unwrap());
            s.spawn(move || r.prefault(5..8).unwrap());
        });
        assert!(!r.is_populated());
        r.prefault(4..4).unwrap();
        let st = r.locate().unwrap();
        if st[0] != PageStatus::NotPresent {
            // MADV_POPULATE_WRITE is there (Linux 5.14+): the parts are present.
            for (i, s) in st.iter().enumerate() {
                let want = [0, 1, 2, 5, 6, 7, 9].contains(&i);
                assert_eq!(*s != PageStatus::NotPresent, want, "{policy}: page {i}");
            }
        }
        r.populate().unwrap();
        assert!(r.is_populated(), "{policy}");
        assert!(all_on(node, &r.locate().unwrap()), "{policy}");
        r.verify().unwrap();
        assert_eq!(r[9 * p], 7, "{policy}: contents kept");
        assert!(r[..9 * p].iter().all(|b| *b == 0), "{policy}");
        r.populate().unwrap();

        for bad in [8..11, 0..11, 11..12] {
            let e = r.prefault(bad.clone()).unwrap_err();
            assert!(matches!(e, RegionError::PageRange { .. }), "{e}");
            assert_eq!(
                e.to_string(),
                format!(
                    "pages {}..{} are not inside the region's 10 pages",
                    bad.start, bad.end
                )
            );
        }
    }
}

#[test]
fn typed_views_see_the_same_memory() {
    let mut r = Region::<f64>::new(1000, Policy::Float).unwrap();
    assert_eq!(r.len(), 1000);
    assert!(!r.is_empty());
    assert_eq!(r.as_ptr() as usize % page_size(), 0);
    r[999] = 2.5;
    r.as_mut_slice()[0] = 1.0;
    assert_eq!(r.iter().sum::<f64>(), 3.5);
    assert_eq!(r.as_slice().len(), 1000);
    assert!(r.mapped_bytes() >= 8000 && r.mapped_bytes().is_multiple_of(page_size()));
    assert_eq!(r.layout(), &Layout::Default);
    assert!(format!("{r:?}").contains("Region"));
}

#[test]
fn bad_input_gives_typed_errors() {
    let (node, rset) = pin_here();
    let e = Region::<u8>::builder(10).striped(0).build().unwrap_err();
    assert!(
        matches!(e, RegionError::Policy(PolicyError::ZeroStride)),
        "{e}"
    );
    let e = Region::<u8>::builder(0).build().unwrap_err();
    assert!(matches!(e, RegionError::ZeroSize { .. }), "{e}");
    let e = Region::<u64>::builder(usize::MAX / 2).build().unwrap_err();
    assert!(matches!(e, RegionError::TooLarge { .. }), "{e}");
    let e = Region::<u8>::new_in(10, Policy::Remote, &rset).unwrap_err();
    assert!(
        matches!(e, RegionError::Policy(PolicyError::RemoteNeedsTwoNodes { node: n, .. }) if n == node),
        "{e}"
    );
    let e = Region::<u8>::new_in(10, Policy::Bind([NodeId(999)].into_iter().collect()), &rset)
        .unwrap_err();
    assert!(
        matches!(
            e,
            RegionError::Policy(PolicyError::NodeOutsideRSet {
                node: NodeId(999),
                ..
            })
        ),
        "{e}"
    );
    for e in [e, Region::<u8>::builder(0).build().unwrap_err()] {
        let s = e.to_string();
        assert!(!s.is_empty() && !s.contains('\n'), "{s:?}");
    }
}

#[test]
fn a_region_bigger_than_its_node_is_refused() {
    let (node, rset) = pin_here();
    let total = rset
        .topology()
        .node(node)
        .map(|n| n.memory_bytes)
        .filter(|&b| b > 0)
        .unwrap_or(1 << 40);
    let e = Region::<u8>::new_in((total * 2) as usize, Policy::Local, &rset).unwrap_err();
    match e {
        RegionError::NodeFull { node: n, .. } => assert_eq!(n, node),
        RegionError::TooLarge { .. } => {}
        other => panic!("{other}"),
    }
}

#[test]
fn the_registry_follows_regions() {
    let (node, _) = pin_here();
    let r = Region::<u8>::builder(3 * page_size())
        .label("host.grid")
        .build()
        .unwrap();
    let a = registry::find(r.as_ptr() as usize + 5).unwrap();
    assert_eq!(a.id, r.id());
    assert_eq!(a.label, Label::name("host.grid"));
    assert_eq!(
        (a.kind, a.node, a.thread),
        (AllocKind::Region, node, affinity::gettid())
    );
    assert_eq!(a.len, 3 * page_size());
    assert_eq!(a.policy.as_str(), "local");
    let id = r.id();
    drop(r);
    assert!(registry::get(id).is_none());
}

#[test]
fn a_100k_page_striped_region_is_one_mapping() {
    let r = Region::<u8>::builder(100_000 * page_size())
        .striped(1)
        .build()
        .unwrap();
    let start = r.as_ptr() as usize;
    let end = start + r.mapped_bytes();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let own = maps
        .lines()
        .filter(|l| {
            let (a, b) = l
                .split_whitespace()
                .next()
                .unwrap()
                .split_once('-')
                .unwrap();
            let (a, b) = (
                usize::from_str_radix(a, 16).unwrap(),
                usize::from_str_radix(b, 16).unwrap(),
            );
            a < end && b > start
        })
        .count();
    assert_eq!(own, 1);
}

#[test]
fn locked_regions_are_locked() {
    match Region::<u8>::builder(16 * page_size()).lock(true).build() {
        Ok(r) => {
            assert!(r.is_locked());
            r.verify().unwrap();
        }
        // Without CAP_IPC_LOCK and with a small RLIMIT_MEMLOCK: a clear error.
        Err(e @ RegionError::Lock { .. }) => assert!(e.to_string().contains("RLIMIT_MEMLOCK")),
        Err(e) => panic!("{e}"),
    }
}
