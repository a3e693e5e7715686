//! The card: counting against ground truth and against a naive model, directions,
//! data sources, thresholds, secondary counters, the budget and programming errors.

use std::sync::{Arc, Mutex};

use monitor::card::{CardError, DEFAULT_COUNTER_BUDGET, NodeCounts, UNKNOWN_NODE};
use monitor::replay::{RecordedSample, Replay, StreamFormat, StreamHeader, StreamWriter};
use monitor::sample::{Access, DataSource, Sample, Sampler, SamplerStats};
use monitor::{
    Card, Direction, FilterId, FilterSpec, Granularity, Report, SecondarySource, SecondarySpec,
    ThresholdEvent, ThresholdOn, TxMask,
};
use proptest::prelude::*;

const PAGE: u64 = 4096;

fn sample(addr: u64, node: u32, access: Access) -> Sample {
    Sample {
        addr,
        tid: 100 + node as i32,
        cpu: node * 2,
        node,
        time_ns: 0,
        access,
        source: None,
    }
}

fn counts(local: u64, remote: u64, reads: u64, writes: u64) -> NodeCounts {
    NodeCounts {
        local,
        remote,
        reads,
        writes,
    }
}

/// A thread on node 0 reads region A (home node 0) three times as often as region B
/// (home node 1): a recorded stream, replayed through the card, gives exactly 300
/// local references to A, 100 remote to B, a remote share of 1/4.
fn ground_truth(format: StreamFormat) {
    let a = 0x10_0000u64;
    let b = 0x20_0000u64;
    let mut writer = StreamWriter::new(
        Vec::new(),
        format,
        &StreamHeader::new(
            Some(2),
            Some(SamplerStats {
                name: "synthetic".into(),
                samples: 400,
                lost: 2,
                idle_rounds: 0,
                rate_hz: 1000,
            }),
        ),
    )
    .unwrap();
    let mut t = 0;
    for i in 0..100u64 {
        for k in 0..3u64 {
            t += 1;
            let mut s = sample(a + ((i * 3 + k) * 64) % (4 * PAGE), 0, Access::Read);
            s.time_ns = t;
            writer
                .write(&RecordedSample { sample: s, home: 0 })
                .unwrap();
        }
        t += 1;
        let mut s = sample(b + (i * 64) % (2 * PAGE), 0, Access::Read);
        s.time_ns = t;
        writer
            .write(&RecordedSample { sample: s, home: 1 })
            .unwrap();
    }
    let bytes = writer.finish().unwrap();

    let mut card = Card::new(2).unwrap();
    let fa = card
        .program(FilterSpec::new(a, 4 * PAGE, Granularity::PAGE).name("A"))
        .unwrap();
    let fb = card
        .program(FilterSpec::new(b, 2 * PAGE, Granularity::PAGE).name("B"))
        .unwrap();

    // Through the Sampler trait, with home nodes looked up as a live session would.
    let mut replay = Replay::from_bytes(&bytes).unwrap().with_batch(64);
    let mut batch = Vec::new();
    loop {
        batch.clear();
        replay.drain(&mut batch);
        if batch.is_empty() {
            break;
        }
        for s in &batch {
            let home = replay.home_node(s.addr).unwrap();
            assert_eq!(card.record(s, home), 1);
        }
    }
    let stats = replay.stats();
    assert_eq!((stats.samples, stats.lost, stats.rate_hz), (400, 2, 1000));

    let total_a = (0..4).fold(NodeCounts::default(), |mut t, g| {
        t.add(&card.counts(fa, g, 0).unwrap());
        t
    });
    let total_b = (0..2).fold(NodeCounts::default(), |mut t, g| {
        t.add(&card.counts(fb, g, 0).unwrap());
        t
    });
    assert_eq!(total_a, counts(300, 0, 300, 0));
    assert_eq!(total_b, counts(0, 100, 100, 0));
    assert_eq!(card.counts(fa, 0, 1), Some(NodeCounts::default()));

    let report = Report::from_card(&card);
    let all = report.totals.all;
    assert_eq!(
        all.remote * 4,
        all.local + all.remote,
        "remote share is 1/4"
    );
    assert_eq!(all.total(), 400);
    let ratio = report.regions[0].totals.all.total() / report.regions[1].totals.all.total();
    assert_eq!(ratio, 3);
    assert_eq!(card.stats().matched, 400);
    assert_eq!(card.stats().unmatched, 0);
}

