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

use std::io::Write;
use std::sync::Mutex;

use crate::framework::{
    Machine, Partition, Proc, RunConfig, Shared, SplashError, clock_us, getopt, int_arg,
};

/// Complex double, `[re, im]`, laid out as the C program's pairs of doubles.
pub(crate) type Complex = [f64; 2];

/// The original's `PI` (sic).
#[allow(clippy::approx_constant)]
const PI: f64 = 3.1416;
/// The original's page size, used for the padding whatever the machine's.
const PAGE_SIZE: usize = 4096;
const DEFAULT_M: i64 = 10;
const DEFAULT_P: i64 = 1;
const NUM_CACHE_LINES: i64 = 65536;
const LOG2_LINE_SIZE: i64 = 4;
const COMPLEX_BYTES: usize = 2 * size_of::<f64>();

/// The original's `-h` text.
pub const USAGE: &str = "\
Usage: FFT <options>

options:
  -mM : M = even integer; 2**M total complex data points transformed.
  -pP : P = number of processors; Must be a power of 2.
  -nN : N = number of cache lines.
  -lL : L = Log base 2 of cache line length in bytes.
  -s  : Print individual processor timing statistics.
  -t  : Perform FFT and inverse FFT.  Test output by comparing the
        integral of the original data to the integral of the data that
        results from performing the FFT and inverse FFT.
  -o  : Print out complex data points.
  -h  : Print out command line options.

Default: FFT -m10 -p1 -n65536 -l4
";

/// The parsed flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `-m`: log2 of the number of points (even).
    pub m: u32,
    /// `-p`: threads (a power of two).
    pub p: usize,
    /// `-n`: cache lines, as given.
    pub cache_lines: usize,
    /// `-l`: log2 of the cache line size in bytes.
    pub log2_line_size: u32,
    /// `-s`: per-thread statistics.
    pub stats: bool,
    /// `-t`: forward and inverse transform, checksum test.
    pub test: bool,
    /// `-o`: print the data.
    pub print: bool,
    /// `-h`: print the usage and stop.
    pub help: bool,
}

fn usage(msg: &str) -> SplashError {
    SplashError::Usage(msg.to_owned())
}

/// `log_2` of the original: the exponent of a power of two, else `None`.
fn log_2(n: i64) -> Option<u32> {
    (n > 0 && (n as u64).is_power_of_two()).then(|| n.trailing_zeros())
}

impl Options {
    /// Reads the flags as the original's `getopt(argc, argv, "p:m:n:l:stoh")` loop,
    /// in order, stopping at the first bad one with the original's message.
    ///
    /// # Errors
    /// [`SplashError::Usage`].
    pub fn parse(args: &[String]) -> Result<Options, SplashError> {
        let mut o = Options {
            m: DEFAULT_M as u32,
            p: DEFAULT_P as usize,
            cache_lines: NUM_CACHE_LINES as usize,
            log2_line_size: LOG2_LINE_SIZE as u32,
            stats: false,
            test: false,
            print: false,
            help: false,
        };
        for opt in getopt(args, "p:m:n:l:stoh")? {
            let num = || int_arg(opt.letter, opt.arg.as_deref().unwrap_or_default());
            match opt.letter {
                'p' => {
                    let p = num()?;
                    if p < 1 {
                        return Err(usage("P must be >= 1"));
                    }
                    if log_2(p).is_none() {
                        return Err(usage("P must be a power of 2"));
                    }
                    o.p = p as usize;
                }
                'm' => {
                    let m = num()?;
                    if m % 2 != 0 {
                        return Err(usage("M must be even"));
                    }
                    if !(0..=30).contains(&m) {
                        return Err(usage("M must be between 0 and 30"));
                    }
                    o.m = m as u32;
                }
                'n' => {
                    let n = num()?;
                    if n < 1 {
                        return Err(usage("Number of cache lines must be >= 1"));
                    }
                    o.cache_lines = usize::try_from(n).unwrap_or(usize::MAX);
                }
                'l' => {
                    let l = num()?;
                    if l < 0 {
                        return Err(usage(
                            "Log base 2 of cache line length in bytes must be >= 0",
                        ));
                    }
                    if l > 30 {
                        return Err(usage(
                            "Log base 2 of cache line length in bytes must be <= 30",
                        ));
                    }
                    o.log2_line_size = l as u32;
                }
                's' => o.stats = !o.stats,
                't' => o.test = !o.test,
                'o' => o.print = !o.print,
                'h' => {
                    o.help = true;
                    return Ok(o);
                }
                _ => unreachable!("getopt returns only letters of the optstring"),
            }
        }
        Ok(o)
    }
}

