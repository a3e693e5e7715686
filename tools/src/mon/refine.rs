//! `rset-mon refine`: rounds of runs, each zooming into the previous round's
//! hottest granules, down to cache lines.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use monitor::{Granularity, Report, SessionFile, line_verdicts, plan_next_round};

use super::cli::RecordOpts;
use super::record::{base_config, exit_code, run_monitored};
use crate::cli::{Failure, emit};
use crate::launch;

/// Where a region of a round came from: heap block `seq`, starting `offset` bytes
/// before the region (names `heap#N` and `heap#N+0xOFF`).
fn block_of(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix("heap#")?;
    match rest.split_once('+') {
        None => Some((rest.parse().ok()?, 0)),
        Some((seq, off)) => Some((
            seq.parse().ok()?,
            u64::from_str_radix(off.strip_prefix("0x")?, 16).ok()?,
        )),
    }
}

/// Runs the rounds and prints the last one's table with per-line verdicts.
pub(super) fn refine(
    opts: &RecordOpts,
    rounds: u32,
    top: usize,
    output: &Path,
    command: &[OsString],
) -> Result<ExitCode, Failure> {
    if rounds < 2 {
        return Err(Failure::usage(format!(
            "--rounds {rounds}: refinement needs at least 2"
        )));
    }
    if top == 0 {
        return Err(Failure::usage("--top 0: keep at least one granule"));
    }
    let base = base_config(opts, output)?;
    let first = base.granularity.trailing_zeros();
    let last = Granularity::LINE.bytes().trailing_zeros();
    if first <= last {
        return Err(Failure::usage(format!(
            "--granularity {}: refinement starts above 64 B",
            opts.granularity
        )));
    }
    let step = (first - last).div_ceil(rounds - 1).max(1);
    let mut zoom: Vec<(u64, u64, u64, u64)> = Vec::new();
    let mut gran = base.granularity;
    let mut status = None;
    for round in 1..=rounds {
        let file = if round == rounds {
            output.to_path_buf()
        } else {
            PathBuf::from(format!("{}.round{round}", output.display()))
        };
        let mut config = base.clone();
        config.output = std::path::absolute(&file)
            .unwrap_or_else(|_| file.clone())
            .display()
            .to_string();
        config.zoom = zoom.clone();
        config.granularity = gran;
        let _ = std::fs::remove_file(&file);
        eprintln!(
            "rset-mon: round {round}/{rounds}: {} at {gran} B granules",
            if zoom.is_empty() {
                "every heap block".to_string()
            } else {
                format!("{} hot ranges", zoom.len())
            }
        );
        let st = run_monitored(command, config)?;
        if !st.success() {
            return Err(Failure::runtime(format!(
                "round {round}: the program failed ({st}); refinement needs runs that succeed"
            ))
            .with_code(launch::status_code(st).max(1)));
        }
        status = Some(st);
        let session = SessionFile::load(&file).map_err(|e| {
            Failure::runtime(format!(
                "round {round}: no session ({e}): did the program reach exit()?"
            ))
        })?;
        if round == rounds {
            let report = Report::from_session(&session);
            emit(&report.to_text(top.max(20)))?;
            emit(&monitor::refine::verdicts_text(&line_verdicts(&report)))?;
            break;
        }
        let next = 1u64 << first.saturating_sub(step * round).max(last);
        let report = Report::from_session(&session);
        let plan = plan_next_round(
            &report,
            top,
            Granularity::new(next).map_err(Failure::runtime)?,
        );
        if plan.is_empty() {
            return Err(Failure::runtime(format!(
                "round {round}: no granule had a remote reference; nothing to refine (see {})",
                file.display()
            )));
        }
        zoom = plan
            .iter()
            .filter_map(|spec| {
                let region = report
                    .regions
                    .iter()
                    .find(|r| r.start <= spec.start && spec.start < r.end())?;
                let (seq, off) = block_of(&region.name)?;
                let block_start = region.start - off;
                Some((seq, spec.start - block_start, spec.size, next))
            })
            .collect();
        gran = next;
    }
    Ok(status.map_or(ExitCode::SUCCESS, exit_code))
}
