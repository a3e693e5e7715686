//! Reports: names and data areas, the JSON schema, CSV, the text table, and the SVG
//! heatmap's well-formedness.

use monitor::report::AreaSource;
use monitor::sample::{Access, Sample, SamplerStats};
use monitor::svg::{Metric, SvgOptions};
use monitor::{
    Card, FilterSpec, Granularity, Label, Report, SecondarySource, SecondarySpec, SessionFile,
    TxMask,
};
use serde_json::Value;

const PAGE: u64 = 4096;
const HEAP: u64 = 0x10_0000;

fn sample(addr: u64, node: u32, access: Access) -> Sample {
    Sample {
        addr,
        tid: node as i32,
        cpu: node,
        node,
        time_ns: 0,
        access,
        source: None,
    }
}

fn hit(card: &mut Card, times: usize, addr: u64, node: u32, home: u32, access: Access) {
    for _ in 0..times {
        card.record(&sample(addr, node, access), home);
    }
}

/// One heap filter over two labelled arrays and an unlabelled tail, plus a named
/// filter elsewhere and an unnamed one, with a secondary counter.
fn session() -> SessionFile {
    let mut card = Card::new(2).unwrap();
    let heap = card
        .program(FilterSpec::new(HEAP, 8 * PAGE, Granularity::PAGE))
        .unwrap();
    card.program(FilterSpec::new(0x40_0000, 2 * PAGE, Granularity::PAGE).name("lock table"))
        .unwrap();
    card.program(FilterSpec::new(
        0x80_0000,
        PAGE,
        Granularity::new(1024).unwrap(),
    ))
    .unwrap();
    card.add_secondary(SecondarySpec {
        sources: vec![SecondarySource::Filter(heap)],
        mask: TxMask::WRITES,
        name: Some("heap writes".into()),
    })
    .unwrap();
    // grid: pages 0-1, node 0 local reads 30, node 1 remote reads 10.
    hit(&mut card, 30, HEAP, 0, 0, Access::Read);
    hit(&mut card, 10, HEAP + PAGE + 8, 1, 0, Access::Read);
    // rows: pages 2-3, node 1 local writes 5.
    hit(&mut card, 5, HEAP + 3 * PAGE, 1, 1, Access::Write);
    // unlabelled page 6, inside the mapping: node 0 remote writes 2.
    hit(&mut card, 2, HEAP + 6 * PAGE, 0, 1, Access::Write);
    // lock table: node 1 remote writes 4.
    hit(&mut card, 4, 0x40_0000 + PAGE, 1, 0, Access::Write);
    // outside every mapping and label: node 0 reads 1.
    hit(&mut card, 1, 0x80_0000 + 2048, 0, 0, Access::Read);
    SessionFile::from_card(
        &card,
        SamplerStats {
            name: "replay".into(),
            samples: 52,
            lost: 3,
            idle_rounds: 0,
            rate_hz: 997,
        },
    )
    .with_distances(vec![vec![10, 20], vec![20, 10]])
    .with_labels(vec![
        Label::new(HEAP, 2 * PAGE, "grid"),
        Label::new(HEAP + 2 * PAGE, 2 * PAGE, "rows"),
        Label::new(HEAP + 3 * PAGE, 64, "rows[last]"),
    ])
    .with_mappings(vec![
        Label::new(HEAP - PAGE, 64 * PAGE, "[heap]"),
        Label::new(0, 1 << 40, "everything"),
    ])
}

#[test]
fn names_and_areas() {
    let report = Report::from_session(&session());
    let names: Vec<&str> = report.regions.iter().map(|r| r.name.as_str()).collect();
    // The heap filter is covered by the [heap] mapping (no label covers it all); the
    // third by the outer mapping.
    assert_eq!(names, vec!["[heap]", "lock table", "everything"]);
    let areas: Vec<(&str, AreaSource, u64)> = report
        .areas
        .iter()
        .map(|a| (a.name.as_str(), a.source, a.totals.all.total()))
        .collect();
    assert_eq!(
        areas,
        vec![
            // The lock table's and the third filter's granules fall in one mapping.
            ("everything", AreaSource::Mapping, 5),
            ("[heap]", AreaSource::Mapping, 2),
            ("grid", AreaSource::Label, 40),
            ("rows[last]", AreaSource::Label, 5),
        ]
    );
    let find = |name: &str| report.areas.iter().find(|a| a.name == name).unwrap();
    let grid = find("grid");
    assert_eq!((grid.start, grid.size, grid.granules), (HEAP, 2 * PAGE, 2));
    assert_eq!(grid.totals.by_node[&0].local, 30);
    assert_eq!(grid.totals.by_node[&1].remote, 10);
    // The innermost label wins.
    assert_eq!(find("rows[last]").totals.all.writes, 5);
    assert!(report.areas.iter().all(|a| a.name != "rows"));
    assert_eq!(find("[heap]").totals.all.writes, 2);
    // Areas are sorted by address.
    let starts: Vec<u64> = report.areas.iter().map(|a| a.start).collect();
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted);
    // Totals.
    assert_eq!(report.totals.all.total(), 52);
    assert_eq!(report.totals.all.remote, 16);
    assert_eq!(report.secondaries[0].totals.all.writes, 7);
}

