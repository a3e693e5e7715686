//! rset-run and rset-mon record on unmodified C programs, inside the emulated NUMA
//! machines (`cargo xtask test`). The programs (tests/c/*.c, compiled by build.rs)
//! report from inside: each thread's CPU and node from its own `getcpu`, and the
//! node of each page of its heap block from `move_pages`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};

use alloc_policies::{Layout, Policy};
use rset::{NodeId, Placement, RSet, Topology};

/// Writes an embedded C program to a temporary directory and returns its path.
fn program(name: &str, bytes: &[u8]) -> PathBuf {
    assert!(
        !bytes.is_empty(),
        "{name} was not compiled (is gcc installed on the build host?)"
    );
    let dir = std::env::temp_dir().join("rset-guest-preload");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    if !path.exists() {
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    path
}

macro_rules! c_program {
    ($name:literal) => {
        program($name, include_bytes!(concat!(env!("OUT_DIR"), "/", $name)))
    };
}

fn run(cmd: &mut Command) -> Output {
    // ETXTBSY: another test thread forked while a program file was open for
    // writing here, and its child holds that descriptor until it execs; retry.
    let mut tries = 0;
    let out = loop {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other.expect("spawn"),
        }
    };
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

struct Machine {
    topo: Topology,
    all: RSet,
    ncpus: usize,
    memory_nodes: Vec<u32>,
}

fn machine() -> Machine {
    let topo = Topology::from_system().unwrap();
    let all = topo.global_rset();
    let ncpus = all.effective_cpus().len();
    let memory_nodes = all.effective_nodes().iter().map(|n| n.0).collect();
    Machine {
        topo,
        all,
        ncpus,
        memory_nodes,
    }
}

/// The plan's (cpu, node) of each slot.
fn plan(m: &Machine, placement: Placement) -> Vec<(u32, u32)> {
    rset::plan(&m.all, placement, m.ncpus)
        .unwrap()
        .iter()
        .map(|t| (t.cpu.0, t.node.0))
        .collect()
}

/// The node page `p` of a block allocated by a thread on `node` must be on.
fn expected_node(m: &Machine, mem: &str, node: u32, p: usize) -> u32 {
    match mem {
        "float" | "local" => node,
        "remote" => match Policy::Remote.resolve(&m.all, NodeId(node)).unwrap() {
            Layout::Node(n) => n.0,
            other => panic!("remote resolved to {other:?}"),
        },
        s => {
            let k: usize = s.strip_prefix("striped:").unwrap().parse().unwrap();
            m.memory_nodes[(p / k) % m.memory_nodes.len()]
        }
    }
}

/// Parses "T i cpu node" and "M i misaligned run run ..." lines.
/// Per participant: (cpu, node), and the node of each page of its block.
type Placed = (BTreeMap<usize, (u32, u32)>, BTreeMap<usize, Vec<i32>>);

fn parse_placed(text: &str) -> Placed {
    let mut threads = BTreeMap::new();
    let mut pages = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.first() {
            Some(&"T") => {
                threads.insert(
                    f[1].parse().unwrap(),
                    (f[2].parse().unwrap(), f[3].parse().unwrap()),
                );
            }
            Some(&"M") => {
                assert_eq!(f[2], "0", "heap block not page aligned: {line}");
                let mut v = Vec::new();
                for run in &f[3..] {
                    let (node, n) = run
                        .split_once('x')
                        .unwrap_or_else(|| panic!("bad run in {line}"));
                    let (node, n): (i32, usize) = (node.parse().unwrap(), n.parse().unwrap());
                    v.extend(std::iter::repeat_n(node, n));
                }
                pages.insert(f[1].parse().unwrap(), v);
            }
            Some(&"E") => panic!("{line}"),
            _ => {}
        }
    }
    (threads, pages)
}

fn policies(m: &Machine) -> Vec<&'static str> {
    let mut v = vec!["float", "local", "striped:1", "striped:3"];
    if m.memory_nodes.len() >= 2 {
        v.push("remote");
    }
    v
}

const BLOCK: usize = 4 << 20;

#[test]
fn pthreads_land_on_the_plan_and_heap_pages_follow_the_policy() {
    let m = machine();
    let placed = c_program!("placed");
    // One more thread than CPUs: the last wraps around to slot 0.
    let n = m.ncpus;
    for placement in [Placement::Fill, Placement::RoundRobin] {
        let slots = plan(&m, placement);
        for mem in policies(&m) {
            let out = run(Command::new("rset-run")
                .args(["--threads", &placement.to_string(), "--mem", mem, "--"])
                .arg(&placed)
                .args([n.to_string(), BLOCK.to_string()]));
            let text = String::from_utf8_lossy(&out.stdout);
            let (threads, pages) = parse_placed(&text);
            assert_eq!(threads.len(), n + 1, "{placement} {mem}: {text}");
            for (&i, &(cpu, node)) in &threads {
                let want = slots[i % slots.len()];
                assert_eq!(
                    (cpu, node),
                    want,
                    "{placement} {mem}: thread {i} on CPU {cpu} node {node}, plan {want:?}"
                );
                let got = &pages[&i];
                assert_eq!(got.len(), BLOCK / 4096);
                for (p, &g) in got.iter().enumerate() {
                    let e = expected_node(&m, mem, node, p);
                    assert_eq!(
                        g, e as i32,
                        "{placement} {mem}: thread {i} (node {node}) page {p} on {g}, want {e}"
                    );
                }
            }
        }
    }
}

