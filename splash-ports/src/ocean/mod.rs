//! Ocean, contiguous partitions: the SPLASH-2 ocean-currents simulation.
//!
//! A port of the original SPLASH-2 `apps/ocean/contiguous_partitions` (Stanford, 1994):
//! the eddy and boundary currents of a square ocean basin, time-stepped on an `n` x `n`
//! grid, with a W-cycle red-black multigrid solver for the two elliptic equations of every
//! step. The threads form an `xprocs` x `yprocs` mesh and each owns a square-like
//! subgrid of every grid, stored contiguously ("contiguous partitions"), so that the
//! paper's *reorg* layout can place each thread's subgrids on its own node.
//!
//! The flags are the original's (`-n -p -e -r -t -s -o -h`) and so is the output, line
//! for line: with `-o` the multigrid solver's iteration count, level, residual norm and
//! work of every solve, which match the C program's to the printed digits. The timing
//! lines are in microseconds.
//!
//! Every grid is a framework [`Shared`](crate::framework::Shared) array labelled
//! `ocean.<name>` as in the original (`ocean.psi`, `ocean.q_multi`, ...), with one
//! page-aligned block per thread described by a
//! [`Partition`](crate::framework::Partition): `--layout orig` stripes it one page per
//! node, `--layout reorg` puts each thread's block on its node. The threads use the
//! grids through the framework's phase views (`grids.rs`): plain slices of their own
//! blocks in compute phases, and halo copies in two steps (read the neighbours' edge
//! points in a phase of their own, write them into the own ghost ring after the barrier).
//!
//! Results do not depend on the layout at all, and depend on the thread count only through
//! the order in which the two global sums (`psiai`, `psibi`) add up the threads' partial
//! sums and the partial sums themselves (each thread sums its own subgrid); they are added
//! in thread order, so a run is reproducible. As in the original, the number of multigrid
//! levels depends on the processor mesh (every thread keeps at least 2 x 2 points on the
//! coarsest level): the printed level, the finest one's number, is one lower with 2 or 4
//! threads than with 1, while the solves take the same iterations.

mod cfmt;
mod error;
mod geometry;
mod grids;
mod multigrid;
mod params;
mod slave;
mod stencil;
mod team;

use std::io::Write;

use crate::framework::{Machine, RunConfig, SplashError};
pub use error::OceanError;
use geometry::Geometry;
pub use params::Flags;
use params::{Params, Parsed, write_usage};
use slave::Worker;
use team::{ProcStats, Store, Team, clock};

/// At most this many time steps (a smaller `-t` would run for days).
const MAX_STEPS: f64 = 1e8;

/// The number of time steps the original's day counters give for `dtau`, or `None` where
/// it would loop forever (its outer loop re-tests flags that never change again).
fn timesteps(dtau: f64) -> Option<u64> {
    if dtau.is_nan() || dtau <= 0.0 || 2.0 * 86400.0 / dtau > MAX_STEPS {
        return None;
    }
    let (mut ttime, mut dhour) = (0.0f64, 0.0f64);
    let mut nstep = 0u64;
    let (mut dayflag, mut dhourflag) = (false, false);
    let mut iday = 0i64;
    while !dayflag || !dhourflag {
        dayflag = false;
        dhourflag = false;
        ttime += dtau;
        nstep += 1;
        let day = ttime / 86400.0;
        if day > slave::OUTDAY0 {
            dayflag = true;
            iday = day as i64;
            dhour += dtau;
            if dhour >= 86400.0 {
                dhourflag = true;
            }
        }
    }
    (iday >= slave::OUTDAY3 as i64).then_some(nstep)
}

/// Runs Ocean with the original's flags `args` (e.g. `["-n258", "-p2", "-o"]`) on the
/// machine described by `common`, printing the original's output to `out`.
///
/// # Errors
///
/// [`SplashError::Usage`] with the original's message for bad flags (`-n` not 2^k+2,
/// `-p` not a power of 2, more threads than the grid allows), or when the solver exceeds
/// its work limit; framework errors as they come.
pub fn run(args: &[String], common: &RunConfig, out: &mut dyn Write) -> Result<(), SplashError> {
    let start = clock();
    run_parsed(Params::parse(args)?, start, common, out)
}

