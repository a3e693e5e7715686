//! The paper's 3D-FFT: a forward (and inverse) FFT of `n × n × n` complex doubles,
//! parallel over planes, with one all-to-all transpose per transform.
//!
//! Two shared arrays, `fft3d.a` and `fft3d.b`, `n³` complex doubles each (32 MiB
//! at the default `n = 128`). Thread `t` of `p` owns planes `t·n/p .. (t+1)·n/p`
//! of both: z-planes of `a` (`a[z][y][x]`) and x-planes of `b` (`b[x][y][z]`).
//!
//! Forward transform:
//! 1. in each of its z-planes of `a`, a thread transforms every x-line in place
//!    (contiguous) and every y-line (gathered into a private buffer eight columns
//!    at a time, transformed, scattered back);
//! 2. barrier; the transpose: each thread fills its x-planes of `b` with
//!    `b[x][y][z] = a[z][y][x]` (reading every thread's planes: the all-to-all),
//!    through a private tile (eight x-planes at a time: a run of reads from every
//!    z-plane, then a run of contiguous writes), then transforms every z-line of
//!    them in place.
//!
//! The spectrum `X[kx][ky][kz]` is then in `b`. The inverse runs the steps
//! backwards (z-lines of `b`, barrier, transpose back into `a`, y- and x-lines)
//! and scales by `1/n³`. Every 1D transform is the SPLASH-2 kernel's radix-2
//! `FFT1DOnce` with roots of unity made with the true π; each line is transformed
//! by one thread with the same operations whatever `p` and the layout, so the
//! spectrum and the round trip are bit-for-bit the same for every thread count,
//! placement and layout. The program prints the spectrum's sum (`n³·x[0]`) and
//! energy (`n³·Σ|x|²`, Parseval), each summed plane by plane in a fixed order, so
//! they too are the same for every `p` and layout.
//!
//! Under `--layout reorg` each thread's planes are on its node, so steps 1 and the
//! z-lines are local and only the transposes' reads cross nodes; under `orig`
//! everything is striped.
//!
//! Validation: `-t` checks the round trip, `max |x - IFFT(FFT(x))| <= 1e-12 ·
//! max |x|` (the error measured is printed; it is about 1e-15 here); `-d` (for
//! `n <= 16`) compares the spectrum with a direct DFT, `max |X_fft - X_dft| <=
//! 1e-10 · Σ|x|`.
//!
//! Input: `drand48` values (seed 0) in memory order, real then imaginary, as the
//! SPLASH-2 FFT makes its input.

use std::io::Write;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::fft::{Complex, Drand48, fft1d_once};
use clap::{ArgAction, ArgMatches};

use crate::framework::args::{Opt, in_order, parse_flags, program_command, whole};
use crate::framework::{Machine, Partition, Proc, RunConfig, Shared, SplashError, clock_us};

/// Round-trip tolerance, relative to the largest input magnitude.
pub const ROUND_TRIP_TOLERANCE: f64 = 1e-12;
/// Direct-DFT tolerance, relative to `Σ|x|`.
pub const DFT_TOLERANCE: f64 = 1e-10;
/// Largest `n` for `-d` (the direct DFT costs `n⁶`).
pub const DFT_MAX_N: usize = 16;
/// Largest `n` accepted.
pub const MAX_N: usize = 2048;
/// Columns gathered together for a strided line transform.
const GATHER: usize = 8;

/// `-h` text.
pub const USAGE: &str = "\
Usage: fft3d <options>

options:
  -nN : N = points per axis, a power of 2 (N*N*N complex doubles; default 128).
  -pP : P = number of threads, 1 <= P <= N (default 1).
  -iI : I = forward + inverse round trips (implies -t; default 1).
  -t  : Perform the FFT and the inverse FFT; test the round trip.
  -d  : Compare the forward FFT with a direct DFT (N <= 16).
  -s  : Print individual thread timing statistics.
  -h  : Print out command line options.

Default: fft3d -n128 -p1
";