#[test]
fn openmp_threads_land_on_the_plan_with_gnu_and_llvm_runtimes() {
    let m = machine();
    let gnu = c_program!("omp");
    // The LLVM runtime next to the program (found through its $ORIGIN rpath).
    program(
        "libomp.so.5",
        include_bytes!(concat!(env!("OUT_DIR"), "/libomp.so.5")),
    );
    let llvm = c_program!("omp_llvm");
    for (omp, placement) in [
        (&gnu, Placement::Fill),
        (&gnu, Placement::RoundRobin),
        (&llvm, Placement::Fill),
        (&llvm, Placement::RoundRobin),
    ] {
        let slots = plan(&m, placement);
        let out = run(Command::new("rset-run")
            .env_remove("OMP_NUM_THREADS")
            .args(["--threads", &placement.to_string(), "--"])
            .arg(omp));
        let text = String::from_utf8_lossy(&out.stdout);
        let mut seen = 0;
        for line in text.lines().filter(|l| l.starts_with("T ")) {
            let f: Vec<u32> = line[2..]
                .split_whitespace()
                .map(|x| x.parse().unwrap())
                .collect();
            let (t, cpu, node, team) = (f[0] as usize, f[1], f[2], f[3] as usize);
            assert_eq!(
                team, m.ncpus,
                "OMP_NUM_THREADS should default to the slots: {text}"
            );
            assert_eq!(
                (cpu, node),
                slots[t],
                "{placement}: OpenMP thread {t}: {text}"
            );
            seen += 1;
        }
        assert_eq!(seen, 2 * m.ncpus, "{text}");
    }
}