#[test]
fn ground_truth_json_lines() {
    ground_truth(StreamFormat::JsonLines);
}

#[test]
fn ground_truth_binary() {
    ground_truth(StreamFormat::Binary);
}

#[test]
fn granules_nodes_reads_writes() {
    let mut card = Card::new(2).unwrap();
    let f = card
        .program(FilterSpec::new(0x1000, 4 * 64, Granularity::LINE))
        .unwrap();
    card.record(&sample(0x1000, 0, Access::Read), 0);
    card.record(&sample(0x103f, 0, Access::Write), 0);
    card.record(&sample(0x1040, 1, Access::Read), 0);
    card.record(&sample(0x10c0, 1, Access::Unknown), 1);
    assert_eq!(card.counts(f, 0, 0), Some(counts(2, 0, 1, 1)));
    assert_eq!(card.counts(f, 1, 1), Some(counts(0, 1, 1, 0)));
    assert_eq!(
        card.counts(f, 3, 1),
        Some(counts(1, 0, 1, 0)),
        "unknown counts as a read"
    );
    assert_eq!(card.counts(f, 4, 0), None);
    assert_eq!(card.counts(f, 0, 2), None);
    // Outside the filter.
    assert_eq!(card.record(&sample(0x0fff, 0, Access::Read), 0), 0);
    assert_eq!(card.record(&sample(0x1100, 0, Access::Read), 0), 0);
    assert_eq!(card.stats().unmatched, 2);
}

#[test]
fn size_rounds_up_to_whole_granules() {
    let mut card = Card::new(1).unwrap();
    let f = card
        .program(FilterSpec::new(0x10000, PAGE + 1, Granularity::PAGE))
        .unwrap();
    assert_eq!(card.granule_count(f), Some(2));
    assert_eq!(card.used(), 2 * 4);
    assert_eq!(
        card.record(&sample(0x10000 + 2 * PAGE - 1, 0, Access::Read), 0),
        1
    );
    assert_eq!(
        card.record(&sample(0x10000 + 2 * PAGE, 0, Access::Read), 0),
        0
    );
}

#[test]
fn data_source_decides_locality_over_home_node() {
    let mut card = Card::new(2).unwrap();
    let f = card
        .program(FilterSpec::new(0, PAGE, Granularity::PAGE))
        .unwrap();
    let mut s = sample(0, 0, Access::Read);
    s.source = Some(DataSource::RemoteCache);
    card.record(&s, 0); // home says local, the PMU says remote
    s.source = Some(DataSource::LocalDram);
    card.record(&s, 1); // home says remote, the PMU says local
    s.source = Some(DataSource::Other);
    card.record(&s, 1); // the PMU cannot tell: the home node decides
    s.source = None;
    card.record(&s, UNKNOWN_NODE); // nothing tells
    card.record(&s, 7); // a home node out of range is unknown
    assert_eq!(card.counts(f, 0, 0), Some(counts(1, 2, 5, 0)));
    assert_eq!(card.stats().unknown_locality, 2);
}

#[test]
fn samples_from_unknown_nodes_are_dropped() {
    let mut card = Card::new(2).unwrap();
    card.program(FilterSpec::new(0, PAGE, Granularity::PAGE))
        .unwrap();
    assert_eq!(card.record(&sample(0, 2, Access::Read), 0), 0);
    assert_eq!(card.stats().bad_node, 1);
    assert_eq!(Report::from_card(&card).totals.all.total(), 0);
}

#[test]
fn home_node_is_tracked_and_mixed_flagged() {
    let mut card = Card::new(3).unwrap();
    let f = card
        .program(FilterSpec::new(0, 2 * PAGE, Granularity::PAGE))
        .unwrap();
    card.record(&sample(0, 0, Access::Read), 1);
    card.record(&sample(PAGE, 0, Access::Read), 1);
    card.record(&sample(PAGE + 8, 0, Access::Read), 2);
    let regions = card.filter_counts();
    let g = &regions[f.0 as usize].granules;
    assert_eq!((g[0].home_node, g[0].home_mixed), (Some(1), false));
    assert_eq!((g[1].home_node, g[1].home_mixed), (Some(2), true));
}