/// The parsed flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Points per axis.
    pub n: usize,
    /// Threads.
    pub p: usize,
    /// Round trips (with `test`), else 1 forward transform.
    pub iterations: usize,
    /// Forward and inverse, round-trip test.
    pub test: bool,
    /// Direct DFT comparison.
    pub dft: bool,
    /// Per-thread times.
    pub stats: bool,
    /// Print the usage.
    pub help: bool,
}

fn usage(msg: String) -> SplashError {
    SplashError::Usage(msg)
}

impl Options {
    /// Reads `-n -p -i -t -d -s -h`.
    ///
    /// # Errors
    /// [`SplashError::Usage`] naming the bad flag.
    pub fn parse(args: &[String]) -> Result<Options, SplashError> {
        Options::from_opts(parse_flags::<Flags>("fft3d", args)?)
    }

    /// The options of flags read by clap (the `splash` command's `fft3d`).
    ///
    /// # Errors
    /// As [`Options::parse`].
    pub fn from_matches(m: &ArgMatches) -> Result<Options, SplashError> {
        Options::from_opts(in_order(&program_command::<Flags>("fft3d"), m))
    }

    /// The flags in order, each checked as it comes, then the checks that involve
    /// two flags.
    ///
    /// # Errors
    /// [`SplashError::Usage`] naming the bad flag.
    pub fn from_opts(opts: Vec<Opt>) -> Result<Options, SplashError> {
        let mut o = Options {
            n: 128,
            p: 1,
            iterations: 1,
            test: false,
            dft: false,
            stats: false,
            help: false,
        };
        for (letter, arg) in opts {
            let arg = arg.unwrap_or_default();
            match letter {
                'n' => o.n = n_value(&arg).map_err(usage)?,
                'p' => o.p = p_value(&arg).map_err(usage)?,
                'i' => {
                    o.iterations = i_value(&arg).map_err(usage)?;
                    o.test = true;
                }
                't' => o.test = true,
                'd' => o.dft = true,
                's' => o.stats = !o.stats,
                'h' => {
                    o.help = true;
                    return Ok(o);
                }
                _ => unreachable!("clap returns only the flags' letters"),
            }
        }
        if o.p > o.n {
            return Err(usage(format!(
                "Not enough planes: P ({}) must be <= N ({})",
                o.p, o.n
            )));
        }
        if o.dft && o.n > DFT_MAX_N {
            return Err(usage(format!(
                "-d compares with a direct DFT of N^6 terms: N must be <= {DFT_MAX_N} (got {})",
                o.n
            )));
        }
        Ok(o)
    }
}

fn n_value(s: &str) -> Result<usize, String> {
    let n = whole('n', s)?;
    if n < 1 || !(n as u64).is_power_of_two() || n as usize > MAX_N {
        return Err(format!(
            "N must be a power of 2 between 1 and {MAX_N} (got {n})"
        ));
    }
    Ok(n as usize)
}

fn p_value(s: &str) -> Result<usize, String> {
    let p = whole('p', s)?;
    if p < 1 {
        return Err(format!("P must be >= 1 (got {p})"));
    }
    Ok(usize::try_from(p).unwrap_or(usize::MAX))
}

fn i_value(s: &str) -> Result<usize, String> {
    let i = whole('i', s)?;
    if i < 1 {
        return Err(format!("I must be >= 1 (got {i})"));
    }
    Ok(usize::try_from(i).unwrap_or(usize::MAX))
}

