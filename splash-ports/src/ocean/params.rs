//! Ocean's flags: the original's `getopt(argc, argv, "n:p:e:r:t:soh")`, each value
//! checked as it is read (so the first bad flag is the one reported), with the
//! original's messages; `-s` and `-o` toggle, as there.

use std::io::Write;

use clap::ArgAction;

use super::cfmt;
use super::error::OceanError;
use super::geometry;
use crate::framework::SplashError;
use crate::framework::args::parse_flags;

/// Defaults of the original.
const DEFAULT_N: usize = 258;
const DEFAULT_P: usize = 1;
const DEFAULT_E: f64 = 1e-7;
const DEFAULT_R: f64 = 20000.0;
const DEFAULT_T: f64 = 28800.0;

/// The original's flags.
#[derive(Debug, Clone)]
pub(super) struct Params {
    pub(super) n: usize,
    pub(super) nprocs: usize,
    pub(super) tolerance: f64,
    pub(super) res: f64,
    pub(super) dtau: f64,
    pub(super) do_stats: bool,
    pub(super) do_output: bool,
}

/// What the flags ask for.
pub(super) enum Parsed {
    /// A run with these parameters.
    Run(Params),
    /// `-h`: the usage.
    Help,
}

fn n_value(value: &str) -> Result<usize, OceanError> {
    let bad = || OceanError::BadGrid {
        value: value.to_owned(),
    };
    let n = value.trim().parse::<i64>().ok();
    match n.filter(|&n| n >= 2 && geometry::log_2(n - 2).is_some()) {
        Some(n) => usize::try_from(n).map_err(|_| bad()),
        None => Err(bad()),
    }
}

fn p_value(value: &str) -> Result<usize, OceanError> {
    match value.trim().parse::<i64>().ok() {
        Some(p) if p >= 1 => {
            let bad = || OceanError::ProcsNotPowerOf2 {
                value: value.to_owned(),
            };
            if geometry::log_2(p).is_none() {
                return Err(bad());
            }
            usize::try_from(p).map_err(|_| bad())
        }
        _ => Err(OceanError::TooFewProcs {
            value: value.to_owned(),
        }),
    }
}

fn number(flag: char, value: &str) -> Result<f64, OceanError> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| OceanError::NotANumber {
            flag,
            value: value.to_owned(),
        })
}

fn positive(flag: char, value: &str) -> Result<f64, OceanError> {
    let v = number(flag, value)?;
    if v <= 0.0 {
        return Err(OceanError::NotPositive {
            flag,
            value: value.to_owned(),
        });
    }
    Ok(v)
}

/// The original's flags, as the `splash` command and [`super::run`] read them.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Flags {
    /// Simulate NxN ocean; N must be (power of 2)+2 (default 258).
    #[arg(short = 'n', value_name = "N", value_parser = n_value, allow_hyphen_values = true)]
    n: Option<usize>,
    /// P = number of processors; P must be power of 2 (default 1).
    #[arg(short = 'p', value_name = "P", value_parser = p_value, allow_hyphen_values = true)]
    p: Option<usize>,
    /// E = error tolerance for iterative relaxation (default 1e-7).
    #[arg(short = 'e', value_name = "E", value_parser = |s: &str| number('e', s), allow_hyphen_values = true)]
    e: Option<f64>,
    /// R = distance between grid points in meters (default 20000).
    #[arg(short = 'r', value_name = "R", value_parser = |s: &str| positive('r', s), allow_hyphen_values = true)]
    r: Option<f64>,
    /// T = timestep in seconds (default 28800).
    #[arg(short = 't', value_name = "T", value_parser = |s: &str| positive('t', s), allow_hyphen_values = true)]
    t: Option<f64>,
    /// Print timing statistics.
    #[arg(short = 's', action = ArgAction::Count)]
    s: u8,
    /// Print out relaxation residual values.
    #[arg(short = 'o', action = ArgAction::Count)]
    o: u8,
    /// Print out command line options.
    #[arg(short = 'h', action = ArgAction::SetTrue)]
    h: bool,
}

impl Params {
    /// Parses the flags as the original's `getopt(argc, argv, "n:p:e:r:t:soh")` loop,
    /// with its checks.
    pub(super) fn parse(args: &[String]) -> Result<Parsed, SplashError> {
        Ok(Params::from_flags(parse_flags("ocean", args)?))
    }

    /// The parameters of flags read already.
    pub(super) fn from_flags(f: Flags) -> Parsed {
        if f.h {
            return Parsed::Help;
        }
        Parsed::Run(Params {
            n: f.n.unwrap_or(DEFAULT_N),
            nprocs: f.p.unwrap_or(DEFAULT_P),
            tolerance: f.e.unwrap_or(DEFAULT_E),
            res: f.r.unwrap_or(DEFAULT_R),
            dtau: f.t.unwrap_or(DEFAULT_T),
            do_stats: f.s % 2 == 1,
            do_output: f.o % 2 == 1,
        })
    }
}

pub(super) fn write_usage(out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "Usage: OCEAN <options>\n")?;
    writeln!(out, "options:")?;
    writeln!(
        out,
        "  -nN : Simulate NxN ocean.  N must be (power of 2)+2."
    )?;
    writeln!(
        out,
        "  -pP : P = number of processors.  P must be power of 2."
    )?;
    writeln!(out, "  -eE : E = error tolerance for iterative relaxation.")?;
    writeln!(out, "  -rR : R = distance between grid points in meters.")?;
    writeln!(out, "  -tT : T = timestep in seconds.")?;
    writeln!(out, "  -s  : Print timing statistics.")?;
    writeln!(out, "  -o  : Print out relaxation residual values.")?;
    writeln!(out, "  -h  : Print out command line options.\n")?;
    writeln!(
        out,
        "Default: OCEAN -n{DEFAULT_N} -p{DEFAULT_P} -e{} -r{} -t{}",
        cfmt::general(DEFAULT_E, 6),
        cfmt::general(DEFAULT_R, 6),
        cfmt::general(DEFAULT_T, 6)
    )
}
