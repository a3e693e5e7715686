//! Booting the emulated machine and running one command in it.
//!
//! The guest has four serial ports, so that nothing mixes: ttyS0 is the kernel
//! console, ttyS1 the command's stdout (QEMU's stdout here), ttyS2 its stderr (QEMU's
//! stderr here), ttyS3 a control channel. The output ports are put in raw mode, so
//! bytes arrive exactly as written. The guest's `/init` (busybox sh) mounts the pseudo
//! file systems, runs the command, writes its exit status to the control port and
//! reboots, which ends QEMU (`-no-reboot`). The root file system is the initramfs
//! itself (writable, in RAM), so host files copied under `/tmp` stay visible. A
//! kernel panic reboots at once (`panic=-1`) without a status, and the panic line is
//! read off the console log.

use crate::initramfs::Initramfs;
use crate::setup::GuestAssets;
use crate::topology::VmTopology;
use anyhow::{Context, bail};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Exit status for failures of the harness itself (bad arguments, a guest that
/// panicked or never reported): the value `git bisect run` and docker use.
pub const EXIT_HARNESS: u8 = 125;
/// Exit status when the guest ran out of time (as `timeout(1)`).
pub const EXIT_TIMEOUT: u8 = 124;
/// Exit status when the command does not exist in the guest (as a shell).
pub const EXIT_NOT_FOUND: u8 = 127;

/// Printed on the kernel console when the command starts: what comes before is the
/// boot log, what comes after is the kernel talking while the command runs.
const START: &str = "@@xtask:start@@";
/// One boot: the machine, the command and how to run it.
pub struct GuestRun {
    pub topology: VmTopology,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Directories put first on the guest's PATH (where the workspace binaries are).
    pub path_dirs: Vec<PathBuf>,
    pub numa_balancing: bool,
    pub timeout: Duration,
    pub verbose: bool,
    /// Stream the command's output to ours as it comes (else only capture it).
    pub echo: bool,
}

/// How a boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The command ran and exited with this status.
    Exited(i32),
    /// The command is not in the guest (or not executable).
    NotFound(String),
    /// The kernel panicked; the panic line.
    Panicked(String),
    /// Killed after the time-out.
    TimedOut(Duration),
    /// QEMU stopped without the exit marker.
    Vanished,
}

/// The result of a boot: its status, everything the command wrote to stdout, and
/// the control channel's text (ttyS3: the exit status, and whatever the command
/// wrote to `/dev/ttyS3` itself, such as files for the host; see `demo.rs`).
pub struct Outcome {
    pub status: Status,
    pub stdout: String,
    pub control: String,
}

impl Outcome {
    /// The exit status `cargo xtask vm` passes on, after printing a one-line error
    /// for anything but a normal exit.
    pub fn exit_code(&self) -> u8 {
        match &self.status {
            Status::Exited(rc) => u8::try_from(*rc).unwrap_or(EXIT_HARNESS),
            Status::NotFound(msg) => {
                eprintln!("error: {msg}");
                EXIT_NOT_FOUND
            }
            Status::Panicked(line) => {
                eprintln!("error: the guest kernel panicked: {line}");
                EXIT_HARNESS
            }
            Status::TimedOut(t) => {
                eprintln!(
                    "error: the guest did not finish within {} s (raise --timeout); it was killed",
                    t.as_secs()
                );
                EXIT_TIMEOUT
            }
            Status::Vanished => {
                eprintln!(
                    "error: the guest stopped without reporting the command's exit status \
                     (run with -v for its boot log)"
                );
                EXIT_HARNESS
            }
        }
    }
}

/// Parses `--env KEY=VALUE` arguments.
pub fn parse_env(args: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    args.iter()
        .map(|a| {
            let (k, v) = a
                .split_once('=')
                .with_context(|| format!("--env {a}: expected KEY=VALUE"))?;
            if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                bail!("--env {a}: `{k}` is not a valid variable name");
            }
            Ok((k.to_owned(), v.to_owned()))
        })
        .collect()
}

fn quote(s: &str) -> String {
    shlex::try_quote(s)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| format!("'{}'", s.replace('\0', "")))
}

/// The `/init` script.
fn init_script(numa_balancing: bool) -> String {
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
chmod 1777 /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
echo {balancing} > /proc/sys/kernel/numa_balancing 2>/dev/null
ip link set lo up 2>/dev/null
hostname rset-guest
for p in ttyS1 ttyS2 ttyS3; do stty -F /dev/$p raw -echo; done
. /xtask/env
cd "$XTASK_CWD" 2>/dev/null || cd /
echo "{START}"
/bin/sh /xtask/cmd </dev/null >/dev/ttyS1 2>/dev/ttyS2
echo "exit=$?" >/dev/ttyS3
sync
reboot -f
"#,
        balancing = u8::from(numa_balancing),
    )
}

