//! The framework on the host (one node or more): arrays of both layouts are present
//! and on the RSet's nodes, runs see every thread, sums are in thread order, bad
//! partitions and specs are errors naming the culprit, `--monitor` writes a
//! session that names the arrays, and a zoomed run watches, by line, the hot pages
//! of the previous run's arrays at their new addresses.

use std::sync::atomic::{AtomicUsize, Ordering};

use alloc_policies::PageStatus;
use splash_ports::framework::{
    DataLayout, Machine, Partition, PartitionError, RunConfig, SplashError, Zoom,
};
use splash_ports::refine::ZoomError;

/// One monitor sampler runs per process: monitored tests take turns.
fn monitored() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn cfg(layout: DataLayout) -> RunConfig {
    RunConfig {
        layout,
        ..RunConfig::default()
    }
}

fn present_on_rset_nodes(m: &Machine, pages: &[PageStatus]) {
    let nodes = m.rset().effective_nodes();
    for (p, s) in pages.iter().enumerate() {
        match s {
            PageStatus::Node(n) => assert!(
                nodes.contains(rset::NodeId(*n)),
                "page {p} on node {n}, outside {nodes}"
            ),
            other => panic!("page {p} is {other:?}"),
        }
    }
}

#[test]
fn both_layouts_give_zeroed_present_arrays_that_threads_share() {
    for layout in [DataLayout::Orig, DataLayout::Reorg] {
        let m = Machine::new(&cfg(layout), 3).unwrap();
        assert_eq!(m.threads(), 3);
        let n = 100_003;
        let x = m
            .shared::<[f64; 2]>("test.x", n, &Partition::even(n, 3))
            .unwrap();
        assert_eq!(x.len(), n);
        assert_eq!(x.label(), "test.x");
        present_on_rset_nodes(&m, &x.locate().unwrap());
        let seen = AtomicUsize::new(0);
        m.run(|p| {
            let r = p.id() * n / p.nprocs()..(p.id() + 1) * n / p.nprocs();
            assert_eq!(x.own_range(p.id()), r);
            // Each thread writes only its own range before the barrier.
            let mine = x.own_mut(p);
            assert!(mine.iter().all(|v| *v == [0.0, 0.0]), "zeroed at birth");
            for (i, v) in mine.iter_mut().enumerate() {
                *v = [p.id() as f64, i as f64];
            }
            seen.fetch_add(1 << (4 * p.id()), Ordering::Relaxed);
            p.barrier();
            // Nobody writes after the barrier.
            let all = x.read_all(p);
            let owner = |i: usize| (0..3).find(|&t| i < (t + 1) * n / 3).unwrap();
            assert!(all.iter().enumerate().all(|(i, v)| v[0] == owner(i) as f64));
        })
        .unwrap();
        assert_eq!(seen.load(Ordering::Relaxed), 0x111, "each thread ran once");
        m.finish().unwrap();
    }
}

#[test]
fn sums_are_in_thread_order_and_the_same_on_every_thread() {
    let m = Machine::new(&RunConfig::default(), 4).unwrap();
    let results = std::sync::Mutex::new(Vec::new());
    m.run(|p| {
        // Values whose sum depends on the order of addition.
        let v = [1e16, 1.0, -1e16, 1.0][p.id()];
        let s = p.sum_f64(v);
        let mx = p.max_f64(p.id() as f64);
        results.lock().unwrap().push((s, mx));
    })
    .unwrap();
    let expect = ((1e16 + 1.0) + -1e16) + 1.0;
    let r = results.into_inner().unwrap();
    assert_eq!(r.len(), 4);
    assert!(r.iter().all(|&(s, m)| s == expect && m == 3.0), "{r:?}");
}