/// Direction semantics on three nodes, about node 1.
#[test]
fn directions() {
    // (accessing, home) pairs, and which ones each direction counts.
    let pairs = [(0, 0), (0, 1), (1, 0), (1, 1), (2, 1), (0, 2), (1, 2)];
    let expect = |d: Direction, node: Option<u32>| -> Vec<(u32, u32)> {
        pairs
            .iter()
            .copied()
            .filter(|&(a, h)| {
                let remote = a != h;
                match (d, node) {
                    (Direction::All, None) => true,
                    (Direction::All, Some(n)) => a == n || h == n,
                    (_, None) => remote,
                    (Direction::Outbound, Some(n)) => remote && a == n,
                    (Direction::Inbound, Some(n)) => remote && h == n,
                    (Direction::Both, Some(n)) => remote && (a == n || h == n),
                }
            })
            .collect()
    };
    for d in [
        Direction::All,
        Direction::Outbound,
        Direction::Inbound,
        Direction::Both,
    ] {
        for node in [None, Some(1)] {
            let mut card = Card::new(3).unwrap();
            card.program(FilterSpec::new(0, PAGE, Granularity::PAGE).direction(d, node))
                .unwrap();
            let got: Vec<(u32, u32)> = pairs
                .iter()
                .copied()
                .filter(|&(a, h)| card.record(&sample(0, a, Access::Read), h) == 1)
                .collect();
            assert_eq!(got, expect(d, node), "{d} about {node:?}");
        }
    }
    // Spot checks of the table in the docs.
    assert_eq!(expect(Direction::Outbound, Some(1)), vec![(1, 0), (1, 2)]);
    assert_eq!(expect(Direction::Inbound, Some(1)), vec![(0, 1), (2, 1)]);
}

#[test]
fn masks() {
    let mut card = Card::new(1).unwrap();
    let r = card
        .program(FilterSpec::new(0, PAGE, Granularity::PAGE).mask(TxMask::READS))
        .unwrap();
    let w = card
        .program(FilterSpec::new(0, PAGE, Granularity::PAGE).mask(TxMask::WRITES))
        .unwrap();
    card.record(&sample(0, 0, Access::Read), 0);
    card.record(&sample(0, 0, Access::Write), 0);
    card.record(&sample(0, 0, Access::Unknown), 0);
    assert_eq!(card.counts(r, 0, 0), Some(counts(2, 0, 2, 0)));
    assert_eq!(card.counts(w, 0, 0), Some(counts(1, 0, 0, 1)));
}

#[test]
fn overlapping_filters_each_count() {
    let mut card = Card::new(2).unwrap();
    let heap = card
        .program(FilterSpec::new(0, 16 * PAGE, Granularity::PAGE))
        .unwrap();
    let lines = card
        .program(FilterSpec::new(3 * PAGE, PAGE, Granularity::LINE))
        .unwrap();
    let huge = card
        .program(FilterSpec::new(0, 2 << 20, Granularity::HUGE))
        .unwrap();
    assert_eq!(card.record(&sample(3 * PAGE + 130, 1, Access::Write), 0), 3);
    assert_eq!(card.counts(heap, 3, 1), Some(counts(0, 1, 0, 1)));
    assert_eq!(card.counts(lines, 2, 1), Some(counts(0, 1, 0, 1)));
    assert_eq!(card.counts(huge, 0, 1), Some(counts(0, 1, 0, 1)));
    assert_eq!(card.record(&sample(5 * PAGE, 1, Access::Write), 0), 2);
    assert_eq!(card.record(&sample(20 * PAGE, 1, Access::Write), 0), 1);
    assert_eq!(card.stats().matched, 3);
}

#[test]
fn budget_is_fixed_at_programming_time() {
    let mut card = Card::with_budget(2, 100).unwrap();
    // 4 granules x 2 nodes x 4 cells.
    card.program(FilterSpec::new(0, 4 * PAGE, Granularity::PAGE))
        .unwrap();
    assert_eq!(card.used(), 32);
    let err = card
        .program(FilterSpec::new(0, 16 * PAGE, Granularity::PAGE))
        .unwrap_err();
    assert_eq!(
        err,
        CardError::BudgetExceeded {
            requested: 128,
            available: 68,
            budget: 100
        }
    );
    assert_eq!(card.used(), 32, "a refused filter takes nothing");
    assert!(err.to_string().contains("128"));
    // A range too large to count at all.
    let err = card
        .program(FilterSpec::new(0, u64::MAX / 2, Granularity::LINE))
        .unwrap_err();
    assert!(matches!(err, CardError::BudgetExceeded { .. }));
    // The default budget is the card's 512K granule counters on four nodes.
    assert_eq!(DEFAULT_COUNTER_BUDGET, 512 * 1024 * 4 * 4);
    let mut card = Card::new(4).unwrap();
    card.program(FilterSpec::new(0, 512 * 1024 * PAGE, Granularity::PAGE))
        .unwrap();
    assert_eq!(card.available(), 0);
}

