//! `cargo xtask demo`: the toolkit's story, on the emulated 4-node machine by default.
//!
//! The walk-through is a shell script (`demo/walkthrough.sh`) of commands a user can
//! type themselves; it runs in the guest, or on the host with `--host`.

use crate::guest::{self, GuestRun};
use crate::initramfs::Initramfs;
use crate::topology::VmTopology;
use crate::{DemoArgs, cargo, setup};
use anyhow::Context;
use std::time::Duration;

const SCRIPT: &str = include_str!("demo/walkthrough.sh");

pub fn run(args: &DemoArgs) -> anyhow::Result<u8> {
    if !args.host {
        setup::host_packages()?;
    }
    let meta = cargo::metadata()?;
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
        env: vec![(
            "DEMO_WHERE".into(),
            format!("the emulated machine ({})", machine.describe()),
        )],
        path_dirs: cargo::bin_dirs(&bins),
        numa_balancing: false,
        timeout: Duration::from_secs(900),
        verbose: args.verbose,
        echo: true,
    };
    Ok(guest::boot(&assets, fs, &run)?.exit_code())
}
