//! rset-top on a running program in the emulated NUMA machines (`cargo xtask
//! test`): a C program with a known hot spot (tests/c/hotspot.c) under rset-run and
//! rset-mon record; `rset-top --once --json` must name its array hottest with the
//! remote share the threads' own counts give, and two refinements sent as the `r`
//! key sends them must reach the shared line. A binary of its own, so that no other
//! test shares the guest's CPUs while it compares shares.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};

/// Writes an embedded C program to a temporary directory and returns its path.
fn program(name: &str, bytes: &[u8]) -> PathBuf {
    assert!(
        !bytes.is_empty(),
        "{name} was not compiled (is gcc installed on the build host?)"
    );
    let dir = std::env::temp_dir().join("rset-guest-top");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The regions of `rset-top`'s model now, read from the live file.
fn top_model(live: &std::path::Path) -> rset_tools::top::model::Model {
    use rset_tools::top::frame::Source;
    let source = Source::Live {
        path: live.to_owned(),
    };
    let mut m = rset_tools::top::model::Model::new(Vec::new());
    if let Ok(Some(f)) = source.read() {
        m.update(f, 0.0);
    }
    m
}

/// Presses `keys` in a fresh viewer on the Regions view with `row` selected and
/// sends the refinement the last one asks for, as the running viewer does.
fn press_refine(live: &std::path::Path, row: usize) -> (u64, u64, u64) {
    use rset_tools::top::app::{Action, App, Key, View};
    let m = top_model(live);
    let mut app = App::new(View::Regions);
    app.region_row = row;
    assert_eq!(app.on_key(Key::Enter, &m), Action::None);
    match app.on_key(Key::Char('r'), &m) {
        Action::Refine {
            start,
            size,
            granularity,
            ..
        } => {
            let source = rset_tools::top::frame::Source::Live {
                path: live.to_owned(),
            };
            rset_tools::top::send_refine(&source, start, size, granularity).unwrap();
            (start, size, granularity)
        }
        other => panic!("r gave {other:?}; {:?}", app.message),
    }
}

/// Waits until the live file has a region `(start, size, gran)` with at least
/// `refs` references; its row in the viewer's Regions order and its hottest
/// granule's start.
fn wait_for_region(live: &std::path::Path, key: (u64, u64, u64), refs: u64) -> (usize, u64) {
    use rset_tools::top::model::Sort;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let m = top_model(live);
        if let Some(f) = &m.frame {
            let order = m.regions(Sort::References, "");
            if let Some(row) = order.iter().position(|&i| f.regions[i].key() == key) {
                let r = &f.regions[order[row]];
                if r.all().total() >= refs {
                    let top = rset_tools::top::model::top_granules(r, 1)[0];
                    return (row, r.start + top.index * r.granularity);
                }
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no region {key:x?} with {refs} references in time: {:?}",
            m.frame.map(|f| f
                .regions
                .iter()
                .map(|r| (r.name.clone(), r.key(), r.all().total()))
                .collect::<Vec<_>>())
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

/// The remote shares a `progress NODE:COUNT:CPU_NS ...` line of the hotspot
/// program gives, with `home` the array's node: by references, and by the
/// threads' CPU time (what the tick sampler estimates: it samples each thread in
/// proportion to its CPU time, and every thread's time goes to the same loop).
fn progress_share(line: &str, home: &str) -> Option<(f64, f64)> {
    let (mut remote, mut all) = ([0f64; 2], [0f64; 2]);
    for w in line.strip_prefix("progress ")?.split_whitespace() {
        let mut parts = w.split(':');
        let node = parts.next()?;
        let refs: f64 = parts.next()?.parse().ok()?;
        let ns: f64 = parts.next()?.parse().ok()?;
        for (i, n) in [refs, ns].into_iter().enumerate() {
            all[i] += n;
            if node != home {
                remote[i] += n;
            }
        }
    }
    (all[0] > 0.0 && all[1] > 0.0).then(|| (remote[0] / all[0], remote[1] / all[1]))
}

#[test]
fn rset_top_names_the_hot_array_and_refines_its_hot_page_to_lines() {
    use std::io::BufRead;
    use std::time::{Duration, Instant};
    let hotspot = program(
        "hotspot",
        include_bytes!(concat!(env!("OUT_DIR"), "/hotspot")),
    );
    let topo = rset::Topology::from_system().unwrap();
    let with_cpus = topo.nodes().iter().filter(|n| !n.cpu_less).count();
    let runtime = std::env::temp_dir().join("rset-top-guest");
    let _ = std::fs::remove_dir_all(&runtime);
    std::fs::create_dir_all(&runtime).unwrap();
    let session = runtime.join("hotspot.session");
    // One worker per node with CPUs (round-robin after the main thread's slot). It
    // runs until its stdin closes (at most 300 s).
    let mut child = Command::new("rset-run")
        .args(["--threads", "round-robin", "--mem", "local", "--"])
        .args(["rset-mon", "record", "-o"])
        .arg(&session)
        .arg("--")
        .arg(&hotspot)
        .args([with_cpus.to_string(), "300".to_string()])
        .env("XDG_RUNTIME_DIR", &runtime)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Every line the program prints, with when it came.
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, String)>();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            if tx.send((Instant::now(), l)).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(60)).unwrap().1;
    let words: Vec<&str> = first.split_whitespace().collect();
    let (pid, line, home) = (words[1], words[5], words[7].to_string());
    let line = u64::from_str_radix(line.trim_start_matches("0x"), 16).unwrap();
    let live = runtime.join("rset-mon").join(format!("{pid}.live"));
    std::thread::sleep(Duration::from_secs(4));
    let out = run(Command::new("rset-top")
        .args(["--once", "--json", "-n", "3", "-d", "0.5", "--dir"])
        .arg(runtime.join("rset-mon"))
        .arg(pid));
    let read_at = Instant::now();
    let text = String::from_utf8(out.stdout).unwrap();
    let iterations: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(iterations.len(), 3, "{text}");
    let last = &iterations[2];
    assert_eq!(last["status"], "running", "{last}");
    let hottest = &last["regions"][0];
    assert_eq!(hottest["size"].as_u64(), Some(8 << 20), "{last}");
    let measured = hottest["remote_share"].as_f64().unwrap();
    // The truth when rset-top read its last counters: the threads' own counts
    // printed last before then (every 200 ms). The sampler is time-based, so the
    // truth is the remote threads' share of CPU time; under the emulator a thread's
    // references per CPU second depend on how the host runs its virtual CPU (a
    // guest's clock runs on while the host has its virtual CPU descheduled), so
    // the reference share is printed, not held.
    let (by_refs, by_time) = rx
        .try_iter()
        .filter(|(at, _)| *at <= read_at)
        .filter_map(|(_, l)| progress_share(&l, &home))
        .last()
        .expect("progress lines");
    eprintln!(
        "rset-top: remote share {measured:.3} ({} samples, by node {}); threads: \
         {by_time:.3} of CPU time, {by_refs:.3} of references",
        last["samples"], hottest["by_node"]
    );
    assert!(
        (measured - by_time).abs() <= 0.1,
        "rset-top says {measured}, the threads' CPU time {by_time} (references {by_refs})"
    );
    // The hottest page holds the shared line.
    let page = hottest["top_granules"][0]["start"].as_u64().unwrap();
    assert_eq!(page, line & !4095, "{hottest}");
    // r on it asks for 512-byte granules; r on the hottest of those for lines.
    let first_ask = press_refine(&live, 0);
    assert_eq!(first_ask, (page, 4096, 512));
    let (row, hot512) = wait_for_region(&live, first_ask, 20);
    assert_eq!(hot512, line & !511);
    let second_ask = press_refine(&live, row);
    assert_eq!(second_ask, (hot512, 512, 64));
    let (_, hot64) = wait_for_region(&live, second_ask, 20);
    assert_eq!(hot64, line & !63, "the shared line is not the hottest");
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}
