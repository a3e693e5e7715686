//! `cargo xtask demo`: the toolkit's story, on the emulated 4-node machine by default.
//!
//! The walk-through is a shell script (`demo/walkthrough.sh`) of commands a user can
//! type themselves; it runs in the guest, or on the host with `--host`. It tells the
//! paper's section 6: RSets and placement, then 3D-FFT and Ocean run "orig" under the
//! monitor (pages, then the hot pages by cache line), run "reorg", and the orig vs
//! reorg table of remote references (Table 2).
//!
//! Files the script keeps (the heatmaps of Fig. 8/9, as SVG) land in
//! `target/xtask/demo/`. On the host the script copies them there itself
//! (`DEMO_OUT`); the guest's files vanish with it, so there the script writes each
//! one to the control port (`/dev/ttyS3`) between `@@demo-file:NAME` and
//! `@@demo-end` lines, and [`files_from_control`] picks them out of what the port
//! recorded.

use crate::guest::{self, GuestRun};
use crate::initramfs::Initramfs;
use crate::topology::VmTopology;
use crate::{DemoArgs, cargo, setup};
use anyhow::Context;
use std::path::Path;
use std::time::Duration;

const SCRIPT: &str = include_str!("demo/walkthrough.sh");

/// Opens a file on the control port.
const FILE_START: &str = "@@demo-file:";
/// Closes it.
const FILE_END: &str = "@@demo-end";

pub fn run(args: &DemoArgs) -> anyhow::Result<u8> {
    if !args.host {
        setup::host_packages()?;
    }
    let meta = cargo::metadata()?;
    let out_dir = meta.xtask_dir().join("demo");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let bins = cargo::build_release_bins()?;
    if args.host {
        let dirs = cargo::bin_dirs(&bins);
        let mut path = std::env::join_paths(dirs)?
            .into_string()
            .unwrap_or_default();
        if let Some(p) = std::env::var_os("PATH") {
            path = format!("{path}:{}", p.to_string_lossy());
        }
        let status = std::process::Command::new("sh")
            .args(["-c", SCRIPT])
            .env("PATH", path)
            .env("DEMO_WHERE", "this machine")
            .env("DEMO_OUT", &out_dir)
            .status()
            .context("running sh")?;
        return Ok(status.code().map_or(guest::EXIT_HARNESS, |c| c as u8));
    }
    let machine = VmTopology::new(args.nodes, args.cpus_per_node, 512, args.cpuless_nodes);
    let assets = setup::guest_assets(&meta.xtask_dir())?;
    let mut fs = Initramfs::new();
    for b in &bins {
        fs.add_host_path(b)?;
    }
    fs.add_bytes("/xtask/demo.sh", SCRIPT, 0o755);
    println!("Booting an emulated NUMA machine: {}", machine.describe());
    let run = GuestRun {
        topology: machine.clone(),
        command: vec!["sh".into(), "/xtask/demo.sh".into()],
        env: vec![
            (
                "DEMO_WHERE".into(),
                format!("the emulated machine ({})", machine.describe()),
            ),
            ("DEMO_HOST_DIR".into(), out_dir.display().to_string()),
        ],
        path_dirs: cargo::bin_dirs(&bins),
        numa_balancing: false,
        // The emulator runs the programs 5-20x slower than the host.
        timeout: Duration::from_secs(1800),
        verbose: args.verbose,
        echo: true,
    };
    let outcome = guest::boot(&assets, fs, &run)?;
    let files = files_from_control(&outcome.control);
    for (name, body) in &files {
        let path = out_dir.join(name);
        std::fs::write(&path, body).with_context(|| format!("writing {}", path.display()))?;
    }
    if !files.is_empty() {
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        println!(
            "\nFrom the guest, in {}: {} (open them in a browser)",
            shown(&out_dir),
            names.join(", ")
        );
    }
    Ok(outcome.exit_code())
}

/// `dir` relative to the current directory when it is inside it.
fn shown(dir: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| dir.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| dir.to_path_buf())
        .display()
        .to_string()
}

/// The files the guest wrote to the control port: `(name, content)`, in order. The
/// content is what lies between the name line and the end line, less the line
/// break before the end line (the script adds one, so that the end line starts a
/// line whatever the file's last byte). A name is a plain file name (letters,
/// digits, `.`, `-`, `_`); anything else, and a file without its end line, is
/// skipped.
fn files_from_control(control: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = control.split_inclusive('\n');
    while let Some(line) = lines.next() {
        let Some(name) = line.trim_end().strip_prefix(FILE_START) else {
            continue;
        };
        let mut body = String::new();
        let mut ended = false;
        for l in lines.by_ref() {
            if l.trim_end() == FILE_END {
                ended = true;
                break;
            }
            body.push_str(l);
        }
        let plain = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if ended && plain {
            // The line break the script adds before the end line.
            if body.ends_with('\n') {
                body.pop();
            }
            out.push((name.to_owned(), body));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_picked_out_of_the_control_channel() {
        let control = "@@demo-file:a.svg\n<svg>\n</svg>\n\n@@demo-end\n\
                       @@demo-file:../evil\nx\n@@demo-end\n\
                       exit=0\n\
                       @@demo-file:cut.svg\n<svg>\n";
        let files = files_from_control(control);
        assert_eq!(
            files,
            vec![("a.svg".to_owned(), "<svg>\n</svg>\n".to_owned())]
        );
        assert!(files_from_control("exit=0\n").is_empty());
    }
}
