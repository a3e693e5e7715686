//! `rset-run --report`: the log the library appends records to while the program
//! runs, and the JSON report made from it.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use rset_protocol::Record;
use serde::Serialize;

use super::cli::Cli;
use super::plan::PlanEntry;
use crate::cli::Failure;

/// A new, empty log file in the temporary directory.
pub(super) fn new_log() -> Result<PathBuf, Failure> {
    let dir = std::env::temp_dir();
    for i in 0..100u32 {
        let p = dir.join(format!("rset-run.{}.{i}.log", std::process::id()));
        if std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
            .is_ok()
        {
            return Ok(p);
        }
    }
    Err(Failure::runtime(format!(
        "cannot create a log file in {}",
        dir.display()
    )))
}

#[derive(Serialize)]
struct Report<'a> {
    program: Vec<String>,
    rset: &'a str,
    threads_placement: String,
    mem: &'a str,
    plan: &'a [PlanEntry<'a>],
    threads: Vec<Record>,
    memory: Vec<Record>,
    exit_code: Option<i32>,
    signal: Option<i32>,
}

/// Writes the report of a finished run: the plan, then the records the library
/// logged (threads and per-process memory), then how the program ended.
pub(super) fn write_report(
    path: &Path,
    cli: &Cli,
    plan: &[PlanEntry<'_>],
    log: &str,
    status: std::process::ExitStatus,
) -> Result<(), Failure> {
    let mut threads = Vec::new();
    let mut memory = Vec::new();
    let mut bad = 0usize;
    for line in log.lines().filter(|l| !l.is_empty()) {
        match serde_json::from_str::<Record>(line) {
            Ok(r @ Record::Thread { .. }) => threads.push(r),
            Ok(r @ Record::Exit { .. }) => memory.push(r),
            Err(_) => bad += 1,
        }
    }
    if bad > 0 {
        eprintln!("rset-run: {bad} unreadable lines in the run's log were left out of the report");
    }
    let report = Report {
        program: cli
            .command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        rset: &cli.rset,
        threads_placement: cli.threads.to_string(),
        mem: &cli.mem,
        plan,
        threads,
        memory,
        exit_code: status.code(),
        signal: status.signal(),
    };
    let text = serde_json::to_string_pretty(&report).map_err(Failure::runtime)? + "\n";
    std::fs::write(path, text)
        .map_err(|e| Failure::runtime(format!("writing the report {}: {e}", path.display())))?;
    Ok(())
}