/// The flags (`-n -p -i -t -d -s -h`), for clap and the help: values as given
/// (checked in order by [`Options::from_opts`]).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Flags {
    /// N = points per axis, a power of 2 (N*N*N complex doubles; default 128).
    #[arg(short = 'n', value_name = "N", action = ArgAction::Append, allow_hyphen_values = true)]
    n: Vec<String>,
    /// P = number of threads, 1 <= P <= N (default 1).
    #[arg(short = 'p', value_name = "P", action = ArgAction::Append, allow_hyphen_values = true)]
    p: Vec<String>,
    /// I = forward + inverse round trips (implies -t; default 1).
    #[arg(short = 'i', value_name = "I", action = ArgAction::Append, allow_hyphen_values = true)]
    i: Vec<String>,
    /// Perform the FFT and the inverse FFT; test the round trip.
    #[arg(short = 't', action = ArgAction::Append, num_args = 0, default_missing_value = "")]
    t: Vec<String>,
    /// Compare the forward FFT with a direct DFT (N <= 16).
    #[arg(short = 'd', action = ArgAction::Append, num_args = 0, default_missing_value = "")]
    d: Vec<String>,
    /// Print individual thread timing statistics.
    #[arg(short = 's', action = ArgAction::Append, num_args = 0, default_missing_value = "")]
    s: Vec<String>,
    /// Print out command line options.
    #[arg(short = 'h', action = ArgAction::Append, num_args = 0, default_missing_value = "")]
    h: Vec<String>,
}

/// Planes of thread `t` of `p` over `n`.
fn planes(n: usize, t: usize, p: usize) -> Range<usize> {
    n * t / p..n * (t + 1) / p
}

/// Roots of unity for [`fft1d_once`] on `n` points: stage `q` (`L = 2^q`) uses
/// `u[L/2 - 1 + j] = exp(-iπ j / (L/2))`, `j < L/2`.
pub(crate) fn stage_roots(n: usize) -> Vec<Complex> {
    let mut u = vec![[0.0; 2]; n.max(1)];
    let mut half = 1;
    while half < n {
        for j in 0..half {
            let a = std::f64::consts::PI * j as f64 / half as f64;
            u[half - 1 + j] = [a.cos(), -a.sin()];
        }
        half *= 2;
    }
    u
}

/// Per-thread times, microseconds.
#[derive(Debug, Clone, Copy, Default)]
struct Times {
    total: u64,
    trans: u64,
}

/// The arrays and sizes every thread works on.
struct Cube<'a> {
    n: usize,
    m: u32,
    a: &'a Shared<Complex>,
    b: &'a Shared<Complex>,
    roots: &'a [Complex],
}

impl Cube<'_> {
    fn plane(&self, planes: &Range<usize>) -> Range<usize> {
        let nn = self.n * self.n;
        planes.start * nn..planes.end * nn
    }

    /// x-lines in place, y-lines through a buffer, in this thread's z-planes of `a`
    /// (its own part).
    fn planes_2d(&self, direction: f64, a: &mut [Complex], buf: &mut [Complex]) {
        let n = self.n;
        for plane in a.chunks_exact_mut(n * n) {
            if direction > 0.0 {
                self.x_lines(direction, plane);
                self.y_lines(direction, plane, buf);
            } else {
                self.y_lines(direction, plane, buf);
                self.x_lines(direction, plane);
            }
        }
    }

    fn x_lines(&self, direction: f64, plane: &mut [Complex]) {
        for line in plane.chunks_exact_mut(self.n) {
            fft1d_once(direction, self.m, self.roots, line);
        }
    }

    fn y_lines(&self, direction: f64, plane: &mut [Complex], buf: &mut [Complex]) {
        let n = self.n;
        let w = GATHER.min(n);
        for x0 in (0..n).step_by(w) {
            for y in 0..n {
                for k in 0..w {
                    buf[k * n + y] = plane[y * n + x0 + k];
                }
            }
            for line in buf[..w * n].chunks_exact_mut(n) {
                fft1d_once(direction, self.m, self.roots, line);
            }
            for y in 0..n {
                for k in 0..w {
                    plane[y * n + x0 + k] = buf[k * n + y];
                }
            }
        }
    }

    /// `dst[i][y][j] = src[j][y][i]` for this thread's planes `i` of `dst`, in
    /// tiles of [`GATHER`] planes: for each `y`, a tile of `n × GATHER` elements is
    /// read from every plane of `src` into `tile`, then written out as `GATHER`
    /// contiguous lines of `dst` (reads in runs, then writes in runs).
    fn transpose(
        &self,
        s: &[Complex],
        d: &mut [Complex],
        mine: &Range<usize>,
        tile: &mut [Complex],
    ) {
        let n = self.n;
        let nn = n * n;
        debug_assert_eq!(d.len(), self.plane(mine).len());
        let first = mine.start;
        let mut i0 = mine.start;
        while i0 < mine.end {
            let w = GATHER.min(mine.end - i0);
            for y in 0..n {
                for j in 0..n {
                    let at = j * nn + y * n + i0;
                    tile[j * w..(j + 1) * w].copy_from_slice(&s[at..at + w]);
                }
                for k in 0..w {
                    let at = (i0 + k - first) * nn + y * n;
                    for (out, t) in d[at..at + n].iter_mut().zip(tile[..n * w].chunks_exact(w)) {
                        *out = t[k];
                    }
                }
            }
            i0 += w;
        }
    }

    /// z-lines in place in this thread's x-planes of `b` (its own part).
    fn z_lines(&self, direction: f64, b: &mut [Complex]) {
        for line in b.chunks_exact_mut(self.n) {
            fft1d_once(direction, self.m, self.roots, line);
        }
    }

    fn scale(&self, a: &mut [Complex]) {
        let f = 1.0 / (self.n * self.n * self.n) as f64;
        for v in a {
            v[0] *= f;
            v[1] *= f;
        }
    }
}