/// Runs Ocean with flags read by clap (the `splash` command's `ocean`).
///
/// # Errors
///
/// As [`run`].
pub fn run_matches(
    flags: &clap::ArgMatches,
    common: &RunConfig,
    out: &mut dyn Write,
) -> Result<(), SplashError> {
    let start = clock();
    run_parsed(Params::from_matches(flags)?, start, common, out)
}

fn run_parsed(
    parsed: Parsed,
    start: u64,
    common: &RunConfig,
    out: &mut dyn Write,
) -> Result<(), SplashError> {
    let params = match parsed {
        Parsed::Help => {
            write_usage(out).map_err(OceanError::from)?;
            return Ok(());
        }
        Parsed::Run(p) => p,
    };
    let geom = Geometry::new(params.n, params.nprocs, params.res)?;
    if timesteps(params.dtau).is_none() {
        return Err(OceanError::EndlessTimestep { dtau: params.dtau }.into());
    }
    write_header(out, &params).map_err(OceanError::from)?;

    let machine = Machine::new(common, params.nprocs)?;
    let store = Store::allocate(&machine, &geom, params.n)?;
    // Each thread computes on its own subgrids, and reads a neighbour's edge points into
    // its own ghost ring in a read phase of its own (the framework's phase views, which
    // refuse any other mix).
    let team = Team::new(&params, &geom, &store);
    let ran = machine.run(|proc| {
        let mut w = Worker::new(&team, proc);
        let result = w.slave();
        team.stats.lock().unwrap_or_else(|e| e.into_inner())[w.id] = w.stats;
        if let Err(e) = result {
            if w.master() {
                *team.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
            }
        }
    });
    let computeend = clock();
    let finished = ran.and_then(|()| machine.finish());

    let lines = std::mem::take(&mut *team.lines.lock().unwrap_or_else(|e| e.into_inner()));
    for line in &lines {
        writeln!(out, "{line}").map_err(OceanError::from)?;
    }
    if let Some(e) = team
        .failure
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        return Err(e.into());
    }
    finished?;
    let stats = team.stats.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let trackstart = *team.trackstart.lock().unwrap_or_else(|e| e.into_inner());
    write_stats(out, &params, &stats, start, trackstart, computeend).map_err(OceanError::from)?;
    Ok(())
}

fn write_header(out: &mut dyn Write, p: &Params) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(out, "Ocean simulation with W-cycle multigrid solver")?;
    writeln!(out, "    Processors                         : {}", p.nprocs)?;
    writeln!(
        out,
        "    Grid size                          : {} x {}",
        p.n, p.n
    )?;
    writeln!(out, "    Grid resolution (meters)           : {:.2}", p.res)?;
    writeln!(
        out,
        "    Time between relaxations (seconds) : {:.0}",
        p.dtau
    )?;
    writeln!(
        out,
        "    Error tolerance                    : {}",
        cfmt::general(p.tolerance, 7)
    )?;
    writeln!(out)?;
    if p.do_output {
        writeln!(out, "                       MULTIGRID OUTPUTS")?;
    }
    Ok(())
}

