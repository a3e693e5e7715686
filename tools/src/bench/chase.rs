//! The latency kernel: a dependent pointer chase over one random cycle of cache
//! lines (see the [module docs](super) for why it defeats prefetchers).

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Bytes per cache line: one load per line.
pub const LINE_BYTES: usize = 64;
const WORDS_PER_LINE: usize = LINE_BYTES / size_of::<u64>();

/// SplitMix64: small, fast and good enough to shuffle with.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`), by multiply-shift (bias below 2^-32 for the
    /// sizes used here).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// Lines of 64 bytes in a buffer of `words` u64 words.
pub fn lines_of(words: usize) -> usize {
    words / WORDS_PER_LINE
}

/// Links every line of `buf` into one random cycle: the first word of line `i`
/// holds the word index of the next line's first word. Sattolo's variant of the
/// Fisher-Yates shuffle makes a permutation with a single cycle, so a chase from
/// any line visits every line before it returns. Returns the number of lines.
pub fn link_random_cycle(buf: &mut [u64], seed: u64) -> usize {
    let lines = lines_of(buf.len());
    let mut next: Vec<usize> = (0..lines).collect();
    let mut rng = Rng::new(seed);
    for i in (1..lines).rev() {
        let j = rng.below(i); // j < i: Sattolo, not Fisher-Yates
        next.swap(i, j);
    }
    for (line, &to) in next.iter().enumerate() {
        buf[line * WORDS_PER_LINE] = (to * WORDS_PER_LINE) as u64;
    }
    lines
}

/// Follows `loads` links from word `start`; returns where it ended. Each load's
/// address is the previous load's value, so the loads cannot overlap.
#[inline(never)]
pub fn chase(buf: &[u64], start: usize, loads: u64) -> usize {
    let mut at = start;
    for _ in 0..loads {
        at = buf[at] as usize;
    }
    black_box(at)
}

/// One latency measurement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ChaseSample {
    /// Median over the repetitions, nanoseconds per load.
    pub ns_per_load: f64,
    /// Fastest repetition, nanoseconds per load.
    pub ns_min: f64,
    /// Loads in one repetition.
    pub loads: u64,
    /// Repetitions.
    pub reps: usize,
}

/// Times the chase over a linked buffer ([`link_random_cycle`]): one warm-up lap of
/// the cycle (loads the caches that can hold it), then `reps` repetitions of about
/// `target` each.
pub fn chase_latency(buf: &[u64], target: Duration, reps: usize) -> ChaseSample {
    let lines = lines_of(buf.len()) as u64;
    let reps = reps.max(1);
    let mut at = chase(buf, 0, lines.clamp(1, 1 << 24));
    // Calibrate: grow the count until one run is long enough to time well.
    let mut loads: u64 = 1 << 12;
    let elapsed = loop {
        let t = Instant::now();
        at = chase(buf, at, loads);
        let e = t.elapsed();
        if e >= target / 8 || loads >= 1 << 34 {
            break e;
        }
        loads *= 4;
    };
    let per_load = elapsed.as_secs_f64() / loads as f64;
    let loads = ((target.as_secs_f64() / per_load.max(1e-12)) as u64).clamp(1 << 10, 1 << 36);
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            at = chase(buf, at, loads);
            t.elapsed().as_secs_f64() * 1e9 / loads as f64
        })
        .collect();
    black_box(at);
    times.sort_by(f64::total_cmp);
    ChaseSample {
        ns_per_load: times[times.len() / 2],
        ns_min: times[0],
        loads,
        reps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_links_make_one_cycle_through_every_line() {
        for lines in [1, 2, 3, 64, 1000] {
            let mut buf = vec![0u64; lines * WORDS_PER_LINE + 3];
            assert_eq!(link_random_cycle(&mut buf, 7), lines);
            let mut seen = vec![false; lines];
            let mut at = 0;
            for _ in 0..lines {
                assert_eq!(at % WORDS_PER_LINE, 0);
                assert!(
                    !seen[at / WORDS_PER_LINE],
                    "line visited twice before the end"
                );
                seen[at / WORDS_PER_LINE] = true;
                at = buf[at] as usize;
            }
            assert_eq!(at, 0, "back at the start after exactly {lines} loads");
            assert!(seen.iter().all(|&s| s));
        }
    }

    #[test]
    fn the_order_is_not_a_stride() {
        let mut buf = vec![0u64; 4096 * WORDS_PER_LINE];
        link_random_cycle(&mut buf, 1);
        let sequential = (0..4096)
            .filter(|&l| buf[l * WORDS_PER_LINE] as usize == (l + 1) * WORDS_PER_LINE)
            .count();
        assert!(sequential < 20, "{sequential} next-line links");
    }

    #[test]
    fn a_sample_reports_positive_times() {
        let mut buf = vec![0u64; 512 * WORDS_PER_LINE];
        link_random_cycle(&mut buf, 3);
        let s = chase_latency(&buf, Duration::from_millis(2), 3);
        assert!(s.ns_per_load > 0.0 && s.ns_min <= s.ns_per_load && s.reps == 3);
    }
}
