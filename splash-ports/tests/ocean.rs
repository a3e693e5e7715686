//! Ocean on the host: the C original's results, independence from the thread count and
//! the layout, and the original's errors for bad flags.
//!
//! The reference lines below were recorded from the original SPLASH-2 C program
//! (`apps/ocean/contiguous_partitions`, built with gcc -O3 and pthread PARMACS macros):
//! a port is right when it prints what the original prints, so these numbers are the
//! point of the test, not a snapshot of our own output.

use splash_ports::framework::{DataLayout, RunConfig, SplashError};
use splash_ports::ocean;

/// Runs `ocean ARGS` with `layout`; returns its output or its error.
fn run(args: &str, layout: DataLayout) -> Result<String, SplashError> {
    let args: Vec<String> = args.split_whitespace().map(String::from).collect();
    let cfg = RunConfig {
        layout,
        ..RunConfig::default()
    };
    let mut out = Vec::new();
    ocean::run(&args, &cfg, &mut out)?;
    Ok(String::from_utf8(out).expect("output is UTF-8"))
}

fn output(args: &str) -> String {
    run(args, DataLayout::Orig).unwrap_or_else(|e| panic!("ocean {args}: {e}"))
}

/// Everything before the timing statistics (which differ from run to run).
fn results(out: &str) -> &str {
    out.split("                       PROCESS STATISTICS")
        .next()
        .unwrap_or(out)
}

