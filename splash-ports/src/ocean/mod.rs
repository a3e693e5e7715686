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
//! Every grid is a framework [`Shared`] array labelled `ocean.<name>` as in the original
//! (`ocean.psi`, `ocean.q_multi`, ...), with one page-aligned block per thread described
//! by a [`Partition`]: `--layout orig` stripes it one page per node, `--layout reorg`
//! puts each thread's block on its node.
//!
//! Results do not depend on the layout at all, and depend on the thread count only through
//! the order in which the two global sums (`psiai`, `psibi`) add up the threads' partial
//! sums and the partial sums themselves (each thread sums its own subgrid); they are added
//! in thread order, so a run is reproducible. As in the original, the number of multigrid
//! levels depends on the processor mesh (every thread keeps at least 2 x 2 points on the
//! coarsest level): the printed level, the finest one's number, is one lower with 2 or 4
//! threads than with 1, while the solves take the same iterations.

mod cells;
mod cfmt;
mod error;
mod geometry;
mod multigrid;
mod params;
mod slave;
mod stencil;

use std::io::Write;
use std::sync::Mutex;

use crate::framework::{self, Machine, Partition, RunConfig, Shared, SplashError};
use cells::{Field, FieldLayout, MgField};
pub use error::OceanError;
use framework::Cell64;
use geometry::Geometry;
pub use params::Flags;
use params::{Params, Parsed, write_usage};
use slave::{ProcStats, Worker};

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

/// The original's `CLOCK`: microseconds.
fn clock() -> u64 {
    framework::clock_us()
}

/// The physical constants and derived values of the original's `main`.
struct Consts {
    h1: f64,
    h3: f64,
    h: f64,
    lf: f64,
    f0: f64,
    beta: f64,
    t0: f64,
    pi: f64,
    eig2: f64,
    ysca: f64,
    factjacob: f64,
    factlap: f64,
}

impl Consts {
    fn new(p: &Params) -> Consts {
        let (h1, h3, h) = (1000.0, 4000.0, 5000.0);
        let (f0, gpr) = (8.3e-5, 0.02);
        let res = p.res;
        let pi = 4.0 * 1.0f64.atan();
        let jmm1 = p.n - 1;
        Consts {
            h1,
            h3,
            h,
            lf: -5.12e11,
            f0,
            beta: 2.0e-11,
            t0: 0.5e-4,
            pi,
            eig2: -h * f0 * f0 / (h1 * h3 * gpr),
            ysca: jmm1 as f64 * res,
            factjacob: -1.0 / (12.0 * res * res),
            factlap: 1.0 / (res * res),
        }
    }
}

/// A global sum made of one partial sum per thread (the original adds them into one
/// shared variable under a lock, in whatever order the threads come; we keep them apart
/// and add them in thread order, one of those orders, so runs are reproducible).
struct Sums(Mutex<Vec<f64>>);

impl Sums {
    fn new(n: usize) -> Sums {
        Sums(Mutex::new(vec![0.0; n]))
    }

    fn contribute(&self, id: usize, v: f64) {
        self.0.lock().unwrap_or_else(|e| e.into_inner())[id] = v;
    }

    /// The sum; call after a barrier that follows every thread's `contribute`.
    fn total(&self) -> f64 {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .fold(0.0, |s, v| s + v)
    }
}

/// The finest-level grids of the original, with their number of subgrids.
const FIELDS: [(&str, usize); 18] = [
    ("psi", 2),
    ("psim", 2),
    ("psium", 1),
    ("psilm", 1),
    ("psib", 1),
    ("ga", 1),
    ("gb", 1),
    ("work1", 2),
    ("work2", 1),
    ("work3", 1),
    ("work4", 2),
    ("work5", 2),
    ("work6", 1),
    ("work7", 2),
    ("temparray", 2),
    ("tauz", 1),
    ("oldga", 1),
    ("oldgb", 1),
];

/// The shared arrays, allocated through the framework.
struct Store {
    fields: Vec<(Shared<f64>, FieldLayout)>,
    q: Shared<f64>,
    rhs: Shared<f64>,
    mg: FieldLayout,
    f: Shared<f64>,
}

