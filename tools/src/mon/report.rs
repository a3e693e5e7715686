//! `rset-mon report`: a saved session as a table, JSON, CSV or an SVG heatmap.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use monitor::svg::{Metric, SvgOptions};
use monitor::{Report, SessionFile};

use crate::cli::{Failure, emit};

/// The heatmap metric named `name`.
fn metric(name: &str) -> Option<Metric> {
    Some(match name {
        "remote" => Metric::Remote,
        "local" => Metric::Local,
        "total" => Metric::Total,
        "reads" => Metric::Reads,
        "writes" => Metric::Writes,
        _ => return None,
    })
}

/// Prints (or draws) the report of the session in `file`.
pub(super) fn report(
    file: &Path,
    json: bool,
    csv: bool,
    svg: Option<PathBuf>,
    m: &str,
    top: usize,
) -> Result<ExitCode, Failure> {
    let session = SessionFile::load(file).map_err(Failure::usage)?;
    let report = Report::from_session(&session);
    if json {
        emit(&(report.to_json() + "\n"))?;
    } else if csv {
        emit(&report.to_csv())?;
    } else if let Some(out) = svg {
        let metric = metric(m).ok_or_else(|| {
            Failure::usage(format!(
                "unknown metric `{m}` (expected remote, local, total, reads or writes)"
            ))
        })?;
        let opts = SvgOptions {
            metric,
            ..SvgOptions::default()
        };
        std::fs::write(&out, report.to_svg(&opts))
            .map_err(|e| Failure::usage(format!("{}: {e}", out.display())))?;
    } else {
        emit(&report.to_text(top))?;
    }
    Ok(ExitCode::SUCCESS)
}