#[test]
fn programming_errors_carry_the_value() {
    assert_eq!(Card::new(0).unwrap_err(), CardError::NoNodes);
    assert_eq!(Card::new(5000).unwrap_err(), CardError::TooManyNodes(5000));
    let mut card = Card::new(2).unwrap();
    assert_eq!(
        card.program(FilterSpec::new(0x5000, 0, Granularity::PAGE)),
        Err(CardError::EmptyFilter { start: 0x5000 })
    );
    assert_eq!(
        card.program(FilterSpec::new(0, PAGE, Granularity::PAGE).mask(TxMask {
            reads: false,
            writes: false
        })),
        Err(CardError::EmptyMask)
    );
    assert_eq!(
        card.program(
            FilterSpec::new(0, PAGE, Granularity::PAGE).direction(Direction::Inbound, Some(2))
        ),
        Err(CardError::NodeOutOfRange { node: 2, nodes: 2 })
    );
    assert_eq!(
        card.program(FilterSpec::new(u64::MAX - 100, 200, Granularity::LINE)),
        Err(CardError::AddressOverflow {
            start: u64::MAX - 100,
            size: 200
        })
    );
    assert_eq!(
        card.program(FilterSpec::new(u64::MAX - 8191, 1, Granularity::PAGE)),
        Ok(FilterId(0)),
        "the next-to-last page of the address space is fine"
    );
    assert_eq!(
        Granularity::new(100).map_err(CardError::from),
        Err(CardError::Granularity(
            monitor::GranularityError::NotPowerOfTwo(100)
        ))
    );
    let handler = Box::new(|_| {});
    assert_eq!(
        card.set_threshold(FilterId(9), 1, handler).unwrap_err(),
        CardError::UnknownFilter(FilterId(9))
    );
    assert_eq!(
        card.set_threshold(FilterId(0), 0, Box::new(|_| {}))
            .unwrap_err(),
        CardError::ZeroThreshold
    );
    assert_eq!(
        card.add_secondary(SecondarySpec {
            sources: vec![],
            mask: TxMask::ALL,
            name: None
        }),
        Err(CardError::EmptySecondary)
    );
    assert_eq!(
        card.add_secondary(SecondarySpec {
            sources: vec![SecondarySource::Range { start: 9, size: 0 }],
            mask: TxMask::ALL,
            name: None
        }),
        Err(CardError::EmptyRange { start: 9 })
    );
    assert_eq!(
        card.add_secondary(SecondarySpec {
            sources: vec![SecondarySource::Filter(FilterId(3))],
            mask: TxMask::ALL,
            name: None
        }),
        Err(CardError::UnknownFilter(FilterId(3)))
    );
}

fn collector() -> (
    Arc<Mutex<Vec<ThresholdEvent>>>,
    monitor::card::ThresholdHandler,
) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    (events, Box::new(move |e| sink.lock().unwrap().push(e)))
}

#[test]
fn thresholds_fire_once_per_granule() {
    let mut card = Card::new(2).unwrap();
    let f = card
        .program(FilterSpec::new(0, 4 * PAGE, Granularity::PAGE))
        .unwrap();
    let (remote_events, handler) = collector();
    let t_remote = card.set_threshold(f, 3, handler).unwrap();
    let (total_events, handler) = collector();
    let t_total = card
        .set_threshold_on(f, ThresholdOn::Total, 2, handler)
        .unwrap();

    for i in 0..10 {
        let mut s = sample(PAGE + 8 * i, 1, Access::Read);
        s.time_ns = i;
        card.record(&s, 0); // remote
    }
    card.record(&sample(2 * PAGE, 0, Access::Read), 0); // local
    card.record(&sample(2 * PAGE, 0, Access::Read), 0); // local
    card.record(&sample(3 * PAGE, 1, Access::Read), 0); // one remote

    let remote = remote_events.lock().unwrap().clone();
    assert_eq!(
        remote,
        vec![ThresholdEvent {
            threshold: t_remote,
            filter: f,
            granule: 1,
            addr: PAGE,
            count: 3,
            on: ThresholdOn::Remote,
            node: 1,
            time_ns: 2,
        }]
    );
    let total: Vec<(u64, u64)> = total_events
        .lock()
        .unwrap()
        .iter()
        .map(|e| (e.granule, e.count))
        .collect();
    assert_eq!(total, vec![(1, 2), (2, 2)]);
    assert!(
        total_events
            .lock()
            .unwrap()
            .iter()
            .all(|e| e.threshold == t_total)
    );

    // Reset re-arms.
    card.reset();
    for _ in 0..3 {
        card.record(&sample(PAGE, 1, Access::Read), 0);
    }
    assert_eq!(remote_events.lock().unwrap().len(), 2);
    assert_eq!(card.stats().samples, 3);
}

