//! The FFT's flags ([`Flags`], [`Options`], the original's `-h` text) and the sizes
//! derived from them ([`Geometry`]).

use clap::{ArgAction, ArgMatches};

use crate::framework::SplashError;
use crate::framework::args::{Opt, in_order, parse_flags, program_command, whole};

/// The original's page size, used for the padding whatever the machine's.
pub(crate) const PAGE_SIZE: usize = 4096;
const DEFAULT_M: u32 = 10;
const DEFAULT_P: usize = 1;
const NUM_CACHE_LINES: usize = 65536;
const LOG2_LINE_SIZE: u32 = 4;
/// Bytes of a complex double.
pub(crate) const COMPLEX_BYTES: usize = 2 * size_of::<f64>();

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

fn p_value(s: &str) -> Result<usize, String> {
    let p = whole('p', s)?;
    if p < 1 {
        return Err("P must be >= 1".into());
    }
    if log_2(p).is_none() {
        return Err("P must be a power of 2".into());
    }
    Ok(p as usize)
}

fn m_value(s: &str) -> Result<u32, String> {
    let m = whole('m', s)?;
    if m % 2 != 0 {
        return Err("M must be even".into());
    }
    if !(0..=30).contains(&m) {
        return Err("M must be between 0 and 30".into());
    }
    Ok(m as u32)
}

fn n_value(s: &str) -> Result<usize, String> {
    let n = whole('n', s)?;
    if n < 1 {
        return Err("Number of cache lines must be >= 1".into());
    }
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

fn l_value(s: &str) -> Result<u32, String> {
    let l = whole('l', s)?;
    if l < 0 {
        return Err("Log base 2 of cache line length in bytes must be >= 0".into());
    }
    if l > 30 {
        return Err("Log base 2 of cache line length in bytes must be <= 30".into());
    }
    Ok(l as u32)
}

/// The original's flags, `getopt(argc, argv, "p:m:n:l:stoh")`, for clap and the
/// help: values as given (each checked in order by [`Options::from_opts`]), toggles
/// counted.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Flags {
    /// M = even integer; 2**M total complex data points transformed (default 10).
    #[arg(short = 'm', value_name = "M", action = ArgAction::Append, allow_hyphen_values = true)]
    m: Vec<String>,
    /// P = number of processors; must be a power of 2 (default 1).
    #[arg(short = 'p', value_name = "P", action = ArgAction::Append, allow_hyphen_values = true)]
    p: Vec<String>,
    /// N = number of cache lines (default 65536).
    #[arg(short = 'n', value_name = "N", action = ArgAction::Append, allow_hyphen_values = true)]
    n: Vec<String>,
    /// L = log base 2 of cache line length in bytes (default 4).
    #[arg(short = 'l', value_name = "L", action = ArgAction::Append, allow_hyphen_values = true)]
    l: Vec<String>,
    /// Print individual processor timing statistics.
    #[arg(short = 's', action = ArgAction::Append, num_args = 0, default_missing_value = "")]
    s: Vec<String>,
    /// Perform FFT and inverse FFT; test the output by comparing checksums.
    #[arg(short = 't', action = ArgAction::Append, num_args = 0, default_missing_value = "")]
    t: Vec<String>,
    /// Print out complex data points.
    #[arg(short = 'o', action = ArgAction::Append, num_args = 0, default_missing_value = "")]
    o: Vec<String>,
    /// Print out command line options.
    #[arg(short = 'h', action = ArgAction::Append, num_args = 0, default_missing_value = "")]
    h: Vec<String>,
}

impl Options {
    /// Reads the flags as the original's `getopt(argc, argv, "p:m:n:l:stoh")` loop,
    /// in order, stopping at the first bad one with the original's message.
    ///
    /// # Errors
    /// [`SplashError::Usage`].
    pub fn parse(args: &[String]) -> Result<Options, SplashError> {
        Options::from_opts(parse_flags::<Flags>("fft", args)?)
    }

    /// The options of flags read by clap (the `splash` command's `fft`).
    ///
    /// # Errors
    /// As [`Options::parse`].
    pub fn from_matches(m: &ArgMatches) -> Result<Options, SplashError> {
        Options::from_opts(in_order(&program_command::<Flags>("fft"), m))
    }

    /// The original's loop over the flags `getopt` returned, in order.
    ///
    /// # Errors
    /// The first bad value, with the original's message.
    pub fn from_opts(opts: Vec<Opt>) -> Result<Options, SplashError> {
        let mut o = Options {
            m: DEFAULT_M,
            p: DEFAULT_P,
            cache_lines: NUM_CACHE_LINES,
            log2_line_size: LOG2_LINE_SIZE,
            stats: false,
            test: false,
            print: false,
            help: false,
        };
        for (letter, arg) in opts {
            let arg = arg.unwrap_or_default();
            match letter {
                'p' => o.p = p_value(&arg).map_err(SplashError::Usage)?,
                'm' => o.m = m_value(&arg).map_err(SplashError::Usage)?,
                'n' => o.cache_lines = n_value(&arg).map_err(SplashError::Usage)?,
                'l' => o.log2_line_size = l_value(&arg).map_err(SplashError::Usage)?,
                's' => o.stats = !o.stats,
                't' => o.test = !o.test,
                'o' => o.print = !o.print,
                'h' => {
                    o.help = true;
                    return Ok(o);
                }
                _ => unreachable!("clap returns only the flags' letters"),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
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
}
