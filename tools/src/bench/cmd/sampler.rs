//! `rset-bench sampler`: what `rset-mon record` costs a streaming program, and how
//! many samples it takes. The program (`rset-bench stream-workload`, hidden) runs
//! alone and under `rset-mon record`, interleaved, and the medians are compared.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Args;

use super::setup::usage;
use crate::bench::{format_size, parse_size};
use crate::cli::Failure;

/// The workload's report line on stdout starts with this.
const REPORT: &str = "rset-bench-workload ";

#[derive(Args)]
pub(super) struct SamplerArgs {
    /// Size of the array the threads stream over (one array, shared; K, M, G).
    #[arg(long, default_value = "48M", value_name = "BYTES")]
    size: String,
    /// Streaming threads.
    #[arg(long, default_value_t = 2, value_name = "N")]
    threads: usize,
    /// Seconds each run streams.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    secs: f64,
    /// Runs of each kind (alone, monitored), interleaved; medians are compared.
    #[arg(long, default_value_t = 5, value_name = "N")]
    runs: usize,
    /// An option for `rset-mon record` (repeatable): --record-arg=--sampler=protect.
    #[arg(long = "record-arg", value_name = "ARG", allow_hyphen_values = true)]
    record_args: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(super) struct WorkloadArgs {
    #[arg(long)]
    size: String,
    #[arg(long)]
    threads: usize,
    #[arg(long)]
    secs: f64,
}

/// One run's result.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Throughput {
    /// Bytes read by all threads.
    bytes: u64,
    /// Wall time from the threads' start to the last one's end, s.
    secs: f64,
}

impl Throughput {
    fn gbps(&self) -> f64 {
        self.bytes as f64 / self.secs / 1e9
    }
}

