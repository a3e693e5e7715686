//! Successive refinement: the planner zooms into the hottest pages, and the last
//! round names the dominant node of each line and flags lines written from two nodes.

use monitor::refine::{RefineOptions, Select, plan_next_round_with, verdicts_text};
use monitor::sample::{Access, Sample, SamplerStats};
use monitor::{
    Card, Direction, FilterSpec, Granularity, Report, SessionFile, TxMask, line_verdicts,
    plan_next_round,
};

const PAGE: u64 = 4096;
const HEAP: u64 = 0x7f00_0000_0000;

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

/// Round one, as in the paper's 3DFFT: one filter over the heap at page granularity.
/// Pages 0-3 are node 0's, 4-7 node 1's (all local); pages 8 and 9 live on node 0 and
/// node 1 hammers them; page 5 gets a little remote traffic.
fn round_one() -> Card {
    let mut card = Card::new(2).unwrap();
    card.program(FilterSpec::new(HEAP, 16 * PAGE, Granularity::PAGE).name("heap"))
        .unwrap();
    for p in 0..4 {
        hit(&mut card, 20, HEAP + p * PAGE, 0, 0, Access::Read);
    }
    for p in 4..8 {
        hit(&mut card, 20, HEAP + p * PAGE + 64, 1, 1, Access::Read);
    }
    hit(&mut card, 50, HEAP + 8 * PAGE, 1, 0, Access::Write);
    hit(&mut card, 30, HEAP + 9 * PAGE + 128, 1, 0, Access::Read);
    hit(&mut card, 5, HEAP + 5 * PAGE, 0, 1, Access::Read);
    card
}

#[test]
fn planner_zooms_into_the_hottest_pages() {
    let card = round_one();
    let plan = plan_next_round(&card, 2, Granularity::LINE);
    assert_eq!(
        plan,
        vec![FilterSpec::new(HEAP + 8 * PAGE, 2 * PAGE, Granularity::LINE).name("heap")],
        "pages 8 and 9, adjacent, become one filter of lines"
    );
    // The same from the report and from the saved session.
    let report = Report::from_card(&card);
    assert_eq!(plan_next_round(&report, 2, Granularity::LINE), plan);
    let session = SessionFile::from_card(&card, SamplerStats::default());
    assert_eq!(plan_next_round(&session, 2, Granularity::LINE), plan);

    // Three: page 5 comes in as its own filter, in address order.
    let plan3 = plan_next_round(&card, 3, Granularity::new(256).unwrap());
    let starts: Vec<(u64, u64)> = plan3.iter().map(|f| (f.start - HEAP, f.size)).collect();
    assert_eq!(starts, vec![(5 * PAGE, PAGE), (8 * PAGE, 2 * PAGE)]);
    assert!(plan3.iter().all(|f| f.granularity.bytes() == 256));

    // Unmerged: one filter per page.
    let plan_unmerged = plan_next_round_with(
        &card,
        &RefineOptions {
            k: 2,
            next: Granularity::LINE,
            select: Select::Remote,
            merge_adjacent: false,
        },
    );
    assert_eq!(plan_unmerged.len(), 2);
    assert_eq!(plan_unmerged[0].size, PAGE);

    assert!(plan_next_round(&card, 0, Granularity::LINE).is_empty());
    // Ten asked, three pages have remote references.
    assert_eq!(plan_next_round(&card, 10, Granularity::LINE).len(), 2);
}

#[test]
fn planner_can_pick_shared_granules() {
    let mut card = Card::new(2).unwrap();
    card.program(FilterSpec::new(0, 8 * PAGE, Granularity::PAGE).mask(TxMask::WRITES))
        .unwrap();
    // Page 2: written by both nodes, all local as far as the sampler knows (no home).
    hit(&mut card, 3, 2 * PAGE, 0, u32::MAX, Access::Write);
    hit(&mut card, 3, 2 * PAGE, 1, u32::MAX, Access::Write);
    // Page 6: node 1 only, locally, many times.
    hit(&mut card, 9, 6 * PAGE, 1, 1, Access::Write);
    assert!(plan_next_round(&card, 4, Granularity::LINE).is_empty());
    let opts = RefineOptions {
        k: 4,
        next: Granularity::LINE,
        select: Select::Shared,
        merge_adjacent: true,
    };
    let plan = plan_next_round_with(&card, &opts);
    assert_eq!(plan.len(), 1);
    assert_eq!((plan[0].start, plan[0].size), (2 * PAGE, PAGE));
    // The parent's mask carries over.
    assert_eq!(plan[0].mask, TxMask::WRITES);
    let either = plan_next_round_with(
        &card,
        &RefineOptions {
            select: Select::RemoteOrShared,
            ..opts
        },
    );
    assert_eq!(either, plan);
}