/// The `/xtask/cmd` script: checks the command exists, then execs it.
fn command_script(command: &[String]) -> String {
    let argv: Vec<String> = command.iter().map(|a| quote(a)).collect();
    format!(
        r#"set -- {argv}
case "$1" in
  */*) [ -e "$1" ] || {{ echo not-found >/dev/ttyS3; exit 127; }}
       [ -f "$1" ] && [ -x "$1" ] || {{ echo not-executable >/dev/ttyS3; exit 126; }} ;;
  *) command -v "$1" >/dev/null 2>&1 || {{ echo not-found >/dev/ttyS3; exit 127; }} ;;
esac
exec "$@"
"#,
        argv = argv.join(" ")
    )
}

fn env_script(run: &GuestRun) -> String {
    let mut path: Vec<String> = run
        .path_dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    path.extend(["/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(String::from));
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|_| "/".into());
    let mut vars: Vec<(String, String)> = vec![
        ("PATH".into(), path.join(":")),
        ("HOME".into(), "/root".into()),
        ("USER".into(), "root".into()),
        ("TERM".into(), "dumb".into()),
        ("XTASK_CWD".into(), cwd),
    ];
    for pass in [
        "RUST_BACKTRACE",
        "RUST_LOG",
        "RUST_TEST_THREADS",
        "NO_COLOR",
    ] {
        if let Ok(v) = std::env::var(pass) {
            vars.push((pass.into(), v));
        }
    }
    vars.extend(run.topology.guest_env());
    vars.extend(run.env.iter().cloned());
    vars.iter()
        .map(|(k, v)| format!("export {k}={}\n", quote(v)))
        .collect()
}

/// Boots the machine with `fs` (plus busybox, init and the command) and runs the
/// command to completion.
pub fn boot(assets: &GuestAssets, mut fs: Initramfs, run: &GuestRun) -> anyhow::Result<Outcome> {
    fs.add_file_as("/bin/busybox".as_ref(), &assets.busybox)?;
    fs.add_bytes("/init", init_script(run.numa_balancing), 0o755);
    fs.add_bytes("/xtask/cmd", command_script(&run.command), 0o755);
    fs.add_bytes("/xtask/env", env_script(run), 0o644);
    if let Ok(cwd) = std::env::current_dir() {
        fs.add_dir(&cwd);
    }
    let guest_mib = run.topology.mem_per_node_mib * u64::from(run.topology.total_nodes());
    let image_mib = fs.content_bytes() >> 20;
    if image_mib * 3 > guest_mib {
        bail!(
            "the guest's files take {image_mib} MiB, too much for {guest_mib} MiB of guest \
             memory (raise --mem-per-node)"
        );
    }
    let scratch = Scratch::new()?;
    let image = scratch.0.join("initramfs.cpio");
    fs.write(&image)?;
    boot_image(assets, &image, &scratch.0, run)
}

/// A private directory for one boot, removed afterwards.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Scratch> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("xtask-vm-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn kernel_command_line(numa_balancing: bool) -> String {
    [
        "console=ttyS0",
        "panic=-1",
        "oops=panic",
        "quiet",
        "loglevel=4",
        "rdinit=/init",
        "mitigations=off",
        "tsc=reliable",
        "no_timer_check",
        if numa_balancing {
            "numa_balancing=enable"
        } else {
            "numa_balancing=disable"
        },
    ]
    .join(" ")
}

fn boot_image(
    assets: &GuestAssets,
    image: &Path,
    scratch: &Path,
    run: &GuestRun,
) -> anyhow::Result<Outcome> {
    let console_log = scratch.join("console.log");
    let control = scratch.join("control");
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-machine",
        "q35",
        "-accel",
        "tcg,thread=multi",
        "-cpu",
        "max",
    ])
    .args(run.topology.qemu_args())
    .arg("-serial")
    .arg(format!("file:{}", console_log.display()))
    .args(["-serial", "stdio", "-serial", "file:/dev/stderr", "-serial"])
    .arg(format!("file:{}", control.display()))
    .arg("-kernel")
    .arg(&assets.kernel)
    .arg("-initrd")
    .arg(image)
    .arg("-append")
    .arg(kernel_command_line(run.numa_balancing))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if run.verbose {
        eprintln!("xtask: {cmd:?}");
    }
    let started = Instant::now();
    let mut child = cmd.spawn().context("starting qemu-system-x86_64")?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let echo = run.echo;
    let out_thread = std::thread::spawn(move || pump(stdout, echo.then(std::io::stdout)));
    let err_thread = std::thread::spawn(move || pump(stderr, echo.then(std::io::stderr)));

    let deadline = started + run.timeout;
    let timed_out = loop {
        if child.try_wait()?.is_some() {
            break false;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break true;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let stdout = out_thread.join().expect("stdout reader");
    let stderr = err_thread.join().expect("stderr reader");
    let console = std::fs::read(&console_log).unwrap_or_default();
    let console = String::from_utf8_lossy(&console).replace('\r', "");
    let control = std::fs::read_to_string(&control).unwrap_or_default();
    let (boot_log, run_log) = console.split_once(START).unwrap_or((&console, ""));

    let status = if timed_out {
        Status::TimedOut(run.timeout)
    } else {
        status_from(&control, &console, &run.command[0])
    };
    if run.verbose {
        for line in boot_log.lines().chain(run_log.lines()) {
            eprintln!("guest console| {line}");
        }
        eprintln!("xtask: QEMU ran {:.1} s", elapsed.as_secs_f64());
    } else {
        match status {
            Status::Exited(0) | Status::NotFound(_) => {}
            Status::Exited(_) => {
                // The kernel's own account of a crash or an OOM kill, if it gave one.
                let said = run_log
                    .lines()
                    .filter(|l| !l.trim().is_empty() && !l.contains("reboot: Restarting"));
                for line in said {
                    eprintln!("guest kernel| {line}");
                }
            }
            _ => {
                let lines: Vec<&str> = console.lines().collect();
                for line in &lines[lines.len().saturating_sub(30)..] {
                    eprintln!("guest console| {line}");
                }
                if !echo {
                    eprint!("{stderr}");
                }
            }
        }
    }
    Ok(Outcome {
        status,
        stdout,
        control,
    })
}

/// Reads the control channel (and the console, for a panic).
fn status_from(control: &str, console: &str, program: &str) -> Status {
    let mut status = None;
    for line in control.lines().map(str::trim) {
        match line {
            "not-found" => {
                return Status::NotFound(format!(
                    "`{program}` was not found in the guest (not a workspace binary, a \
                     busybox applet or a --copy'd file)"
                ));
            }
            "not-executable" => {
                return Status::NotFound(format!("`{program}` is not executable in the guest"));
            }
            _ => {
                if let Some(rc) = line.strip_prefix("exit=").and_then(|r| r.parse().ok()) {
                    status = Some(Status::Exited(rc));
                }
            }
        }
    }
    if let Some(s) = status {
        return s;
    }
    match console
        .lines()
        .find(|l| l.contains("Kernel panic - not syncing"))
    {
        Some(line) => {
            let text = line.split_once("] ").map_or(line, |(_, t)| t);
            Status::Panicked(text.trim().to_owned())
        }
        None => Status::Vanished,
    }
}

/// Copies a stream to `to` (when given) as it comes, and returns all of it.
fn pump<W: Write>(mut from: impl Read, mut to: Option<W>) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(w) = to.as_mut() {
            let _ = w.write_all(&buf[..n]);
            let _ = w.flush();
        }
        all.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&all).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_comes_from_the_control_channel() {
        assert_eq!(status_from("exit=7\n", "", "sh"), Status::Exited(7));
        assert_eq!(status_from("exit=0\n", "", "sh"), Status::Exited(0));
    }

    #[test]
    fn missing_commands_are_named() {
        let s = status_from("not-found\nexit=127\n", "", "nosuch");
        assert_eq!(
            s,
            Status::NotFound(
                "`nosuch` was not found in the guest (not a workspace binary, a busybox \
                 applet or a --copy'd file)"
                    .into()
            )
        );
    }

    #[test]
    fn panics_are_read_off_the_console() {
        let console = "boot\n[    1.2] Kernel panic - not syncing: Attempted to kill init!\n";
        assert_eq!(
            status_from("", console, "x"),
            Status::Panicked("Kernel panic - not syncing: Attempted to kill init!".into())
        );
        assert_eq!(status_from("", "boot\n", "x"), Status::Vanished);
    }

    #[test]
    fn command_script_quotes_arguments() {
        let s = command_script(&["sh".into(), "-c".into(), "exit 7".into()]);
        assert!(s.starts_with("set -- sh -c 'exit 7'\n"), "{s}");
    }

    #[test]
    fn env_arguments_are_checked() {
        assert_eq!(
            parse_env(&["A_1=x=y".into()]).unwrap(),
            vec![("A_1".to_owned(), "x=y".to_owned())]
        );
        assert!(parse_env(&["novalue".into()]).is_err());
        assert!(parse_env(&["BAD-NAME=1".into()]).is_err());
    }
}
