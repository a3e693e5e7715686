//! What rset-top costs: `cargo bench -p rset-tools --bench top_cost [-- SECS]`.
//!
//! 1. Its CPU time at `-d 1` on a live session of 100,000 granules (4 nodes, a
//!    6.4 MB region by 64 B lines, every granule referenced, republished ten
//!    times a second as a session does), on a pseudo-terminal, in the Nodes and
//!    the Granules views, side by side with `top -d 1` on the same terminal size:
//!    CPU time / wall time of each, and the ratio.
//! 2. A monitored program's slowdown with the viewer attached: a streaming
//!    program (`rset-bench stream-workload`) under `rset-mon record`, with and
//!    without `rset-top -d 1` on its session, interleaved; the ratio of GB/s.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use monitor::live::LiveWriter;
use monitor::sample::{Access, Sample, SamplerStats};
use monitor::{Card, FilterSpec, Granularity};

const GRANULES: u64 = 100_000;
const NODES: u32 = 4;
const START: u64 = 0x1000_0000;

fn bin(name: &str) -> PathBuf {
    // target/release/deps/top_cost-HASH -> target/release/NAME
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join(name)
}

fn sample(i: u64) -> Sample {
    let node = (i % u64::from(NODES)) as u32;
    Sample {
        addr: START + (i % GRANULES) * 64 + 8,
        tid: 1,
        cpu: node,
        node,
        time_ns: i,
        access: if i.is_multiple_of(5) {
            Access::Write
        } else {
            Access::Read
        },
        source: None,
    }
}

/// A live session of GRANULES granules, republished every 100 ms until `stop`.
fn session(dir: &Path, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let dir = dir.to_owned();
    std::thread::spawn(move || {
        let mut card = Card::new(NODES).unwrap();
        card.program(FilterSpec::new(START, GRANULES * 64, Granularity::LINE).name("big"))
            .unwrap();
        let mut i = 0u64;
        for _ in 0..GRANULES * 4 {
            card.record(&sample(i), (i / 7 % u64::from(NODES)) as u32);
            i += 1;
        }
        let mut w = LiveWriter::create(&dir, &card).unwrap();
        let stats = SamplerStats {
            name: "bench".into(),
            samples: 0,
            lost: 0,
            idle_rounds: 0,
            rate_hz: 1000,
        };
        while !stop.load(Ordering::Relaxed) {
            for _ in 0..2000 {
                card.record(&sample(i), (i / 7 % u64::from(NODES)) as u32);
                i += 1;
            }
            w.publish(&card, &stats);
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

struct OnPty {
    child: Child,
    master: std::fs::File,
}

fn on_pty(cmd: &mut Command) -> OnPty {
    let size = nix::pty::Winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).unwrap();
    let slave: OwnedFd = pty.slave;
    let child = cmd
        .env("TERM", "xterm-256color")
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    let master = std::fs::File::from(pty.master);
    let mut reader = master.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    });
    OnPty { child, master }
}

/// CPU seconds (user + system) of process `pid` so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 (11 and 12 after the state).
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// Share of one CPU `cmd` uses over `secs` after a 2 s warm-up, on a pty; `keys`
/// are typed once it runs.
fn cpu_share(cmd: &mut Command, keys: &[u8], secs: f64) -> f64 {
    let mut p = on_pty(cmd);
    std::thread::sleep(Duration::from_secs(2));
    p.master.write_all(keys).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let pid = p.child.id();
    let (c0, t0) = (cpu_secs(pid), Instant::now());
    std::thread::sleep(Duration::from_secs_f64(secs));
    let share = (cpu_secs(pid) - c0) / t0.elapsed().as_secs_f64();
    let _ = p.master.write_all(b"q");
    std::thread::sleep(Duration::from_millis(300));
    let _ = p.child.kill();
    let _ = p.child.wait();
    share
}

fn stream_gbs(monitored: bool, viewer: bool, dir: &Path) -> f64 {
    let mut cmd = if monitored {
        let mut c = Command::new(bin("rset-mon"));
        c.args(["record", "-o"])
            .arg(dir.join("run.session"))
            .arg("--")
            .arg(bin("rset-bench"));
        c
    } else {
        Command::new(bin("rset-bench"))
    };
    let child = cmd
        .args([
            "stream-workload",
            "--size",
            "48M",
            "--threads",
            "1",
            "--secs",
            "5",
        ])
        .env("XDG_RUNTIME_DIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut viewer_child = None;
    if viewer {
        let live_dir = dir.join("rset-mon");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && monitor_live_files(&live_dir).is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut c = Command::new(bin("rset-top"));
        c.args(["-d", "1", "--dir"]).arg(&live_dir);
        viewer_child = Some(on_pty(&mut c));
    }
    let out = child.wait_with_output().unwrap();
    if let Some(mut v) = viewer_child {
        let _ = v.master.write_all(b"q");
        std::thread::sleep(Duration::from_millis(200));
        let _ = v.child.kill();
        let _ = v.child.wait();
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("rset-bench-workload"))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(line.split_once(' ').unwrap().1).unwrap();
    v["bytes"].as_f64().unwrap() / v["secs"].as_f64().unwrap() / 1e9
}

fn monitor_live_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "live"))
                .collect()
        })
        .unwrap_or_default()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let secs: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20.0);
    for b in ["rset-top", "rset-mon", "rset-bench"] {
        assert!(
            bin(b).exists(),
            "{} missing: cargo build --release first",
            bin(b).display()
        );
    }
    let dir = std::env::temp_dir().join(format!("top-cost-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = session(&dir, stop.clone());
    std::thread::sleep(Duration::from_secs(2));
    let me = std::process::id().to_string();
    let top_args = |c: &mut Command| {
        c.args(["-d", "1", "--dir"]).arg(&dir).arg(&me);
    };
    let mut c = Command::new(bin("rset-top"));
    top_args(&mut c);
    let nodes = cpu_share(&mut c, b"", secs);
    let mut c = Command::new(bin("rset-top"));
    top_args(&mut c);
    let granules = cpu_share(&mut c, b"\t\r", secs);
    let top = cpu_share(Command::new("top").args(["-d", "1"]), b"", secs);
    println!(
        "rset-top -d 1, {GRANULES} granules x {NODES} nodes, {secs} s each: Nodes view {:.2} % \
         of a CPU, Granules view {:.2} %; top -d 1 {:.2} % (ratios {:.2}, {:.2})",
        nodes * 100.0,
        granules * 100.0,
        top * 100.0,
        nodes / top,
        granules / top
    );
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    // Part 2: the monitored program with and without the viewer, interleaved.
    let runs = 5;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for r in 0..runs {
        let d = std::env::temp_dir().join(format!("top-cost-run-{}-{r}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let a = stream_gbs(true, false, &d);
        let b = stream_gbs(true, true, &d);
        println!(
            "run {r}: under rset-mon record {a:.2} GB/s, with rset-top attached {b:.2} GB/s ({:.3})",
            b / a
        );
        without.push(a);
        with.push(b);
        let _ = std::fs::remove_dir_all(&d);
    }
    let pairs: Vec<f64> = with.iter().zip(&without).map(|(w, o)| w / o).collect();
    println!(
        "stream 48 MiB x 1 thread, 5 s, {runs} pairs: with the viewer / without, median {:.3} \
         (median of the pair ratios {:.3})",
        median(with) / median(without),
        median(pairs)
    );
}
