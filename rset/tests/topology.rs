//! Topologies from hwloc synthetic descriptions, XML files, the running machine
//! and by hand, and the errors for each kind of bad input.

use std::path::{Path, PathBuf};

use rset::topology::{NodeLayout, TopologyError};
use rset::{CpuId, NodeId, Topology};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn ids(list: &[u32]) -> Vec<CpuId> {
    list.iter().map(|&i| CpuId(i)).collect()
}

#[test]
fn synthetic_smt_machine() {
    let topo = Topology::from_synthetic("pack:2 numa:2 core:4 pu:2").unwrap();
    assert_eq!(topo.source(), "synthetic:pack:2 numa:2 core:4 pu:2");
    assert_eq!(topo.nodes().len(), 4);
    assert_eq!(topo.packages().len(), 2);
    assert_eq!(topo.cores().len(), 16);
    assert_eq!(topo.pus().len(), 32);
    assert_eq!(topo.cpu_ids().to_string(), "0-31");
    assert_eq!(topo.node_ids().to_string(), "0-3");

    let node1 = topo.node(NodeId(1)).unwrap();
    assert_eq!(node1.cpus.to_string(), "8-15");
    assert!(!node1.cpu_less);
    assert!(node1.memory_bytes > 0);
    // No distance matrix from hwloc: 10 local, 20 remote, and it says so.
    assert!(topo.distances_assumed());
    assert_eq!(node1.distances, [20, 10, 20, 20]);
    assert_eq!(topo.distance(NodeId(3), NodeId(3)), Some(10));
    assert_eq!(topo.distance(NodeId(3), NodeId(9)), None);

    assert_eq!(topo.packages()[1].nodes.to_string(), "2-3");
    assert_eq!(topo.packages()[1].cpus.to_string(), "16-31");
    assert_eq!(topo.cores()[4].pus, ids(&[8, 9]));
    assert_eq!(topo.cores()[4].package, 0);
    let pu = topo.pu(CpuId(9)).unwrap();
    assert_eq!((pu.core, pu.package, pu.node), (4, 0, NodeId(1)));
    assert!(topo.pu(CpuId(32)).is_none());
}

#[test]
fn synthetic_without_cores_or_packages() {
    // PUs straight under NUMA nodes: each PU is its own core, and all sit in
    // one implicit package.
    let topo = Topology::from_synthetic("numa:2 pu:2").unwrap();
    assert_eq!(topo.cores().len(), 4);
    assert_eq!(topo.cores()[3].pus, ids(&[3]));
    assert_eq!(topo.packages().len(), 1);
    assert_eq!(topo.packages()[0].os_index, None);
    assert_eq!(topo.node(NodeId(1)).unwrap().cpus.to_string(), "2-3");
}

#[test]
fn xml_with_a_cpuless_node_and_real_distances() {
    let topo = Topology::from_xml_file(data("cpuless-8node.xml")).unwrap();
    assert_eq!(topo.nodes().len(), 8);
    assert_eq!(topo.packages().len(), 7);
    assert_eq!(topo.pus().len(), 28);
    let node7 = topo.node(NodeId(7)).unwrap();
    assert!(node7.cpu_less);
    assert!(node7.cpus.is_empty());
    assert_eq!(node7.memory_bytes, 16 << 30);
    let node0 = topo.node(NodeId(0)).unwrap();
    assert!(!node0.cpu_less);
    assert_eq!(node0.cpus.to_string(), "0-1,14-15");
    assert_eq!(node0.memory_bytes, 1 << 30);
    assert!(!topo.distances_assumed());
    assert_eq!(node0.distances, [10, 21, 21, 21, 21, 21, 21, 30]);
    assert_eq!(topo.distance(NodeId(7), NodeId(2)), Some(30));
    // SMT siblings numbered as Linux does: core 0 is CPUs 0 and 14.
    assert_eq!(topo.cores()[0].pus, ids(&[0, 14]));
    assert_eq!(topo.pu(CpuId(27)).unwrap().node, NodeId(6));
}

#[test]
fn the_running_machine_is_consistent() {
    let topo = Topology::from_system().unwrap();
    assert_eq!(topo.source(), "system");
    assert!(!topo.nodes().is_empty() && !topo.pus().is_empty());
    for pu in topo.pus() {
        let node = topo.node(pu.node).unwrap();
        assert!(node.cpus.contains(pu.id));
        assert!(topo.cores()[pu.core].pus.contains(&pu.id));
        assert!(topo.packages()[pu.package].cpus.contains(pu.id));
    }
    for node in topo.nodes() {
        assert_eq!(node.distances.len(), topo.nodes().len());
    }
}

