//! `rset-run` and `rset-mon record`/`refine` on the host: what they refuse and how
//! they say it, and a placed run's report. (Placement on real multi-node topologies is
//! checked in the emulated machines: `guest_preload.rs`.)

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};

fn rset_run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rset-run"))
        .args(args)
        .env_remove("OMP_PLACES")
        .env_remove("OMP_PROC_BIND")
        .env_remove("GOMP_CPU_AFFINITY")
        .output()
        .expect("running rset-run")
}

fn rset_mon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rset-mon"))
        .args(args)
        .output()
        .expect("running rset-mon")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One line on stderr, starting with the command's name, and this status.
fn one_line_error(o: &Output, command: &str, code: i32, needle: &str) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{e}");
    assert_eq!(e.lines().count(), 1, "one line: {e}");
    assert!(e.starts_with(&format!("{command}: ")), "{e}");
    assert!(e.contains(needle), "`{needle}` not in: {e}");
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rset-run-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn a_missing_program_is_127_and_a_plain_file_126() {
    let o = rset_run(&["--", "no-such-program-here"]);
    one_line_error(
        &o,
        "rset-run",
        127,
        "no-such-program-here: command not found",
    );
    let f = tmp("data");
    std::fs::write(&f, b"x").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = rset_run(&["--", f.to_str().unwrap()]);
    one_line_error(&o, "rset-run", 126, "not executable");
    let o = rset_mon(&["record", "--", "no-such-program-here"]);
    one_line_error(&o, "rset-mon", 127, "command not found");
}

