//! `cargo xtask test`: every check, host and guests, one summary line.

use crate::cargo::{self, Metadata};
use crate::guest::{self, GuestRun, Status};
use crate::initramfs::Initramfs;
use crate::setup;
use crate::stacks;
use crate::topology::VmTopology;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

pub struct Options {
    pub lint: bool,
    pub host: bool,
    pub guest: bool,
    pub verbose: bool,
}

/// The machines every guest test runs in, one boot each.
pub fn guest_machines() -> Vec<VmTopology> {
    vec![
        VmTopology::new(2, 2, 512, 0),
        VmTopology::new(4, 2, 512, 0),
        VmTopology::new(2, 2, 512, 1),
    ]
}

/// Test counts of one step, and whether the step itself went wrong.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
    /// Failures that are not a failing test (a crash, a build error, a lint).
    pub problems: Vec<String>,
}

impl Tally {
    fn failures(&self) -> u64 {
        self.failed + self.problems.len() as u64
    }
}

struct Step {
    name: String,
    tally: Tally,
    time: Duration,
    counts_tests: bool,
}

pub fn run(opts: &Options) -> anyhow::Result<u8> {
    let started = Instant::now();
    setup::host_packages()?;
    let meta = cargo::metadata()?;
    let mut steps: Vec<Step> = Vec::new();

    if opts.lint {
        steps.push(timed("fmt", false, || {
            command_step(
                cargo::cargo().args(["fmt", "--all", "--", "--check"]),
                "cargo fmt --check found unformatted code (run `cargo fmt --all`)",
            )
        }));
        steps.push(timed("clippy", false, || {
            command_step(
                cargo::cargo().args([
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ]),
                "clippy found warnings",
            )
        }));
    }
    if opts.host {
        steps.push(timed("host tests", true, host_tests));
    }
    if opts.guest {
        guest_steps(&meta, opts.verbose, &mut steps)?;
    }

    eprintln!();
    eprintln!(
        "xtask test: summary ({:.0} s)",
        started.elapsed().as_secs_f64()
    );
    let (mut passed, mut failed) = (0, 0);
    for s in &steps {
        passed += s.tally.passed;
        failed += s.tally.failures();
        let verdict = if s.counts_tests {
            format!("{} passed, {} failed", s.tally.passed, s.tally.failed)
        } else if s.tally.problems.is_empty() {
            "ok".to_owned()
        } else {
            "FAILED".to_owned()
        };
        eprintln!(
            "  {:<52} {:<24} {:>6.1} s",
            s.name,
            verdict,
            s.time.as_secs_f64()
        );
        for p in &s.tally.problems {
            eprintln!("      - {p}");
        }
    }
    // The one line CI reads, alone on stdout's last line.
    let mut out = std::io::stdout().lock();
    writeln!(out, "{passed} passed, {failed} failed")?;
    Ok(if failed == 0 { 0 } else { 1 })
}

fn timed(name: &str, counts_tests: bool, f: impl FnOnce() -> Tally) -> Step {
    eprintln!("xtask test: {name}");
    let t = Instant::now();
    let tally = f();
    Step {
        name: name.to_owned(),
        tally,
        time: t.elapsed(),
        counts_tests,
    }
}

fn command_step(cmd: &mut std::process::Command, problem: &str) -> Tally {
    let mut tally = Tally::default();
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(_) => tally.problems.push(problem.to_owned()),
        Err(e) => tally.problems.push(format!("could not run: {e}")),
    }
    tally
}

/// `cargo test --workspace --no-fail-fast`, streamed and counted.
fn host_tests() -> Tally {
    // `cargo test` builds no cdylib artifact; rset-run's host tests need
    // librset_preload.so next to the test build's binaries.
    let built = cargo::cargo()
        .args(["build", "-p", "rset-preload"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !built {
        return Tally {
            problems: vec!["cargo build -p rset-preload failed (see its messages above)".into()],
            ..Tally::default()
        };
    }
    let mut cmd = cargo::cargo();
    cmd.args(["test", "--workspace", "--no-fail-fast"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Tally {
                problems: vec![format!("could not run cargo test: {e}")],
                ..Tally::default()
            };
        }
    };
    let mut text = String::new();
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        println!("{line}");
        text.push_str(&line);
        text.push('\n');
    }
    let ok = child.wait().map(|s| s.success()).unwrap_or(false);
    let mut tally = count_libtest(&text);
    if !ok && tally.failed == 0 {
        tally
            .problems
            .push("cargo test failed without a failing test: a build error or a crash".into());
    }
    tally
}

/// Sums libtest's `test result:` lines.
pub fn count_libtest(text: &str) -> Tally {
    let mut t = Tally::default();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            continue;
        };
        for part in rest.split(';') {
            let part = part
                .trim()
                .trim_start_matches("ok. ")
                .trim_start_matches("FAILED. ");
            let mut words = part.split_whitespace();
            if let (Some(n), Some(what)) = (words.next(), words.next()) {
                let n: u64 = n.parse().unwrap_or(0);
                match what {
                    "passed" => t.passed += n,
                    "failed" => t.failed += n,
                    _ => {}
                }
            }
        }
    }
    t
}

