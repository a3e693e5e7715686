//! Fill and Round-robin plans on synthetic, XML and hand-built machines, with
//! every thread's CPU and node asserted.

use std::path::Path;

use proptest::prelude::*;
use rset::topology::NodeLayout;
use rset::{CpuId, NodeId, Pin, Placement, PlanError, RSet, Topology, plan};

fn synthetic(desc: &str) -> Topology {
    Topology::from_synthetic(desc).unwrap()
}

/// 8 nodes: 0-6 with 2 cores x 2 PUs each (siblings numbered `c` and `c + 14`
/// as Linux does), node 7 CPU-less (attached to the whole machine).
fn cpuless_8node() -> Topology {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cpuless-8node.xml");
    Topology::from_xml_file(path).unwrap()
}

/// Nodes of unequal size: node 0 has 4 cores x 2 PUs (siblings `c`, `c + 4`),
/// node 1 two cores without SMT, node 2 one core with 2 PUs, node 3 no CPU.
fn unequal() -> Topology {
    let cores = |list: &[&[u32]]| -> Vec<Vec<CpuId>> {
        list.iter()
            .map(|c| c.iter().map(|&i| CpuId(i)).collect())
            .collect()
    };
    let node = |id, c| NodeLayout {
        id: NodeId(id),
        memory_bytes: 1 << 30,
        cores: c,
    };
    Topology::from_layout(
        vec![
            node(0, cores(&[&[0, 4], &[1, 5], &[2, 6], &[3, 7]])),
            node(1, cores(&[&[8], &[9]])),
            node(2, cores(&[&[10, 11]])),
            node(3, Vec::new()),
        ],
        None,
    )
    .unwrap()
}

/// `(cpu, node)` of every thread.
fn placed(spec: &str, topo: &Topology, how: Placement, threads: usize) -> Vec<(u32, u32)> {
    let rset = RSet::parse(spec, topo).unwrap();
    let plan = plan(&rset, how, threads).unwrap();
    for (i, t) in plan.iter().enumerate() {
        assert_eq!(t.thread, i);
    }
    plan.iter().map(|t| (t.cpu.0, t.node.0)).collect()
}

#[test]
fn acceptance_fill_fills_node_0_then_node_1_then_wraps() {
    let topo = synthetic("pack:2 numa:2 core:2 pu:1");
    assert_eq!(
        placed("node:0-1", &topo, Placement::Fill, 6),
        [(0, 0), (1, 0), (2, 1), (3, 1), (0, 0), (1, 0)]
    );
}

#[test]
fn acceptance_round_robin_alternates_nodes() {
    let topo = synthetic("pack:2 numa:2 core:2 pu:1");
    assert_eq!(
        placed("node:0-1", &topo, Placement::RoundRobin, 6),
        [(0, 0), (2, 1), (1, 0), (3, 1), (0, 0), (2, 1)]
    );
}

#[test]
fn acceptance_plan_serializes_as_array_of_threads() {
    let topo = synthetic("pack:2 numa:2 core:2 pu:1");
    let rset = RSet::parse("node:0-1", &topo).unwrap();
    let plan = plan(&rset, Placement::Fill, 3).unwrap();
    assert_eq!(
        serde_json::to_string(&plan).unwrap(),
        r#"[{"thread":0,"cpu":0,"node":0},{"thread":1,"cpu":1,"node":0},{"thread":2,"cpu":2,"node":1}]"#
    );
}

#[test]
fn two_nodes_of_two_cpus() {
    let topo = synthetic("pack:2 numa:1 core:2 pu:1");
    let all = [(0, 0), (1, 0), (2, 1), (3, 1), (0, 0)];
    assert_eq!(placed("all", &topo, Placement::Fill, 5), all);
    let rr = [(0, 0), (2, 1), (1, 0), (3, 1), (0, 0)];
    assert_eq!(placed("all", &topo, Placement::RoundRobin, 5), rr);
    // One thread per node, whatever the policy.
    assert_eq!(placed("all", &topo, Placement::Fill, 1), [(0, 0)]);
    assert_eq!(
        placed("cpu:3", &topo, Placement::RoundRobin, 2),
        [(3, 1), (3, 1)]
    );
}

/// 4 nodes x 8 cores x 2 PUs: node `n` has CPUs `16n..16n+16`, core `c` of it
/// CPUs `16n + 2c` and `16n + 2c + 1`.
#[test]
fn four_nodes_of_eight_smt_cores_fill() {
    let topo = synthetic("pack:4 numa:1 core:8 pu:2");
    let got = placed("all", &topo, Placement::Fill, 70);
    let mut want = Vec::new();
    for node in 0..4 {
        let firsts = (0..8).map(|c| 16 * node + 2 * c);
        let seconds = (0..8).map(|c| 16 * node + 2 * c + 1);
        want.extend(firsts.chain(seconds).map(|cpu| (cpu, node)));
    }
    want.extend_from_slice(&want.clone()[..6]);
    assert_eq!(got, want);
    assert_eq!(
        &got[..10],
        [
            (0, 0),
            (2, 0),
            (4, 0),
            (6, 0),
            (8, 0),
            (10, 0),
            (12, 0),
            (14, 0),
            (1, 0),
            (3, 0)
        ]
    );
    assert_eq!(got[16], (16, 1));
    assert_eq!(got[64], (0, 0));
}