/// Sizes derived from the flags, as the original's `main` computes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    /// Points, `2^m`.
    pub n: usize,
    /// `√n`: rows and row length.
    pub root_n: usize,
    /// Rows per thread.
    pub rows_per_proc: usize,
    /// Extra elements at the end of each row.
    pub pad: usize,
    /// Cache lines used to block the transposes.
    pub cache_lines: usize,
    /// Cache line size in bytes.
    pub line_size: usize,
    /// Lines printed before the header (the original's warning for lines
    /// smaller than a complex double).
    pub warning: Vec<String>,
}

impl Geometry {
    /// # Errors
    /// [`SplashError::Usage`] with the original's message when the matrix has fewer
    /// rows than threads.
    pub fn new(o: &Options) -> Result<Geometry, SplashError> {
        let n = 1usize << o.m;
        let root_n = 1usize << (o.m / 2);
        let rows_per_proc = root_n / o.p;
        if rows_per_proc == 0 {
            return Err(usage("Matrix not large enough. 2**(M/2) must be >= P"));
        }
        let line_size = 1usize << o.log2_line_size;
        let mut cache_lines = o.cache_lines;
        let mut warning = Vec::new();
        if line_size < COMPLEX_BYTES {
            warning.push(format!(
                "WARNING: Each element is a complex double ({COMPLEX_BYTES} bytes)"
            ));
            warning.push("  => Less than one element per cache line".to_owned());
            warning.push("     Computing transpose blocking factor".to_owned());
            let factor = COMPLEX_BYTES / line_size;
            cache_lines = o.cache_lines / factor;
            if cache_lines == 0 {
                return Err(usage(
                    "Fewer than one cache line left for the blocking transpose: raise -n or -l",
                ));
            }
        }
        let mut pad = if line_size <= COMPLEX_BYTES {
            1
        } else {
            line_size / COMPLEX_BYTES
        };
        let block_bytes = rows_per_proc * root_n * COMPLEX_BYTES;
        if block_bytes >= PAGE_SIZE {
            let pad_bytes = COMPLEX_BYTES * pad * rows_per_proc;
            let pages = pad_bytes.div_ceil(PAGE_SIZE);
            pad = pages * PAGE_SIZE / (COMPLEX_BYTES * rows_per_proc);
        } else {
            let rest = PAGE_SIZE - block_bytes;
            pad = rest / (COMPLEX_BYTES * rows_per_proc);
            if pad * COMPLEX_BYTES * rows_per_proc != rest {
                return Err(usage("Padding algorithm unsuccessful"));
            }
        }
        Ok(Geometry {
            n,
            root_n,
            rows_per_proc,
            pad,
            cache_lines,
            line_size,
            warning,
        })
    }

    /// Elements of a padded matrix.
    pub fn elements(&self) -> usize {
        self.n + self.root_n * self.pad
    }

    /// Row stride in elements.
    pub fn stride(&self) -> usize {
        self.root_n + self.pad
    }

    /// Rows `first..last` of thread `me` of `p`.
    pub fn rows(&self, me: usize, p: usize) -> std::ops::Range<usize> {
        self.root_n * me / p..self.root_n * (me + 1) / p
    }
}

/// The 48-bit linear congruential generator of `srand48`/`drand48`.
#[derive(Debug, Clone)]
pub struct Drand48(u64);

impl Drand48 {
    /// `srand48(seed)`.
    pub fn new(seed: u32) -> Drand48 {
        Drand48((u64::from(seed) << 16) | 0x330e)
    }

