//! Ocean's flags: the original's `getopt(argc, argv, "n:p:e:r:t:soh")`, each value
//! checked as it is read (so the first bad flag is the one reported), with the
//! original's messages; `-s` and `-o` toggle, as there.

use std::io::Write;

use clap::{ArgAction, ArgMatches};

use super::cfmt;
use super::error::OceanError;
use super::geometry;
use crate::framework::SplashError;
use crate::framework::args::{Opt, in_order, parse_flags, program_command};

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

/// The original's flags, for clap and the help: values as given (checked in order
/// as the original's loop checks them), every occurrence kept.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Flags {
    /// Simulate NxN ocean; N must be (power of 2)+2 (default 258).
    #[arg(short = 'n', value_name = "N", action = ArgAction::Append, allow_hyphen_values = true)]
    n: Vec<String>,
    /// P = number of processors; P must be power of 2 (default 1).
    #[arg(short = 'p', value_name = "P", action = ArgAction::Append, allow_hyphen_values = true)]
    p: Vec<String>,
    /// E = error tolerance for iterative relaxation (default 1e-7).
    #[arg(short = 'e', value_name = "E", action = ArgAction::Append, allow_hyphen_values = true)]
    e: Vec<String>,
    /// R = distance between grid points in meters (default 20000).
    #[arg(short = 'r', value_name = "R", action = ArgAction::Append, allow_hyphen_values = true)]
    r: Vec<String>,
    /// T = timestep in seconds (default 28800).
    #[arg(short = 't', value_name = "T", action = ArgAction::Append, allow_hyphen_values = true)]
    t: Vec<String>,
    /// Print timing statistics.
    #[arg(short = 's', action = ArgAction::Append, num_args = 0, default_missing_value = "")]
    s: Vec<String>,
    /// Print out relaxation residual values.
    #[arg(short = 'o', action = ArgAction::Append, num_args = 0, default_missing_value = "")]
    o: Vec<String>,
    /// Print out command line options.
    #[arg(short = 'h', action = ArgAction::Append, num_args = 0, default_missing_value = "")]
    h: Vec<String>,
}

impl Params {
    /// Parses the flags as the original's `getopt(argc, argv, "n:p:e:r:t:soh")` loop,
    /// with its checks.
    pub(super) fn parse(args: &[String]) -> Result<Parsed, SplashError> {
        Params::from_opts(parse_flags::<Flags>("ocean", args)?)
    }

    /// The parameters of flags read by clap (the `splash` command's `ocean`).
    pub(super) fn from_matches(m: &ArgMatches) -> Result<Parsed, SplashError> {
        Params::from_opts(in_order(&program_command::<Flags>("ocean"), m))
    }

    /// The original's loop over the flags, in order.
    fn from_opts(opts: Vec<Opt>) -> Result<Parsed, SplashError> {
        let mut p = Params {
            n: DEFAULT_N,
            nprocs: DEFAULT_P,
            tolerance: DEFAULT_E,
            res: DEFAULT_R,
            dtau: DEFAULT_T,
            do_stats: false,
            do_output: false,
        };
        for (flag, value) in opts {
            let value = value.unwrap_or_default();
            match flag {
                'n' => p.n = n_value(&value)?,
                'p' => p.nprocs = p_value(&value)?,
                'e' => p.tolerance = number('e', &value)?,
                'r' => p.res = positive('r', &value)?,
                't' => p.dtau = positive('t', &value)?,
                's' => p.do_stats = !p.do_stats,
                'o' => p.do_output = !p.do_output,
                'h' => return Ok(Parsed::Help),
                _ => unreachable!("clap returns only the flags' letters"),
            }
        }
        Ok(Parsed::Run(p))
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
