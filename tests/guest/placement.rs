//! Teams of placed threads run exactly where the plan says, and memory a bound
//! thread touches lands on its RSet's nodes (checked page by page).

use numa_tests::{GuestSpec, Mapping};
use rset::sys::affinity;
use rset::sys::mempolicy::{self, PageStatus};
use rset::{CpuId, NodeId, Pin, Placement, RSet, Topology};

fn machine() -> Topology {
    Topology::from_system().expect("hwloc topology of the guest")
}

#[test]
fn hwloc_sees_the_requested_machine() {
    let spec = GuestSpec::from_env();
    let topo = machine();
    assert_eq!(topo.nodes().len() as u32, spec.total_nodes());
    for node in topo.nodes() {
        let want: Vec<u32> = spec.cpus_of(node.id.0);
        let got: Vec<u32> = node.cpus.iter().map(|c| c.0).collect();
        assert_eq!(got, want, "CPUs of node {}", node.id);
        assert!(node.memory_bytes > 0, "node {} has memory", node.id);
    }
}

/// Runs a team and checks each thread's affinity and the CPU it runs on.
fn check_team(rset: &RSet, placement: Placement, threads: usize) {
    let team = rset
        .team()
        .threads(threads)
        .placement(placement)
        .build()
        .unwrap();
    let seen = team
        .broadcast(|ctx| {
            std::thread::yield_now();
            let affinity = affinity::get_affinity(None).unwrap();
            let (cpu, node) = affinity::getcpu().unwrap();
            (ctx.index(), ctx.cpu(), ctx.node(), affinity, cpu, node)
        })
        .unwrap();
    assert_eq!(seen.len(), threads);
    for (slot, (index, cpu, node, aff, ran_cpu, ran_node)) in team.plan().iter().zip(seen) {
        let what = format!("{placement} x{threads}, thread {index}");
        assert_eq!(index, slot.thread, "{what}");
        assert_eq!((cpu, node), (slot.cpu, slot.node), "{what}: ctx");
        assert_eq!(aff, vec![slot.cpu.0], "{what}: sched_getaffinity");
        assert_eq!(
            (CpuId(ran_cpu), NodeId(ran_node)),
            (slot.cpu, slot.node),
            "{what}: getcpu"
        );
    }
}

#[test]
fn every_thread_runs_on_its_planned_cpu_for_all_team_sizes() {
    let topo = machine();
    let all = topo.global_rset();
    let ncpus = all.cpus().len();
    for placement in [Placement::Fill, Placement::RoundRobin] {
        for threads in 1..=2 * ncpus {
            check_team(&all, placement, threads);
        }
    }
}

#[test]
fn teams_on_a_sub_rset_stay_inside_it() {
    let spec = GuestSpec::from_env();
    let topo = machine();
    let last = spec.nodes - 1;
    let rset = RSet::parse(&format!("node:{last} + cpu:0"), &topo).unwrap();
    for placement in [Placement::Fill, Placement::RoundRobin] {
        for threads in 1..=2 * rset.cpus().len() {
            check_team(&rset, placement, threads);
        }
    }
}

/// Runs a team pinned by node and checks that each thread may use exactly the
/// RSet's CPUs on its planned node, and runs on that node.
fn check_node_pinned_team(rset: &RSet, placement: Placement, threads: usize) {
    let spec = GuestSpec::from_env();
    let team = rset
        .team()
        .threads(threads)
        .placement(placement)
        .pin(Pin::Node)
        .build()
        .unwrap();
    assert_eq!(team.pin(), Pin::Node);
    let seen = team
        .broadcast(|ctx| {
            std::thread::yield_now();
            let affinity = affinity::get_affinity(None).unwrap();
            let (_, node) = affinity::getcpu().unwrap();
            (ctx.index(), ctx.node(), affinity, node)
        })
        .unwrap();
    for (slot, (index, node, aff, ran_node)) in team.plan().iter().zip(seen) {
        let what = format!("{placement} x{threads} pinned by node, thread {index}");
        assert_eq!(node, slot.node, "{what}: ctx");
        let want: Vec<u32> = spec
            .cpus_of(slot.node.0)
            .into_iter()
            .filter(|c| rset.cpus().contains(CpuId(*c)))
            .collect();
        assert!(want.contains(&slot.cpu.0), "{what}");
        assert_eq!(aff, want, "{what}: sched_getaffinity");
        assert_eq!(
            team.held_cpus(index)
                .unwrap()
                .iter()
                .map(|c| c.0)
                .collect::<Vec<_>>(),
            want,
            "{what}: held_cpus"
        );
        assert_eq!(NodeId(ran_node), slot.node, "{what}: getcpu");
    }
}