    /// `drand48()`: the next value in `[0, 1)`, exactly `X / 2^48`.
    pub fn next_f64(&mut self) -> f64 {
        self.0 = (self.0.wrapping_mul(0x5_deec_e66d).wrapping_add(0xb)) & ((1 << 48) - 1);
        self.0 as f64 / (1u64 << 48) as f64
    }
}

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
    let o = Options::parse(args)?;
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
    let x = machine.shared::<Complex>("fft.x", len, &parts)?;
    let trans = machine.shared::<Complex>("fft.trans", len, &parts)?;
    let umain2 = machine.shared::<Complex>("fft.umain2", len, &parts)?;
    let umain = machine.shared::<Complex>("fft.umain", g.root_n, &Partition::even(g.root_n, 1))?;

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

    {
        // SAFETY: no thread runs yet; this is the only reference.
        let xs = unsafe { x.slice_mut(0..len) };
        init_x(&g, xs);
    }
    // SAFETY: no thread runs yet; nothing writes x while this lives.
    let xs = unsafe { x.slice(0..len) };
    let ck1 = o.test.then(|| checksum(&g, xs));
    if o.print {
        writeln!(out, "Original data values:")?;
        print_array(&g, xs, out)?;
    }
    // SAFETY: as above.
    init_u(&g, unsafe { umain.slice_mut(0..g.root_n) }, PI);
    // SAFETY: as above.
    init_u2(&g, unsafe { umain2.slice_mut(0..len) }, PI);

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
        // SAFETY: umain is only read during the run.
        let upriv: Vec<Complex> = unsafe { umain.slice(0..g.root_n - 1) }.to_vec();
        let rows = g.rows(me, p);
        k.touch(&upriv, rows.clone());
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
        // SAFETY: the run has ended.
        print_array(&g, unsafe { x.slice(0..len) }, out)?;
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
        // SAFETY: the run has ended.
        let ck3 = checksum(&g, unsafe { x.slice(0..len) });
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

/// The original's `InitX`: `drand48` values (seed 0), row by row, real then
/// imaginary.
fn init_x(g: &Geometry, x: &mut [Complex]) {
    let mut r = Drand48::new(0);
    for row in x.chunks_mut(g.stride()).take(g.root_n) {
        for v in &mut row[..g.root_n] {
            let re = r.next_f64();
            let im = r.next_f64();
            *v = [re, im];
        }
    }
}

/// The original's `InitU`: the roots of unity of every butterfly stage, stage
/// `q` (of `2^q` roots) from index `2^q - 1`, for the first √n entries.
fn init_u(g: &Geometry, u: &mut [Complex], pi: f64) {
    let mut q = 0;
    while 1usize << q < g.n {
        let n1 = 1usize << q;
        let base = n1 - 1;
        for j in 0..n1 {
            if base + j > g.root_n - 1 {
                return;
            }
            let a = 2.0 * pi * j as f64 / (2 * n1) as f64;
            u[base + j] = [a.cos(), -a.sin()];
        }
        q += 1;
    }
}

/// The original's `InitU2`: `umain2[j][i] = exp(-2πi·ij/n)`.
fn init_u2(g: &Geometry, u: &mut [Complex], pi: f64) {
    for (j, row) in u.chunks_mut(g.stride()).take(g.root_n).enumerate() {
        for (i, v) in row[..g.root_n].iter_mut().enumerate() {
            let a = 2.0 * pi * i as f64 * j as f64 / g.n as f64;
            *v = [a.cos(), -a.sin()];
        }
    }
}

/// The original's `CheckSum`: the sum of `re + im` over the matrix, row by row.
fn checksum(g: &Geometry, x: &[Complex]) -> f64 {
    let mut cks = 0.0;
    for row in x.chunks(g.stride()).take(g.root_n) {
        for v in &row[..g.root_n] {
            cks += v[0] + v[1];
        }
    }
    cks
}

/// The original's `PrintArray`: `" %4.2f %4.2f"` per point, commas between points,
/// a line break after every 8.
fn print_array(g: &Geometry, x: &[Complex], out: &mut dyn Write) -> std::io::Result<()> {
    let mut s = String::new();
    for (i, row) in x.chunks(g.stride()).take(g.root_n).enumerate() {
        for (j, v) in row[..g.root_n].iter().enumerate() {
            use std::fmt::Write as _;
            let _ = write!(s, " {:4.2} {:4.2}", v[0], v[1]);
            let k = i * g.root_n + j;
            if k != g.n - 1 {
                s.push(',');
            }
            if (k + 1).is_multiple_of(8) {
                s.push('\n');
            }
        }
        out.write_all(s.as_bytes())?;
        s.clear();
    }
    out.write_all(b"\n\n")
}