#[test]
fn unnamed_regions_get_their_hex_range() {
    let mut card = Card::new(1).unwrap();
    card.program(FilterSpec::new(0x2000, 100, Granularity::LINE))
        .unwrap();
    let report = Report::from_card(&card);
    assert_eq!(report.regions[0].name, "0x2000..0x2080");
}

#[test]
fn json_has_the_schema_fields() {
    let report = Report::from_session(&session());
    let v: Value = serde_json::from_str(&report.to_json()).unwrap();
    let regions = v["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 3);
    let heap = &regions[0];
    for field in ["name", "start", "size", "granularity", "granules", "totals"] {
        assert!(heap.get(field).is_some(), "region field {field}");
    }
    assert_eq!(heap["start"].as_u64(), Some(HEAP));
    assert_eq!(heap["size"].as_u64(), Some(8 * PAGE));
    assert_eq!(heap["granularity"].as_u64(), Some(PAGE));
    let g0 = &heap["granules"][0];
    assert_eq!(g0["offset"].as_u64(), Some(0));
    assert_eq!(g0["home_node"].as_u64(), Some(0));
    let n0 = &g0["by_node"]["0"];
    for (field, want) in [("local", 30), ("remote", 0), ("reads", 30), ("writes", 0)] {
        assert_eq!(n0[field].as_u64(), Some(want), "by_node field {field}");
    }
    assert_eq!(
        heap["granules"][1]["by_node"]["1"]["remote"].as_u64(),
        Some(10)
    );
    assert_eq!(v["totals"]["all"]["reads"].as_u64(), Some(41));
    assert_eq!(v["sampler"]["rate_hz"].as_u64(), Some(997));
    assert_eq!(v["sampler"]["lost"].as_u64(), Some(3));
    assert_eq!(v["machine"]["nodes"].as_u64(), Some(2));
    assert_eq!(v["machine"]["distances"][0][1].as_u64(), Some(20));
    assert!(v["areas"].as_array().is_some_and(|a| !a.is_empty()));
    assert_eq!(v["secondaries"][0]["name"].as_str(), Some("heap writes"));
    // The JSON reads back into the same report.
    let back: Report = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(back, report);
}

#[test]
fn csv_rows() {
    let report = Report::from_session(&session());
    let csv = report.to_csv();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "region_id,region,address,offset,granularity,home_node,home_mixed,node,local,remote,reads,writes"
    );
    assert_eq!(lines[1], "0,[heap],0x100000,0,4096,0,false,0,30,0,30,0");
    assert_eq!(lines[2], "0,[heap],0x101000,4096,4096,0,false,1,0,10,10,0");
    assert!(lines.contains(&"1,lock table,0x401000,4096,4096,0,false,1,0,4,0,4"));
    assert_eq!(lines.len(), 1 + 6);
    assert!(lines.iter().all(|l| l.split(',').count() == 12));

    let mut card = Card::new(1).unwrap();
    card.program(FilterSpec::new(0, PAGE, Granularity::PAGE).name("a, \"b\""))
        .unwrap();
    card.record(&sample(0, 0, Access::Read), 0);
    assert!(
        Report::from_card(&card)
            .to_csv()
            .contains("0,\"a, \"\"b\"\"\",0x0,")
    );
}

#[test]
fn text_table_is_exact() {
    let report = Report::from_session(&session());
    let text = report.to_text(3);
    let want = "\
2 nodes; sampler replay: 52 samples, 3 lost, rate 997 Hz; card: 52 matched, 0 unmatched, 0 with a bad node, 0 of unknown locality
references: 52 (36 local, 16 remote, 30.8% remote ±12.5; 41 reads, 11 writes)

DATA AREA   START       SIZE  NODE  LOCAL  REMOTE  READS  WRITES  REMOTE%
everything  0x0         1TiB     0      1       0      1       0     0.0%
everything  0x0         1TiB     1      0       4      0       4   100.0%
[heap]      0xff000   256KiB     0      0       2      0       2   100.0%
grid        0x100000    8KiB     0     30       0     30       0     0.0%
grid        0x100000    8KiB     1      0      10     10       0   100.0%
rows[last]  0x103000      64     1      5       0      0       5     0.0%

SECONDARY    MASK  NODE  LOCAL  REMOTE  READS  WRITES
heap writes  w        0      0       2      0       2
heap writes  w        1      5       0      0       5

top 3 granules by remote references
ADDRESS   REGION      GRANULE  HOME  NODE  LOCAL  REMOTE  READS  WRITES
0x101000  [heap]      4KiB        0     1      0      10     10       0
0x401000  lock table  4KiB        0     1      0       4      0       4
0x106000  [heap]      4KiB        1     0      0       2      0       2
";
    assert_eq!(text, want, "got:\n{text}");
}

