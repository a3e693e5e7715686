//! `rset-mon`: the Opium-style remote-access monitor's command line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use monitor::svg::{Metric, SvgOptions};
use monitor::{Report, SessionFile};

/// Who touches what, from which NUMA node: per-region, per-granule, per-node local
/// and remote reference counts, as the IBM ccNUMA paper's Opium card gave them.
///
/// Sessions are written by the monitor library (`monitor::session::Session`, which
/// also exports live counters for viewers); `rset-mon report` reads them.
#[derive(Parser)]
#[command(name = "rset-mon", version, after_long_help = HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const HELP: &str = "\
COUNTS ARE ESTIMATES: the software sampler records one reference per round, chosen
with probability proportional to how often memory is referenced, so a share p from n
samples is good to about +/- 2*sqrt(p(1-p)/n) (95%); the report prints n.

EXAMPLES:
  rset-mon report run.session                 the table of data areas, top 20 granules
  rset-mon report run.session --top 50
  rset-mon report run.session --json > run.json
  rset-mon report run.session --csv > run.csv
  rset-mon report run.session --svg run.svg   heatmap of granules x accessing nodes

EXIT STATUS: 0 on success, 2 for bad arguments or an unreadable session file.";

#[derive(Subcommand)]
enum Command {
    /// Print the report of a saved session.
    Report {
        /// The session file.
        file: PathBuf,
        /// JSON: {"regions":[{"name","start","size","granularity","granules":[..]}], "totals", "sampler", ..}.
        #[arg(long, conflicts_with_all = ["csv", "svg"])]
        json: bool,
        /// CSV: one row per granule per accessing node.
        #[arg(long, conflicts_with = "svg")]
        csv: bool,
        /// Write an SVG heatmap (granules x accessing nodes, like the paper's Fig. 8/9).
        #[arg(long, value_name = "OUT")]
        svg: Option<PathBuf>,
        /// What colours the heatmap: remote, local, total, reads or writes.
        #[arg(long, default_value = "remote", value_name = "METRIC")]
        metric: String,
        /// Granules listed in the text report.
        #[arg(long, default_value_t = 20, value_name = "N")]
        top: usize,
    },
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("rset-mon: {msg}");
    ExitCode::from(2)
}

fn emit(text: &str) -> ExitCode {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rset-mon: writing output: {e}");
            ExitCode::from(1)
        }
    }
}

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Report {
            file,
            json,
            csv,
            svg,
            metric: m,
            top,
        } => {
            let session = match SessionFile::load(&file) {
                Ok(s) => s,
                Err(e) => return fail(e),
            };
            let report = Report::from_session(&session);
            if json {
                return emit(&(report.to_json() + "\n"));
            }
            if csv {
                return emit(&report.to_csv());
            }
            if let Some(out) = svg {
                let Some(metric) = metric(&m) else {
                    return fail(format!(
                        "unknown metric `{m}` (expected remote, local, total, reads or writes)"
                    ));
                };
                let opts = SvgOptions {
                    metric,
                    ..SvgOptions::default()
                };
                return match std::fs::write(&out, report.to_svg(&opts)) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(format!("{}: {e}", out.display())),
                };
            }
            emit(&report.to_text(top))
        }
    }
}