/// The arrays and sizes every thread works on.
struct Kernel<'a> {
    g: &'a Geometry,
    o: &'a Options,
    x: &'a Shared<Complex>,
    trans: &'a Shared<Complex>,
    umain2: &'a Shared<Complex>,
}

impl Kernel<'_> {
    /// The original's `TouchArray`: reads this thread's rows of every array.
    fn touch(&self, upriv: &[Complex], rows: std::ops::Range<usize>) {
        let s = self.g.stride();
        let mut tot = 0.0;
        for u in upriv {
            tot += u[0] + u[1];
        }
        let r = rows.start * s..rows.end * s;
        // SAFETY: only reads happen in this phase.
        let x = unsafe { self.x.slice(r.clone()) };
        // SAFETY: as above.
        let t = unsafe { self.trans.slice(r.clone()) };
        // SAFETY: as above.
        let u = unsafe { self.umain2.slice(r) };
        for j in 0..rows.len() {
            for i in j * s..j * s + self.g.root_n {
                tot += x[i][0] + x[i][1] + t[i][0] + t[i][1] + u[i][0] + u[i][1];
            }
        }
        std::hint::black_box(tot);
    }

    /// The original's `FFT1D`: one six-step transform (direction 1.0 forward,
    /// -1.0 inverse) of the whole matrix; this thread's part.
    fn fft1d(
        &self,
        proc: &Proc<'_>,
        direction: f64,
        upriv: &[Complex],
        rows: std::ops::Range<usize>,
        transtime: &mut u64,
    ) {
        let g = self.g;
        let s = g.stride();
        let n1 = g.root_n;
        let m1 = self.o.m / 2;
        let mine = rows.start * s..rows.end * s;
        let clocked = proc.id() == 0 || self.o.stats;
        let mut timed = |f: &mut dyn FnMut()| {
            let t1 = if clocked { clock_us() } else { 0 };
            f();
            if clocked {
                *transtime += clock_us() - t1;
            }
        };
        proc.barrier();
        timed(&mut || self.transpose(proc, self.x, self.trans, rows.clone()));
        {
            // SAFETY: between the barriers each thread writes only its own rows of
            // trans.
            let t = unsafe { self.trans.slice_mut(mine.clone()) };
            // SAFETY: nobody writes umain2 during the run.
            let u2 = unsafe { self.umain2.slice(mine.clone()) };
            for (row, urow) in t.chunks_mut(s).zip(u2.chunks(s)) {
                let row = &mut row[..n1];
                fft1d_once(direction, m1, upriv, row);
                twiddle_one_col(direction, &urow[..n1], row);
            }
        }
        proc.barrier();
        timed(&mut || self.transpose(proc, self.trans, self.x, rows.clone()));
        {
            // SAFETY: each thread writes only its own rows of x.
            let x = unsafe { self.x.slice_mut(mine.clone()) };
            for row in x.chunks_mut(s) {
                let row = &mut row[..n1];
                fft1d_once(direction, m1, upriv, row);
                if direction == -1.0 {
                    scale(g.n, row);
                }
            }
        }
        proc.barrier();
        timed(&mut || self.transpose(proc, self.x, self.trans, rows.clone()));
        proc.barrier();
        if self.o.test || self.o.print {
            // SAFETY: nobody writes trans in this phase.
            let t = unsafe { self.trans.slice(mine.clone()) };
            // SAFETY: each thread writes only its own rows of x.
            let x = unsafe { self.x.slice_mut(mine) };
            for (src, dst) in t.chunks(s).zip(x.chunks_mut(s)) {
                dst[..n1].copy_from_slice(&src[..n1]);
            }
        }
        proc.barrier();
    }

    /// The original's `Transpose`: this thread's rows of `dest` from its columns of
    /// `src`, in blocks that fit the cache lines, starting with the next thread's
    /// rows of `src` and ending with its own.
    fn transpose(
        &self,
        proc: &Proc<'_>,
        src: &Shared<Complex>,
        dest: &Shared<Complex>,
        rows: std::ops::Range<usize>,
    ) {
        let g = self.g;
        let (me, p) = (proc.id(), proc.nprocs());
        let n1p = g.stride();
        let first = rows.start;
        let mut blksize = rows.len();
        let mut numblks = (2 * blksize) / g.cache_lines;
        if numblks * g.cache_lines != 2 * blksize {
            numblks += 1;
        }
        blksize /= numblks;
        let row_count = g.root_n / p;
        // SAFETY: in a transpose phase nobody writes src.
        let src = unsafe { src.slice(0..src.len()) };
        // SAFETY: each thread writes only its own rows of dest.
        let dest = unsafe { dest.slice_mut(rows.start * n1p..rows.end * n1p) };
        let order = (me + 1..p).chain(0..me).chain(std::iter::once(me));
        for l in order {
            let mut v_off = l * row_count;
            for _ in 0..numblks {
                let mut h_off = first;
                for _ in 0..numblks {
                    for i in 0..blksize {
                        let v = v_off + i;
                        let srow = &src[v * n1p + h_off..v * n1p + h_off + blksize];
                        for (j, val) in srow.iter().enumerate() {
                            let h = h_off + j;
                            dest[(h - first) * n1p + v] = *val;
                        }
                    }
                    h_off += blksize;
                }
                v_off += blksize;
            }
        }
    }
}