/// Marker the guest runner prints after each test binary.
const DONE: &str = "xtask-test: done ";

/// Counts a guest run: libtest lines per binary, and a binary that exited non-zero
/// without a failing test (a crash) as one failure.
pub fn count_guest(text: &str) -> Tally {
    let mut total = Tally::default();
    let mut section = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(DONE) {
            let t = count_libtest(&section);
            let (name, rc) = rest.rsplit_once(" exit=").unwrap_or((rest, "?"));
            if section.contains(TIMED_OUT) {
                total.problems.push(format!(
                    "{name} ran out of time ({} s); its threads are printed above",
                    BINARY_LIMIT.as_secs()
                ));
            } else if rc != "0" && t.failed == 0 {
                total.problems.push(format!(
                    "{name} exited {rc} without a failing test (crashed?)"
                ));
            }
            total.passed += t.passed;
            total.failed += t.failed;
            section.clear();
        } else {
            section.push_str(line);
            section.push('\n');
        }
    }
    total
}

/// What the guest runner prints when a test binary ran out of time.
const TIMED_OUT: &str = "xtask-test: out of time: ";
/// The time one guest test binary may take (the longest takes about 3 minutes in
/// the 4-node guest): a hang fails that binary with its threads' stacks, and the
/// binaries after it still run.
const BINARY_LIMIT: Duration = Duration::from_secs(600);

/// The guest's test runner: each binary in the background, watched; one that runs
/// past [`BINARY_LIMIT`] gets its threads printed (`xtask stacks`) and is killed.
fn runner_script(tests: &[(String, std::path::PathBuf)], xtask: &std::path::Path) -> String {
    let mut s = String::from("status=0\n");
    let limit = BINARY_LIMIT.as_secs();
    for (name, exe) in tests {
        s += &format!(
            "echo '==> {name}'\n\
             '{exe}' &\n\
             pid=$!\n\
             ( i=0; while [ $i -lt {limit} ]; do sleep 1; kill -0 $pid 2>/dev/null || exit 0; \
             i=$((i+1)); done; echo \"{TIMED_OUT}{name} ran {limit} s; its threads:\"; \
             '{xtask}' stacks $pid; kill -9 $pid ) &\n\
             wd=$!\n\
             wait $pid\n\
             rc=$?\n\
             kill $wd 2>/dev/null\n\
             wait $wd 2>/dev/null\n\
             echo \"{DONE}{name} exit=$rc\"\n\
             [ $rc -eq 0 ] || status=1\n",
            exe = exe.display(),
            xtask = xtask.display(),
        );
    }
    s += "exit $status\n";
    s
}

/// The harness itself: a guest command's exit status comes back, and a command
/// that is not in the guest is reported as such (127). Two tests.
fn self_check(assets: &setup::GuestAssets, bins: &[std::path::PathBuf], verbose: bool) -> Tally {
    let mut tally = Tally::default();
    let cases: [(&[&str], Status); 2] = [
        (&["sh", "-c", "exit 7"], Status::Exited(7)),
        (
            &["no-such-command-here"],
            Status::NotFound(
                "`no-such-command-here` was not found in the guest (not a workspace binary, \
                 a busybox applet or a --copy'd file)"
                    .into(),
            ),
        ),
    ];
    for (command, want) in cases {
        let run = GuestRun {
            topology: VmTopology::new(2, 1, 256, 0),
            command: command.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            path_dirs: cargo::bin_dirs(bins),
            numa_balancing: false,
            timeout: Duration::from_secs(300),
            verbose,
            echo: false,
        };
        match guest::boot(assets, Initramfs::new(), &run) {
            Ok(o) if o.status == want => tally.passed += 1,
            Ok(o) => tally
                .problems
                .push(format!("{command:?}: got {:?}, want {want:?}", o.status)),
            Err(e) => tally.problems.push(format!("{command:?}: {e:#}")),
        }
    }
    tally
}

