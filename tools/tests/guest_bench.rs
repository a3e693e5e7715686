//! `rset-bench` in the emulated NUMA guests (`cargo xtask test`): both matrices run
//! end to end over every (CPU node, memory node) pair, each buffer lands on its
//! memory node, and the output says that emulated timings mean nothing. Timings
//! themselves are never checked.

use std::process::{Command, Output};

use rset::Topology;
use serde_json::Value;

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rset-bench"))
        .args(args)
        .output()
        .expect("running rset-bench")
}

fn expected_pairs() -> (Vec<u64>, Vec<u64>) {
    let topo = Topology::from_system().expect("guest topology");
    let cpu = topo
        .nodes()
        .iter()
        .filter(|n| !n.cpu_less)
        .map(|n| u64::from(n.id.0))
        .collect();
    let mem = topo.nodes().iter().map(|n| u64::from(n.id.0)).collect();
    (cpu, mem)
}

fn matrix_json(what: &str) -> Value {
    let o = bench(&[
        "matrix",
        what,
        "--json",
        "--size",
        "2M",
        "--reps",
        "2",
        "--time-ms",
        "5",
    ]);
    assert!(
        o.status.success(),
        "matrix {what}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("matrix JSON")
}

fn check_matrix(what: &str) {
    let v = matrix_json(what);
    let (cpu, mem) = expected_pairs();
    assert!(cpu.len() >= 2, "a NUMA guest has two or more CPU nodes");
    let ids = |key: &str| -> Vec<u64> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect()
    };
    assert_eq!(ids("cpu_nodes"), cpu);
    assert_eq!(ids("mem_nodes"), mem);
    let pairs = v["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), cpu.len() * mem.len());
    for &c in &cpu {
        for &m in &mem {
            let p = pairs
                .iter()
                .find(|p| p["cpu_node"] == c && p["mem_node"] == m)
                .unwrap_or_else(|| panic!("{what}: no pair ({c}, {m})"));
            assert!(p["value"].as_f64().unwrap() > 0.0, "{p}");
            assert!(p["ratio"].as_f64().unwrap() > 0.0, "{p}");
            // Every page of the buffer(s) on the memory node.
            let pages = p["pages_per_node"].as_object().unwrap();
            assert_eq!(
                pages.keys().collect::<Vec<_>>(),
                vec![&m.to_string()],
                "{what} ({c}, {m}): {p}"
            );
        }
    }
    assert_eq!(v["machine"]["kind"], "emulated", "{}", v["machine"]);
    assert!(
        v["notice"].as_str().unwrap().contains("not meaningful"),
        "{}",
        v["notice"]
    );
}

#[test]
fn latency_matrix_covers_every_pair() {
    check_matrix("lat");
}

#[test]
fn bandwidth_matrix_covers_every_pair() {
    check_matrix("bw");
}

#[test]
fn tables_carry_the_emulation_notice() {
    let o = bench(&[
        "matrix",
        "lat",
        "--size",
        "256K",
        "--reps",
        "1",
        "--time-ms",
        "2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.starts_with("note: ") && text.contains("not meaningful"),
        "{text}"
    );
}
