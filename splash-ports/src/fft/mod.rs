//! The SPLASH-2 FFT kernel (`kernels/fft/fft.C`, Stanford 1994), ported.
//!
//! A radix-√n six-step 1D FFT of `n = 2^m` complex doubles, seen as a √n × √n matrix
//! whose rows are split in contiguous blocks over `p` threads:
//!
//! 1. transpose `x` into `trans` (blocked, staggered: thread `i` first reads the
//!    block column of thread `i + 1`, then `i + 2`, ..., its own last);
//! 2. a √n-point FFT of each of its rows of `trans`, then multiply by the roots of
//!    unity (`umain2`, the √n × √n matrix of twiddles, each thread's rows local);
//! 3. transpose back into `x`; 4. a √n-point FFT of each row (and the `1/n` scaling
//!    of an inverse transform); 5. transpose into `trans`; 6. (with `-t` or `-o`)
//!    copy the rows back into `x`.
//!
//! Every array row has `pad` extra elements, chosen as the original does so that
//! each thread's block of rows ends on a 4096-byte page boundary; the same
//! roots of unity (with the original's `PI = 3.1416`), the same `drand48` input
//! (seed 0) and the same order of floating-point operations, so `-t` prints the
//! same checksums as the C program and `-o` the same values.
//!
//! Flags (the original's): `-mM` (2^M points, M even; default 10), `-pP` (P
//! threads, a power of two, at most 2^(M/2); default 1), `-nN` (cache lines for
//! the transpose blocking; default 65536), `-lL` (log2 of the line size in bytes;
//! default 4), `-s` (every thread's times), `-t` (forward then inverse transform,
//! and compare checksums), `-o` (print the data), `-h` (help).
//!
//! Shared arrays (labels for the monitor): `fft.x`, `fft.trans`, `fft.umain2`
//! (`n + √n·pad` complex doubles each, thread `i`'s rows its partition) and
//! `fft.umain` (√n roots for the row FFTs, copied privately by every thread).
//!
//! Times are microseconds (`CLOCK` of the usual POSIX-threads PARMACS macros). The
//! C program reads malformed numbers as 0 (`atoi`) and ignores unknown flags; this
//! port refuses both. `-m` above 30 (the C program's `int` limit) and line sizes
//! that leave no cache line for the transpose (the C program divides by zero) are
//! errors too.

mod flags;
mod kernel;

use std::io::Write;
use std::sync::Mutex;

use flags::PAGE_SIZE;
pub use flags::{Flags, Geometry, Options, USAGE};
pub use kernel::Drand48;
pub(crate) use kernel::{Complex, fft1d_once};
use kernel::{Kernel, checksum, init_u, init_u2, init_x, print_array};

use crate::framework::{Machine, Partition, RunConfig, SplashError, clock_us};

/// The original's `PI` (sic).
#[allow(clippy::approx_constant)]
const PI: f64 = 3.1416;

/// Timing of one thread.
#[derive(Debug, Clone, Copy, Default)]
struct Times {
    trans: u64,
    total: u64,
}

/// The original's program: parses `args`, runs, prints to `out`.
///
/// # Errors
/// [`SplashError::Usage`] for bad flags (with the original's message); the
/// framework's errors for the machine and memory.
pub fn run(args: &[String], common: &RunConfig, out: &mut dyn Write) -> Result<(), SplashError> {
    let start = clock_us();
    run_options(Options::parse(args)?, start, common, out)
}

/// The original's program with its flags read by clap (the `splash` command's
/// [`Flags`] subcommand): runs, prints to `out`.
///
/// # Errors
/// As [`run`].
pub fn run_matches(
    flags: &clap::ArgMatches,
    common: &RunConfig,
    out: &mut dyn Write,
) -> Result<(), SplashError> {
    let start = clock_us();
    run_options(Options::from_matches(flags)?, start, common, out)
}