#[test]
fn a_static_program_is_refused_with_the_reason() {
    let src = tmp("static.c");
    let exe = tmp("static");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let built = Command::new("gcc")
        .args(["-static", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("gcc (needed by the tools' build script too)");
    assert!(
        built.success(),
        "gcc -static failed: is libc6-dev installed?"
    );
    let o = rset_run(&["--", exe.to_str().unwrap()]);
    one_line_error(&o, "rset-run", 2, "statically linked");
    let o = rset_mon(&["record", "--", exe.to_str().unwrap()]);
    one_line_error(&o, "rset-mon", 2, "statically linked");
}

#[test]
fn a_setuid_program_of_another_user_is_refused() {
    if !is_root() {
        eprintln!("skipped: needs root to make a set-user-ID file owned by someone else");
        return;
    }
    let exe = tmp("suid-true");
    std::fs::copy("/bin/true", &exe).unwrap();
    let ok = Command::new("chown")
        .arg("nobody")
        .arg(&exe)
        .status()
        .unwrap();
    assert!(ok.success());
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let o = rset_run(&["--", exe.to_str().unwrap()]);
    one_line_error(&o, "rset-run", 2, "set-user-ID");
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

#[test]
fn bad_arguments_name_the_culprit() {
    one_line_error(
        &rset_run(&["--mem", "striped:0", "--", "true"]),
        "rset-run",
        2,
        "striped:0",
    );
    one_line_error(
        &rset_run(&["--mem", "stripd:2", "--", "true"]),
        "rset-run",
        2,
        "stripd:2",
    );
    one_line_error(
        &rset_run(&["--rset", "node:99", "--", "true"]),
        "rset-run",
        2,
        "node 99",
    );
    one_line_error(
        &rset_run(&["--skip", "1-x", "--", "true"]),
        "rset-run",
        2,
        "--skip 1-x",
    );
    let o = Command::new(env!("CARGO_BIN_EXE_rset-run"))
        .args(["--", "true"])
        .env("OMP_PLACES", "cores")
        .output()
        .unwrap();
    one_line_error(&o, "rset-run", 2, "OMP_PLACES");
    let o = Command::new(env!("CARGO_BIN_EXE_rset-run"))
        .args(["--", "true"])
        .env("OMP_PROC_BIND", "close")
        .output()
        .unwrap();
    one_line_error(&o, "rset-run", 2, "OMP_PROC_BIND=close");
    one_line_error(
        &rset_mon(&["record", "--filter", "0x1000:8M", "--", "true"]),
        "rset-mon",
        2,
        "START:SIZE:GRAN",
    );
    one_line_error(
        &rset_mon(&["record", "--filter", "0x1000:0:page", "--", "true"]),
        "rset-mon",
        2,
        "size is 0",
    );
    one_line_error(
        &rset_mon(&["record", "--granularity", "3000", "--", "true"]),
        "rset-mon",
        2,
        "3000",
    );
    one_line_error(
        &rset_mon(&["record", "--min-size", "12Q", "--", "true"]),
        "rset-mon",
        2,
        "12Q",
    );
    one_line_error(
        &rset_mon(&["refine", "--rounds", "1", "--", "true"]),
        "rset-mon",
        2,
        "--rounds 1",
    );
    one_line_error(
        &rset_mon(&["refine", "--granularity", "line", "--", "true"]),
        "rset-mon",
        2,
        "above 64 B",
    );
}

/// The library is built by `cargo build` (and by `cargo xtask test` before the host
/// tests: `cargo test` alone builds no cdylib), next to the binaries.
fn library_built() -> bool {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_rset-run"));
    exe.with_file_name("librset_preload.so").is_file()
}

#[test]
fn a_report_names_each_thread_where_it_ran() {
    assert!(
        library_built(),
        "librset_preload.so not built: run `cargo build -p rset-preload` first (cargo xtask test does)"
    );
    let report = tmp("report.json");
    let o = rset_run(&[
        "--mem",
        "local",
        "--report",
        report.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "the program's status passes through: {}",
        stderr(&o)
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["exit_code"], 3);
    assert_eq!(r["mem"], "local");
    let threads = r["threads"].as_array().unwrap();
    assert!(!threads.is_empty(), "{r}");
    let main = &threads[0];
    assert_eq!(main["slot"], 0);
    assert_eq!(
        main["cpu"], r["plan"][0]["cpu"],
        "the main thread runs on slot 0's CPU: {r}"
    );
}

#[test]
fn verbose_prints_the_plan_first() {
    assert!(
        library_built(),
        "librset_preload.so not built: run `cargo build -p rset-preload` first (cargo xtask test does)"
    );
    let o = rset_run(&["-v", "--threads", "round-robin", "--", "true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("rset-run: slot  cpu  node  memory"), "{e}");
    assert!(e.contains("round-robin placement"), "{e}");
}

#[test]
fn skipped_threads_take_no_slot() {
    assert!(
        library_built(),
        "librset_preload.so not built: run `cargo build -p rset-preload` first (cargo xtask test does)"
    );
    let placed = tmp("placed");
    std::fs::write(&placed, include_bytes!(concat!(env!("OUT_DIR"), "/placed"))).unwrap();
    std::fs::set_permissions(&placed, std::fs::Permissions::from_mode(0o755)).unwrap();
    let report = tmp("skip.json");
    let o = rset_run(&[
        "--skip",
        "1",
        "--report",
        report.to_str().unwrap(),
        "--",
        placed.to_str().unwrap(),
        "3",
        "4096",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let mut by_created: Vec<(u64, serde_json::Value)> = r["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["created"].as_u64().unwrap(), t["slot"].clone()))
        .collect();
    by_created.sort_by_key(|(c, _)| *c);
    let slots = r["plan"].as_array().unwrap().len() as u64;
    let want: Vec<(u64, serde_json::Value)> = vec![
        (0, 0.into()),
        (1, serde_json::Value::Null),
        (2, (1 % slots).into()),
        (3, (2 % slots).into()),
    ];
    assert_eq!(by_created, want, "{r}");
}

#[test]
fn the_report_counts_every_threads_heap_blocks() {
    assert!(
        library_built(),
        "librset_preload.so not built: run `cargo build -p rset-preload` first (cargo xtask test does)"
    );
    // More threads than the preload has counters of their own (255): the later
    // ones share one. Each thread allocates two blocks; stdio and the C library's
    // per-thread bookkeeping add a few of their own.
    let n = 600u64;
    let churn = tmp("churn");
    std::fs::write(&churn, include_bytes!(concat!(env!("OUT_DIR"), "/churn"))).unwrap();
    std::fs::set_permissions(&churn, std::fs::Permissions::from_mode(0o755)).unwrap();
    let report = tmp("churn.json");
    let o = rset_run(&[
        "--report",
        report.to_str().unwrap(),
        "--",
        churn.to_str().unwrap(),
        &n.to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(&format!("threads {n} bad 0")), "{out}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    // One record per process that exits normally: this one and its exec'd child.
    let blocks: Vec<u64> = r["memory"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["blocks"].as_u64().unwrap())
        .collect();
    let most = blocks.iter().copied().max().unwrap_or(0);
    assert!(
        (2 * n + 1..=4 * n).contains(&most),
        "{most} blocks counted for {n} threads of 2 blocks each: {blocks:?}"
    );
}