/// Runs the 3D-FFT with `args`, printing to `out`.
///
/// # Errors
/// [`SplashError::Usage`] for bad flags; the framework's errors.
pub fn run(args: &[String], common: &RunConfig, out: &mut dyn Write) -> Result<(), SplashError> {
    let start = clock_us();
    run_options(Options::parse(args)?, start, common, out)
}

/// Runs the 3D-FFT with flags read by clap (the `splash` command's `fft3d`).
///
/// # Errors
/// As [`run`].
pub fn run_matches(
    flags: &ArgMatches,
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
    let machine = Machine::new(common, o.p)?;
    let (n, p) = (o.n, o.p);
    let len = n * n * n;
    let parts = Partition::by_thread(
        (0..p)
            .map(|t| {
                let r = planes(n, t, p);
                (r.start * n * n..r.end * n * n, t)
            })
            .collect(),
    );
    let mut a = machine.shared::<Complex>("fft3d.a", len, &parts)?;
    let b = machine.shared::<Complex>("fft3d.b", len, &parts)?;

    writeln!(out)?;
    writeln!(out, "3D-FFT with transposes")?;
    writeln!(out, "   {n} x {n} x {n} Complex Doubles")?;
    writeln!(out, "   {p} Processors")?;
    writeln!(out, "   {} layout", machine.layout())?;
    if o.test {
        writeln!(out, "   {} Round trips", o.iterations)?;
    }
    writeln!(out)?;

    // No thread runs yet: all of it.
    let input = a.get_mut();
    let mut r = Drand48::new(0);
    for v in input.iter_mut() {
        let re = r.next_f64();
        let im = r.next_f64();
        *v = [re, im];
    }
    let keep = (o.test || o.dft).then(|| input.to_vec());

    let roots = stage_roots(n);
    let cube = Cube {
        n,
        m: n.trailing_zeros(),
        a: &a,
        b: &b,
        roots: &roots,
    };
    // Per plane of the spectrum: Σ re, Σ im, Σ |X|², summed by the plane's owner.
    let plane_sums: Vec<[AtomicU64; 3]> = (0..n).map(|_| Default::default()).collect();
    let spectrum = Mutex::new(None::<Vec<Complex>>);
    let times = Mutex::new(vec![Times::default(); p]);
    let marks = Mutex::new((0u64, 0u64));
    machine.run(|proc: &mut Proc<'_>| {
        let me = proc.id();
        let mine = planes(n, me, p);
        let mut buf = vec![[0.0; 2]; GATHER.min(n) * n];
        let clocked = me == 0 || o.stats;
        let clock = || if clocked { clock_us() } else { 0 };
        proc.barrier();
        let initdone = clock();
        let mut trans = 0;
        for it in 0..o.iterations {
            cube.planes_2d(1.0, cube.a.own_mut(proc), &mut buf);
            proc.barrier();
            let t1 = clock();
            let bs = cube.b.own_mut(proc);
            cube.transpose(cube.a.read_all(proc), bs, &mine, &mut buf);
            trans += clock() - t1;
            cube.z_lines(1.0, bs);
            proc.barrier();
            if it == 0 {
                // b is only read until the next barrier.
                let bs = &cube.b.read_all(proc)[cube.plane(&mine)];
                for (i, plane) in bs.chunks_exact(n * n).enumerate() {
                    let mut sums = [0.0; 3];
                    for v in plane {
                        sums[0] += v[0];
                        sums[1] += v[1];
                        sums[2] += v[0] * v[0] + v[1] * v[1];
                    }
                    for (slot, s) in plane_sums[mine.start + i].iter().zip(sums) {
                        slot.store(s.to_bits(), Ordering::Relaxed);
                    }
                }
                if o.dft && me == 0 {
                    let all = cube.b.read_all(proc).to_vec();
                    *spectrum.lock().unwrap_or_else(|e| e.into_inner()) = Some(all);
                }
                proc.barrier();
            }
            if !o.test {
                break;
            }
            cube.z_lines(-1.0, cube.b.own_mut(proc));
            proc.barrier();
            let t1 = clock();
            let at = cube.a.own_mut(proc);
            cube.transpose(cube.b.read_all(proc), at, &mine, &mut buf);
            trans += clock() - t1;
            cube.planes_2d(-1.0, at, &mut buf);
            cube.scale(at);
            proc.barrier();
        }
        if clocked {
            let finish = clock_us();
            times.lock().unwrap_or_else(|e| e.into_inner())[me] = Times {
                total: finish - initdone,
                trans,
            };
            if me == 0 {
                *marks.lock().unwrap_or_else(|e| e.into_inner()) = (initdone, finish);
            }
        }
    })?;
    // The monitor session covers the threads' work only, not the checks below.
    machine.finish()?;
    let times = times.into_inner().unwrap_or_else(|e| e.into_inner());
    let (initdone, finish) = marks.into_inner().unwrap_or_else(|e| e.into_inner());

    writeln!(out, "                 PROCESS STATISTICS")?;
    writeln!(out, "            Computation      Transpose     Transpose")?;
    writeln!(out, " Proc          Time            Time        Fraction")?;
    let shown = if o.stats { p } else { 1 };
    for (i, t) in times.iter().take(shown).enumerate() {
        writeln!(
            out,
            "  {i:>3}        {:>10}     {:>10}      {:>8.5}",
            t.total,
            t.trans,
            t.trans as f64 / t.total.max(1) as f64
        )?;
    }
    writeln!(out)?;
    writeln!(out, "                 TIMING INFORMATION")?;
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
    writeln!(
        out,
        "Overall transpose time            : {:>16}",
        times[0].trans
    )?;
    writeln!(out)?;

    let mut sums = [0.0; 3];
    for plane in &plane_sums {
        for (s, slot) in sums.iter_mut().zip(plane) {
            *s += f64::from_bits(slot.load(Ordering::Relaxed));
        }
    }
    // Σ_k X[k] = n³·x[0] and Σ|X|² = n³·Σ|x|² (Parseval): checks anyone can redo.
    writeln!(out, "Spectrum sum is ({:.6}, {:.6})", sums[0], sums[1])?;
    writeln!(out, "Spectrum energy is {:.6}", sums[2])?;

    let input = keep.unwrap_or_default();
    if o.test {
        // The run has ended.
        let back = a.get_mut();
        let (err, big) = max_error(&input, back);
        writeln!(out, "              INVERSE FFT TEST RESULTS")?;
        writeln!(
            out,
            "Round-trip error is {err:.3e} (largest input {big:.3e}, tolerance {ROUND_TRIP_TOLERANCE:.0e})"
        )?;
        pass(out, err <= ROUND_TRIP_TOLERANCE * big)?;
    }
    if o.dft {
        let got = spectrum
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or_default();
        let want = direct_dft(n, &input);
        let (err, _) = max_error(&want, &got);
        let mass: f64 = input.iter().map(|v| v[0].hypot(v[1])).sum();
        writeln!(out, "              DIRECT DFT TEST RESULTS")?;
        writeln!(
            out,
            "Largest difference is {err:.3e} (sum of |x| {mass:.3e}, tolerance {DFT_TOLERANCE:.0e})"
        )?;
        pass(out, err <= DFT_TOLERANCE * mass)?;
    }
    Ok(())
}

