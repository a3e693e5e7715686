//! `splash`: SPLASH-2 programs on RSets, with the paper's orig/reorg layouts.
//!
//! `splash [COMMON FLAGS] PROGRAM [PROGRAM FLAGS]`: the common flags (long, `--x`)
//! may come before or after the program name; the program's flags are the
//! original C program's (`-m16 -p2 -t`), read as its `getopt` read them.
//! `splash compare NAME ORIG REORG ...` prints the paper's Table 2 from session
//! files of monitored runs.
//!
//! - [`args`]: the command line (clap), its checks and its help;
//! - `compare`: the Table 2 command;
//! - this module: dispatch, error lines, the `--monitor` summary.

pub mod args;
mod compare;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::error::ContextKind;
use clap::{CommandFactory, FromArgMatches};
use monitor::{Granularity, Report, SessionFile, line_verdicts};
use splash_ports::framework::args::usage_message;
use splash_ports::framework::{self, MonitorOptions, RunConfig, SplashError};

use args::{Cli, Program};

/// Runs `splash` with the process's arguments; the exit status: 0, or 2 for bad
/// flags and runs that could not be set up.
pub fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    run(&argv)
}

/// Runs `splash` with `argv` (without the command's name).
pub fn run(argv: &[String]) -> ExitCode {
    let words = std::iter::once("splash".to_owned()).chain(argv.iter().cloned());
    let parsed = Cli::command()
        .try_get_matches_from(words)
        .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let (cli, matches) = match parsed {
        Ok(p) => p,
        Err(e) => return usage_error(&e, argv),
    };
    if cli.short_help || cli.common.help {
        println!("{}", args::help());
        return ExitCode::SUCCESS;
    }
    let config = match cli.common.config() {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("splash: {msg}");
            return ExitCode::from(2);
        }
    };
    let Some(program) = cli.program else {
        eprintln!("splash: no program given (fft, fft3d, ocean); see splash --help");
        return ExitCode::from(2);
    };
    let name = program.name();
    let defaults = MonitorOptions::default();
    framework::set_monitor_options(MonitorOptions {
        rate_hz: cli.common.monitor_rate.unwrap_or(defaults.rate_hz),
        max_overhead: cli.common.monitor_overhead.unwrap_or(defaults.max_overhead),
    });
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    // The program reads its flags in the order given, from clap's matches.
    let flags = matches.subcommand_matches(name).unwrap_or(&matches);
    let ran = match program {
        Program::Fft(_) => splash_ports::fft::run_matches(flags, &config, &mut out),
        Program::Ocean(_) => splash_ports::ocean::run_matches(flags, &config, &mut out),
        Program::Fft3d(_) => splash_ports::fft3d::run_matches(flags, &config, &mut out),
        Program::Compare { args } => {
            drop(out);
            return compare::compare(&args);
        }
    };
    match ran.and_then(|()| Ok(out.flush()?)) {
        Ok(()) => {
            if let Some(path) = &config.monitor {
                summarize(path, &config);
            }
            ExitCode::SUCCESS
        }
        Err(SplashError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            // What was printed before the error stays, as with the C programs.
            let _ = out.flush();
            match e {
                SplashError::Usage(msg) => eprintln!("splash {name}: ERROR: {msg}"),
                other => eprintln!("splash {name}: {other}"),
            }
            ExitCode::from(2)
        }
    }
}

/// One line for a command line clap refused: a program flag's as the original
/// words it (`splash fft: ERROR: invalid option -- 'q'`), a common flag's as
/// `splash: --pin: ...`; exit status 2.
fn usage_error(e: &clap::Error, argv: &[String]) -> ExitCode {
    let msg = usage_message(e);
    let common = match e.get(ContextKind::InvalidArg) {
        Some(clap::error::ContextValue::String(a)) => a.starts_with("--"),
        _ => true,
    };
    match args::program_name(argv).filter(|p| !common && *p != "compare") {
        Some(name) => eprintln!("splash {name}: ERROR: {msg}"),
        None => eprintln!("splash: {msg}"),
    }
    ExitCode::from(2)
}

/// One line on stderr on what a `--monitor` run recorded; for a run at finer than
/// page granularity, its hottest lines' verdicts too.
fn summarize(path: &Path, config: &RunConfig) {
    // A program that only printed its help monitored nothing.
    let Ok(session) = SessionFile::load(path) else {
        return;
    };
    let report = Report::from_session(&session);
    let t = &report.totals.all;
    let n = t.local + t.remote;
    let share = if n == 0 {
        "-".to_owned()
    } else {
        format!(
            "{:.1}%{}",
            100.0 * t.remote as f64 / n as f64,
            monitor::report::margin95(t.remote, n)
        )
    };
    let what = match &config.monitor_zoom {
        Some(z) => format!(
            "{} hot ranges of {}",
            report.regions.len(),
            z.previous.display()
        ),
        None => format!("{} arrays", report.regions.len()),
    };
    let gran = report.regions.first().map_or(0, |r| r.granularity.bytes());
    eprintln!(
        "splash: --monitor {}: {n} sampled references, {} remote ({share}) in {what}, {gran} B granules; `rset-mon report {}` prints the table",
        path.display(),
        t.remote,
        path.display()
    );
    let lines = framework::lines_path(path);
    if gran < Granularity::PAGE.bytes() && lines.exists() {
        let mut verdicts = line_verdicts(&report);
        let shared = verdicts.iter().filter(|v| v.write_shared).count();
        verdicts.sort_by(|a, b| b.remote.cmp(&a.remote).then(b.total.cmp(&a.total)));
        verdicts.truncate(8);
        eprintln!(
            "splash: the lines with the most remote references ({shared} lines written from two or more nodes; all verdicts in {}):",
            lines.display()
        );
        for l in monitor::refine::verdicts_text(&verdicts).lines() {
            eprintln!("  {l}");
        }
    }
}
