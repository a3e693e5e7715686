//! `rset-mon record`: an unmodified program run under the monitor (the preloaded
//! library watches its heap), and its session summarised.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command as Process, ExitCode, ExitStatus};

use monitor::{Report, SessionFile};
use rset_protocol::{LIBRARY, MON_ENV, MonConfig};

use super::args::{filter, granularity, size};
use super::cli::RecordOpts;
use crate::cli::Failure;
use crate::launch;

/// Runs `command` under the monitor with `config` (its parent filled in here) and
/// returns its exit status.
pub(super) fn run_monitored(
    command: &[OsString],
    mut config: MonConfig,
) -> Result<ExitStatus, Failure> {
    let program = launch::resolve(&command[0])?;
    launch::check_preloadable(&program)?;
    let library = launch::library()?;
    // Addresses of one run are those of the next (refinement, --filter).
    nix::sys::personality::set(
        nix::sys::personality::get().unwrap_or(nix::sys::personality::Persona::empty())
            | nix::sys::personality::Persona::ADDR_NO_RANDOMIZE,
    )
    .map_err(|e| Failure::runtime(format!("cannot turn off address randomisation: {e}")))?;
    config.parent = std::process::id();
    let value = config.to_env_value().map_err(Failure::runtime)?;
    let mut cmd = Process::new(&program);
    std::os::unix::process::CommandExt::arg0(&mut cmd, &command[0]);
    cmd.args(&command[1..]).env(MON_ENV, value);
    // Under rset-run the library is preloaded already (and rset-run's plan is in
    // the environment): keep LD_PRELOAD as it is.
    let preloaded = std::env::var("LD_PRELOAD").is_ok_and(|v| v.contains(LIBRARY));
    if !preloaded {
        cmd.env("LD_PRELOAD", launch::ld_preload(&library));
    }
    cmd.status().map_err(|e| {
        Failure::runtime(format!("cannot run {}: {e}", program.display())).with_code(126)
    })
}

/// The exit status a monitored program's status passes on as.
pub(super) fn exit_code(status: ExitStatus) -> ExitCode {
    ExitCode::from(launch::status_code(status))
}

/// The request every round shares, from the record options.
pub(super) fn base_config(opts: &RecordOpts, output: &Path) -> Result<MonConfig, Failure> {
    if !(0.0..=1.0).contains(&opts.max_overhead) {
        return Err(Failure::usage(format!(
            "--max-overhead {}: give a share between 0 and 1",
            opts.max_overhead
        )));
    }
    if opts.rate == 0 {
        return Err(Failure::usage("--rate 0: give at least 1 round per second"));
    }
    Ok(MonConfig {
        parent: 0,
        output: std::path::absolute(output)
            .unwrap_or_else(|_| output.to_path_buf())
            .display()
            .to_string(),
        granularity: granularity(&opts.granularity)?.bytes(),
        min_size: size(&opts.min_size)?.max(1),
        filters: Vec::new(),
        heap: true,
        zoom: Vec::new(),
        rate_hz: opts.rate,
        max_overhead: opts.max_overhead,
        sampler: opts.sampler,
    })
}

/// Runs the program under the monitor once and summarises the session.
pub(super) fn record(
    opts: &RecordOpts,
    output: &Path,
    filters: &[String],
    heap: bool,
    command: &[OsString],
) -> Result<ExitCode, Failure> {
    let mut config = base_config(opts, output)?;
    config.filters = filters
        .iter()
        .map(|f| filter(f))
        .collect::<Result<_, _>>()?;
    config.heap = filters.is_empty() || heap;
    let _ = std::fs::remove_file(output);
    let status = run_monitored(command, config)?;
    summarize(output);
    Ok(exit_code(status))
}

/// One line on what was written (or why nothing was).
fn summarize(output: &Path) {
    match SessionFile::load(output) {
        Ok(s) => {
            let r = Report::from_session(&s);
            eprintln!(
                "rset-mon: {} regions, {} samples ({} remote) in {}; `rset-mon report {}` shows the table",
                r.regions.len(),
                r.totals.all.total(),
                r.totals.all.remote,
                output.display(),
                output.display()
            );
        }
        Err(_) => eprintln!(
            "rset-mon: no session was written to {} (the program did not reach exit(), or it \
             is not the process rset-mon started)",
            output.display()
        ),
    }
}