fn run_options(
    o: Options,
    start: u64,
    common: &RunConfig,
    out: &mut dyn Write,
) -> Result<(), SplashError> {
    if o.help {
        out.write_all(USAGE.as_bytes())?;
        return Ok(());
    }
    let g = Geometry::new(&o)?;
    for w in &g.warning {
        writeln!(out, "{w}")?;
    }
    let machine = Machine::new(common, o.p)?;
    let p = o.p;
    let len = g.elements();
    let stride = g.stride();
    let parts = Partition::by_thread(
        (0..p)
            .map(|t| {
                let r = g.rows(t, p);
                (r.start * stride..r.end * stride, t)
            })
            .collect(),
    );
    let mut x = machine.shared::<Complex>("fft.x", len, &parts)?;
    let trans = machine.shared::<Complex>("fft.trans", len, &parts)?;
    let mut umain2 = machine.shared::<Complex>("fft.umain2", len, &parts)?;
    let mut umain =
        machine.shared::<Complex>("fft.umain", g.root_n, &Partition::even(g.root_n, 1))?;

    writeln!(out)?;
    writeln!(out, "FFT with Blocking Transpose")?;
    writeln!(out, "   {} Complex Doubles", g.n)?;
    writeln!(out, "   {p} Processors")?;
    if g.cache_lines != o.cache_lines {
        writeln!(out, "   {} Cache lines", o.cache_lines)?;
        writeln!(
            out,
            "   {} Cache lines for blocking transpose",
            g.cache_lines
        )?;
    } else {
        writeln!(out, "   {} Cache lines", g.cache_lines)?;
    }
    writeln!(out, "   {} Byte line size", g.line_size)?;
    writeln!(out, "   {PAGE_SIZE} Bytes per page")?;
    writeln!(out)?;

    // No thread runs yet: all of each array.
    init_x(&g, x.get_mut());
    let xs = &*x.get_mut();
    let ck1 = o.test.then(|| checksum(&g, xs));
    if o.print {
        writeln!(out, "Original data values:")?;
        print_array(&g, xs, out)?;
    }
    init_u(&g, umain.get_mut(), PI);
    init_u2(&g, umain2.get_mut(), PI);

    let times = Mutex::new(vec![None::<Times>; p]);
    let marks = Mutex::new((0u64, 0u64));
    let k = Kernel {
        g: &g,
        o: &o,
        x: &x,
        trans: &trans,
        umain2: &umain2,
    };
    machine.run(|proc| {
        let me = proc.id();
        proc.barrier();
        // umain is only read during the run.
        let upriv: Vec<Complex> = umain.read_all(proc)[..g.root_n - 1].to_vec();
        let rows = g.rows(me, p);
        k.touch(proc, &upriv, rows.clone());
        proc.barrier();
        let clocked = me == 0 || o.stats;
        let initdone = if clocked { clock_us() } else { 0 };
        let mut transtime = 0;
        k.fft1d(proc, 1.0, &upriv, rows.clone(), &mut transtime);
        if o.test {
            k.fft1d(proc, -1.0, &upriv, rows.clone(), &mut transtime);
        }
        if clocked {
            let finish = clock_us();
            times.lock().unwrap_or_else(|e| e.into_inner())[me] = Some(Times {
                trans: transtime,
                total: finish - initdone,
            });
            if me == 0 {
                *marks.lock().unwrap_or_else(|e| e.into_inner()) = (initdone, finish);
            }
        }
    })?;
    // The monitor session covers the threads' work only, not the checks below.
    machine.finish()?;
    let times = times.into_inner().unwrap_or_else(|e| e.into_inner());
    let (initdone, finish) = marks.into_inner().unwrap_or_else(|e| e.into_inner());

    if o.print {
        if o.test {
            writeln!(out, "Data values after inverse FFT:")?;
        } else {
            writeln!(out, "Data values after FFT:")?;
        }
        // The run has ended.
        print_array(&g, x.get_mut(), out)?;
    }
    print_stats(&o, &times, out)?;
    let t0 = times[0].unwrap_or_default();
    let transtime = if o.stats {
        times.iter().flatten().map(|t| t.trans).max().unwrap_or(0)
    } else {
        t0.trans
    };
    writeln!(out)?;
    writeln!(out, "                 TIMING INFORMATION")?;
    writeln!(out, "Start time                        : {start:>16}")?;
    writeln!(out, "Initialization finish time        : {initdone:>16}")?;
    writeln!(out, "Overall finish time               : {finish:>16}")?;
    writeln!(
        out,
        "Total time with initialization    : {:>16}",
        finish - start
    )?;
    writeln!(
        out,
        "Total time without initialization : {:>16}",
        finish - initdone
    )?;
    writeln!(out, "Overall transpose time            : {transtime:>16}")?;
    writeln!(
        out,
        "Overall transpose fraction        : {}",
        cfloat(transtime as f64 / (finish - initdone) as f64, 16, 5)
    )?;
    writeln!(out)?;

    if let Some(ck1) = ck1 {
        let ck3 = checksum(&g, x.get_mut());
        writeln!(out, "              INVERSE FFT TEST RESULTS")?;
        writeln!(
            out,
            "Checksum difference is {:.3} ({ck1:.3}, {ck3:.3})",
            ck1 - ck3
        )?;
        if (ck1 - ck3).abs() < 0.001 {
            writeln!(out, "TEST PASSED")?;
        } else {
            writeln!(out, "TEST FAILED")?;
        }
    }
    Ok(())
}

