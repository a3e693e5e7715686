//! `splash` as a user runs it: the FFT kernel's printed checksums and data against
//! values computed here independently (drand48, a naive DFT, the invariants of a
//! 3D DFT), the same results for every thread count and layout, and bad flags
//! answered with the original's kind of message and exit status 2, never a panic.

use std::process::{Command, Output};

fn splash(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_splash"))
        .args(args)
        .output()
        .expect("running splash")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs and expects success.
fn ok(args: &[&str]) -> String {
    let o = splash(args);
    assert!(
        o.status.success(),
        "splash {args:?}: {:?}\n{}{}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Runs and expects exit status 2 with one error line containing `msg`.
fn fails(args: &[&str], msg: &str) {
    let o = splash(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "splash {args:?}: {err}");
    assert!(err.contains(msg), "splash {args:?}: {err:?} lacks {msg:?}");
    assert!(!err.contains("panicked"), "splash {args:?} panicked: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
}

/// glibc's `drand48` after `srand48(0)`, written out from its definition.
fn drand48(count: usize) -> Vec<f64> {
    let mut x: u64 = 0x330e;
    (0..count)
        .map(|_| {
            x = x.wrapping_mul(0x5_deec_e66d).wrapping_add(0xb) & ((1 << 48) - 1);
            x as f64 / 2f64.powi(48)
        })
        .collect()
}

/// Lines that do not depend on timing (nor on the thread count and layout, which
/// the header names).
fn results(out: &str) -> Vec<String> {
    let varies = |l: &str| {
        let first = l.split_whitespace().next().unwrap_or("");
        ["time", "Time", "fraction", "Processors", "layout"]
            .iter()
            .any(|w| l.contains(w))
            || first.starts_with(|c: char| c.is_ascii_digit())
            || ["Avg", "Max", "Min"].contains(&first)
    };
    out.lines()
        .filter(|l| !varies(l))
        .map(str::to_owned)
        .collect()
}

#[test]
fn fft_checksums_are_the_sums_of_the_drand48_input() {
    for m in [6u32, 10] {
        let out = ok(&["fft", &format!("-m{m}"), "-p2", "-t"]);
        let n = 1usize << m;
        let v = drand48(2 * n);
        // The original sums re + im point by point, in order.
        let mut ck = 0.0;
        for p in v.chunks(2) {
            ck += p[0] + p[1];
        }
        let line = out
            .lines()
            .find(|l| l.starts_with("Checksum difference is"))
            .expect("a checksum line");
        // The difference is a rounding error of either sign: "0.000" or "-0.000".
        let tail = format!(" ({ck:.3}, {ck:.3})");
        let diff = line
            .strip_prefix("Checksum difference is ")
            .and_then(|l| l.strip_suffix(&tail))
            .unwrap_or_else(|| panic!("-m{m}: {line:?}, expected ck1 = ck3 = {ck:.3}"));
        assert!(diff == "0.000" || diff == "-0.000", "-m{m}: {line}");
        assert!(out.contains("TEST PASSED"), "{out}");
        assert!(out.contains(&format!("   {n} Complex Doubles")));
        assert!(out.contains("FFT with Blocking Transpose"));
        assert!(out.contains("PROCESS STATISTICS") && out.contains("TIMING INFORMATION"));
    }
}

/// The values of a `-o` block after `header`, as printed (`" %4.2f %4.2f"`).
fn printed(out: &str, header: &str) -> Vec<(f64, f64)> {
    let start = out.find(header).expect("the block") + header.len();
    let block = &out[start..];
    let end = block.find("\n\n\n").unwrap_or(block.len());
    block[..end]
        .split(',')
        .map(|pair| {
            let mut it = pair.split_whitespace().map(|t| t.parse::<f64>().unwrap());
            (it.next().unwrap(), it.next().unwrap())
        })
        .collect()
}

#[test]
fn fft_prints_its_input_and_a_dft_of_it() {
    let m = 6;
    let n = 1usize << m;
    let out = ok(&["fft", "-m6", "-p4", "-o"]);
    let v = drand48(2 * n);
    let input: Vec<(f64, f64)> = v.chunks(2).map(|p| (p[0], p[1])).collect();
    let before = printed(&out, "Original data values:\n");
    assert_eq!(before.len(), n);
    for (i, (got, want)) in before.iter().zip(&input).enumerate() {
        assert_eq!(
            (format!("{:.2}", got.0), format!("{:.2}", got.1)),
            (format!("{:.2}", want.0), format!("{:.2}", want.1)),
            "input point {i}"
        );
    }
    let after = printed(&out, "Data values after FFT:\n");
    assert_eq!(after.len(), n);
    // The kernel's roots use the original's PI = 3.1416; against the true DFT the
    // difference is below 0.005 here, plus 0.005 of printing.
    for (k, got) in after.iter().enumerate() {
        let (mut re, mut im) = (0.0, 0.0);
        for (j, x) in input.iter().enumerate() {
            let a = 2.0 * std::f64::consts::PI * ((j * k) % n) as f64 / n as f64;
            re += x.0 * a.cos() + x.1 * a.sin();
            im += x.1 * a.cos() - x.0 * a.sin();
        }
        assert!(
            (got.0 - re).abs() < 0.01 && (got.1 - im).abs() < 0.01,
            "X[{k}] printed {got:?}, DFT ({re}, {im})"
        );
    }
}

#[test]
fn fft_results_do_not_depend_on_threads_placement_or_layout() {
    let base = results(&ok(&["fft", "-m12", "-p1", "-t"]));
    assert!(base.iter().any(|l| l == "TEST PASSED"), "{base:?}");
    for args in [
        vec!["fft", "-m12", "-p2", "-t"],
        vec!["fft", "-m12", "-p4", "-t", "-s"],
        vec!["--layout", "reorg", "fft", "-m12", "-p4", "-t"],
        vec!["--placement", "round-robin", "fft", "-t", "-m12", "-p8"],
        vec!["fft", "-m12", "-t", "-p2", "--layout=reorg"],
        vec![
            "--pin", "cpu", "--layout", "reorg", "fft", "-m12", "-p4", "-t",
        ],
    ] {
        let r = results(&ok(&args));
        assert_eq!(r, base, "{args:?}");
    }
}

#[test]
fn fft_stats_print_a_line_per_thread() {
    let out = ok(&["fft", "-m8", "-p4", "-s"]);
    for label in [
        "    0 ", "    1 ", "    2 ", "    3 ", "  Avg ", "  Max ", "  Min ",
    ] {
        assert!(out.contains(label), "{label:?} in\n{out}");
    }
}

#[test]
fn fft_bad_flags_get_the_originals_messages() {
    fails(&["fft", "-m15"], "ERROR: M must be even");
    fails(&["fft", "-p3"], "ERROR: P must be a power of 2");
    fails(&["fft", "-p0"], "ERROR: P must be >= 1");
    fails(
        &["fft", "-m4", "-p8"],
        "Matrix not large enough. 2**(M/2) must be >= P",
    );
    // -m0 is one point: fine alone (as in the original), too small for 2 threads.
    fails(&["fft", "-m0", "-p2"], "Matrix not large enough");
    assert!(ok(&["fft", "-m0", "-t"]).contains("TEST PASSED"));
    fails(&["fft", "-n0"], "Number of cache lines must be >= 1");
    fails(&["fft", "-m", "x"], "-m: `x` is not a whole number");
    fails(&["fft", "-m"], "option requires an argument -- 'm'");
    fails(&["fft", "-q"], "invalid option -- 'q'");
    fails(&["fft", "-m40"], "M must be between 0 and 30");
    fails(&["fft", "-l0", "-n8"], "cache line");
    fails(&["--layout", "striped", "fft"], "unknown layout `striped`");
    fails(&["--placement", "spread", "fft"], "spread");
    fails(
        &["--pin", "core", "fft"],
        "--pin: unknown pinning `core` (expected `cpu` or `node`)",
    );
    fails(&["--rset", "node:77", "fft", "-m4"], "node:77");
    fails(&["nosuch"], "unknown program `nosuch`");
    fails(&[], "no program given");
    fails(&["--monitor"], "--monitor needs a value");
    let help = ok(&["fft", "-h"]);
    assert!(help.starts_with("Usage: FFT <options>"), "{help}");
    assert!(ok(&["fft3d", "-h"]).starts_with("Usage: fft3d <options>"));
    assert!(ok(&["ocean", "-h"]).contains("Usage: OCEAN <options>"));
}

#[test]
fn help_teaches_programs_flags_and_examples() {
    let help = ok(&["--help"]);
    for needle in [
        "fft3d",
        "-mM",
        "--rset",
        "--placement",
        "--pin",
        "--layout",
        "--monitor",
        "EXAMPLES",
        "orig",
        "reorg",
    ] {
        assert!(help.contains(needle), "{needle} in --help");
    }
}

/// Σ_k X[k] = n³·x[0] and Σ|X|² = n³·Σ|x|² for the DFT of x; both printed.
#[test]
fn fft3d_spectrum_obeys_the_dft_invariants_and_round_trips() {
    let n = 8usize;
    let out = ok(&["fft3d", "-n8", "-p3", "-t", "-d"]);
    let v = drand48(2 * n * n * n);
    let n3 = (n * n * n) as f64;
    let sum = format!("Spectrum sum is ({:.6}, {:.6})", n3 * v[0], n3 * v[1]);
    assert!(out.contains(&sum), "{sum} in\n{out}");
    let energy: f64 = v.iter().map(|a| a * a).sum::<f64>() * n3;
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("Spectrum energy is "))
        .expect("energy line");
    let printed: f64 = line.parse().unwrap();
    // Printed to 6 decimals; the FFT's rounding is far below that.
    assert!(
        (printed - energy).abs() < 1e-6 + 1e-12 * energy,
        "{printed} vs {energy}"
    );
    assert_eq!(out.matches("TEST PASSED").count(), 2, "{out}");
    assert!(out.contains("INVERSE FFT TEST RESULTS") && out.contains("DIRECT DFT TEST RESULTS"));
}

#[test]
fn fft3d_results_do_not_depend_on_threads_or_layout() {
    let base = results(&ok(&["fft3d", "-n16", "-p1", "-t"]));
    assert!(base.iter().any(|l| l.starts_with("Spectrum sum")));
    for args in [
        vec!["fft3d", "-n16", "-p2", "-t"],
        vec!["fft3d", "-n16", "-p5", "-t", "-s"],
        vec!["--layout", "reorg", "fft3d", "-n16", "-p4", "-t"],
        vec!["--placement", "round-robin", "fft3d", "-n16", "-p16", "-t"],
    ] {
        // Bit-for-bit: even the round-trip error is the same.
        assert_eq!(results(&ok(&args)), base, "{args:?}");
    }
}

#[test]
fn fft3d_bad_flags_name_the_culprit() {
    fails(&["fft3d", "-n100"], "N must be a power of 2");
    fails(&["fft3d", "-n4", "-p8"], "P (8) must be <= N (4)");
    fails(&["fft3d", "-n32", "-d"], "N must be <= 16");
    fails(&["fft3d", "-p0"], "P must be >= 1");
    fails(&["fft3d", "-x"], "invalid option -- 'x'");
}

#[test]
fn monitor_sessions_name_the_arrays_for_rset_mon() {
    let dir = std::env::temp_dir().join(format!("splash-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("fft3d.session");
    let f = file.to_str().unwrap();
    ok(&[
        "--monitor",
        f,
        "--monitor-overhead",
        "0",
        "--layout",
        "reorg",
        "fft3d",
        "-n32",
        "-p2",
        "-i50",
    ]);
    let json = Command::new(env!("CARGO_BIN_EXE_rset-mon"))
        .args(["report", f, "--json"])
        .output()
        .unwrap();
    assert!(json.status.success(), "{}", stderr(&json));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    // One filter per shared array, named by its label, whether sampled or not.
    let names: Vec<&str> = v["regions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.contains(&"fft3d.a") && names.contains(&"fft3d.b"),
        "{names:?}"
    );
    let samples = v["sampler"]["samples"].as_u64().unwrap();
    assert!(samples > 0, "no sample in a 50-round-trip run");
    // The table names the sampled areas.
    let report = Command::new(env!("CARGO_BIN_EXE_rset-mon"))
        .args(["report", f])
        .output()
        .unwrap();
    assert!(report.status.success(), "{}", stderr(&report));
    assert!(stdout(&report).contains("fft3d."), "{}", stdout(&report));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn refinement_flags_are_checked_before_anything_runs() {
    fails(
        &["--monitor-zoom", "x.session", "fft3d"],
        "--monitor-zoom needs --monitor FILE",
    );
    fails(
        &["--monitor", "o", "--monitor-top", "4", "fft3d"],
        "--monitor-top needs --monitor-zoom",
    );
    fails(
        &[
            "--monitor",
            "o",
            "--monitor-zoom",
            "p",
            "--monitor-top",
            "0",
            "fft3d",
        ],
        "--monitor-top: `0` is not a positive number",
    );
    fails(
        &["--monitor", "o", "--monitor-granularity", "100", "fft3d"],
        "--monitor-granularity `100`",
    );
    fails(
        &["--monitor", "o", "--monitor-granularity", "4M", "fft3d"],
        "--monitor-granularity `4M`",
    );
    fails(
        &["--monitor-granularity", "line", "fft3d"],
        "--monitor-granularity needs --monitor FILE",
    );
    fails(
        &[
            "--monitor",
            "o",
            "--monitor-zoom",
            "/nonexistent/p.session",
            "fft3d",
        ],
        "/nonexistent/p.session",
    );
    let help = ok(&["--help"]);
    for needle in [
        "--monitor-zoom",
        "--monitor-top",
        "--monitor-granularity",
        "compare",
    ] {
        assert!(help.contains(needle), "{needle} in --help");
    }
}

/// A 4-node session with `remote` of `samples` references remote, one array.
fn session_file(path: &std::path::Path, samples: u64, remote: u64) {
    use monitor::card::Card;
    use monitor::sample::{Access, Sample, SamplerStats};
    use monitor::{FilterSpec, Granularity, Label, SessionFile};
    let mut card = Card::new(4).unwrap();
    card.program(FilterSpec::new(0x100000, 1 << 20, Granularity::PAGE).name("fft3d.a"))
        .unwrap();
    for i in 0..samples {
        let s = Sample {
            addr: 0x100000 + (i % 256) * 4096,
            tid: 1,
            cpu: 0,
            node: 1,
            time_ns: i,
            access: Access::Read,
            source: None,
        };
        card.record(&s, if i < remote { 0 } else { 1 });
    }
    SessionFile::from_card(&card, SamplerStats::default())
        .with_labels(vec![Label::new(0x100000, 1 << 20, "fft3d.a")])
        .save(path)
        .unwrap();
}

#[test]
fn compare_prints_the_papers_table_with_intervals() {
    let dir = std::env::temp_dir().join(format!("splash-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |n: &str| dir.join(n).to_str().unwrap().to_owned();
    session_file(&dir.join("o1"), 600, 450);
    session_file(&dir.join("o2"), 400, 300);
    session_file(&dir.join("r1"), 1000, 50);
    session_file(&dir.join("z"), 500, 0);
    // Pooled: orig 750 of 1000 remote, reorg 50 of 1000: 15x, 95% CI 11.4-19.7.
    let out = ok(&[
        "compare",
        "fft3d",
        &format!("{},{}", path("o1"), path("o2")),
        &path("r1"),
        "ocean",
        &path("o1"),
        &path("z"),
    ]);
    let row = |needle: &str| {
        out.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in\n{out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("fft3d")[..7],
        ["fft3d", "orig", "2", "1000", "750", "75.0%", "±2.7"]
    );
    assert_eq!(
        row("15.0x")[..8],
        [
            "reorg",
            "1",
            "1000",
            "50",
            "5.0%",
            "±1.4",
            "15.0x",
            "(11.4-19.7)"
        ]
    );
    assert_eq!(*row("15.0x").last().unwrap(), "5.9x");
    assert!(
        out.contains(
            "fft3d: 15.0x fewer remote references, at least the paper's, with 95% confidence (5.9x)"
        ),
        "{out}"
    );
    assert!(
        out.contains("fft3d: reorg's remote samples by array: fft3d.a 50 of 1000"),
        "{out}"
    );
    // No remote sample in reorg: a lower bound by the rule of three.
    assert!(row(">=").contains(&"12.3x"), "{out}");

    fails(
        &["compare", "fft3d", &path("o1")],
        "expected NAME ORIG.session REORG.session",
    );
    fails(
        &["compare", "fft3d", &path("o1"), &path("nosuch")],
        "nosuch",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_one_node_machine_has_nothing_to_zoom_into_and_says_so() {
    let dir = std::env::temp_dir().join(format!("splash-zoom-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let r1 = dir.join("r1.session");
    let r1 = r1.to_str().unwrap();
    let o = splash(&["--monitor", r1, "fft3d", "-n16", "-p2", "-t"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // One summary line on stderr, naming the file and the report command.
    assert!(
        stderr(&o).contains(&format!("`rset-mon report {r1}` prints the table")),
        "{}",
        stderr(&o)
    );
    let nodes = monitor::SessionFile::load(r1).unwrap().machine.nodes;
    if nodes == 1 {
        fails(
            &[
                "--monitor",
                dir.join("r2.session").to_str().unwrap(),
                "--monitor-zoom",
                r1,
                "fft3d",
                "-n16",
                "-p2",
                "-t",
            ],
            "nothing to zoom into",
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