#[test]
fn sources_pick_the_constructor() {
    let a = Topology::from_source("synthetic:pack:2 core:2 pu:1").unwrap();
    assert_eq!(a, Topology::from_synthetic("pack:2 core:2 pu:1").unwrap());
    let path = data("cpuless-8node.xml");
    let b = Topology::from_source(&format!("xml:{}", path.display())).unwrap();
    assert_eq!(b.nodes().len(), 8);
    assert!(Topology::from_source("system").is_ok());
}

#[test]
fn errors_carry_the_input() {
    let err = Topology::from_source("synth:pack:2").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown topology source `synth:pack:2` (expected system, synthetic:DESC or xml:FILE)"
    );
    let err = Topology::from_source("synthetic:pack:x").unwrap_err();
    assert_eq!(
        err.to_string(),
        "`pack:x` is not a valid hwloc synthetic topology description"
    );
    let err = Topology::from_synthetic("pack:2\0").unwrap_err();
    assert!(matches!(err, TopologyError::Synthetic { .. }));

    let err = Topology::from_source("xml:/no/such/file.xml").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot read topology XML file `/no/such/file.xml`: "),
        "{err}"
    );
    assert!(std::error::Error::source(&err).is_some());

    // Readable but not a topology: the crate's manifest.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let err = Topology::from_xml_file(&manifest).unwrap_err();
    assert!(matches!(err, TopologyError::XmlInvalid { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("`{}` is not a valid hwloc XML topology", manifest.display())
    );
}

fn layout(id: u32, cores: &[&[u32]]) -> NodeLayout {
    NodeLayout {
        id: NodeId(id),
        memory_bytes: 1 << 30,
        cores: cores.iter().map(|c| ids(c)).collect(),
    }
}

#[test]
fn hand_built_layout() {
    let topo = Topology::from_layout(
        vec![
            layout(2, &[&[4, 5]]),
            layout(0, &[&[0, 2], &[1, 3]]),
            layout(1, &[]),
        ],
        Some(vec![vec![10, 30, 20], vec![30, 10, 20], vec![20, 20, 10]]),
    )
    .unwrap();
    assert_eq!(topo.source(), "layout");
    // Nodes sorted by id, distances carried along.
    assert_eq!(topo.node_ids().to_string(), "0-2");
    assert_eq!(topo.nodes()[0].distances, [10, 20, 30]);
    assert_eq!(topo.distance(NodeId(2), NodeId(0)), Some(30));
    assert!(!topo.distances_assumed());
    assert!(topo.node(NodeId(1)).unwrap().cpu_less);
    assert_eq!(topo.packages().len(), 2);
    assert_eq!(topo.packages()[1].os_index, Some(0));
    assert_eq!(topo.pu(CpuId(3)).unwrap().core, 2);
}

#[test]
fn hand_built_layout_errors() {
    let bad = |nodes, d| Topology::from_layout(nodes, d).unwrap_err().to_string();
    assert_eq!(
        bad(vec![layout(0, &[&[0]]), layout(0, &[&[1]])], None),
        "node 0 appears twice in the topology"
    );
    assert_eq!(
        bad(vec![layout(0, &[&[0, 1]]), layout(1, &[&[1]])], None),
        "CPU 1 appears twice in the topology"
    );
    assert_eq!(
        bad(vec![layout(3, &[&[]])], None),
        "a core of node 3 has no CPU"
    );
    assert_eq!(bad(vec![], None), "the topology has no NUMA node");
    assert_eq!(bad(vec![layout(0, &[])], None), "the topology has no CPU");
    assert_eq!(
        bad(vec![layout(0, &[&[0]])], Some(vec![vec![10, 20]])),
        "distance row 0 has 2 entries for 1 nodes"
    );
}

#[test]
fn serializes_as_plain_data() {
    let topo = Topology::from_synthetic("pack:1 numa:2 core:1 pu:2").unwrap();
    let json: serde_json::Value = serde_json::to_value(&topo).unwrap();
    assert_eq!(json["source"], "synthetic:pack:1 numa:2 core:1 pu:2");
    assert_eq!(json["distances_assumed"], true);
    assert_eq!(json["nodes"][1]["cpus"], serde_json::json!([2, 3]));
    assert_eq!(json["nodes"][1]["distances"], serde_json::json!([20, 10]));
    assert_eq!(json["nodes"][1]["cpu_less"], false);
    assert_eq!(json["cores"][0]["pus"], serde_json::json!([0, 1]));
    assert_eq!(
        json["pus"][3],
        serde_json::json!({"id": 3, "core": 1, "package": 0, "node": 1})
    );
}