/// C's `%W.Pf`, including its `nan`/`-nan` and `inf` spellings.
fn cfloat(v: f64, width: usize, prec: usize) -> String {
    let s = if v.is_nan() {
        if v.is_sign_negative() { "-nan" } else { "nan" }.to_owned()
    } else if v.is_infinite() {
        if v < 0.0 { "-inf" } else { "inf" }.to_owned()
    } else {
        format!("{v:.prec$}")
    };
    format!("{s:>width$}")
}

fn print_stats(o: &Options, times: &[Option<Times>], out: &mut dyn Write) -> std::io::Result<()> {
    let t = |i: usize| times[i].unwrap_or_default();
    let frac = |i: usize| t(i).trans as f64 / t(i).total as f64;
    writeln!(out)?;
    writeln!(out, "                 PROCESS STATISTICS")?;
    writeln!(out, "            Computation      Transpose     Transpose")?;
    writeln!(out, " Proc          Time            Time        Fraction")?;
    writeln!(
        out,
        "    0        {:>10}     {:>10}      {}",
        t(0).total,
        t(0).trans,
        cfloat(frac(0), 8, 5)
    )?;
    if !o.stats {
        return Ok(());
    }
    let p = times.len();
    let (mut max_t, mut min_t) = (t(0).trans, t(0).trans);
    let (mut max_c, mut min_c) = (t(0).total, t(0).total);
    let (mut max_f, mut min_f) = (frac(0), frac(0));
    let (mut sum_t, mut sum_c, mut sum_f) = (t(0).trans, t(0).total, frac(0));
    for i in 1..p {
        max_t = max_t.max(t(i).trans);
        min_t = min_t.min(t(i).trans);
        max_c = max_c.max(t(i).total);
        min_c = min_c.min(t(i).total);
        // The original's comparisons: NaN never replaces a bound.
        if frac(i) > max_f {
            max_f = frac(i);
        }
        if frac(i) < min_f {
            min_f = frac(i);
        }
        writeln!(
            out,
            "  {i:>3}        {:>10}     {:>10}      {}",
            t(i).total,
            t(i).trans,
            cfloat(frac(i), 8, 5)
        )?;
        sum_t += t(i).trans;
        sum_c += t(i).total;
        sum_f += frac(i);
    }
    writeln!(
        out,
        "  Avg        {}     {}      {}",
        cfloat(sum_c as f64 / p as f64, 10, 0),
        cfloat(sum_t as f64 / p as f64, 10, 0),
        cfloat(sum_f / p as f64, 8, 5)
    )?;
    writeln!(
        out,
        "  Max        {max_c:>10}     {max_t:>10}      {}",
        cfloat(max_f, 8, 5)
    )?;
    writeln!(
        out,
        "  Min        {min_c:>10}     {min_t:>10}      {}",
        cfloat(min_f, 8, 5)
    )
}