#[test]
fn planner_clamps_to_the_filter_end() {
    let mut card = Card::new(2).unwrap();
    card.program(
        FilterSpec::new(0, PAGE + 100, Granularity::PAGE).direction(Direction::Inbound, Some(0)),
    )
    .unwrap();
    hit(&mut card, 1, PAGE + 10, 1, 0, Access::Read);
    let plan = plan_next_round(&card, 1, Granularity::LINE);
    assert_eq!((plan[0].start, plan[0].size), (PAGE, 100));
    // The parent's direction carries over, and its name (here its hex range).
    assert_eq!(
        (plan[0].direction, plan[0].node),
        (Direction::Inbound, Some(0))
    );
    assert_eq!(plan[0].name.as_deref(), Some("0x0..0x2000"));
}

#[test]
fn last_round_flags_lines_written_from_two_nodes() {
    let plan = plan_next_round(&round_one(), 2, Granularity::LINE);
    let mut card = Card::new(2).unwrap();
    for spec in plan {
        card.program(spec).unwrap();
    }
    let base = HEAP + 8 * PAGE;
    // Line 0: written by both nodes: false (or true) sharing.
    hit(&mut card, 4, base, 0, 0, Access::Write);
    hit(&mut card, 6, base + 8, 1, 0, Access::Write);
    // Line 1: read by node 1 only.
    hit(&mut card, 7, base + 64, 1, 0, Access::Read);
    // Line 2: node 0 dominates; node 1 writes once.
    hit(&mut card, 10, base + 128, 0, 0, Access::Read);
    hit(&mut card, 1, base + 130, 1, 0, Access::Write);
    // A line of page 9, written by node 1 and read by node 0.
    hit(&mut card, 2, base + PAGE, 1, 0, Access::Write);
    hit(&mut card, 2, base + PAGE, 0, 0, Access::Read);

    let verdicts = line_verdicts(&card);
    assert_eq!(verdicts.len(), 4);
    let v = &verdicts[0];
    assert_eq!(v.addr, base);
    assert_eq!(v.size, 64);
    assert_eq!(v.region, "heap");
    assert_eq!(
        (v.dominant_node, v.dominant_refs, v.total),
        (Some(1), 6, 10)
    );
    assert_eq!(v.writers, vec![0, 1]);
    assert!(v.write_shared);
    assert_eq!(v.remote, 6);

    let v = &verdicts[1];
    assert_eq!((v.addr, v.dominant_node), (base + 64, Some(1)));
    assert_eq!((v.readers.clone(), v.writers.clone()), (vec![1], vec![]));
    assert!(!v.write_shared);
    assert!((v.dominant_share() - 1.0).abs() < 1e-12);

    let v = &verdicts[2];
    assert_eq!(
        (v.dominant_node, v.dominant_refs, v.total),
        (Some(0), 10, 11)
    );
    assert!(!v.write_shared, "one writer only");

    let v = &verdicts[3];
    assert_eq!(v.addr, base + PAGE);
    assert_eq!(v.dominant_node, Some(0), "a tie goes to the lower node");
    assert!(!v.write_shared);

    let shared: Vec<u64> = verdicts
        .iter()
        .filter(|v| v.write_shared)
        .map(|v| v.addr)
        .collect();
    assert_eq!(shared, vec![base]);
    let text = verdicts_text(&verdicts);
    assert_eq!(text.lines().count(), 4);
    assert_eq!(text.matches("SHARED-WRITE").count(), 1);
    assert!(
        text.lines()
            .next()
            .unwrap()
            .contains("dominated by node 1 (60%)")
    );
}