/// Streams over one shared array from `threads` threads for `secs` seconds and
/// prints the bytes read. The array is a heap block (`rset-mon record` watches it).
pub(super) fn workload(a: &WorkloadArgs) -> Result<(), Failure> {
    let size = parse_size(&a.size).map_err(usage)?;
    let words = (size / 8).max(1024);
    let array: Vec<u64> = (0..words as u64).collect();
    let deadline = Duration::from_secs_f64(a.secs);
    let t0 = Instant::now();
    let bytes: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..a.threads)
            .map(|t| {
                let array = &array;
                s.spawn(move || {
                    let mut sum = 0u64;
                    let mut read = 0u64;
                    // 1 MiB chunks, each thread starting elsewhere: the clock is read
                    // between chunks.
                    let chunk = (1 << 17).min(words);
                    let mut at = (t * words / a.threads.max(1)) / chunk * chunk;
                    while t0.elapsed() < deadline {
                        let end = (at + chunk).min(words);
                        sum = array[at..end]
                            .iter()
                            .fold(sum, |acc, &x| acc.wrapping_add(x));
                        read += ((end - at) * 8) as u64;
                        at = if end == words { 0 } else { end };
                    }
                    std::hint::black_box(sum);
                    read
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    let out = Throughput {
        bytes,
        secs: t0.elapsed().as_secs_f64(),
    };
    println!(
        "{REPORT}{}",
        serde_json::to_string(&out).unwrap_or_default()
    );
    Ok(())
}

/// One interleaved pair.
#[derive(Debug, serde::Serialize)]
struct Pair {
    alone_gbps: f64,
    monitored_gbps: f64,
    samples: u64,
    sampler: String,
    samples_per_s_per_thread: f64,
}

#[derive(serde::Serialize)]
struct Summary {
    size: usize,
    threads: usize,
    secs: f64,
    runs: Vec<Pair>,
    median_alone_gbps: f64,
    median_monitored_gbps: f64,
    ratio: f64,
    /// The median of each pair's monitored/alone: steadier than the ratio of the
    /// medians where the machine's speed drifts between pairs.
    median_pair_ratio: f64,
    median_samples_per_s_per_thread: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn failure(message: String) -> Failure {
    Failure { message, code: 1 }
}

/// Runs `cmd`, which must print the workload's report line.
fn run_one(mut cmd: Command) -> Result<Throughput, Failure> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| failure(format!("{shown}: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(failure(format!(
            "{shown} failed ({}): {}",
            out.status,
            err.lines().last().unwrap_or("")
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix(REPORT))
        .and_then(|j| serde_json::from_str(j).ok())
        .ok_or_else(|| failure(format!("{shown} printed no report")))
}

/// A fresh private directory for the session files.
fn scratch_dir() -> Result<PathBuf, Failure> {
    use std::os::unix::fs::DirBuilderExt;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir =
        std::env::temp_dir().join(format!("rset-bench-sampler-{}-{nanos}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| failure(format!("{}: {e}", dir.display())))?;
    Ok(dir)
}

fn sibling(name: &str) -> Result<PathBuf, Failure> {
    let me = std::env::current_exe().map_err(|e| failure(format!("finding rset-bench: {e}")))?;
    let path = me.with_file_name(name);
    if !path.is_file() {
        return Err(failure(format!(
            "{}: not found (rset-mon must be installed beside rset-bench)",
            path.display()
        )));
    }
    Ok(path)
}

pub(super) fn sampler(a: &SamplerArgs) -> Result<(), Failure> {
    let size = parse_size(&a.size).map_err(|e| usage(format!("--size: {e}")))?;
    if a.threads == 0 {
        return Err(usage("--threads 0: give at least 1 thread"));
    }
    if a.runs == 0 {
        return Err(usage("--runs 0: give at least 1 run"));
    }
    if !(a.secs > 0.0 && a.secs.is_finite()) {
        return Err(usage(format!(
            "--secs {}: give a positive number of seconds",
            a.secs
        )));
    }
    let me = std::env::current_exe().map_err(|e| failure(format!("finding rset-bench: {e}")))?;
    let rset_mon = sibling("rset-mon")?;
    let dir = scratch_dir()?;
    let workload: Vec<String> = [
        "stream-workload",
        "--size",
        &a.size,
        "--threads",
        &a.threads.to_string(),
        "--secs",
        &a.secs.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let result = (|| {
        let mut pairs = Vec::new();
        for i in 0..a.runs {
            let mut alone = Command::new(&me);
            alone.args(&workload);
            let alone = run_one(alone)?;
            let file = dir.join(format!("run{i}.session"));
            let mut mon = Command::new(&rset_mon);
            mon.arg("record")
                .args(&a.record_args)
                .arg("-o")
                .arg(&file)
                .arg("--")
                .arg(&me)
                .args(&workload);
            let monitored = run_one(mon)?;
            let session = monitor::SessionFile::load(&file)
                .map_err(|e| failure(format!("{}: {e}", file.display())))?;
            let samples = session.sampler.samples;
            pairs.push(Pair {
                alone_gbps: alone.gbps(),
                monitored_gbps: monitored.gbps(),
                samples,
                sampler: session.sampler.name.clone(),
                samples_per_s_per_thread: samples as f64 / monitored.secs / a.threads as f64,
            });
            if !a.json {
                eprintln!(
                    "run {}/{}: alone {:.2} GB/s, monitored {:.2} GB/s, {samples} samples",
                    i + 1,
                    a.runs,
                    alone.gbps(),
                    monitored.gbps()
                );
            }
        }
        Ok::<_, Failure>(pairs)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let pairs = result?;
    let alone = median(pairs.iter().map(|p| p.alone_gbps).collect());
    let monitored = median(pairs.iter().map(|p| p.monitored_gbps).collect());
    let summary = Summary {
        size,
        threads: a.threads,
        secs: a.secs,
        median_alone_gbps: alone,
        median_monitored_gbps: monitored,
        ratio: if alone > 0.0 { monitored / alone } else { 0.0 },
        median_pair_ratio: median(
            pairs
                .iter()
                .map(|p| p.monitored_gbps / p.alone_gbps.max(f64::MIN_POSITIVE))
                .collect(),
        ),
        median_samples_per_s_per_thread: median(
            pairs.iter().map(|p| p.samples_per_s_per_thread).collect(),
        ),
        runs: pairs,
    };
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).unwrap_or_default()
        );
    } else {
        print_table(&summary, &rset_mon);
    }
    Ok(())
}

fn print_table(s: &Summary, rset_mon: &Path) {
    let sampler = s.runs.first().map(|p| p.sampler.as_str()).unwrap_or("-");
    println!(
        "{} threads streaming over {} for {} s, alone and under {} record ({sampler} sampler), interleaved",
        s.threads,
        format_size(s.size),
        s.secs,
        rset_mon.display()
    );
    println!(
        "{:>4}  {:>11}  {:>15}  {:>6}  {:>8}  {:>16}",
        "RUN", "ALONE GB/s", "MONITORED GB/s", "RATIO", "SAMPLES", "SAMPLES/S/THREAD"
    );
    for (i, p) in s.runs.iter().enumerate() {
        println!(
            "{:>4}  {:>11.3}  {:>15.3}  {:>6.3}  {:>8}  {:>16.0}",
            i + 1,
            p.alone_gbps,
            p.monitored_gbps,
            p.monitored_gbps / p.alone_gbps.max(f64::MIN_POSITIVE),
            p.samples,
            p.samples_per_s_per_thread
        );
    }
    println!(
        "median: alone {:.3} GB/s, monitored {:.3} GB/s: {:.3}x (median of the pairs' ratios {:.3}x); {:.0} samples per second per thread",
        s.median_alone_gbps,
        s.median_monitored_gbps,
        s.ratio,
        s.median_pair_ratio,
        s.median_samples_per_s_per_thread
    );
}