#[test]
fn secondary_counters_aggregate_once_per_reference() {
    let mut card = Card::new(2).unwrap();
    let a = card
        .program(FilterSpec::new(0, 2 * PAGE, Granularity::PAGE))
        .unwrap();
    let b = card
        .program(FilterSpec::new(PAGE, 4 * PAGE, Granularity::LINE))
        .unwrap();
    let outbound = card
        .program(
            FilterSpec::new(16 * PAGE, PAGE, Granularity::PAGE)
                .direction(Direction::Outbound, Some(0)),
        )
        .unwrap();
    let a_writes = card
        .add_secondary(SecondarySpec {
            sources: vec![SecondarySource::Filter(a)],
            mask: TxMask::WRITES,
            name: Some("A writes".into()),
        })
        .unwrap();
    let a_or_b = card
        .add_secondary(SecondarySpec {
            sources: vec![SecondarySource::Filter(a), SecondarySource::Filter(b)],
            mask: TxMask::ALL,
            name: None,
        })
        .unwrap();
    let scattered = card
        .add_secondary(SecondarySpec {
            sources: vec![
                SecondarySource::Range {
                    start: 10 * PAGE,
                    size: PAGE,
                },
                SecondarySource::Range {
                    start: 12 * PAGE,
                    size: PAGE,
                },
                SecondarySource::Filter(outbound),
            ],
            mask: TxMask::READS,
            name: Some("scattered".into()),
        })
        .unwrap();

    card.record(&sample(0, 0, Access::Write), 0); // A only
    card.record(&sample(PAGE + 64, 1, Access::Write), 0); // A and B: once in a_or_b
    card.record(&sample(PAGE + 64, 1, Access::Read), 0); // A and B, a read
    card.record(&sample(3 * PAGE, 0, Access::Read), 0); // B only
    card.record(&sample(10 * PAGE + 5, 1, Access::Read), 0); // first range
    card.record(&sample(12 * PAGE + 5, 0, Access::Read), 0); // second range
    card.record(&sample(12 * PAGE + 5, 0, Access::Write), 0); // mask says no
    card.record(&sample(11 * PAGE, 0, Access::Read), 0); // between the ranges
    card.record(&sample(16 * PAGE, 0, Access::Read), 1); // outbound from 0: counted
    card.record(&sample(16 * PAGE, 1, Access::Read), 0); // not outbound from 0

    assert_eq!(card.secondary_counts(a_writes, 0), Some(counts(1, 0, 0, 1)));
    assert_eq!(card.secondary_counts(a_writes, 1), Some(counts(0, 1, 0, 1)));
    assert_eq!(card.secondary_counts(a_or_b, 0), Some(counts(2, 0, 1, 1)));
    assert_eq!(card.secondary_counts(a_or_b, 1), Some(counts(0, 2, 1, 1)));
    assert_eq!(
        card.secondary_counts(scattered, 0),
        Some(counts(1, 1, 2, 0))
    );
    assert_eq!(
        card.secondary_counts(scattered, 1),
        Some(counts(0, 1, 1, 0))
    );
    assert_eq!(card.secondary_counts(scattered, 2), None);

    let report = Report::from_card(&card);
    assert_eq!(report.secondaries.len(), 3);
    assert_eq!(report.secondaries[0].name, "A writes");
    assert_eq!(report.secondaries[1].name, "secondary 1");
    assert_eq!(report.secondaries[1].totals.all, counts(2, 2, 2, 2));
}

#[derive(Debug, Clone)]
struct ModelFilter {
    start: u64,
    size: u64,
    shift: u32,
    mask: TxMask,
    direction: Direction,
    node: Option<u32>,
}