fn pass(out: &mut dyn Write, ok: bool) -> std::io::Result<()> {
    writeln!(out, "{}", if ok { "TEST PASSED" } else { "TEST FAILED" })
}

/// `(max |want - got|, max |want|)` over complex values.
fn max_error(want: &[Complex], got: &[Complex]) -> (f64, f64) {
    let mut err: f64 = if want.len() == got.len() {
        0.0
    } else {
        f64::INFINITY
    };
    let mut big: f64 = 0.0;
    for (w, g) in want.iter().zip(got) {
        err = err.max((w[0] - g[0]).hypot(w[1] - g[1]));
        big = big.max(w[0].hypot(w[1]));
    }
    (err, big)
}

/// `X[kx][ky][kz] = Σ x[z][y][x] e^{-2πi (kx·x + ky·y + kz·z)/n}`, laid out as the
/// FFT leaves it (`b[kx][ky][kz]`), directly: `n⁶` terms.
pub fn direct_dft(n: usize, x: &[Complex]) -> Vec<Complex> {
    let w: Vec<Complex> = (0..n)
        .map(|k| {
            let a = 2.0 * std::f64::consts::PI * k as f64 / n as f64;
            [a.cos(), -a.sin()]
        })
        .collect();
    let mul = |a: Complex, b: Complex| [a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0]];
    let mut out = vec![[0.0; 2]; n * n * n];
    for kx in 0..n {
        for ky in 0..n {
            for kz in 0..n {
                let mut acc = [0.0; 2];
                for z in 0..n {
                    for y in 0..n {
                        for xx in 0..n {
                            let e = (kx * xx + ky * y + kz * z) % n;
                            let t = mul(x[(z * n + y) * n + xx], w[e]);
                            acc[0] += t[0];
                            acc[1] += t[1];
                        }
                    }
                }
                out[(kx * n + ky) * n + kz] = acc;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn bad_flags_name_the_culprit() {
        let e = |v: &[&str]| Options::parse(&args(v)).unwrap_err().to_string();
        assert!(e(&["-n100"]).contains("got 100"));
        assert!(e(&["-n0"]).contains("got 0"));
        assert!(e(&["-n4", "-p8"]).contains("P (8) must be <= N (4)"));
        assert!(e(&["-p0"]).contains("got 0"));
        assert!(e(&["-n32", "-d"]).contains("got 32"));
        assert!(e(&["-i0"]).contains("got 0"));
        assert_eq!(e(&["-z"]), "invalid option -- 'z'");
        let o = Options::parse(&args(&["-n8", "-p3", "-i2"])).unwrap();
        assert!(o.test && o.iterations == 2 && o.p == 3);
    }

    #[test]
    fn planes_cover_the_axis() {
        for (n, p) in [(8, 3), (128, 8), (4, 4), (1, 1)] {
            let all: Vec<usize> = (0..p).flat_map(|t| planes(n, t, p)).collect();
            assert_eq!(all, (0..n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn stage_roots_are_the_kernels_roots_with_the_true_pi() {
        let u = stage_roots(8);
        // Stage 3 (L = 8): u[3 + j] = exp(-iπ j/4).
        let e = (-std::f64::consts::FRAC_PI_4).sin();
        assert!((u[4][0] - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-15);
        assert!((u[4][1] - e).abs() < 1e-15);
        assert_eq!(u[0], [1.0, -0.0]);
    }
}
