//! `rset-mon report` on a session written by the library, as a user would run it.

use std::path::PathBuf;
use std::process::{Command, Output};

use monitor::sample::{Access, Sample, SamplerStats};
use monitor::{Card, FilterSpec, Granularity, SessionFile};

fn rset_mon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rset-mon"))
        .args(args)
        .output()
        .expect("running rset-mon")
}

/// A session: node 0 reads page 0 of "hot" 30 times, node 1 writes page 1 10 times.
fn session_file(name: &str) -> PathBuf {
    let mut card = Card::new(2).unwrap();
    card.program(FilterSpec::new(0x10000, 0x2000, Granularity::PAGE).name("hot"))
        .unwrap();
    let s = |addr, node, access| Sample {
        addr,
        tid: 10 + node as i32,
        cpu: node,
        node,
        time_ns: 0,
        access,
        source: None,
    };
    for _ in 0..30 {
        card.record(&s(0x10040, 0, Access::Read), 0);
    }
    for _ in 0..10 {
        card.record(&s(0x11080, 1, Access::Write), 0);
    }
    let stats = SamplerStats {
        name: "protect".into(),
        samples: 40,
        lost: 0,
        idle_rounds: 0,
        rate_hz: 100,
    };
    let path = std::env::temp_dir().join(format!("{name}-{}.session", std::process::id()));
    SessionFile::from_card(&card, stats).save(&path).unwrap();
    path
}

#[test]
fn report_prints_the_table() {
    let f = session_file("table");
    let o = rset_mon(&["report", f.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("hot"), "{text}");
    assert!(text.contains("40 samples"), "{text}");
}

#[test]
fn report_json_has_regions_granules_and_nodes() {
    let f = session_file("json");
    let o = rset_mon(&["report", f.to_str().unwrap(), "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let r = &v["regions"][0];
    assert_eq!(r["name"], "hot");
    assert_eq!(r["start"], 0x10000);
    assert_eq!(r["granularity"], 4096);
    let g1 = &r["granules"][1];
    assert_eq!(g1["offset"], 4096);
    assert_eq!(g1["by_node"]["1"]["remote"], 10);
    assert_eq!(g1["by_node"]["1"]["writes"], 10);
    assert_eq!(r["granules"][0]["by_node"]["0"]["local"], 30);
    assert_eq!(v["sampler"]["lost"], 0);
}

#[test]
fn report_csv_and_svg() {
    let f = session_file("csv");
    let o = rset_mon(&["report", f.to_str().unwrap(), "--csv"]);
    assert!(o.status.success());
    let csv = String::from_utf8_lossy(&o.stdout);
    assert!(csv.lines().count() >= 3, "{csv}");
    let svg = std::env::temp_dir().join(format!("heat-{}.svg", std::process::id()));
    let o = rset_mon(&[
        "report",
        f.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
        "--metric",
        "writes",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.starts_with("<svg") || text.starts_with("<?xml"),
        "{}",
        &text[..40]
    );
}

#[test]
fn bad_input_gets_one_line_and_exit_2() {
    let o = rset_mon(&["report", "/nonexistent.session"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent.session"), "{err}");
    let junk = std::env::temp_dir().join(format!("junk-{}.session", std::process::id()));
    std::fs::write(&junk, "{\"format\": \"something else\"}").unwrap();
    let o = rset_mon(&["report", junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&o.stderr).lines().count(), 1);
    let f = session_file("metric");
    let o = rset_mon(&[
        "report",
        f.to_str().unwrap(),
        "--svg",
        "/tmp/x.svg",
        "--metric",
        "hot",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("`hot`"));
}