/// The multigrid lines, parsed: (iterations, level, residual norm, work).
fn solves(out: &str) -> Vec<(u32, u32, f64, f64)> {
    out.lines()
        .filter(|l| l.starts_with("iter "))
        .map(|l| {
            let f: Vec<&str> = l
                .split(|c: char| c == ',' || c == '=' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .collect();
            // iter N level L residual norm R work W
            (
                f[1].parse().expect("iter"),
                f[3].parse().expect("level"),
                f[6].parse().expect("residual"),
                f[8].parse().expect("work"),
            )
        })
        .collect()
}

/// `ocean -n66 -p1 -o`, from the C original.
const C_N66_P1: &str = "
Ocean simulation with W-cycle multigrid solver
    Processors                         : 1
    Grid size                          : 66 x 66
    Grid resolution (meters)           : 20000.00
    Time between relaxations (seconds) : 28800
    Error tolerance                    : 1e-07

                       MULTIGRID OUTPUTS
iter 66, level 5, residual norm 5.01343820e-08, work =  33.188
iter 38, level 5, residual norm 6.58823562e-08, work =  16.625
iter 29, level 5, residual norm 9.39384792e-08, work =  12.500
iter 20, level 5, residual norm 5.36142060e-08, work =   9.312
iter 11, level 5, residual norm 9.26406651e-08, work =   5.188
iter 10, level 5, residual norm 7.05733686e-08, work =   7.750
iter 4, level 5, residual norm 9.62600384e-08, work =   4.000
iter 13, level 5, residual norm 9.76539230e-08, work =   7.188
iter 11, level 5, residual norm 9.39260407e-08, work =   5.188
iter 10, level 5, residual norm 2.59966986e-08, work =   7.750
iter 4, level 5, residual norm 8.67515748e-08, work =   4.000
iter 14, level 5, residual norm 7.35023841e-08, work =   8.188
iter 12, level 5, residual norm 9.77325291e-08, work =   6.188

";

/// `ocean -n34 -p2 -o -e1e-8 -r10000 -t14400`, from the C original (12 time steps).
const C_N34_P2_FLAGS: &str = "
Ocean simulation with W-cycle multigrid solver
    Processors                         : 2
    Grid size                          : 34 x 34
    Grid resolution (meters)           : 10000.00
    Time between relaxations (seconds) : 14400
    Error tolerance                    : 1e-08

                       MULTIGRID OUTPUTS
iter 109, level 3, residual norm 5.61140501e-09, work =  42.016
iter 57, level 3, residual norm 6.81994432e-09, work =  23.531
iter 47, level 3, residual norm 8.25204241e-09, work =  19.344
iter 31, level 3, residual norm 8.63150096e-09, work =  12.625
iter 22, level 3, residual norm 4.55555141e-09, work =   9.438
iter 40, level 3, residual norm 7.12951602e-09, work =  19.562
iter 30, level 3, residual norm 8.41911835e-09, work =  15.375
iter 26, level 3, residual norm 8.62144956e-09, work =  12.688
iter 24, level 3, residual norm 5.85753828e-09, work =  10.688
iter 35, level 3, residual norm 9.58973781e-09, work =  17.562
iter 33, level 3, residual norm 8.62243020e-09, work =  16.688
iter 33, level 3, residual norm 5.29337736e-09, work =  17.250
iter 33, level 3, residual norm 8.89599325e-09, work =  15.562
iter 51, level 3, residual norm 8.84558347e-09, work =  24.938
iter 54, level 3, residual norm 8.97194319e-09, work =  25.125
iter 60, level 3, residual norm 6.35895334e-09, work =  27.750
iter 53, level 3, residual norm 7.09350086e-09, work =  25.812
iter 82, level 3, residual norm 6.86881033e-09, work =  35.688
iter 82, level 3, residual norm 4.57076055e-09, work =  35.875
iter 79, level 3, residual norm 9.67658409e-09, work =  35.922
iter 79, level 3, residual norm 8.88558627e-09, work =  35.312
iter 103, level 3, residual norm 6.52181464e-09, work =  44.125
iter 103, level 3, residual norm 8.97366803e-09, work =  44.125
iter 101, level 3, residual norm 8.98657504e-09, work =  45.594
iter 104, level 3, residual norm 6.37944630e-09, work =  44.938

";

#[test]
fn prints_what_the_c_original_prints() {
    assert_eq!(results(&output("-n66 -p1 -o")), C_N66_P1);
    assert_eq!(
        results(&output("-n34 -p2 -o -e1e-8 -r10000 -t14400")),
        C_N34_P2_FLAGS
    );
}

#[test]
fn prints_the_statistics_sections() {
    let out = output("-n18 -p2 -s");
    for heading in [
        "PROCESS STATISTICS",
        "TIMING INFORMATION",
        "Total time without initialization :",
        "    (excludes first timestep)",
    ] {
        assert!(out.contains(heading), "missing `{heading}` in:\n{out}");
    }
    // -s adds a line per thread after 0, then Avg, Min, Max.
    assert!(out.lines().any(|l| l.starts_with("    1   ")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("  Max   ")), "{out}");
    // Without -o there are no multigrid lines.
    assert!(solves(&out).is_empty());
}

/// The same simulation whatever the thread count. Tolerance: the iteration counts and
/// work are equal, the residual norms agree to 1e-6 relative (they are printed with 9
/// digits; only the order of the global sums' additions differs). The level printed is
/// the finest level's number, which is one lower with more than one thread (the
/// original's mesh of processors leaves out the coarsest level).
#[test]
fn same_results_for_1_2_and_4_threads() {
    for n in [18, 34, 66] {
        let one = solves(&output(&format!("-n{n} -p1 -o")));
        assert_eq!(one.len(), 13, "-n{n}: one line per solve");
        for p in [2, 4] {
            let many = solves(&output(&format!("-n{n} -p{p} -o")));
            assert_eq!(many.len(), one.len(), "-n{n} -p{p}");
            for (a, b) in one.iter().zip(&many) {
                assert_eq!((a.0, a.3), (b.0, b.3), "-n{n} -p{p}: iterations, work");
                assert_eq!(b.1 + 1, a.1, "-n{n} -p{p}: finest level number");
                assert!(
                    ((a.2 - b.2) / a.2).abs() <= 1e-6,
                    "-n{n} -p{p}: residual {} vs {}",
                    a.2,
                    b.2
                );
            }
        }
    }
}

/// Where the arrays live changes nothing in the results: orig and reorg print the same.
#[test]
fn same_results_in_both_layouts() {
    for args in ["-n34 -p4 -o", "-n66 -p2 -o"] {
        let orig = run(args, DataLayout::Orig).expect("orig");
        let reorg = run(args, DataLayout::Reorg).expect("reorg");
        assert_eq!(results(&orig), results(&reorg), "ocean {args}");
        assert_eq!(solves(&orig).len(), 13);
    }
}

fn usage_error(args: &str) -> String {
    match run(args, DataLayout::Orig) {
        Err(SplashError::Usage(msg)) => msg,
        other => panic!("ocean {args}: expected a usage error, got {other:?}"),
    }
}

#[test]
fn bad_flags_get_the_originals_messages() {
    assert_eq!(
        usage_error("-n100"),
        "-n100: Grid must be ((power of 2)+2) in each dimension"
    );
    assert!(usage_error("-n1").contains("Grid must be ((power of 2)+2)"));
    assert!(usage_error("-nabc").contains("Grid must be ((power of 2)+2)"));
    assert_eq!(usage_error("-p3"), "-p3: P must be a power of 2");
    assert_eq!(usage_error("-p0"), "-p0: P must be >= 1");
    assert_eq!(usage_error("-p-4"), "-p-4: P must be >= 1");
    assert!(usage_error("-x").contains("invalid option -- 'x'"));
    assert!(usage_error("-n").contains("requires an argument"));
    assert_eq!(usage_error("-eabc"), "-eabc: not a number");
    assert_eq!(usage_error("-t0"), "-t0: must be > 0");
    // A time step whose day counter stops short of day 2 (the original loops forever).
    assert!(usage_error("-t51840").contains("never end"));
}

#[test]
fn more_threads_than_the_grid_allows() {
    // 16 interior points: 64 threads (8 x 8) leave 2 x 2 each, 128 (8 x 16) too few.
    assert!(run("-n18 -p64 -o", DataLayout::Orig).is_ok());
    assert_eq!(
        usage_error("-n18 -p128"),
        "-n18 -p128: Must have at least 2 grid points per processor in each dimension"
    );
    assert!(usage_error("-n6 -p16").contains("Must have at least 2 grid points"));
}

#[test]
fn a_solver_that_cannot_converge_stops_at_the_work_limit() {
    // Tolerance 0 is never reached: the original gives up after 10000 sweeps.
    assert_eq!(
        usage_error("-n10 -e0"),
        "Maximum work limit 10000.00000 exceeded"
    );
}

#[test]
fn help_prints_the_options() {
    let out = output("-h");
    assert!(out.starts_with("Usage: OCEAN <options>"), "{out}");
    assert!(out.contains("Default: OCEAN -n258 -p1 -e1e-07 -r20000 -t28800"));
}