#[test]
fn a_thousand_short_threads_fork_and_exec() {
    let m = machine();
    let churn = c_program!("churn");
    let slots = plan(&m, Placement::RoundRobin);
    let out = run(Command::new("rset-run")
        .args(["--threads", "round-robin", "--mem", "local", "--"])
        .arg(&churn)
        .arg("1000"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("threads 1000 bad 0"), "{text}");
    assert!(text.contains("fork ok"), "{text}");
    assert!(text.contains("exec ok"), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("exec-child"))
        .expect("exec-child line");
    let f: Vec<u32> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(
        (f[0], f[1]),
        slots[0],
        "an exec'd program's main thread is slot 0 again"
    );
}

#[test]
fn the_report_names_every_thread_and_the_pages_placed() {
    let m = machine();
    let placed = c_program!("placed");
    let report = std::env::temp_dir().join("rset-run-report.json");
    let slots = plan(&m, Placement::Fill);
    run(Command::new("rset-run")
        .args(["--mem", "local", "--report"])
        .arg(&report)
        .arg("--")
        .arg(&placed)
        .args(["3", &BLOCK.to_string()]));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let threads = r["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 4, "{r}");
    for t in threads {
        let slot = t["slot"].as_u64().unwrap() as usize;
        assert_eq!(t["created"].as_u64().unwrap() as usize, slot);
        assert_eq!(
            (
                t["cpu"].as_u64().unwrap() as u32,
                t["node"].as_u64().unwrap() as u32
            ),
            slots[slot]
        );
    }
    let placed_pages: u64 = r["memory"][0]["pages"][0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| pair[1].as_u64().unwrap())
        .sum();
    assert_eq!(placed_pages, 4 * (BLOCK as u64 / 4096), "{r}");
}

#[test]
fn a_program_with_its_own_sigsegv_handler_is_unchanged_under_record() {
    let segv = c_program!("segv");
    let plain = run(&mut Command::new(&segv));
    let session = std::env::temp_dir().join("segv.session");
    let monitored = run(Command::new("rset-mon")
        .args([
            "record",
            "--max-overhead",
            "0",
            "--granularity",
            "line",
            "-o",
        ])
        .arg(&session)
        .arg("--")
        .arg(&segv));
    assert_eq!(
        String::from_utf8_lossy(&plain.stdout),
        String::from_utf8_lossy(&monitored.stdout)
    );
    assert!(String::from_utf8_lossy(&plain.stdout).contains("caught 4 stray 0 handler-kept 1"));
    let json = run(Command::new("rset-mon")
        .arg("report")
        .arg(&session)
        .arg("--json"));
    let r: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(
        r["sampler"]["samples"].as_u64().unwrap() > 0,
        "the monitor really ran: {r}"
    );
}

/// The first CPU of the first node with CPUs, and of the last.
fn two_far_cpus(m: &Machine) -> Option<(u32, u32, u32, u32)> {
    let nodes: Vec<_> = m
        .topo
        .nodes()
        .iter()
        .filter(|n| !n.cpus.is_empty())
        .map(|n| (n.id.0, n.cpus.iter().next().unwrap().0))
        .collect();
    let (&(n0, c0), &(n1, c1)) = (nodes.first()?, nodes.last()?);
    (n0 != n1).then_some((c0, n0, c1, n1))
}

#[test]
fn record_finds_the_hot_remote_array() {
    let m = machine();
    let hot = c_program!("hot");
    let (home, _, far, far_node) = two_far_cpus(&m).expect("two nodes with CPUs");
    let session = std::env::temp_dir().join("hot.session");
    run(Command::new("rset-mon")
        .args(["record", "--max-overhead", "0", "-o"])
        .arg(&session)
        .arg("--")
        .arg(&hot)
        .args([home.to_string(), far.to_string(), "3000".to_string()]));
    let json = run(Command::new("rset-mon")
        .arg("report")
        .arg(&session)
        .arg("--json"));
    let r: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let regions = r["regions"].as_array().unwrap();
    let hottest = regions
        .iter()
        .max_by_key(|g| g["totals"]["all"]["remote"].as_u64().unwrap_or(0))
        .expect("regions");
    assert_eq!(
        hottest["size"].as_u64(),
        Some(4 << 20),
        "hottest remote region: {hottest}"
    );
    let remote_from_far = hottest["totals"]["by_node"][far_node.to_string()]["remote"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        remote_from_far >= 20,
        "remote references from node {far_node}: {r}"
    );
}

#[test]
fn rset_run_and_rset_mon_compose() {
    let m = machine();
    let placed = c_program!("placed");
    let slots = plan(&m, Placement::RoundRobin);
    let session = std::env::temp_dir().join("composed.session");
    let out = run(Command::new("rset-run")
        .args([
            "--threads",
            "round-robin",
            "--mem",
            "local",
            "--",
            "rset-mon",
            "record",
            "--rate",
            "50",
            "-o",
        ])
        .arg(&session)
        .arg("--")
        .arg(&placed)
        .args([m.ncpus.to_string(), BLOCK.to_string(), "settle".to_string()]));
    let text = String::from_utf8_lossy(&out.stdout);
    let (threads, pages) = parse_placed(&text);
    assert_eq!(threads.len(), m.ncpus + 1);
    for (&i, &(cpu, node)) in &threads {
        assert_eq!(
            (cpu, node),
            slots[i % slots.len()],
            "thread {i}: the monitor's threads took a slot? {text}"
        );
        // move_pages reads a page the sampler has armed this instant as unreadable (a
        // negative status); `settle` makes the program ask again until the window has
        // passed, so every page must then be readable and local.
        let got = &pages[&i];
        let mut misplaced = BTreeMap::new();
        for &g in got.iter().filter(|&&g| g != node as i32) {
            *misplaced.entry(g).or_insert(0) += 1;
        }
        assert!(
            misplaced.is_empty(),
            "thread {i} (node {node}): pages (node or -errno: count) {misplaced:?}"
        );
    }
    let json = run(Command::new("rset-mon")
        .arg("report")
        .arg(&session)
        .arg("--json"));
    let r: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        r["regions"].as_array().unwrap().len(),
        m.ncpus + 1,
        "one region per heap block"
    );
}

#[test]
fn programs_a_preload_cannot_reach_are_refused() {
    let busybox = std::process::Command::new("sh")
        .arg("-c")
        .arg("command -v busybox")
        .output()
        .unwrap();
    let busybox = String::from_utf8_lossy(&busybox.stdout).trim().to_string();
    let out = Command::new("rset-run")
        .args(["--", &busybox, "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("statically linked"));
    let out = Command::new("rset-run")
        .args(["--", "no-such-program"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "rset-run: no-such-program: command not found\n"
    );
}

#[test]
fn refine_zooms_from_pages_to_the_hot_arrays_lines() {
    let m = machine();
    let hot = c_program!("hot");
    let (home, _, far, _) = two_far_cpus(&m).expect("two nodes with CPUs");
    let session = std::env::temp_dir().join("refined.session");
    let out = run(Command::new("rset-mon")
        .args([
            "refine",
            "--rounds",
            "2",
            "--top",
            "4",
            "--max-overhead",
            "0",
            "-o",
        ])
        .arg(&session)
        .arg("--")
        .arg(&hot)
        .args([home.to_string(), far.to_string(), "3000".to_string()]));
    let text = String::from_utf8_lossy(&out.stdout);
    let json = run(Command::new("rset-mon")
        .arg("report")
        .arg(&session)
        .arg("--json"));
    let r: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let regions = r["regions"].as_array().unwrap();
    assert!(!regions.is_empty(), "{text}");
    // Round 2 watches only the hot array (heap#1, the second block), at 64 B lines,
    // matched to round 1 by allocation sequence number.
    for g in regions {
        let name = g["name"].as_str().unwrap();
        assert!(
            name.starts_with("heap#1+0x"),
            "round 2 region {name}: {text}"
        );
        assert_eq!(g["granularity"].as_u64(), Some(64), "{name}");
    }
    let remote: u64 = regions
        .iter()
        .map(|g| g["totals"]["all"]["remote"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        remote > 0,
        "no remote reference at line granularity: {text}"
    );
    assert!(std::path::Path::new(&format!("{}.round1", session.display())).exists());
}