/// The original's `TwiddleOneCol`: multiply a row by its roots of unity.
fn twiddle_one_col(direction: f64, u: &[Complex], x: &mut [Complex]) {
    for (v, w) in x.iter_mut().zip(u) {
        let omega_r = w[0];
        let omega_c = direction * w[1];
        let [x_r, x_c] = *v;
        *v = [omega_r * x_r - omega_c * x_c, omega_r * x_c + omega_c * x_r];
    }
}

/// The original's `Scale`: divide by `n`.
fn scale(n: usize, x: &mut [Complex]) {
    let n = n as f64;
    for v in x {
        v[0] /= n;
        v[1] /= n;
    }
}

/// The original's `Reverse`: bit-reversal permutation of `2^m` points.
fn reverse(m: u32, x: &mut [Complex]) {
    if m == 0 {
        return;
    }
    for k in 0..x.len() {
        let j = (k as u32).reverse_bits() as usize >> (32 - m);
        if j > k {
            x.swap(j, k);
        }
    }
}

/// The original's `FFT1DOnce`: an in-place radix-2 FFT of `2^m` points, roots of
/// stage `q` at `u[2^(q-1) - 1..]`.
pub(crate) fn fft1d_once(direction: f64, m: u32, u: &[Complex], x: &mut [Complex]) {
    reverse(m, x);
    for q in 1..=m {
        let l = 1usize << q;
        let lstar = l / 2;
        let u1 = &u[lstar - 1..lstar - 1 + lstar];
        for block in x.chunks_exact_mut(l) {
            let (x1, x2) = block.split_at_mut(lstar);
            for ((a, b), w) in x1.iter_mut().zip(x2.iter_mut()).zip(u1) {
                let omega_r = w[0];
                let omega_c = direction * w[1];
                let [x_r, x_c] = *b;
                let tau_r = omega_r * x_r - omega_c * x_c;
                let tau_c = omega_r * x_c + omega_c * x_r;
                let [x_r, x_c] = *a;
                *b = [x_r - tau_r, x_c - tau_c];
                *a = [x_r + tau_r, x_c + tau_c];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn drand48_matches_the_c_library_sequence() {
        // glibc: srand48(0); drand48() x3.
        let mut r = Drand48::new(0);
        let got: Vec<f64> = (0..3).map(|_| r.next_f64()).collect();
        // X1 = (0x5DEECE66D * 0x330E + 0xB) mod 2^48, independently.
        let x1 = (0x5DEE_CE66Du128 * 0x330E + 0xB) % (1u128 << 48);
        assert_eq!(got[0], x1 as f64 / 2f64.powi(48));
        assert!(got.iter().all(|v| (0.0..1.0).contains(v)));
        assert_ne!(got[1], got[2]);
    }

    #[test]
    fn padding_ends_each_block_of_rows_on_a_page() {
        for (m, p) in [
            (16, 1),
            (16, 2),
            (16, 4),
            (10, 1),
            (10, 8),
            (20, 16),
            (4, 4),
        ] {
            let o = Options::parse(&args(&[&format!("-m{m}"), &format!("-p{p}")])).unwrap();
            let g = Geometry::new(&o).unwrap();
            let block = g.rows_per_proc * g.stride() * COMPLEX_BYTES;
            assert_eq!(block % PAGE_SIZE, 0, "-m{m} -p{p}: block of {block} bytes");
        }
    }

    #[test]
    fn bad_flags_get_the_originals_messages() {
        let e = |v: &[&str]| {
            Options::parse(&args(v))
                .and_then(|o| Geometry::new(&o))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(e(&["-m15"]), "M must be even");
        assert_eq!(e(&["-p3"]), "P must be a power of 2");
        assert_eq!(e(&["-p0"]), "P must be >= 1");
        assert_eq!(e(&["-n0"]), "Number of cache lines must be >= 1");
        assert_eq!(
            e(&["-l", "-1"]),
            "Log base 2 of cache line length in bytes must be >= 0"
        );
        assert_eq!(
            e(&["-m4", "-p8"]),
            "Matrix not large enough. 2**(M/2) must be >= P"
        );
        assert_eq!(e(&["-q"]), "invalid option -- 'q'");
        assert!(e(&["-m32"]).contains("30"));
        assert!(e(&["-l0", "-n8"]).contains("cache line"));
    }

    /// A naive DFT, `X[k] = Σ x[j] e^{-2πi jk/n}` (roots made with the true π, not
    /// the original's 3.1416, so the FFT is exactly a DFT up to rounding). The
    /// result is in `trans` in natural order: `X[k]` at row `k / √n`, column
    /// `k mod √n`.
    #[test]
    fn the_kernel_computes_a_dft() {
        let o = Options::parse(&args(&["-m6", "-p2"])).unwrap();
        let g = Geometry::new(&o).unwrap();
        let cfg = RunConfig::default();
        let machine = Machine::new(&cfg, 2).unwrap();
        let len = g.elements();
        let parts = Partition::even(len, 2);
        let x = machine.shared::<Complex>("t.x", len, &parts).unwrap();
        let trans = machine.shared::<Complex>("t.trans", len, &parts).unwrap();
        let umain2 = machine.shared::<Complex>("t.umain2", len, &parts).unwrap();
        let mut umain = vec![[0.0; 2]; g.root_n];
        // SAFETY: no thread runs yet.
        init_x(&g, unsafe { x.slice_mut(0..len) });
        // SAFETY: as above.
        init_u2(
            &g,
            unsafe { umain2.slice_mut(0..len) },
            std::f64::consts::PI,
        );
        init_u(&g, &mut umain, std::f64::consts::PI);
        let input: Vec<Complex> = {
            // SAFETY: as above.
            let xs = unsafe { x.slice(0..len) };
            (0..g.n)
                .map(|i| xs[(i / g.root_n) * g.stride() + i % g.root_n])
                .collect()
        };
        let k = Kernel {
            g: &g,
            o: &o,
            x: &x,
            trans: &trans,
            umain2: &umain2,
        };
        machine
            .run(|p| {
                let mut tt = 0;
                k.fft1d(p, 1.0, &umain[..g.root_n - 1], g.rows(p.id(), 2), &mut tt);
            })
            .unwrap();
        // SAFETY: the run has ended.
        let t = unsafe { trans.slice(0..len) };
        let n = g.n;
        for kk in 0..n {
            let (mut re, mut im) = (0.0, 0.0);
            for (j, v) in input.iter().enumerate() {
                let a = 2.0 * std::f64::consts::PI * ((j * kk) % n) as f64 / n as f64;
                re += v[0] * a.cos() + v[1] * a.sin();
                im += v[1] * a.cos() - v[0] * a.sin();
            }
            let got = t[(kk / g.root_n) * g.stride() + kk % g.root_n];
            assert!(
                (got[0] - re).abs() < 1e-9 && (got[1] - im).abs() < 1e-9,
                "X[{kk}] = {got:?}, DFT {re} {im}"
            );
        }
    }
}
