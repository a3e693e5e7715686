//! What monitoring costs the monitored program: a streaming loop (sum over 64 MiB)
//! and a pointer-chasing loop (a random cycle over 16 MiB), timed alone and under a
//! session whose default sampler watches their memory at its default rate, side by
//! side in one run. Reports the slowdown as a ratio (monitored / alone); the goal is
//! at most 1.02. Usage: `cargo bench -p monitor --bench overhead [-- ROUNDS]`.

use std::hint::black_box;
use std::time::Instant;

use monitor::session::Session;
use monitor::{FilterSpec, Granularity};

const STREAM_BYTES: usize = 64 << 20;
const CHASE_BYTES: usize = 16 << 20;

/// A page-aligned, touched buffer of `bytes` bytes (as u64 words).
fn buffer(bytes: usize) -> Vec<u64> {
    let words = bytes / 8;
    let mut v: Vec<u64> = Vec::with_capacity(words + 512);
    let skip = v.as_ptr().align_offset(4096);
    v.resize(skip + words, 1);
    v.drain(..skip);
    v
}

fn stream(v: &[u64], passes: usize) -> u64 {
    let mut sum = 0u64;
    for _ in 0..passes {
        for x in v {
            sum = sum.wrapping_add(*x);
        }
    }
    sum
}

/// A single random cycle through every word (Sattolo's algorithm).
fn cycle(v: &mut [u64]) {
    let n = v.len();
    let mut idx: Vec<u64> = (0..n as u64).collect();
    let mut s = 0x2545_f491_4f6c_dd1du64;
    for i in (1..n).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let j = (s % i as u64) as usize;
        idx.swap(i, j);
    }
    for i in 0..n {
        v[idx[i] as usize] = idx[(i + 1) % n];
    }
}

fn chase(v: &[u64], steps: usize) -> u64 {
    let mut at = 0u64;
    for _ in 0..steps {
        at = v[at as usize];
    }
    at
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Times `work` `rounds` times alone and `rounds` times under a session watching
/// `range`, interleaved so that drift hits both alike.
fn compare(name: &str, rounds: usize, range: (u64, u64), work: &dyn Fn()) -> f64 {
    let (mut alone, mut watched) = (Vec::new(), Vec::new());
    let mut samples = 0;
    let mut sampler = String::new();
    for _ in 0..rounds {
        let t = Instant::now();
        work();
        alone.push(t.elapsed().as_secs_f64());
        let session = Session::builder()
            .filter(FilterSpec::new(range.0, range.1, Granularity::PAGE))
            .start()
            .expect("session");
        let t = Instant::now();
        work();
        watched.push(t.elapsed().as_secs_f64());
        let stats = session.stop().expect("stop").file.sampler;
        samples += stats.samples;
        sampler = stats.name;
    }
    let (a, w) = (median(alone), median(watched));
    let ratio = w / a;
    println!(
        "{name:<16} alone {:>8.1} ms  monitored {:>8.1} ms  ratio {ratio:.3}  ({samples} samples in {rounds} runs, {sampler} sampler)",
        a * 1e3,
        w * 1e3
    );
    ratio
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(7);
    println!("the session's default sampler at its default rate; median of {rounds} runs each");
    let s = buffer(STREAM_BYTES);
    let range = (s.as_ptr() as u64, STREAM_BYTES as u64);
    compare("streaming sum", rounds, range, &|| {
        black_box(stream(black_box(&s), 8));
    });
    let mut c = buffer(CHASE_BYTES);
    cycle(&mut c);
    let range = (c.as_ptr() as u64, CHASE_BYTES as u64);
    compare("pointer chase", rounds, range, &|| {
        black_box(chase(black_box(&c), 4_000_000));
    });
}
