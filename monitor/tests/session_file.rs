//! The session file: save/load round trip, typed errors, and no panic on any input
//! (random bytes, random text, mutated valid files), down to the reports built from
//! whatever parses.

use monitor::card::NodeCounts;
use monitor::refine::{line_verdicts, plan_next_round};
use monitor::sample::{Access, Sample, SamplerStats};
use monitor::session_file::{SESSION_FORMAT, SESSION_VERSION};
use monitor::svg::SvgOptions;
use monitor::{
    Card, FilterSpec, Granularity, Label, Report, SecondarySource, SecondarySpec, SessionError,
    SessionFile, TxMask,
};
use proptest::prelude::*;
use serde_json::Value;

const PAGE: u64 = 4096;

fn sample(addr: u64, node: u32, access: Access) -> Sample {
    Sample {
        addr,
        tid: 7,
        cpu: node,
        node,
        time_ns: 0,
        access,
        source: None,
    }
}

fn session() -> SessionFile {
    let mut card = Card::new(3).unwrap();
    let a = card
        .program(FilterSpec::new(0x1000, 4 * PAGE, Granularity::PAGE).name("a"))
        .unwrap();
    card.program(FilterSpec::new(0x9000, 256, Granularity::LINE))
        .unwrap();
    card.add_secondary(SecondarySpec {
        sources: vec![
            SecondarySource::Filter(a),
            SecondarySource::Range {
                start: 0x20000,
                size: 64,
            },
        ],
        mask: TxMask::WRITES,
        name: Some("a writes".into()),
    })
    .unwrap();
    for i in 0..40u64 {
        let node = (i % 3) as u32;
        let access = if i % 4 == 0 {
            Access::Write
        } else {
            Access::Read
        };
        card.record(
            &sample(0x1000 + (i * 600) % (4 * PAGE), node, access),
            (i % 2) as u32,
        );
        card.record(&sample(0x9000 + (i * 8) % 256, node, access), 2);
    }
    let mut timeline = monitor::Timeline::new();
    timeline.take(1000, &card.filter_counts());
    card.record(&sample(0x1010, 1, Access::Write), 0);
    timeline.take(2000, &card.filter_counts());
    card.record(&sample(0x20010, 1, Access::Write), 0);
    SessionFile::from_card(
        &card,
        SamplerStats {
            name: "perf-mem".into(),
            samples: 81,
            lost: 4,
            idle_rounds: 0,
            rate_hz: 4000,
        },
    )
    .with_distances(vec![vec![10, 21, 31], vec![21, 10, 21], vec![31, 21, 10]])
    .with_labels(vec![Label::new(0x1000, PAGE, "first page")])
    .with_mappings(vec![Label::new(0, 1 << 20, "[heap]")])
    .with_timeline(timeline.into_points())
}

#[test]
fn save_load_round_trip() {
    let dir = std::env::temp_dir().join(format!("monitor-session-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.json");
    let s = session();
    s.save(&path).unwrap();
    let back = SessionFile::load(&path).unwrap();
    assert_eq!(back, s);
    assert_eq!(Report::from_session(&back), Report::from_session(&s));
    assert!(!dir.join("s.json.tmp").exists());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"format\": \"rset-monitor-session\""));
    std::fs::remove_dir_all(&dir).unwrap();

    let err = SessionFile::load(dir.join("missing.json")).unwrap_err();
    assert!(matches!(err, SessionError::Io { .. }));
    assert!(err.to_string().contains("missing.json"));
}

