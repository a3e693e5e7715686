//! `rset-bench` run as a user would, on the host (one node is enough: these tests
//! check structure and errors, never speed).

use std::process::{Command, Output};

use serde_json::Value;

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rset-bench"))
        .args(args)
        .output()
        .expect("running rset-bench")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["--json", "--time-ms", "2", "--reps", "2"]);
    let o = bench(&a);
    assert!(o.status.success(), "{a:?}: {}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{a:?}: {e}: {}", stdout(&o)))
}

fn temp_svg(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rset-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn assert_svg(path: &std::path::Path) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(text.contains("<svg"), "{}", path.display());
}

#[test]
fn lat_reports_one_point_with_its_placement() {
    let v = json(&["lat", "--size", "64K"]);
    assert_eq!(v["command"], "lat");
    assert!(v["machine"]["kind"].is_string());
    let p = &v["points"].as_array().unwrap()[0];
    assert_eq!(p["size_bytes"], 64 << 10);
    assert!(p["ns_per_load"].as_f64().unwrap() > 0.0);
    assert!(p["ns_min"].as_f64().unwrap() <= p["ns_per_load"].as_f64().unwrap());
    let node = p["thread"]["node"].as_u64().unwrap().to_string();
    // Local memory: every page on the thread's node.
    let pages = p["pages_per_node"].as_object().unwrap();
    assert_eq!(pages.keys().collect::<Vec<_>>(), vec![&node]);
    assert_eq!(pages[&node], 16);
}

