//! The bandwidth kernels and how their bytes are counted (as STREAM and
//! likwid-bench count them; see the [module docs](super)).

use std::fmt;
use std::hint::black_box;
use std::str::FromStr;

use serde::Serialize;

/// What a bandwidth thread does to its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Sum every word (loads only).
    Read,
    /// Store to every word (stores only; the value is not a repeated byte, so the
    /// compiler cannot turn it into `memset` and its non-temporal stores).
    Write,
    /// Copy the first half of the buffer onto the second (`memcpy`).
    Copy,
}

impl Op {
    /// Bytes counted for one pass over a working set of `bytes`: read and write
    /// count the buffer once; copy reads one half and writes the other, so it also
    /// counts the whole buffer (bytes read + bytes written, twice what it copies).
    pub fn counted_bytes(self, bytes: usize) -> u64 {
        let words = bytes / size_of::<u64>();
        let words = match self {
            Op::Read | Op::Write => words,
            Op::Copy => words / 2 * 2,
        };
        (words * size_of::<u64>()) as u64
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Write => "write",
            Op::Copy => "copy",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Op {
    type Err = String;

    fn from_str(s: &str) -> Result<Op, String> {
        match s {
            "read" => Ok(Op::Read),
            "write" => Ok(Op::Write),
            "copy" => Ok(Op::Copy),
            _ => Err(format!(
                "unknown operation `{s}` (expected read, write or copy)"
            )),
        }
    }
}

/// One pass of `op` over `buf`; `pass` varies the stored values. Returns a value
/// that depends on every word read, so nothing can be optimised away.
#[inline(never)]
pub fn run_pass(op: Op, buf: &mut [u64], pass: u64) -> u64 {
    match op {
        Op::Read => buf.iter().fold(0u64, |a, &w| a.wrapping_add(w)),
        Op::Write => {
            buf.fill(0x0123_4567_89AB_CDEF ^ pass);
            black_box(buf.first().copied().unwrap_or(0))
        }
        Op::Copy => {
            let half = buf.len() / 2;
            let (src, dst) = buf.split_at_mut(half);
            dst[..half].copy_from_slice(src);
            black_box(dst.first().copied().unwrap_or(0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_counts_bytes_read_plus_bytes_written() {
        assert_eq!(Op::Read.counted_bytes(1 << 20), 1 << 20);
        assert_eq!(Op::Write.counted_bytes(1 << 20), 1 << 20);
        // 1 MiB working set: 512 KiB read + 512 KiB written.
        assert_eq!(Op::Copy.counted_bytes(1 << 20), 1 << 20);
        assert_eq!(Op::Copy.counted_bytes(24), 16);
    }

    #[test]
    fn the_kernels_do_what_they_say() {
        let mut buf: Vec<u64> = (0..8).collect();
        assert_eq!(run_pass(Op::Read, &mut buf, 0), 28);
        run_pass(Op::Copy, &mut buf, 0);
        assert_eq!(buf, [0, 1, 2, 3, 0, 1, 2, 3]);
        run_pass(Op::Write, &mut buf, 1);
        assert!(buf.iter().all(|&w| w == 0x0123_4567_89AB_CDEF ^ 1));
    }

    #[test]
    fn ops_parse_and_unknown_ones_are_named() {
        assert_eq!("copy".parse::<Op>(), Ok(Op::Copy));
        assert!("triad".parse::<Op>().unwrap_err().contains("`triad`"));
    }
}