fn write_stats(
    out: &mut dyn Write,
    p: &Params,
    stats: &[ProcStats],
    start: u64,
    trackstart: u64,
    computeend: u64,
) -> std::io::Result<()> {
    let frac = |s: &ProcStats| s.multi_time / s.total_time;
    let row = |out: &mut dyn Write, name: &str, total: f64, multi: f64, frac: f64| {
        writeln!(
            out,
            "  {name:>3}   {:>15}    {:>15}        {:>10}",
            format!("{total:.0}"),
            format!("{multi:.0}"),
            format!("{frac:.3}")
        )
    };
    writeln!(out)?;
    writeln!(out, "                       PROCESS STATISTICS")?;
    writeln!(
        out,
        "                  Total          Multigrid         Multigrid"
    )?;
    writeln!(
        out,
        " Proc             Time             Time            Fraction"
    )?;
    let s0 = stats[0];
    writeln!(
        out,
        "    0   {:>15}    {:>15}        {:>10}",
        format!("{:.0}", s0.total_time),
        format!("{:.0}", s0.multi_time),
        format!("{:.3}", frac(&s0))
    )?;
    if p.do_stats {
        let (mut min_total, mut max_total, mut avg_total) =
            (s0.total_time, s0.total_time, s0.total_time);
        let (mut min_multi, mut max_multi, mut avg_multi) =
            (s0.multi_time, s0.multi_time, s0.multi_time);
        let (mut min_frac, mut max_frac, mut avg_frac) = (frac(&s0), frac(&s0), frac(&s0));
        for s in &stats[1..] {
            max_total = if s.total_time > max_total {
                s.total_time
            } else {
                max_total
            };
            min_total = if s.total_time < min_total {
                s.total_time
            } else {
                min_total
            };
            max_multi = if s.multi_time > max_multi {
                s.multi_time
            } else {
                max_multi
            };
            min_multi = if s.multi_time < min_multi {
                s.multi_time
            } else {
                min_multi
            };
            max_frac = if frac(s) > max_frac {
                frac(s)
            } else {
                max_frac
            };
            min_frac = if frac(s) < min_frac {
                frac(s)
            } else {
                min_frac
            };
            avg_total += s.total_time;
            avg_multi += s.multi_time;
            avg_frac += frac(s);
        }
        let n = stats.len() as f64;
        for (i, s) in stats.iter().enumerate().skip(1) {
            row(out, &i.to_string(), s.total_time, s.multi_time, frac(s))?;
        }
        row(out, "Avg", avg_total / n, avg_multi / n, avg_frac / n)?;
        row(out, "Min", min_total, min_multi, min_frac)?;
        row(out, "Max", max_total, max_multi, max_frac)?;
    }
    writeln!(out)?;
    writeln!(out, "                       TIMING INFORMATION")?;
    writeln!(out, "Start time                        : {start:>16}")?;
    writeln!(out, "Initialization finish time        : {trackstart:>16}")?;
    writeln!(out, "Overall finish time               : {computeend:>16}")?;
    writeln!(
        out,
        "Total time with initialization    : {:>16}",
        computeend.saturating_sub(start)
    )?;
    writeln!(
        out,
        "Total time without initialization : {:>16}",
        computeend.saturating_sub(trackstart)
    )?;
    writeln!(out, "    (excludes first timestep)")?;
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn parse(s: &str) -> Result<Params, SplashError> {
        match Params::parse(&args(s))? {
            Parsed::Run(p) => Ok(p),
            Parsed::Help => panic!("help"),
        }
    }

    #[test]
    fn flags_as_getopt() {
        let p = parse("-n130 -p 4 -so -e1e-8 -r 1000 -t3600").unwrap();
        assert_eq!(
            (p.n, p.nprocs, p.do_stats, p.do_output),
            (130, 4, true, true)
        );
        assert_eq!((p.tolerance, p.res, p.dtau), (1e-8, 1000.0, 3600.0));
        let p = parse("-on66").unwrap();
        assert_eq!((p.n, p.do_output), (66, true));
        assert!(matches!(Params::parse(&args("-h")), Ok(Parsed::Help)));
    }

    #[test]
    fn bad_flags_name_the_culprit() {
        let e = parse("-n100").unwrap_err().to_string();
        assert_eq!(e, "-n100: Grid must be ((power of 2)+2) in each dimension");
        assert!(
            parse("-p3")
                .unwrap_err()
                .to_string()
                .contains("P must be a power of 2")
        );
        assert!(
            parse("-p0")
                .unwrap_err()
                .to_string()
                .contains("P must be >= 1")
        );
        assert!(
            parse("-x")
                .unwrap_err()
                .to_string()
                .contains("invalid option -- 'x'")
        );
        assert!(
            parse("-n")
                .unwrap_err()
                .to_string()
                .contains("requires an argument")
        );
        assert_eq!(
            parse("-eabc").unwrap_err().to_string(),
            "-eabc: not a number"
        );
        assert_eq!(parse("-t0").unwrap_err().to_string(), "-t0: must be > 0");
        assert!(
            parse("258")
                .unwrap_err()
                .to_string()
                .contains("unexpected argument")
        );
    }

    #[test]
    fn timesteps_as_the_original() {
        assert_eq!(timesteps(28800.0), Some(6));
        assert_eq!(timesteps(86400.0), Some(2));
        // 0.6 day steps stop the day counter at 1: the original loops forever.
        assert_eq!(timesteps(0.6 * 86400.0), None);
        assert_eq!(timesteps(1e-6), None);
    }
}
