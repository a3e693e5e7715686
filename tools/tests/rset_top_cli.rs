//! rset-top for real: on a pseudo-terminal (nix's openpty), keys in, the terminal
//! restored on quit and on SIGTERM; batch mode and bad input without one. The
//! live session is made here, by this test process (a monitor::LiveWriter), so
//! the target exists and its counters are known.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use monitor::live::{self, LiveWriter};
use monitor::sample::{Access, Sample, SamplerStats};
use monitor::{Card, FilterSpec, Granularity};

fn rset_top() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rset-top"))
}

/// A live file in a fresh directory: one 64 KiB region, two nodes, counts known.
fn live_session(name: &str) -> (PathBuf, LiveWriter) {
    let dir = std::env::temp_dir().join(format!("rset-top-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut card = Card::new(2).unwrap();
    card.program(FilterSpec::new(0x40000, 0x10000, Granularity::PAGE).name("grid"))
        .unwrap();
    for i in 0..30u64 {
        let s = Sample {
            addr: 0x40000 + (i % 4) * 4096 + 8,
            tid: 1,
            cpu: (i % 2) as u32,
            node: (i % 2) as u32,
            time_ns: i,
            access: if i.is_multiple_of(3) {
                Access::Write
            } else {
                Access::Read
            },
            source: None,
        };
        card.record(&s, 0);
    }
    let mut w = LiveWriter::create(&dir, &card).unwrap();
    w.publish(
        &card,
        &SamplerStats {
            name: "test".into(),
            samples: 30,
            lost: 0,
            idle_rounds: 0,
            rate_hz: 1000,
        },
    );
    (dir, w)
}

struct Pty {
    master: std::fs::File,
    output: Arc<Mutex<Vec<u8>>>,
    child: Child,
}

fn spawn_on_pty(cmd: &mut Command) -> Pty {
    let size = nix::pty::Winsize {
        ws_row: 30,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).unwrap();
    let slave: OwnedFd = pty.slave;
    let child = cmd
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    let master = std::fs::File::from(pty.master);
    let output = Arc::new(Mutex::new(Vec::new()));
    let (mut reader, out) = (master.try_clone().unwrap(), output.clone());
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // EIO once the child and every copy of the slave are gone.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    Pty {
        master,
        output,
        child,
    }
}

impl Pty {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Waits until the output after `from` bytes contains `what`.
    fn wait_for(&self, from: usize, what: &str) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.output.lock().unwrap().clone();
            let tail = String::from_utf8_lossy(&out[from.min(out.len())..]).into_owned();
            if tail.contains(what) {
                return out.len();
            }
            assert!(
                Instant::now() < deadline,
                "no {what:?} on the screen; it showed:\n{}",
                String::from_utf8_lossy(&out)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn send(&mut self, keys: &[u8]) {
        self.master.write_all(keys).unwrap();
    }

    fn exit_status(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("rset-top did not exit; it showed:\n{}", self.text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The terminal was taken (alternate screen, hidden cursor) and given back
/// (alternate screen left, cursor shown), in that order.
fn assert_restored(out: &str) {
    let enter = out
        .find("\x1b[?1049h")
        .expect("entered the alternate screen");
    let leave = out.rfind("\x1b[?1049l").expect("left the alternate screen");
    let shown = out.rfind("\x1b[?25h").expect("showed the cursor");
    assert!(enter < leave && enter < shown, "{out:?}");
}

#[test]
fn keys_drive_the_views_and_q_restores_the_terminal() {
    let (dir, mut w) = live_session("keys");
    let pid = std::process::id().to_string();
    let mut pty = spawn_on_pty(rset_top().arg("--dir").arg(&dir).arg(&pid));
    let mut at = pty.wait_for(0, "NODE");
    pty.send(b"?");
    // Screens are drawn with cursor moves between words: match single words.
    at = pty.wait_for(at, "keys───");
    pty.send(b"x"); // any key closes the help
    pty.send(b"\t");
    at = pty.wait_for(at, "filters,");
    pty.send(b"\r");
    at = pty.wait_for(at, "refines");
    // r on the hottest page asks the session for 512-byte granules of it.
    pty.send(b"r");
    pty.wait_for(at, "grid+0x");
    let deadline = Instant::now() + Duration::from_secs(5);
    let cmd = loop {
        if let Some(c) = w.take_command() {
            break c;
        }
        assert!(Instant::now() < deadline, "no command came");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(cmd.cmd, live::CMD_ADD_FILTER);
    assert_eq!(cmd.args[1..], [4096, 512]);
    assert!((0x40000..0x44000).contains(&cmd.args[0]) && cmd.args[0] % 4096 == 0);
    pty.send(b"q");
    let status = pty.exit_status();
    assert!(status.success(), "{status:?}: {}", pty.text());
    std::thread::sleep(Duration::from_millis(100));
    assert_restored(&pty.text());
    drop(w);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_replay_with_a_timeline_moves_back_through_the_run() {
    let dir = std::env::temp_dir().join(format!("rset-top-cli-replay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut card = Card::new(2).unwrap();
    card.program(FilterSpec::new(0x40000, 0x10000, Granularity::PAGE).name("grid"))
        .unwrap();
    let mut timeline = monitor::Timeline::new();
    for second in 1..=2u64 {
        for i in 0..10 * second {
            let s = Sample {
                addr: 0x40000 + (i % 4) * 4096,
                tid: 1,
                cpu: 1,
                node: 1,
                time_ns: i,
                access: Access::Read,
                source: None,
            };
            card.record(&s, 0);
        }
        timeline.take(second * 1000, &card.filter_counts());
    }
    let file = dir.join("run.session");
    monitor::SessionFile::from_card(&card, SamplerStats::default())
        .with_timeline(timeline.into_points())
        .save(&file)
        .unwrap();
    let mut pty = spawn_on_pty(rset_top().arg("--replay").arg(&file));
    // It opens on the final counts (frame 3 of 3: two points and the end).
    let mut at = pty.wait_for(0, "3/3:");
    // Redraws write only the cells that changed: the frame number is the 14th cell
    // of the status line (row 30, after "replay frame ").
    let frame_no = |k: u32| format!("\x1b[30;14H{k}");
    pty.send(b"[");
    at = pty.wait_for(at, "2.0");
    pty.send(b"[");
    at = pty.wait_for(at, &frame_no(1));
    pty.send(b"]");
    pty.wait_for(at, &frame_no(2));
    pty.send(b"q");
    let status = pty.exit_status();
    assert!(status.success(), "{status:?}: {}", pty.text());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_restores_the_terminal_and_exits_143() {
    let (dir, w) = live_session("term");
    let mut pty = spawn_on_pty(
        rset_top()
            .arg("--dir")
            .arg(&dir)
            .arg(std::process::id().to_string()),
    );
    pty.wait_for(0, "NODE");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pty.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = pty.exit_status();
    assert_eq!(status.code(), Some(143), "{}", pty.text());
    std::thread::sleep(Duration::from_millis(100));
    assert_restored(&pty.text());
    drop(w);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn once_prints_the_counters_without_a_terminal() {
    let (dir, w) = live_session("once");
    let out = rset_top()
        .args(["--once", "--json", "-n", "2", "-d", "0.1", "--dir"])
        .arg(&dir)
        .arg(std::process::id().to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let r = &lines[1]["regions"][0];
    assert_eq!(r["name"], "grid");
    assert_eq!(r["references"], 30);
    // Node 0's samples were local (home 0), node 1's remote.
    assert_eq!(r["remote"], 15);
    assert_eq!(r["top_granules"].as_array().unwrap().len(), 4);
    assert_eq!(lines[1]["iteration"], 2);
    // The only session in the directory opens with no argument; text mode.
    let out = rset_top()
        .args(["--once", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success() && text.contains("grid") && text.contains("50.0%"),
        "{text}"
    );
    drop(w);
    let _ = std::fs::remove_dir_all(&dir);
}

fn fails(args: &[&str], dir: &Path, code: i32, message: &str) {
    let out = rset_top()
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert!(err.contains(message), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?}");
}

#[test]
fn bad_input_is_a_one_line_error() {
    let (dir, w) = live_session("bad");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let me = std::process::id().to_string();
    // Not a terminal (the test's stdout is a pipe) and no --once.
    fails(&[&me], &dir, 2, "rset-top: not a terminal; use --once");
    fails(&["--json", &me], &dir, 2, "--json and -n go with --once");
    fails(&["--once", "999999999"], &dir, 2, "no process 999999999");
    fails(
        &["--once", "/nonexistent.live"],
        &dir,
        2,
        "neither a process id nor a live file",
    );
    fails(
        &["--once", "-d", "0", &me],
        &dir,
        2,
        "between 0.05 and 3600",
    );
    fails(&["--once", "-n", "0", &me], &dir, 2, "--iterations");
    fails(&["--once"], &empty, 2, "no live sessions in");
    fails(
        &["--once", "--replay", "/nonexistent.session"],
        &dir,
        2,
        "--replay: ",
    );
    // A file that is not a live file.
    let junk = dir.join("junk.live");
    std::fs::write(&junk, b"not a live file").unwrap();
    let out = rset_top().arg("--once").arg(&junk).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an rset-mon live file"));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    drop(w);
    let _ = std::fs::remove_dir_all(&dir);
}
