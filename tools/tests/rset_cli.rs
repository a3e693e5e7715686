//! The `rset` command, run as a user would, on synthetic machines.

use std::process::{Command, Output};

const TWO_BY_TWO: &str = "synthetic:pack:2 numa:2 core:2 pu:1";

fn rset(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rset"))
        .args(args)
        .output()
        .expect("running rset")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn plan_nodes(json: &serde_json::Value) -> Vec<(u64, u64)> {
    json["plan"]
        .as_array()
        .expect("plan array")
        .iter()
        .map(|t| (t["cpu"].as_u64().unwrap(), t["node"].as_u64().unwrap()))
        .collect()
}

/// `rset calc node:0-1 --threads 6 --placement P` on the 2x2 synthetic machine.
fn calc_six_threads(placement: &str) -> serde_json::Value {
    let o = rset(&[
        "calc",
        "node:0-1",
        "--threads",
        "6",
        "--placement",
        placement,
        "--topology",
        TWO_BY_TWO,
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["cpus"], serde_json::json!([0, 1, 2, 3]));
    assert_eq!(v["nodes"], serde_json::json!([0, 1]));
    let threads: Vec<u64> = v["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["thread"].as_u64().unwrap())
        .collect();
    assert_eq!(threads, vec![0, 1, 2, 3, 4, 5]);
    v
}

#[test]
fn calc_fill_fills_node_0_then_node_1_then_wraps() {
    let v = calc_six_threads("fill");
    assert_eq!(
        plan_nodes(&v),
        vec![(0, 0), (1, 0), (2, 1), (3, 1), (0, 0), (1, 0)]
    );
}

#[test]
fn calc_round_robin_alternates_nodes() {
    let v = calc_six_threads("round-robin");
    assert_eq!(
        plan_nodes(&v),
        vec![(0, 0), (2, 1), (1, 0), (3, 1), (0, 0), (2, 1)]
    );
}

#[test]
fn show_json_lists_nodes_with_cpus_memory_and_distances() {
    let o = rset(&[
        "show",
        "--json",
        "--topology",
        "synthetic:pack:2 numa:2 core:4 pu:2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let nodes = v["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 4);
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(n["id"], i as u64);
        assert_eq!(n["cpus"].as_array().unwrap().len(), 8);
        assert!(n["memory_bytes"].as_u64().is_some());
        let d: Vec<u64> = n["distances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(d.len(), 4);
        assert_eq!(d[i], 10);
    }
}

#[test]
fn show_prints_a_table() {
    let o = rset(&["show", "--topology", TWO_BY_TWO]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("4 nodes, 8 CPUs"), "{text}");
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("3  6-7 ")),
        "{text}"
    );
}

/// Bad input: one line on stderr naming the culprit, exit status 2.
fn assert_usage_error(args: &[&str], culprit: &str) {
    let o = rset(args);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(
        err.lines().count(),
        1,
        "{args:?}: one line wanted, got {err:?}"
    );
    assert!(
        err.contains(culprit),
        "{args:?}: {err:?} should name {culprit:?}"
    );
    assert!(stdout(&o).is_empty());
}

#[test]
fn bad_specs_get_one_line_errors_and_exit_2() {
    let t = ["--topology", TWO_BY_TWO];
    let with = |spec: &'static str| -> Vec<&'static str> {
        let mut v = vec!["calc", spec];
        v.extend(t);
        v
    };
    assert_usage_error(&with("node:7"), "node 7");
    assert_usage_error(&with("cpu:0-64"), "CPU");
    assert_usage_error(&with("nod:1"), "nod");
    assert_usage_error(&with("node:0 &"), "");
    assert_usage_error(&with("(node:0"), "(");
    assert_usage_error(&with("node:0 & node:1"), "no CPUs and no memory");
    assert_usage_error(&with(""), "empty");
    assert_usage_error(&with("node:1-0"), "1-0");
}

#[test]
fn bad_arguments_get_clear_errors() {
    assert_usage_error(
        &["calc", "all", "--threads", "0", "--topology", TWO_BY_TWO],
        "0 threads",
    );
    assert_usage_error(
        &["calc", "mem:0", "--threads", "2", "--topology", TWO_BY_TWO],
        "no CPUs",
    );
    assert_usage_error(&["show", "--topology", "synthetic:bogus:9"], "bogus");
    assert_usage_error(
        &["show", "--topology", "xml:/nonexistent.xml"],
        "/nonexistent.xml",
    );
    let o = rset(&["calc", "all", "--placement", "scatter"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("scatter"), "{}", stderr(&o));
}

#[test]
fn bind_reports_a_missing_program() {
    let o = rset(&["bind", "all", "--", "/nonexistent/program"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(
        stderr(&o).contains("/nonexistent/program"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn help_documents_the_grammar() {
    let o = rset(&["--help"]);
    let text = stdout(&o);
    for word in [
        "node:LIST",
        "cpu:LIST",
        "mem:LIST",
        "intersection",
        "left to right",
    ] {
        assert!(text.contains(word), "--help lacks {word}");
    }
}