#[test]
fn the_file_holds_what_the_issue_asks() {
    let v: Value = serde_json::from_str(&session().to_json()).unwrap();
    assert_eq!(v["format"], SESSION_FORMAT);
    assert_eq!(v["version"], SESSION_VERSION);
    assert_eq!(v["machine"]["nodes"], 3);
    assert_eq!(v["machine"]["distances"][0][2], 31);
    assert_eq!(v["sampler"]["rate_hz"], 4000);
    assert_eq!(v["sampler"]["lost"], 4);
    assert_eq!(v["sampler"]["samples"], 81);
    assert_eq!(v["filters"][0]["spec"]["name"], "a");
    assert_eq!(v["filters"][0]["spec"]["granularity"], 4096);
    assert!(v["filters"][0]["granules"][0]["by_node"]["0"]["reads"].is_u64());
    assert_eq!(
        v["secondaries"][0]["spec"]["sources"][1]["range"]["size"],
        64
    );
    assert_eq!(v["labels"][0]["name"], "first page");
    assert_eq!(v["mappings"][0]["name"], "[heap]");
}

fn with(f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_str(&session().to_json()).unwrap();
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn typed_errors() {
    let err = |bytes: &[u8]| SessionFile::from_bytes(bytes).unwrap_err();
    assert!(matches!(err(b""), SessionError::Json(_)));
    assert!(matches!(err(b"[1,2]"), SessionError::NotASession(_)));
    assert!(matches!(err(b"{}"), SessionError::NotASession(f) if f.is_empty()));
    assert!(matches!(
        err(br#"{"format":"something else","version":1}"#),
        SessionError::NotASession(f) if f == "something else"
    ));
    assert!(matches!(
        err(&with(|v| v["version"] = 2.into())),
        SessionError::UnsupportedVersion(2)
    ));
    assert!(matches!(
        err(&with(|v| v["version"] = "1".into())),
        SessionError::Invalid(_)
    ));
    let invalid = |bytes: Vec<u8>, needle: &str| match SessionFile::from_bytes(&bytes) {
        Err(SessionError::Invalid(msg)) => assert!(msg.contains(needle), "{msg}"),
        other => panic!("expected Invalid({needle}), got {other:?}"),
    };
    invalid(with(|v| v["machine"]["nodes"] = 0.into()), "node count 0");
    invalid(
        with(|v| v["machine"]["distances"] = serde_json::json!([[10]])),
        "distance",
    );
    invalid(
        with(|v| {
            v["filters"][0]["granules"][0]["by_node"]["3"] =
                v["filters"][0]["granules"][0]["by_node"]["0"].clone()
        }),
        "node 3",
    );
    invalid(
        with(|v| v["filters"][0]["granules"][0]["offset"] = 100.into()),
        "offset 100",
    );
    invalid(
        with(|v| v["filters"][0]["granules"][0]["offset"] = (8 * PAGE).into()),
        "offset",
    );
    invalid(with(|v| v["filters"][1]["id"] = 0.into()), "twice");
    invalid(
        with(|v| v["filters"][0]["spec"]["size"] = 0.into()),
        "size 0",
    );
    invalid(
        with(|v| v["filters"][0]["spec"]["start"] = u64::MAX.into()),
        "address space",
    );
    invalid(
        with(|v| v["secondaries"][0]["spec"]["sources"][0]["filter"] = 9.into()),
        "filter 9",
    );
    invalid(with(|v| v["labels"][0]["size"] = 0.into()), "empty");
    invalid(
        with(|v| v["timeline"][1]["at_ms"] = 500.into()),
        "timeline point 1: 500 ms",
    );
    invalid(
        with(|v| v["timeline"][0]["filters"][0]["granules"][0]["offset"] = 100.into()),
        "timeline point 0, filter 0: offset 100",
    );
    // A granularity that is not one is a shape error.
    assert!(matches!(
        err(&with(
            |v| v["filters"][0]["spec"]["granularity"] = 100.into()
        )),
        SessionError::Json(_)
    ));
    // Unknown fields and missing optional ones are fine.
    let ok = with(|v| {
        v["comment"] = "written by hand".into();
        let o = v.as_object_mut().unwrap();
        o.remove("labels");
        o.remove("mappings");
        o.remove("secondaries");
        o.remove("card");
    });
    let s = SessionFile::from_bytes(&ok).unwrap();
    assert!(s.labels.is_empty() && s.secondaries.is_empty());
}

/// Whatever parses must also report without a panic.
fn exercise(bytes: &[u8]) {
    if let Ok(s) = SessionFile::from_bytes(bytes) {
        let r = Report::from_session(&s);
        let _ = r.to_text(10);
        let _ = r.to_csv();
        let _ = r.to_json();
        let _ = r.to_svg(&SvgOptions::default());
        let _ = plan_next_round(&r, 4, Granularity::LINE);
        let _ = line_verdicts(&r);
        let total: u64 = r
            .regions
            .iter()
            .map(|g| g.totals.all.total())
            .fold(0, u64::saturating_add);
        let _ = NodeCounts {
            reads: total,
            ..NodeCounts::default()
        };
    }
}

/// Mutates one JSON value somewhere in `v`, steered by `pick`.
fn mutate(v: &mut Value, pick: &mut impl Iterator<Item = u64>) {
    let choice = pick.next().unwrap_or(0);
    match v {
        Value::Object(map) if !map.is_empty() && !choice.is_multiple_of(5) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = &keys[(pick.next().unwrap_or(0) as usize) % keys.len()];
            if choice % 7 == 1 {
                map.remove(key);
            } else if let Some(child) = map.get_mut(key) {
                mutate(child, pick);
            }
        }
        Value::Array(items) if !items.is_empty() && !choice.is_multiple_of(5) => {
            let i = (pick.next().unwrap_or(0) as usize) % items.len();
            if choice % 7 == 1 {
                items.remove(i);
            } else if choice % 7 == 2 {
                let copy = items[i].clone();
                items.push(copy);
            } else {
                mutate(&mut items[i], pick);
            }
        }
        _ => {
            let n = pick.next().unwrap_or(0);
            *v = match choice % 9 {
                0 => Value::from(n),
                1 => Value::from(u64::MAX - n % 4096),
                2 => Value::from(-(n as i64 % 1000)),
                3 => Value::from(n as f64 / 3.0),
                4 => Value::from(format!("{n:x}")),
                5 => Value::Null,
                6 => Value::from(n % 8),
                7 => Value::from(1u64 << (n % 64)),
                _ => serde_json::json!({ "0": n }),
            };
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes);
    }

    #[test]
    fn random_text_never_panics(text in "\\PC{0,300}") {
        exercise(text.as_bytes());
    }

    #[test]
    fn json_shaped_text_never_panics(
        text in r#"\{("(format|version|machine|nodes|filters|spec|granules|by_node|offset|start|size|granularity)":(-?[0-9]{1,20}|"rset-monitor-session"|\[\]|\{\}|null|true),?){0,8}\}"#
    ) {
        exercise(text.as_bytes());
    }

    #[test]
    fn byte_mutations_of_a_valid_file_never_panic(
        edits in proptest::collection::vec((any::<u16>(), any::<u8>(), 0u8..3), 1..8),
        cut in proptest::option::of(any::<u16>()),
    ) {
        let mut bytes = session().to_json().into_bytes();
        for (at, byte, op) in edits {
            let i = at as usize % (bytes.len() + 1);
            match op {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ if i < bytes.len() => { bytes.remove(i); }
                _ => {}
            }
        }
        if let Some(c) = cut {
            bytes.truncate(c as usize % (bytes.len() + 1));
        }
        exercise(&bytes);
    }

    #[test]
    fn value_mutations_of_a_valid_file_never_panic(
        picks in proptest::collection::vec(any::<u64>(), 1..40),
        rounds in 1usize..4,
    ) {
        let mut v: Value = serde_json::from_str(&session().to_json()).unwrap();
        let mut pick = picks.into_iter().cycle();
        for _ in 0..rounds {
            mutate(&mut v, &mut pick);
        }
        exercise(&serde_json::to_vec(&v).unwrap());
    }
}