#[test]
fn four_nodes_of_eight_smt_cores_round_robin() {
    let topo = synthetic("pack:4 numa:1 core:8 pu:2");
    let got = placed("all", &topo, Placement::RoundRobin, 66);
    let want: Vec<(u32, u32)> = (0..66u32)
        .map(|t| {
            let (node, nth) = (t % 4, (t % 64) / 4);
            let cpu = if nth < 8 { 2 * nth } else { 2 * (nth - 8) + 1 };
            (16 * node + cpu, node)
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        &got[..6],
        [(0, 0), (16, 1), (32, 2), (48, 3), (2, 0), (18, 1)]
    );
    assert_eq!(got[32], (1, 0));
    assert_eq!(got[64], got[0]);
}

#[test]
fn rset_of_half_a_node_keeps_core_order() {
    let topo = synthetic("pack:4 numa:1 core:8 pu:2");
    // Second PU of core 0, both PUs of core 1, first PU of core 2.
    assert_eq!(
        placed("cpu:1-4", &topo, Placement::Fill, 4),
        [(1, 0), (2, 0), (4, 0), (3, 0)]
    );
}

#[test]
fn cpuless_node_gets_no_threads_fill() {
    let topo = cpuless_8node();
    let got = placed("all", &topo, Placement::Fill, 30);
    let mut want = Vec::new();
    for node in 0..7 {
        let (c0, c1) = (2 * node, 2 * node + 1);
        want.extend([c0, c1, c0 + 14, c1 + 14].map(|cpu| (cpu, node)));
    }
    want.extend([(0, 0), (1, 0)]);
    assert_eq!(got, want);
    assert_eq!(&got[..5], [(0, 0), (1, 0), (14, 0), (15, 0), (2, 1)]);
}

#[test]
fn cpuless_node_gets_no_threads_round_robin() {
    let topo = cpuless_8node();
    let got = placed("all", &topo, Placement::RoundRobin, 9);
    assert_eq!(
        got,
        [
            (0, 0),
            (2, 1),
            (4, 2),
            (6, 3),
            (8, 4),
            (10, 5),
            (12, 6),
            (1, 0),
            (3, 1)
        ]
    );
    // A node with CPUs plus the CPU-less one: all threads on node 6.
    assert_eq!(
        placed("node:6-7", &topo, Placement::RoundRobin, 5),
        [(12, 6), (13, 6), (26, 6), (27, 6), (12, 6)]
    );
}

#[test]
fn unequal_nodes_fill() {
    let topo = unequal();
    let got = placed("all", &topo, Placement::Fill, 13);
    let want = [
        (0, 0),
        (1, 0),
        (2, 0),
        (3, 0),
        (4, 0),
        (5, 0),
        (6, 0),
        (7, 0),
        (8, 1),
        (9, 1),
        (10, 2),
        (11, 2),
        (0, 0),
    ];
    assert_eq!(got, want);
}

#[test]
fn unequal_nodes_round_robin_drops_full_nodes_from_the_rotation() {
    let topo = unequal();
    let got = placed("all", &topo, Placement::RoundRobin, 14);
    let want = [
        (0, 0),
        (8, 1),
        (10, 2),
        (1, 0),
        (9, 1),
        (11, 2),
        (2, 0),
        (3, 0),
        (4, 0),
        (5, 0),
        (6, 0),
        (7, 0),
        (0, 0),
        (8, 1),
    ];
    assert_eq!(got, want);
}

#[test]
fn errors_name_the_problem() {
    let topo = cpuless_8node();
    let mem_only = RSet::parse("mem:7", &topo).unwrap();
    let err = plan(&mem_only, Placement::Fill, 4).unwrap_err();
    assert_eq!(
        err,
        PlanError::NoCpus {
            rset: "mem:7".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "the resource set `mem:7` has no CPUs to place threads on"
    );
    let node7 = RSet::parse("node:7", &topo).unwrap();
    assert!(matches!(
        plan(&node7, Placement::RoundRobin, 1),
        Err(PlanError::NoCpus { .. })
    ));
    let all = topo.global_rset();
    let err = plan(&all, Placement::Fill, 0).unwrap_err();
    assert_eq!(err.to_string(), "cannot place 0 threads");
    let err = plan(&all, Placement::Fill, usize::MAX).unwrap_err();
    assert!(matches!(err, PlanError::TooManyThreads { .. }), "{err}");
}

#[test]
fn placement_names() {
    assert_eq!("fill".parse::<Placement>(), Ok(Placement::Fill));
    assert_eq!(
        "round-robin".parse::<Placement>(),
        Ok(Placement::RoundRobin)
    );
    assert_eq!(Placement::RoundRobin.to_string(), "round-robin");
    let err = "roundrobin".parse::<Placement>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown placement `roundrobin` (expected `fill` or `round-robin`)"
    );
    assert_eq!(
        serde_json::to_string(&Placement::RoundRobin).unwrap(),
        "\"round-robin\""
    );
}

#[test]
fn pin_names() {
    assert_eq!("cpu".parse::<Pin>(), Ok(Pin::Cpu));
    assert_eq!("node".parse::<Pin>(), Ok(Pin::Node));
    assert_eq!(Pin::default(), Pin::Cpu);
    assert_eq!(Pin::Node.to_string(), "node");
    let err = "core".parse::<Pin>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown pinning `core` (expected `cpu` or `node`)"
    );
    assert_eq!(serde_json::to_string(&Pin::Node).unwrap(), "\"node\"");
}