#[test]
fn node_pinned_threads_may_use_their_nodes_cpus_and_no_other() {
    let spec = GuestSpec::from_env();
    let topo = machine();
    let all = topo.global_rset();
    let ncpus = all.cpus().len();
    let last = spec.nodes - 1;
    // cpu:0 is the RSet's only CPU on node 0: a thread planned there holds just it.
    let part = RSet::parse(&format!("node:{last} + cpu:0"), &topo).unwrap();
    for placement in [Placement::Fill, Placement::RoundRobin] {
        for threads in [1, ncpus, ncpus + 1] {
            check_node_pinned_team(&all, placement, threads);
        }
        check_node_pinned_team(&part, placement, part.cpus().len());
    }
}

#[test]
fn plans_follow_the_papers_definitions_on_the_real_machine() {
    let spec = GuestSpec::from_env();
    let all = machine().global_rset();
    let n = spec.nodes as usize;
    let c = spec.cpus_per_node as usize;
    let fill = rset::plan(&all, Placement::Fill, n * c).unwrap();
    for (i, t) in fill.iter().enumerate() {
        assert_eq!(t.node, NodeId((i / c) as u32), "fill thread {i}");
    }
    let rr = rset::plan(&all, Placement::RoundRobin, n * c).unwrap();
    for (i, t) in rr.iter().enumerate() {
        assert_eq!(t.node, NodeId((i % n) as u32), "round-robin thread {i}");
    }
}

const PAGES: usize = 16;

/// Touches `PAGES` fresh pages from the calling thread and says where each landed.
fn touch_and_locate() -> Vec<PageStatus> {
    let m = Mapping::new(PAGES);
    m.touch();
    mempolicy::move_pages_query(&m.pages()).unwrap()
}

#[test]
fn first_touch_by_a_bound_thread_is_local_to_its_node() {
    let all = machine().global_rset();
    let threads = all.cpus().len();
    let team = all
        .team()
        .threads(threads)
        .placement(Placement::RoundRobin)
        .build()
        .unwrap();
    let placed = team
        .broadcast(|ctx| (ctx.node(), touch_and_locate()))
        .unwrap();
    for (i, (node, pages)) in placed.into_iter().enumerate() {
        assert_eq!(
            pages,
            vec![PageStatus::Node(node.0); PAGES],
            "thread {i} on node {node}"
        );
    }
}

#[test]
fn memory_follows_the_rset_even_when_remote() {
    let spec = GuestSpec::from_env();
    let topo = machine();
    // Run on node 0's CPUs, allocate only from the last node (CPU-less where there is one).
    let last = spec.total_nodes() - 1;
    let rset = RSet::parse(&format!("cpu:0 + mem:{last}"), &topo).unwrap();
    let pages = rset
        .scope(Placement::Fill, 2, |_| touch_and_locate())
        .unwrap();
    for (i, p) in pages.into_iter().enumerate() {
        assert_eq!(p, vec![PageStatus::Node(last); PAGES], "thread {i}");
    }
}

#[test]
fn bind_current_thread_binds_cpus_and_memory() {
    let spec = GuestSpec::from_env();
    let topo = machine();
    let node = spec.nodes - 1;
    let rset = topo.rset_of_node(NodeId(node)).unwrap();
    std::thread::spawn(move || {
        rset::bind::bind_current_thread(&rset).unwrap();
        let b = rset::bind::current_binding().unwrap();
        assert_eq!(&b.cpus, rset.cpus());
        assert_eq!(b.memory, rset::MemoryBinding::Bind(rset.nodes().clone()));
        assert_eq!(touch_and_locate(), vec![PageStatus::Node(node); PAGES]);
    })
    .join()
    .unwrap();
}
