//! `rset-run`: places every thread and every heap block of an unmodified program.
//!
//! The arguments are in `cli.rs`. The plan (`plan.rs`) is a [`RunConfig`] handed
//! to `librset_preload.so` in the environment ([`rset_protocol`]); the program is
//! exec'd, or, with `--report`, run as a child whose log becomes the report
//! (`report.rs`). (The adaptation loop, `--adapt`, gets its own file here.)

mod cli;
mod plan;
mod report;

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use clap::Parser;
use rset::{RSet, Topology};
use rset_protocol::{MON_ENV, RUN_ENV, RunConfig};

use crate::cli::Failure;
use crate::launch;
use cli::Cli;

/// The `rset-run` command: parses the arguments, runs the program placed, and
/// gives its exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(f) => f.report("rset-run"),
    }
}

fn run(cli: &Cli) -> Result<ExitCode, Failure> {
    let topo = Topology::from_system().map_err(Failure::runtime)?;
    let rset = RSet::parse(&cli.rset, &topo).map_err(Failure::usage)?;
    let mut config: RunConfig = plan::config(cli, &topo, &rset)?;
    check_openmp_env()?;
    let program = launch::resolve(&cli.command[0])?;
    launch::check_preloadable(&program)?;
    let library = launch::library()?;

    let log_path = match &cli.report {
        Some(_) => Some(report::new_log()?),
        None => None,
    };
    config.log = log_path.as_ref().map(|p| p.display().to_string());
    if cli.verbose {
        plan::print(cli, &config);
    }
    let value = config.to_env_value().map_err(Failure::runtime)?;
    let mut cmd = Command::new(&program);
    cmd.arg0(&cli.command[0])
        .args(&cli.command[1..])
        .env("LD_PRELOAD", launch::ld_preload(&library))
        .env(RUN_ENV, value)
        .env_remove(MON_ENV);
    if std::env::var_os("OMP_NUM_THREADS").is_none() {
        cmd.env("OMP_NUM_THREADS", config.slots.len().to_string());
    }
    if std::env::var_os("KMP_AFFINITY").is_none() {
        cmd.env("KMP_AFFINITY", "disabled");
    }
    let Some(report) = &cli.report else {
        let err = cmd.exec();
        return Err(
            Failure::runtime(format!("cannot run {}: {err}", program.display())).with_code(126),
        );
    };
    let log_path = log_path.unwrap_or_default();
    let status = cmd.status().map_err(|e| {
        Failure::runtime(format!("cannot run {}: {e}", program.display())).with_code(126)
    })?;
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    report::write_report(report, cli, &plan::entries(&config), &log, status)?;
    Ok(ExitCode::from(launch::status_code(status)))
}

/// OpenMP settings that would re-pin the threads rset-run places.
fn check_openmp_env() -> Result<(), Failure> {
    for var in ["OMP_PLACES", "GOMP_CPU_AFFINITY"] {
        if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
            return Err(Failure::usage(format!(
                "{var} is set: the OpenMP runtime would re-pin the threads rset-run places; \
                 unset it (rset-run pins OpenMP threads itself)"
            )));
        }
    }
    if let Some(v) = std::env::var_os("OMP_PROC_BIND") {
        let v = v.to_string_lossy().to_ascii_lowercase();
        if !v.is_empty() && v != "false" {
            return Err(Failure::usage(format!(
                "OMP_PROC_BIND={v}: the OpenMP runtime would re-pin the threads rset-run \
                 places; unset it or set it to false"
            )));
        }
    }
    Ok(())
}