/// The CPUs each thread of a team is held to, as lists.
fn held(spec: &str, topo: &Topology, how: Placement, pin: Pin, threads: usize) -> Vec<Vec<u32>> {
    let rset = RSet::parse(spec, topo).unwrap();
    let team = rset
        .team()
        .threads(threads)
        .placement(how)
        .pin(pin)
        .build()
        .unwrap();
    assert_eq!(team.held_cpus(threads), None);
    (0..threads)
        .map(|t| team.held_cpus(t).unwrap().iter().map(|c| c.0).collect())
        .collect()
}

#[test]
fn node_pinned_threads_hold_the_rsets_cpus_of_their_node() {
    let topo = unequal();
    let node0: Vec<u32> = (0..8).collect();
    let (node1, node2) = (vec![8, 9], vec![10, 11]);
    // Fill: 8 threads on node 0, 2 on node 1, 2 on node 2, then again.
    let h = held("all", &topo, Placement::Fill, Pin::Node, 13);
    for (t, cpus) in h.iter().enumerate() {
        let want = match t {
            0..=7 | 12 => &node0,
            8 | 9 => &node1,
            _ => &node2,
        };
        assert_eq!(cpus, want, "thread {t}");
    }
    // Round-robin: nodes 0, 1, 2 in turn.
    let h = held("all", &topo, Placement::RoundRobin, Pin::Node, 3);
    assert_eq!(h, vec![node0.clone(), node1.clone(), node2.clone()]);
    // Only the RSet's CPUs of the node.
    let h = held("cpu:1,5 + cpu:9", &topo, Placement::Fill, Pin::Node, 3);
    assert_eq!(h, vec![vec![1, 5], vec![1, 5], vec![9]]);
    // Pinned by CPU: each thread its planned CPU.
    let h = held("all", &topo, Placement::RoundRobin, Pin::Cpu, 3);
    let p = placed("all", &topo, Placement::RoundRobin, 3);
    assert_eq!(h, p.iter().map(|(c, _)| vec![*c]).collect::<Vec<_>>());
}

/// Random non-empty CPU sets of "pack:2 numa:2 core:2 pu:2" as `cpu:` specs.
fn cpu_specs() -> impl Strategy<Value = String> {
    proptest::collection::btree_set(0u32..16, 1..16).prop_map(|cpus| {
        let ids: Vec<u32> = cpus.into_iter().collect();
        format!("cpu:{}", rset::list::format_list(&ids))
    })
}

proptest! {
    #[test]
    fn every_period_uses_each_cpu_once_then_wraps(
        spec in cpu_specs(),
        threads in 1usize..80,
        rr in any::<bool>(),
    ) {
        let topo = synthetic("pack:2 numa:2 core:2 pu:2");
        let rset = RSet::parse(&spec, &topo).unwrap();
        let how = if rr { Placement::RoundRobin } else { Placement::Fill };
        let plan = plan(&rset, how, threads).unwrap();
        let n = rset.cpus().len();
        prop_assert_eq!(plan.len(), threads);
        for t in plan.iter() {
            prop_assert!(rset.cpus().contains(t.cpu));
            prop_assert_eq!(topo.pu(t.cpu).unwrap().node, t.node);
            if let Some(later) = plan.get(t.thread + n) {
                prop_assert_eq!(later.cpu, t.cpu);
            }
        }
        let first: rset::CpuSet = plan.iter().take(n).map(|t| t.cpu).collect();
        prop_assert_eq!(first.len(), n.min(threads));
    }
}