impl Store {
    fn allocate(machine: &Machine, g: &Geometry, n: usize) -> Result<Store, SplashError> {
        let too_large = || SplashError::from(OceanError::TooLarge { n });
        let nprocs = g.nprocs;
        let parts = |layout: &FieldLayout| {
            Partition::by_thread(
                (0..nprocs)
                    .map(|p| (p * layout.block..(p + 1) * layout.block, p))
                    .collect(),
            )
        };
        let mut fields = Vec::with_capacity(FIELDS.len());
        for (name, nsub) in FIELDS {
            let layout = FieldLayout::new(&vec![(g.im, g.jm); nsub]).ok_or_else(too_large)?;
            let len = layout.block.checked_mul(nprocs).ok_or_else(too_large)?;
            let shared = machine.shared::<f64>(&format!("ocean.{name}"), len, &parts(&layout))?;
            fields.push((shared, layout));
        }
        let dims: Vec<(usize, usize)> = (0..g.numlev).map(|k| (g.rows(k), g.cols(k))).collect();
        let mg = FieldLayout::new(&dims).ok_or_else(too_large)?;
        let len = mg.block.checked_mul(nprocs).ok_or_else(too_large)?;
        let q = machine.shared::<f64>("ocean.q_multi", len, &parts(&mg))?;
        let rhs = machine.shared::<f64>("ocean.rhs_multi", len, &parts(&mg))?;
        // f (the Coriolis parameter by column) is written by thread 0 and read by all.
        let f = machine.shared::<f64>("ocean.f", n, &Partition::by_thread(vec![(0..n, 0)]))?;
        Ok(Store {
            fields,
            q,
            rhs,
            mg,
            f,
        })
    }
}

/// What the threads share: the grids (as cells), the constants, and the original's
/// globals guarded by its locks.
pub(crate) struct Team<'a> {
    params: &'a Params,
    geom: &'a Geometry,
    c: Consts,
    psi: Field<'a>,
    psim: Field<'a>,
    psium: Field<'a>,
    psilm: Field<'a>,
    psib: Field<'a>,
    ga: Field<'a>,
    gb: Field<'a>,
    work1: Field<'a>,
    work2: Field<'a>,
    work3: Field<'a>,
    work4: Field<'a>,
    work5: Field<'a>,
    work6: Field<'a>,
    work7: Field<'a>,
    temparray: Field<'a>,
    tauz: Field<'a>,
    oldga: Field<'a>,
    oldgb: Field<'a>,
    q: MgField<'a>,
    rhs: MgField<'a>,
    f: &'a [Cell64],
    /// The multigrid's global error (`multi->err_multi`, under `error_lock`).
    err_multi: Mutex<f64>,
    psiai: Sums,
    psibi: Sums,
    /// Lines printed by the master thread during the run (`-o`).
    lines: Mutex<Vec<String>>,
    stats: Mutex<Vec<ProcStats>>,
    trackstart: Mutex<u64>,
    failure: Mutex<Option<OceanError>>,
}

impl<'a> Team<'a> {
    /// The team over `store`'s arrays, seen as cells for as long as the team lives.
    fn new(params: &'a Params, geom: &'a Geometry, store: &'a mut Store) -> Team<'a> {
        let Store {
            fields,
            q,
            rhs,
            mg,
            f,
        } = store;
        let mut fields = fields
            .iter_mut()
            .map(|(shared, layout)| Field::new(shared.cells(), layout));
        let mut field = || fields.next().expect("one array per field");
        Team {
            params,
            geom,
            c: Consts::new(params),
            psi: field(),
            psim: field(),
            psium: field(),
            psilm: field(),
            psib: field(),
            ga: field(),
            gb: field(),
            work1: field(),
            work2: field(),
            work3: field(),
            work4: field(),
            work5: field(),
            work6: field(),
            work7: field(),
            temparray: field(),
            tauz: field(),
            oldga: field(),
            oldgb: field(),
            q: MgField::new(q.cells(), mg),
            rhs: MgField::new(rhs.cells(), mg),
            f: f.cells(),
            err_multi: Mutex::new(0.0),
            psiai: Sums::new(geom.nprocs),
            psibi: Sums::new(geom.nprocs),
            lines: Mutex::new(Vec::new()),
            stats: Mutex::new(vec![ProcStats::default(); geom.nprocs]),
            trackstart: Mutex::new(0),
            failure: Mutex::new(None),
        }
    }
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
    let mut store = Store::allocate(&machine, &geom, params.n)?;
    // The grids as cells: each thread writes only its own subgrids, and reads a
    // neighbour's only where the original does, with a barrier since the neighbour last
    // wrote there (relaxed atomic cells, so the port's phases are a matter of results,
    // not of memory safety).
    let team = Team::new(&params, &geom, &mut store);
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