#[test]
fn lat_sweep_goes_from_l1_past_the_last_level_cache_and_plots() {
    let svg = temp_svg("lat.svg");
    let v = json(&["lat", "--sweep", "--plot", svg.to_str().unwrap()]);
    let sizes: Vec<u64> = v["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["size_bytes"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes[0], 4096);
    assert!(sizes.windows(2).all(|w| w[0] < w[1]), "{sizes:?}");
    let llc = v["caches"]
        .as_array()
        .unwrap()
        .last()
        .map_or(0, |c| c["size_bytes"].as_u64().unwrap());
    assert!(*sizes.last().unwrap() >= 4 * llc, "{sizes:?} vs LLC {llc}");
    assert_eq!(
        v["points"][0]["fits_in"],
        if llc > 0 { "L1" } else { "memory" }
    );
    assert_svg(&svg);
}

#[test]
fn lat_table_has_a_header_and_a_row() {
    let o = bench(&["lat", "--size", "32K", "--time-ms", "2", "--reps", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("ns/load"), "{text}");
    assert!(
        text.lines().any(|l| l.trim_start().starts_with("32 KiB")),
        "{text}"
    );
}

#[test]
fn huge_pages_on_gives_a_share_of_huge_pages() {
    let v = json(&["lat", "--size", "8M", "--huge-pages", "on"]);
    assert_eq!(v["huge_pages"], "on");
    let share = v["points"][0]["huge_page_share"].as_f64();
    // The kernel may lack THP or free 2 MiB pages; the share is reported either way.
    assert!(share.is_none_or(|s| (0.0..=1.0).contains(&s)), "{share:?}");
}

#[test]
fn bw_places_each_thread_and_counts_copy_as_read_plus_write() {
    let v = json(&["bw", "--op", "copy", "--threads", "2", "--size", "1M"]);
    assert_eq!(v["op"], "copy");
    let p = &v["points"][0];
    assert_eq!(p["threads"], 2);
    assert_eq!(p["plan"].as_array().unwrap().len(), 2);
    // 1 MiB per thread: 512 KiB read + 512 KiB written per pass, two threads.
    let passes = p["passes"].as_u64().unwrap();
    assert_eq!(p["bytes_per_rep"].as_u64().unwrap(), 2 * (1 << 20) * passes);
    assert!(p["gb_per_s"].as_f64().unwrap() >= p["gb_per_s_median"].as_f64().unwrap());
    assert_eq!(p["speedup"], 1.0);
}

#[test]
fn bw_sweep_threads_gives_one_point_per_count_and_plots() {
    let svg = temp_svg("bw.svg");
    let v = json(&[
        "bw",
        "--op",
        "read",
        "--threads",
        "2",
        "--size",
        "1M",
        "--sweep-threads",
        "--placement",
        "round-robin",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    let threads: Vec<u64> = v["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["threads"].as_u64().unwrap())
        .collect();
    assert_eq!(threads, vec![1, 2]);
    assert_eq!(v["placement"], "round-robin");
    assert_svg(&svg);
}

#[test]
fn matrices_have_every_pair_and_ratio_one_on_the_diagonal() {
    for what in ["lat", "bw"] {
        let svg = temp_svg(&format!("matrix-{what}.svg"));
        let v = json(&[
            "matrix",
            what,
            "--size",
            "256K",
            "--plot",
            svg.to_str().unwrap(),
        ]);
        let cpu = v["cpu_nodes"].as_array().unwrap().len();
        let mem = v["mem_nodes"].as_array().unwrap().len();
        let pairs = v["pairs"].as_array().unwrap();
        assert_eq!(pairs.len(), cpu * mem, "{what}");
        for p in pairs {
            assert!(p["value"].as_f64().unwrap() > 0.0);
            if p["cpu_node"] == p["mem_node"] {
                assert_eq!(p["ratio"], 1.0);
            }
        }
        assert_svg(&svg);
    }
}

/// Bad input: one line on stderr naming the culprit, exit status 2, nothing on stdout.
fn assert_usage_error(args: &[&str], culprit: &str) {
    let o = bench(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(
        err.lines().count(),
        1,
        "{args:?}: one line wanted, got {err:?}"
    );
    assert!(
        err.contains(culprit),
        "{args:?}: {err:?} should name {culprit:?}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(stdout(&o).is_empty());
}

#[test]
fn bad_input_gets_one_line_errors_and_exit_2() {
    assert_usage_error(&["lat", "--cpus", "mem:0"], "no CPUs");
    assert_usage_error(&["bw", "--cpus", "mem:0"], "mem:0");
    assert_usage_error(&["lat", "--cpus", "node:9"], "node 9");
    assert_usage_error(&["lat", "--size", "0"], "0 bytes");
    assert_usage_error(&["lat", "--size", "32"], "cache line");
    assert_usage_error(&["lat", "--size", "12Q"], "12Q");
    assert_usage_error(&["bw", "--threads", "0"], "--threads 0");
    assert_usage_error(&["bw", "--size", "0"], "0 bytes");
    assert_usage_error(&["bw", "--op", "triad"], "triad");
    assert_usage_error(&["bw", "--placement", "scatter"], "scatter");
    assert_usage_error(&["matrix", "flops"], "flops");
    assert_usage_error(&["matrix", "bw", "--threads", "0"], "--threads 0");
    assert_usage_error(&["lat", "--mem", "nowhere"], "nowhere");
    assert_usage_error(&["lat", "--huge-pages", "maybe"], "maybe");
    assert_usage_error(
        &["lat", "--huge-pages", "on", "--mem", "striped:1"],
        "striped:1",
    );
    assert_usage_error(&["lat", "--plot", "x.svg"], "--sweep");
    assert_usage_error(&["lat", "--sweep", "--plot", "x.png"], "x.png");
    assert_usage_error(&["lat", "--reps", "0"], "--reps 0");
    assert_usage_error(&["lat", "--bogus"], "--bogus");
    assert_usage_error(&["lat", "--sweep", "--size", "1M"], "--size");
}

#[test]
fn help_teaches_with_examples() {
    let o = bench(&["--help"]);
    assert!(o.status.success());
    let text = stdout(&o);
    for word in [
        "EXAMPLES",
        "lat --sweep",
        "bw --op copy",
        "matrix lat",
        "STREAM",
        "emulator",
    ] {
        assert!(text.contains(word), "--help lacks {word}");
    }
}

#[test]
fn sampler_runs_the_stream_alone_and_monitored_and_reports_samples() {
    let o = bench(&[
        "sampler",
        "--size",
        "4M",
        "--threads",
        "1",
        "--secs",
        "0.4",
        "--runs",
        "2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for r in runs {
        assert!(r["alone_gbps"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["monitored_gbps"].as_f64().unwrap() > 0.0, "{r}");
        // The one watched block is the streamed array: a monitor that samples at
        // all samples it (the rate depends on the machine, so only > 0 is asked).
        assert!(r["samples"].as_u64().unwrap() > 0, "{r}");
        assert!(
            ["tick", "protect"].contains(&r["sampler"].as_str().unwrap()),
            "{r}"
        );
    }
    assert!(v["median_pair_ratio"].as_f64().unwrap() > 0.0);
}

#[test]
fn sampler_refuses_bad_arguments_in_one_line() {
    for (args, says) in [
        (&["sampler", "--threads", "0"][..], "--threads 0"),
        (&["sampler", "--runs", "0"], "--runs 0"),
        (&["sampler", "--secs=-1"], "--secs -1"),
        (&["sampler", "--secs", "0"], "--secs 0"),
        (&["sampler", "--size", "12Q"], "--size"),
    ] {
        let o = bench(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let e = stderr(&o);
        assert_eq!(e.lines().count(), 1, "{args:?}: {e}");
        assert!(
            e.starts_with("rset-bench: ") && e.contains(says),
            "{args:?}: {e}"
        );
    }
}
