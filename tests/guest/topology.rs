//! The emulated machine is the one the harness asked for, and the kernel's NUMA
//! system calls really place memory on it.

use numa_tests::{GuestSpec, Mapping, sysfs};
use rset::sys::mempolicy::{self, MbindFlags, Mode, PageStatus};

#[test]
fn nodes_have_the_requested_cpus_and_memory() {
    let spec = GuestSpec::from_env();
    let nodes = sysfs::online_nodes();
    assert_eq!(
        nodes,
        (0..spec.total_nodes()).collect::<Vec<_>>(),
        "online nodes"
    );
    let requested = spec.mem_per_node_mib << 20;
    for node in nodes {
        assert_eq!(
            sysfs::node_cpus(node),
            spec.cpus_of(node),
            "CPUs of node {node}"
        );
        let total = sysfs::node_mem_total(node);
        // The kernel keeps a little of each node for itself (memmap, reserved ranges).
        assert!(
            total <= requested && total >= requested / 100 * 85,
            "node {node}: MemTotal {total} B, requested {requested} B"
        );
    }
}

#[test]
fn distances_are_10_local_and_20_remote() {
    let spec = GuestSpec::from_env();
    for a in 0..spec.total_nodes() {
        let row = sysfs::node_distances(a);
        let want: Vec<u32> = (0..spec.total_nodes())
            .map(|b| if a == b { 10 } else { 20 })
            .collect();
        assert_eq!(row, want, "distance row of node {a}");
    }
}

#[test]
fn cpuless_nodes_have_memory_and_no_cpus() {
    let spec = GuestSpec::from_env();
    for node in spec.nodes..spec.total_nodes() {
        assert!(
            sysfs::node_cpus(node).is_empty(),
            "node {node} should have no CPUs"
        );
        assert!(
            sysfs::node_mem_total(node) > 0,
            "node {node} should have memory"
        );
    }
}

#[test]
fn mbind_places_a_fresh_page_on_every_node() {
    let spec = GuestSpec::from_env();
    for node in 0..spec.total_nodes() {
        let m = Mapping::new(1);
        let before = mempolicy::move_pages_query(&[m.page(0).cast_const()]).unwrap();
        assert_eq!(before, vec![PageStatus::NotPresent], "untouched page");
        mempolicy::mbind(m.ptr, m.len, Mode::Bind, &[node], MbindFlags::default())
            .unwrap_or_else(|e| panic!("mbind to node {node}: {e}"));
        m.touch();
        let after = mempolicy::move_pages_query(&[m.page(0).cast_const()]).unwrap();
        assert_eq!(
            after,
            vec![PageStatus::Node(node)],
            "page bound to node {node}"
        );
    }
}

#[test]
fn a_page_bound_to_the_last_node_reads_back_there() {
    // The acceptance check: on the 4-node guest, node 3.
    let spec = GuestSpec::from_env();
    let last = spec.total_nodes() - 1;
    let m = Mapping::new(4);
    mempolicy::mbind(m.ptr, m.len, Mode::Bind, &[last], MbindFlags::default()).unwrap();
    m.touch();
    let pages: Vec<*const u8> = (0..4).map(|i| m.page(i).cast_const()).collect();
    let status = mempolicy::move_pages_query(&pages).unwrap();
    assert_eq!(status, vec![PageStatus::Node(last); 4]);
    assert_eq!(mempolicy::node_of_address(m.page(2)).unwrap(), last);
}

#[test]
fn move_pages_moves_touched_pages_between_nodes() {
    let spec = GuestSpec::from_env();
    let m = Mapping::new(2);
    mempolicy::mbind(m.ptr, m.len, Mode::Bind, &[0], MbindFlags::default()).unwrap();
    m.touch();
    let target = spec.total_nodes() - 1;
    let pages = [m.page(0).cast_const(), m.page(1).cast_const()];
    let moved = mempolicy::move_pages_to(&pages, &[target, target]).unwrap();
    assert_eq!(moved, vec![PageStatus::Node(target); 2]);
    assert_eq!(mempolicy::move_pages_query(&pages).unwrap(), moved);
}

#[test]
fn thread_policy_round_trips_through_the_kernel() {
    let spec = GuestSpec::from_env();
    let nodes: Vec<u32> = (0..spec.total_nodes()).collect();
    std::thread::spawn(move || {
        mempolicy::set_mempolicy(Mode::Interleave, &nodes).unwrap();
        assert_eq!(
            mempolicy::get_mempolicy().unwrap(),
            (Mode::Interleave, nodes)
        );
        mempolicy::set_mempolicy(Mode::Default, &[]).unwrap();
        assert_eq!(mempolicy::get_mempolicy().unwrap(), (Mode::Default, vec![]));
    })
    .join()
    .unwrap();
}

#[test]
fn numa_balancing_is_off() {
    let v = std::fs::read_to_string("/proc/sys/kernel/numa_balancing").unwrap();
    assert_eq!(
        v.trim(),
        "0",
        "automatic NUMA balancing would move our pages"
    );
}