fn guest_steps(meta: &Metadata, verbose: bool, steps: &mut Vec<Step>) -> anyhow::Result<()> {
    eprintln!("xtask test: building release binaries and guest tests");
    let built = Instant::now();
    let build = cargo::build_release_bins().and_then(|bins| {
        let tests = cargo::build_guest_tests(meta)?;
        Ok((bins, tests))
    });
    let (bins, tests) = match build {
        Ok(b) => b,
        Err(e) => {
            steps.push(Step {
                name: "guest build".into(),
                tally: Tally {
                    problems: vec![format!("{e:#}")],
                    ..Tally::default()
                },
                time: built.elapsed(),
                counts_tests: false,
            });
            return Ok(());
        }
    };
    let assets = setup::guest_assets(&meta.xtask_dir())?;
    steps.push(timed(
        "harness self-check (exit status, missing command)",
        true,
        || self_check(&assets, &bins, verbose),
    ));
    for machine in guest_machines() {
        let name = format!("guest {}", machine.describe());
        let step = timed(&name, true, || {
            let result = (|| -> anyhow::Result<Tally> {
                let mut fs = Initramfs::new();
                for b in &bins {
                    fs.add_host_path(b)?;
                }
                for (_, exe) in &tests {
                    fs.add_host_path(exe)?;
                }
                let xtask = stacks::me()?;
                fs.add_host_path(&xtask)?;
                fs.add_bytes("/xtask/run-tests", runner_script(&tests, &xtask), 0o755);
                let run = GuestRun {
                    topology: machine.clone(),
                    command: vec!["sh".into(), "/xtask/run-tests".into()],
                    env: Vec::new(),
                    path_dirs: cargo::bin_dirs(&bins),
                    numa_balancing: false,
                    timeout: Duration::from_secs(1800),
                    verbose,
                    echo: true,
                };
                let outcome = guest::boot(&assets, fs, &run)?;
                let mut tally = count_guest(&outcome.stdout);
                match outcome.status {
                    Status::Exited(_) => {}
                    other => tally.problems.push(format!("the guest failed: {other:?}")),
                }
                Ok(tally)
            })();
            result.unwrap_or_else(|e| Tally {
                problems: vec![format!("{e:#}")],
                ..Tally::default()
            })
        });
        steps.push(step);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtest_lines_are_summed() {
        let text = "test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s\n\
                    noise\n\
                    test result: FAILED. 2 passed; 5 failed; 0 ignored; 0 measured; 0 filtered out\n";
        let t = count_libtest(text);
        assert_eq!((t.passed, t.failed), (5, 5));
    }

    #[test]
    fn a_crashed_guest_binary_counts_as_a_failure() {
        let text = "==> a\ntest result: ok. 4 passed; 0 failed; 0 ignored\nxtask-test: done a exit=0\n\
                    ==> b\nSegmentation fault\nxtask-test: done b exit=139\n";
        let t = count_guest(text);
        assert_eq!((t.passed, t.failed), (4, 0));
        assert_eq!(
            t.problems,
            vec!["b exited 139 without a failing test (crashed?)"]
        );
        assert_eq!(t.failures(), 1);
    }

    #[test]
    fn a_guest_binary_out_of_time_is_named_once() {
        let text = format!(
            "==> a\ntest x has been running for over 60 seconds\n{TIMED_OUT}a ran 600 s; its threads:\n\
             thread 7 \"a\" state R\nxtask-test: done a exit=137\n"
        );
        let t = count_guest(&text);
        assert_eq!(
            t.problems,
            vec!["a ran out of time (600 s); its threads are printed above"]
        );
    }

    #[test]
    fn the_runner_watches_every_binary_and_reports_its_status() {
        let tests = [("p/t".to_string(), std::path::PathBuf::from("/x/t-1"))];
        let s = runner_script(&tests, "/x/xtask".as_ref());
        assert!(s.contains("'/x/t-1' &\npid=$!\n"), "{s}");
        assert!(s.contains("'/x/xtask' stacks $pid; kill -9 $pid"), "{s}");
        assert!(s.contains("wait $pid\nrc=$?\n"), "{s}");
        assert!(s.contains("xtask-test: done p/t exit=$rc"), "{s}");
        assert!(s.ends_with("exit $status\n"), "{s}");
    }

    #[test]
    fn a_failing_guest_binary_is_not_counted_twice() {
        let text =
            "test result: FAILED. 1 passed; 2 failed; 0 ignored\nxtask-test: done a exit=101\n";
        let t = count_guest(text);
        assert_eq!((t.passed, t.failed, t.problems.len()), (1, 2, 0));
    }
}