#[test]
fn bad_partitions_and_specs_are_errors_naming_the_culprit() {
    let m = Machine::new(&cfg(DataLayout::Reorg), 2).unwrap();
    let e = m
        .shared::<f64>(
            "test.bad",
            10,
            &Partition::by_thread(vec![(0..6, 0), (5..10, 1)]),
        )
        .unwrap_err();
    assert!(
        matches!(
            &e,
            SplashError::Partition {
                label,
                source: PartitionError::Overlap { .. }
            } if label == "test.bad"
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("test.bad"), "{e}");
    let e = m
        .shared::<f64>("test.bad", 10, &Partition::by_thread(vec![(0..10, 7)]))
        .unwrap_err();
    assert!(e.to_string().contains("thread 7"), "{e}");
    // Orig ignores the partition.
    let o = Machine::new(&cfg(DataLayout::Orig), 2).unwrap();
    assert!(
        o.shared::<f64>("test.ok", 10, &Partition::by_thread(vec![(0..10, 7)]))
            .is_ok()
    );

    let bad = RunConfig {
        rset: "node:99".into(),
        ..RunConfig::default()
    };
    let e = Machine::new(&bad, 2).unwrap_err();
    assert!(matches!(e, SplashError::Rset { .. }), "{e:?}");
    assert!(e.to_string().contains("node:99"), "{e}");
    assert!(Machine::new(&RunConfig::default(), 0).is_err());
}

#[test]
fn monitor_sessions_name_every_array() {
    let _turn = monitored();
    let dir = std::env::temp_dir().join(format!("splash-fw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("run.session");
    let c = RunConfig {
        monitor: Some(path.clone()),
        ..RunConfig::default()
    };
    let m = Machine::new(&c, 2).unwrap();
    let n = 1 << 18;
    let a = m
        .shared::<f64>("test.mon.a", n, &Partition::even(n, 2))
        .unwrap();
    let b = m
        .shared::<u32>("test.mon.b", n, &Partition::even(n, 2))
        .unwrap();
    m.run(|p| {
        for _ in 0..20 {
            let r = p.id() * n / 2..(p.id() + 1) * n / 2;
            assert_eq!((a.own_range(p.id()), b.own_range(p.id())), (r.clone(), r));
            // Each thread writes its own half.
            let sa = a.own_mut(p);
            let sb = b.own_mut(p);
            for (x, y) in sa.iter_mut().zip(sb.iter_mut()) {
                *x += 1.0;
                *y += 1;
            }
            p.barrier();
        }
    })
    .unwrap();
    m.finish().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("test.mon.a") && text.contains("test.mon.b"));
    let file = monitor::SessionFile::load(&path).unwrap();
    assert_eq!(file.filters.len(), 2);
    std::fs::remove_dir_all(&dir).unwrap();

    // --monitor with nothing to watch is an error, not a silent empty file.
    let m = Machine::new(&c, 1).unwrap();
    let e = m.run(|_| {}).unwrap_err();
    assert!(matches!(e, SplashError::NothingToMonitor(_)), "{e:?}");
}

/// Round 1's session with remote references injected where `hot` says (label, page,
/// count): a one-node host has no remote memory, so the test marks the hot pages
/// itself, as a 2-node machine's accessing node 1 would have.
fn with_hot_pages(file: &mut monitor::SessionFile, hot: &[(&str, u64, u64)]) {
    use monitor::card::GranuleCounts;
    file.machine = monitor::Machine::new(2);
    for f in &mut file.filters {
        f.granules.clear();
        let name = f.spec.name.clone().unwrap_or_default();
        for &(label, page, count) in hot {
            if label == name {
                let by_node = [(
                    1,
                    monitor::NodeCounts {
                        local: 0,
                        remote: count,
                        reads: count,
                        writes: 0,
                    },
                )]
                .into_iter()
                .collect();
                f.granules.push(GranuleCounts {
                    offset: page * 4096,
                    home_node: Some(0),
                    home_mixed: false,
                    by_node,
                });
            }
        }
        f.granules.sort_by_key(|g| g.offset);
    }
}

/// Makes the arrays of a zoom test run (`pages` pages each), after `pad` pages of
/// another array, so that they land elsewhere than in the run before; touches them
/// all from every thread.
fn zoom_run(
    c: &RunConfig,
    pad: usize,
    order: &[(&str, usize)],
) -> Result<Vec<(String, u64)>, SplashError> {
    let m = Machine::new(c, 2)?;
    let _pad = m.shared::<u8>("test.zoom.pad", pad * 4096 + 1, &Partition::default())?;
    let mut arrays = Vec::new();
    for &(label, pages) in order {
        let len = pages * 4096 / 8;
        arrays.push(m.shared::<f64>(label, len, &Partition::even(len, 2))?);
    }
    m.run(|p| {
        for x in &arrays {
            // Every thread only reads.
            let all = x.read_all(p);
            std::hint::black_box(all.iter().sum::<f64>() + p.id() as f64);
        }
    })?;
    let starts = arrays
        .iter()
        .map(|x| (x.label().to_owned(), x.as_ptr() as u64))
        .collect();
    m.finish()?;
    Ok(starts)
}

#[test]
fn zoomed_runs_watch_the_hot_pages_of_the_same_arrays_by_line() {
    let _turn = monitored();
    let dir = std::env::temp_dir().join(format!("splash-zoom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let round1 = dir.join("round1.session");
    let c1 = RunConfig {
        monitor: Some(round1.clone()),
        ..RunConfig::default()
    };
    zoom_run(&c1, 0, &[("test.zoom.a", 32), ("test.zoom.b", 16)]).unwrap();
    let mut file = monitor::SessionFile::load(&round1).unwrap();
    let labels: Vec<&str> = file.labels.iter().map(|l| l.name.as_str()).collect();
    assert!(
        labels.contains(&"test.zoom.a") && labels.contains(&"test.zoom.b"),
        "{labels:?}"
    );
    // Hottest: b page 7, a page 20, a page 21 (adjacent: one range); a page 3 is
    // fourth and left out with --monitor-top 3.
    let hot = [
        ("test.zoom.b", 7, 50),
        ("test.zoom.a", 20, 40),
        ("test.zoom.a", 21, 30),
        ("test.zoom.a", 3, 5),
    ];
    with_hot_pages(&mut file, &hot);
    let prev = dir.join("hot.session");
    file.save(&prev).unwrap();

    let round2 = dir.join("round2.session");
    let c2 = RunConfig {
        monitor: Some(round2.clone()),
        monitor_zoom: Some(Zoom {
            previous: prev.clone(),
            top: 3,
        }),
        ..RunConfig::default()
    };
    // Other order, after a pad: other addresses.
    let starts = zoom_run(&c2, 37, &[("test.zoom.b", 16), ("test.zoom.a", 32)]).unwrap();
    let start = |label: &str| starts.iter().find(|(l, _)| l == label).unwrap().1;
    let zoomed = monitor::SessionFile::load(&round2).unwrap();
    let mut got: Vec<(String, u64, u64, u64)> = zoomed
        .filters
        .iter()
        .map(|f| {
            let name = f.spec.name.clone().unwrap();
            let offset = f.spec.start - start(&name);
            (name, offset, f.spec.size, f.spec.granularity.bytes())
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("test.zoom.a".to_owned(), 20 * 4096, 2 * 4096, 64),
            ("test.zoom.b".to_owned(), 7 * 4096, 4096, 64),
        ],
        "filters over a's pages 20-21 and b's page 7, by line"
    );
    assert_ne!(
        start("test.zoom.a"),
        file.labels
            .iter()
            .find(|l| l.name == "test.zoom.a")
            .unwrap()
            .start,
        "the arrays moved between the runs"
    );
    // The final table with line verdicts is kept beside the session.
    let lines = std::fs::read_to_string(splash_ports::framework::lines_path(&round2)).unwrap();
    assert!(lines.contains("LINE VERDICTS"), "{lines}");

    // Another program (or other flags): refused, naming the array.
    let c3 = RunConfig {
        monitor: Some(dir.join("round3.session")),
        ..c2.clone()
    };
    let e = zoom_run(&c3, 0, &[("test.zoom.a", 32), ("test.zoom.b", 8)]).unwrap_err();
    assert!(
        matches!(&e, SplashError::Zoom { source: ZoomError::SizeChanged { label, .. }, .. } if label == "test.zoom.b"),
        "{e:?}"
    );
    let e = zoom_run(&c3, 0, &[("test.zoom.a", 32)]).unwrap_err();
    assert!(
        e.to_string()
            .contains("`test.zoom.b` is not made by this run"),
        "{e}"
    );

    // Nothing remote in round 1: nothing to zoom into, said before the run.
    with_hot_pages(&mut file, &[]);
    file.save(&prev).unwrap();
    let e = Machine::new(&c3, 2).unwrap_err();
    assert!(
        matches!(
            &e,
            SplashError::Zoom {
                source: ZoomError::NothingHot,
                ..
            }
        ),
        "{e:?}"
    );
    // A missing file and a zoom without --monitor are errors too.
    let missing = RunConfig {
        monitor_zoom: Some(Zoom {
            previous: dir.join("nosuch.session"),
            top: 3,
        }),
        ..c3.clone()
    };
    let e = Machine::new(&missing, 2).unwrap_err();
    assert!(e.to_string().contains("nosuch.session"), "{e}");
    let unmonitored = RunConfig {
        monitor: None,
        ..c3
    };
    assert!(matches!(
        Machine::new(&unmonitored, 2),
        Err(SplashError::Usage(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
