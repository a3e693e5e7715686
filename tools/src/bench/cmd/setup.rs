//! What every `rset-bench` subcommand shares: the timing and output options, the
//! machine and its topology, progress bars and the pages-per-node column.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rset::{RSet, Topology};

use crate::bench::run::MemSpec;
use crate::bench::{HugePages, Machine, RunError, parse_size};
use crate::cli::Failure;

#[derive(Args, Clone)]
pub(super) struct Common {
    /// Repetitions per measurement (default 5 for lat, 10 for bw; 3 when emulated).
    #[arg(long, value_name = "N")]
    pub(super) reps: Option<usize>,
    /// Milliseconds per repetition (default 100; 10 when emulated).
    #[arg(long, value_name = "MS")]
    pub(super) time_ms: Option<u64>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(super) json: bool,
    /// Draw the sweep or the matrix into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub(super) plot: Option<PathBuf>,
    /// Transparent huge pages for the buffers: on (MADV_HUGEPAGE), off, or system.
    #[arg(long, value_name = "on|off|system", default_value = "system")]
    pub(super) huge_pages: String,
}

/// Bad arguments (exit status 2).
pub(super) fn usage(message: impl ToString) -> Failure {
    Failure::usage(message)
}

/// What every command needs: the machine, its topology, the timing settings.
pub(super) struct Setup {
    pub(super) machine: Machine,
    pub(super) topo: Topology,
    pub(super) huge: HugePages,
    pub(super) target: Duration,
    pub(super) reps: usize,
}

impl Setup {
    pub(super) fn new(common: &Common, default_reps: usize) -> Result<Setup, Failure> {
        // Cheap checks first, then discovery.
        let huge: HugePages = common
            .huge_pages
            .parse()
            .map_err(|e| usage(format!("--huge-pages: {e}")))?;
        if common.reps == Some(0) {
            return Err(usage("--reps 0: give at least 1 repetition"));
        }
        if common.time_ms == Some(0) {
            return Err(usage(
                "--time-ms 0: give at least 1 millisecond per repetition",
            ));
        }
        if let Some(p) = &common.plot {
            if p.extension().and_then(|e| e.to_str()) != Some("svg") {
                return Err(usage(format!(
                    "--plot {}: the plot is SVG, name it FILE.svg",
                    p.display()
                )));
            }
        }
        let machine = Machine::detect();
        let emulated = machine.is_emulated();
        let topo = Topology::from_system().map_err(|e| Failure {
            message: format!("reading the topology: {e}"),
            code: 1,
        })?;
        Ok(Setup {
            huge,
            target: Duration::from_millis(common.time_ms.unwrap_or(if emulated {
                10
            } else {
                100
            })),
            reps: common
                .reps
                .unwrap_or(if emulated { 3 } else { default_reps }),
            machine,
            topo,
        })
    }

    pub(super) fn emulated(&self) -> bool {
        self.machine.is_emulated()
    }

    /// An RSet for the thread side: it must have CPUs.
    pub(super) fn cpus(&self, spec: &str) -> Result<RSet, Failure> {
        let r =
            RSet::parse(spec, &self.topo).map_err(|e| usage(format!("--cpus `{spec}`: {e}")))?;
        if r.cpus().is_empty() {
            return Err(usage(format!(
                "--cpus `{spec}`: the resource set has no CPUs to run the benchmark threads on \
                 (memory-only nodes and mem: terms give none)"
            )));
        }
        Ok(r)
    }

    pub(super) fn mem(&self, text: &str) -> Result<MemSpec, Failure> {
        MemSpec::parse(text, &self.topo).map_err(usage)
    }

    pub(super) fn size(
        &self,
        text: Option<&str>,
        host: usize,
        emulated: usize,
    ) -> Result<usize, Failure> {
        match text {
            Some(t) => parse_size(t).map_err(|e| usage(format!("--size: {e}"))),
            None => Ok(if self.emulated() { emulated } else { host }),
        }
    }

    pub(super) fn header(&self) -> String {
        self.machine.notice().map_or_else(String::new, |n| n + "\n")
    }
}

pub(super) fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

pub(super) fn drawn(result: Result<(), String>) -> Result<(), Failure> {
    result.map_err(|message| Failure { message, code: 1 })
}

pub(super) fn pages(map: &std::collections::BTreeMap<u32, usize>) -> String {
    let total: usize = map.values().sum();
    if total == 0 {
        return "-".into();
    }
    map.iter()
        .map(|(n, c)| format!("{n}:{:.0}%", 100.0 * *c as f64 / total as f64))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A kernel's refusal: bad arguments (2) or the system's (1).
impl From<RunError> for Failure {
    fn from(e: RunError) -> Failure {
        let code = match e {
            RunError::Usage(_) => 2,
            RunError::System(_) => 1,
        };
        Failure {
            message: e.to_string(),
            code,
        }
    }
}
