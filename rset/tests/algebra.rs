//! The RSet algebra: laws checked on random specs over a synthetic machine, the
//! memory rules, and the hierarchy of children.

use proptest::prelude::*;
use rset::{CpuSet, NodeId, NodeSet, RSet, RSetError, SpecError, Topology};

/// 4 nodes x 2 cores x 2 PUs: node `n` has CPUs `4n..4n+4`.
fn topo() -> Topology {
    Topology::from_synthetic("pack:2 numa:2 core:2 pu:2").unwrap()
}

fn parse(spec: &str, topo: &Topology) -> RSet {
    RSet::parse(spec, topo).unwrap_or_else(|e| panic!("{spec}: {e}"))
}

/// A spec's RSet, or the empty RSet when the spec selects nothing.
fn value(spec: &str, topo: &Topology) -> RSet {
    match RSet::parse(spec, topo) {
        Ok(rset) => rset,
        Err(SpecError::EmptyResult { .. }) => RSet::empty(topo),
        Err(e) => panic!("{spec}: {e}"),
    }
}

fn list(max: u32) -> impl Strategy<Value = String> {
    proptest::collection::btree_set(0..max, 1..=max as usize).prop_map(|ids| {
        let ids: Vec<u32> = ids.into_iter().collect();
        rset::list::format_list(&ids)
    })
}

/// Random specs: terms over the machine combined with operators and parens.
fn spec() -> impl Strategy<Value = String> {
    let term = prop_oneof![
        Just("all".to_owned()),
        list(4).prop_map(|l| format!("node:{l}")),
        list(16).prop_map(|l| format!("cpu:{l}")),
        list(4).prop_map(|l| format!("mem:{l}")),
    ];
    term.prop_recursive(3, 12, 3, |inner| {
        (
            inner.clone(),
            prop_oneof![Just("+"), Just("&"), Just("-")],
            inner,
        )
            .prop_map(|(a, op, b)| format!("({a}) {op} ({b})"))
    })
}

proptest! {
    #[test]
    fn union_and_intersection_commute(a in spec(), b in spec()) {
        let t = topo();
        let (a, b) = (value(&a, &t), value(&b, &t));
        prop_assert_eq!(&a | &b, &b | &a);
        prop_assert_eq!(&a & &b, &b & &a);
        prop_assert_eq!(&a + &b, &a | &b);
    }

    #[test]
    fn union_and_intersection_associate(a in spec(), b in spec(), c in spec()) {
        let t = topo();
        let (a, b, c) = (value(&a, &t), value(&b, &t), value(&c, &t));
        prop_assert_eq!(&(&a | &b) | &c, &a | &(&b | &c));
        prop_assert_eq!(&(&a & &b) & &c, &a & &(&b & &c));
        prop_assert_eq!(&a & &(&b | &c), &(&a & &b) | &(&a & &c));
    }

    #[test]
    fn difference_laws(a in spec(), b in spec(), c in spec()) {
        let t = topo();
        let all = t.global_rset();
        let (a, b, c) = (value(&a, &t), value(&b, &t), value(&c, &t));
        prop_assert_eq!(&a - &b, &a & &(&all - &b));
        prop_assert!((&(&a - &b) & &b).is_empty());
        prop_assert_eq!(&(&a - &b) | &(&a & &b), a.clone());
        prop_assert_eq!(&a - &(&b | &c), &(&a - &b) & &(&a - &c));
        prop_assert_eq!(&a - &a, RSet::empty(&t));
    }

    #[test]
    fn subset_relations(a in spec(), b in spec()) {
        let t = topo();
        let (a, b) = (value(&a, &t), value(&b, &t));
        prop_assert!((&a & &b).is_subset_of(&a));
        prop_assert!(a.is_subset_of(&(&a | &b)));
        prop_assert!((&a - &b).is_subset_of(&a));
        prop_assert!(a.is_subset_of(&t.global_rset()));
        prop_assert!(RSet::empty(&t).is_subset_of(&a));
        prop_assert_eq!(a.is_subset_of(&b) && b.is_subset_of(&a), a == b);
    }

    /// Operators in a spec mean the same as the methods, left to right.
    #[test]
    fn spec_operators_match_methods(a in spec(), b in spec(), c in spec()) {
        let t = topo();
        let (va, vb, vc) = (value(&a, &t), value(&b, &t), value(&c, &t));
        prop_assert_eq!(value(&format!("({a})+({b})"), &t), va.union(&vb));
        prop_assert_eq!(value(&format!("({a})&({b})"), &t), va.intersection(&vb));
        prop_assert_eq!(value(&format!("({a})-({b})"), &t), va.difference(&vb));
        prop_assert_eq!(
            value(&format!("({a}) - ({b}) + ({c})"), &t),
            &(&va - &vb) | &vc
        );
    }

    #[test]
    fn display_reads_back(a in spec()) {
        let t = topo();
        let a = value(&a, &t);
        if !a.is_empty() {
            prop_assert_eq!(parse(&a.to_string(), &t), a);
        }
    }

    #[test]
    fn memory_rules(a in spec()) {
        let t = topo();
        let a = value(&a, &t);
        let nodes = a.effective_nodes();
        if a.nodes().is_empty() {
            prop_assert_eq!(nodes, t.nodes_of_cpus(a.cpus()));
        } else {
            prop_assert_eq!(&nodes, a.nodes());
        }
        let cpus = a.effective_cpus();
        if a.cpus().is_empty() && !a.nodes().is_empty() {
            prop_assert_eq!(&cpus, t.cpu_ids());
        } else {
            prop_assert_eq!(&cpus, a.cpus());
        }
    }

    /// Children are non-empty, strictly smaller, and together make the parent.
    #[test]
    fn children_partition_their_parent(a in spec()) {
        let t = topo();
        let a = value(&a, &t);
        let children = a.children();
        if !children.is_empty() {
            let mut union = RSet::empty(&t);
            for child in &children {
                prop_assert!(!child.is_empty());
                prop_assert!(child.is_subset_of(&a));
                prop_assert!(child != &a);
                union = &union | child;
            }
            prop_assert_eq!(union, a);
        }
    }
}