/// A small well-formedness check: balanced tags, quoted attributes, escaped text.
fn check_xml(doc: &str) -> Result<usize, String> {
    let mut stack: Vec<String> = Vec::new();
    let mut elements = 0;
    let mut rest = doc;
    while let Some(lt) = rest.find('<') {
        let text = &rest[..lt];
        check_text(text)?;
        let gt = rest[lt..]
            .find('>')
            .ok_or_else(|| "unclosed tag".to_string())?
            + lt;
        let tag = &rest[lt + 1..gt];
        rest = &rest[gt + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().ok_or(format!("stray </{name}>"))?;
            if open != name.trim() {
                return Err(format!("<{open}> closed by </{name}>"));
            }
            continue;
        }
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        elements += 1;
        let self_closing = tag.ends_with('/');
        let body = tag.trim_end_matches('/');
        let name: String = body.chars().take_while(|c| !c.is_whitespace()).collect();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!("bad tag name in <{tag}>"));
        }
        if !body.matches('"').count().is_multiple_of(2) {
            return Err(format!("unbalanced quotes in <{tag}>"));
        }
        if stack.is_empty() && elements > 1 {
            return Err("more than one root element".into());
        }
        if !self_closing {
            stack.push(name);
        }
    }
    check_text(rest)?;
    if !stack.is_empty() {
        return Err(format!("unclosed {stack:?}"));
    }
    Ok(elements)
}

fn check_text(text: &str) -> Result<(), String> {
    for (i, _) in text.match_indices('&') {
        let entity = &text[i..];
        if !["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
            .iter()
            .any(|e| entity.starts_with(e))
        {
            return Err(format!("bare & in {text:?}"));
        }
    }
    if text.contains('>') {
        return Err(format!("bare > in {text:?}"));
    }
    Ok(())
}

#[test]
fn svg_is_well_formed() {
    let mut session = session();
    session.filters[1].spec.name = Some("<lock> & \"table\"".into());
    let report = Report::from_session(&session);
    for metric in [Metric::Remote, Metric::Total, Metric::Writes] {
        let svg = report.to_svg(&SvgOptions {
            metric,
            ..SvgOptions::default()
        });
        assert!(svg.starts_with("<svg "), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        let elements = check_xml(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        assert!(elements > 10);
        assert!(svg.contains("&lt;lock&gt; &amp; &quot;table&quot;"));
        assert_eq!(svg.matches("<g class=\"region\"").count(), 3);
    }
    // Cells: the heap's remote references sit in two cells (page 1 node 1, page 6 node 0).
    let svg = report.to_svg(&SvgOptions::default());
    let heap_panel = svg.split("<g class=\"region\"").nth(1).unwrap();
    assert_eq!(heap_panel.matches("<rect").count() - 1, 2, "{heap_panel}");
    assert!(heap_panel.contains("node 1, 0x101000..0x102000: 10 remote"));
}

#[test]
fn svg_bins_many_granules_and_survives_empty_reports() {
    let mut card = Card::new(4).unwrap();
    card.program(FilterSpec::new(0, 1 << 30, Granularity::PAGE))
        .unwrap();
    for p in 0..1000u64 {
        card.record(&sample(p * 97 * PAGE, (p % 4) as u32, Access::Read), 0);
    }
    let report = Report::from_card(&card);
    let svg = report.to_svg(&SvgOptions {
        max_columns: 100,
        ..SvgOptions::default()
    });
    check_xml(&svg).unwrap();
    let cells = svg.matches("<title>").count();
    assert!(cells > 0 && cells <= 100 * 4, "{cells} cells");

    let empty = Report::from_card(&Card::new(2).unwrap());
    let svg = empty.to_svg(&SvgOptions::default());
    check_xml(&svg).unwrap();
    assert!(svg.contains("no regions"));
    let text = empty.to_text(5);
    assert!(text.contains("(no references)"));
}