fn filter_strategy() -> impl Strategy<Value = ModelFilter> {
    (
        0u64..64,
        1u64..(32 * 1024),
        6u32..=13,
        0usize..3,
        0usize..4,
        proptest::option::of(0u32..4),
    )
        .prop_map(|(start, size, shift, mask, dir, node)| ModelFilter {
            start: start * 512,
            size,
            shift,
            mask: [TxMask::ALL, TxMask::READS, TxMask::WRITES][mask],
            direction: [
                Direction::All,
                Direction::Outbound,
                Direction::Inbound,
                Direction::Both,
            ][dir],
            node,
        })
}

fn sample_strategy() -> impl Strategy<Value = (Sample, u32)> {
    (
        0u64..(72 * 1024),
        0u32..5,
        prop_oneof![0u32..4, Just(UNKNOWN_NODE)],
        0usize..3,
        proptest::option::of(0usize..5),
    )
        .prop_map(|(addr, node, home, access, source)| {
            let mut s = sample(
                addr,
                node,
                [Access::Read, Access::Write, Access::Unknown][access],
            );
            s.source = source.map(|i| {
                [
                    DataSource::LocalCache,
                    DataSource::LocalDram,
                    DataSource::RemoteCache,
                    DataSource::RemoteDram,
                    DataSource::Other,
                ][i]
            });
            (s, home)
        })
}

proptest! {
    /// The card agrees with a naive recount of every sample against every filter.
    #[test]
    fn card_matches_a_naive_model(
        filters in proptest::collection::vec(filter_strategy(), 1..6),
        samples in proptest::collection::vec(sample_strategy(), 0..200),
    ) {
        let nodes = 4u32;
        let mut card = Card::new(nodes).unwrap();
        let ids: Vec<FilterId> = filters
            .iter()
            .map(|f| {
                card.program(
                    FilterSpec::new(f.start, f.size, Granularity::new(1 << f.shift).unwrap())
                        .mask(f.mask)
                        .direction(f.direction, f.node),
                )
                .unwrap()
            })
            .collect();
        let mut expected: Vec<std::collections::HashMap<(u64, u32), NodeCounts>> =
            vec![Default::default(); filters.len()];
        let mut matched_total = 0;
        for (s, home) in &samples {
            let got = card.record(s, *home);
            if s.node >= nodes {
                prop_assert_eq!(got, 0);
                continue;
            }
            let home_known = *home < nodes;
            let remote = match s.source {
                Some(DataSource::LocalCache | DataSource::LocalDram) => Some(false),
                Some(DataSource::RemoteCache | DataSource::RemoteDram) => Some(true),
                _ if home_known => Some(s.node != *home),
                _ => None,
            };
            let mut matched = 0;
            for (i, f) in filters.iter().enumerate() {
                let g = 1u64 << f.shift;
                let end = f.start + f.size.div_ceil(g) * g;
                if s.addr < f.start || s.addr >= end {
                    continue;
                }
                let is_write = s.access == Access::Write;
                if (is_write && !f.mask.writes) || (!is_write && !f.mask.reads) {
                    continue;
                }
                let r = remote == Some(true);
                let pass = match (f.direction, f.node) {
                    (Direction::All, None) => true,
                    (Direction::All, Some(n)) => s.node == n || *home == n,
                    (_, None) => r,
                    (Direction::Outbound, Some(n)) => r && s.node == n,
                    (Direction::Inbound, Some(n)) => r && *home == n && s.node != n,
                    (Direction::Both, Some(n)) => r && (s.node == n || *home == n),
                };
                if !pass {
                    continue;
                }
                matched += 1;
                let c = expected[i].entry(((s.addr - f.start) / g, s.node)).or_default();
                match remote {
                    Some(true) => c.remote += 1,
                    Some(false) => c.local += 1,
                    None => {}
                }
                if is_write { c.writes += 1 } else { c.reads += 1 }
            }
            prop_assert_eq!(got, matched);
            matched_total += matched as u64;
        }
        let mut counted = 0;
        for (i, id) in ids.iter().enumerate() {
            let granules = card.granule_count(*id).unwrap();
            for g in 0..granules {
                for n in 0..nodes {
                    let want = expected[i].get(&(g, n)).copied().unwrap_or_default();
                    let have = card.counts(*id, g, n).unwrap();
                    prop_assert_eq!(have, want, "filter {} granule {} node {}", i, g, n);
                    counted += have.total();
                }
            }
        }
        prop_assert_eq!(counted, matched_total);
        let report = Report::from_card(&card);
        prop_assert_eq!(report.totals.all.total(), matched_total);
    }
}

#[test]
fn a_card_can_move_to_a_session_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<Card>();
    assert_send::<monitor::Replay>();
}