#[test]
fn global_and_node_rsets() {
    let t = topo();
    let global = t.global_rset();
    assert_eq!(global, parse("all", &t));
    assert_eq!(global.to_string(), "all");
    let node2 = t.rset_of_node(NodeId(2)).unwrap();
    assert_eq!(node2, parse("node:2", &t));
    assert_eq!(node2.cpus().to_string(), "8-11");
    assert_eq!(node2.to_string(), "node:2");
    assert!(t.rset_of_node(NodeId(4)).is_none());
}

#[test]
fn hierarchy_goes_global_node_core_pu() {
    let t = topo();
    let nodes = t.global_rset().children();
    assert_eq!(nodes.len(), 4);
    for (n, child) in nodes.iter().enumerate() {
        assert_eq!(child, &t.rset_of_node(NodeId(n as u32)).unwrap());
    }
    let cores = nodes[1].children();
    let shown: Vec<String> = cores.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["cpu:4-5+mem:1", "cpu:6-7+mem:1"]);
    let pus = cores[1].children();
    let shown: Vec<String> = pus.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["cpu:6+mem:1", "cpu:7+mem:1"]);
    assert!(pus[0].children().is_empty());
}

#[test]
fn memory_only_and_cpu_only_rsets() {
    let t = topo();
    let mem = parse("mem:2", &t);
    assert!(mem.cpus().is_empty() && !mem.is_empty());
    assert_eq!(mem.effective_cpus(), *t.cpu_ids());
    assert_eq!(mem.effective_nodes().to_string(), "2");
    let cpus = parse("cpu:3,12", &t);
    assert!(cpus.nodes().is_empty());
    assert_eq!(cpus.effective_nodes().to_string(), "0,3");
    assert_eq!(cpus.to_string(), "cpu:3,12");
    let empty = RSet::empty(&t);
    assert!(empty.is_empty());
    assert!(empty.effective_cpus().is_empty() && empty.effective_nodes().is_empty());
    assert_eq!(empty.to_string(), "(empty)");
}

#[test]
fn new_checks_ids_against_the_topology() {
    let t = topo();
    let cpus: CpuSet = "0-3".parse().unwrap();
    let nodes: NodeSet = "0".parse().unwrap();
    let rset = RSet::new(&t, cpus.clone(), nodes).unwrap();
    assert_eq!(rset, parse("node:0", &t));
    let err = RSet::new(&t, "15-16".parse().unwrap(), NodeSet::new()).unwrap_err();
    assert!(matches!(err, RSetError::UnknownCpu { .. }));
    assert_eq!(err.to_string(), "CPU 16 is not in this machine (CPUs 0-15)");
    let err = RSet::new(&t, cpus, "4".parse().unwrap()).unwrap_err();
    assert_eq!(err.to_string(), "node 4 is not in this machine (nodes 0-3)");
}

#[test]
fn rsets_of_different_topologies() {
    let small = Topology::from_synthetic("pack:1 numa:2 core:1 pu:1").unwrap();
    let big = topo();
    let a = small.global_rset();
    let b = big.global_rset();
    assert!(!a.same_topology(&b));
    assert_ne!(a, parse("cpu:0-1+mem:0-1", &big));
    // The right-hand side is read on the left-hand side's machine.
    assert_eq!(&a | &b, a);
    assert_eq!((&a - &b).to_string(), "(empty)");
    // The same description loaded twice is the same topology.
    let again = Topology::from_synthetic("pack:1 numa:2 core:1 pu:1").unwrap();
    assert!(a.same_topology(&again.global_rset()));
    assert_eq!(a, again.global_rset());
}

#[test]
fn serializes_cpus_and_nodes() {
    let t = topo();
    let rset = parse("cpu:1-2 + mem:3", &t);
    assert_eq!(
        serde_json::to_string(&rset).unwrap(),
        r#"{"cpus":[1,2],"nodes":[3]}"#
    );
}
