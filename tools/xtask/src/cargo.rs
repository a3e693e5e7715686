//! Asking cargo about the workspace and building it.

use anyhow::{Context, bail};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The cargo that runs us (`cargo xtask` sets `CARGO`).
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// What `cargo metadata` says about the workspace.
pub struct Metadata {
    pub target_dir: PathBuf,
    /// (package, test target) for every test target whose name starts with `guest`.
    pub guest_tests: Vec<(String, String)>,
    /// Every binary target of the workspace.
    pub bin_names: Vec<String>,
}

impl Metadata {
    /// `target/xtask`: the harness's cache.
    pub fn xtask_dir(&self) -> PathBuf {
        self.target_dir.join("xtask")
    }
}

pub fn metadata() -> anyhow::Result<Metadata> {
    let out = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed");
    }
    let v: Value = serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    let path = |k: &str| -> anyhow::Result<PathBuf> {
        v[k].as_str()
            .map(PathBuf::from)
            .with_context(|| format!("cargo metadata has no {k}"))
    };
    let mut guest_tests = Vec::new();
    let mut bin_names = Vec::new();
    for pkg in v["packages"].as_array().into_iter().flatten() {
        let pkg_name = pkg["name"].as_str().unwrap_or_default();
        for t in pkg["targets"].as_array().into_iter().flatten() {
            let name = t["name"].as_str().unwrap_or_default();
            let kinds: Vec<&str> = t["kind"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if kinds.contains(&"test") && name.starts_with("guest") {
                guest_tests.push((pkg_name.to_owned(), name.to_owned()));
            }
            if kinds.contains(&"bin") && pkg_name != "xtask" {
                bin_names.push(name.to_owned());
            }
        }
    }
    Ok(Metadata {
        target_dir: path("target_directory")?,
        guest_tests,
        bin_names,
    })
}

/// Runs a cargo build command with JSON messages, streaming the rendered diagnostics,
/// and returns the executables of the artifacts `keep` accepts.
fn build_executables(
    mut cmd: Command,
    keep: impl Fn(&Value) -> bool,
) -> anyhow::Result<Vec<PathBuf>> {
    cmd.arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().context("running cargo")?;
    let stdout = child.stdout.take().expect("piped");
    let mut exes = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line?;
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact" && keep(&msg) {
            if let Some(exe) = msg["executable"].as_str() {
                exes.push(PathBuf::from(exe));
            }
        }
    }
    if !child.wait()?.success() {
        bail!("the build failed (see cargo's messages above)");
    }
    Ok(exes)
}

/// `cargo build --release --workspace --bins`, less xtask itself.
pub fn build_release_bins() -> anyhow::Result<Vec<PathBuf>> {
    let mut cmd = cargo();
    cmd.args([
        "build",
        "--release",
        "--workspace",
        "--exclude",
        "xtask",
        "--bins",
    ]);
    let mut bins = build_executables(cmd, |m| {
        m["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "bin"))
    })?;
    bins.push(build_preload()?);
    Ok(bins)
}

/// `cargo build --release -p rset-preload`: the library `rset-run` and `rset-mon
/// record` preload, which must sit next to them in the guest.
pub fn build_preload() -> anyhow::Result<PathBuf> {
    let mut cmd = cargo();
    cmd.args(["build", "--release", "-p", "rset-preload"])
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().context("running cargo")?;
    let stdout = child.stdout.take().expect("piped");
    let mut lib = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(msg) = serde_json::from_str::<Value>(&line?) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "rset_preload" {
            let files = msg["filenames"].as_array().cloned().unwrap_or_default();
            lib = files
                .iter()
                .filter_map(Value::as_str)
                .find(|f| f.ends_with(".so"))
                .map(PathBuf::from);
        }
    }
    if !child.wait()?.success() {
        bail!("the build of rset-preload failed (see cargo's messages above)");
    }
    lib.context("cargo built rset-preload but named no .so")
}

/// The release binaries already built, for `--no-build`.
pub fn existing_release_bins(meta: &Metadata) -> anyhow::Result<Vec<PathBuf>> {
    let dir = meta.target_dir.join("release");
    let bins: Vec<PathBuf> = meta
        .bin_names
        .iter()
        .map(|n| dir.join(n))
        .filter(|p| p.is_file())
        .collect();
    if bins.is_empty() {
        bail!("--no-build: no release binaries in {}", dir.display());
    }
    let mut bins = bins;
    let lib = dir.join("librset_preload.so");
    if lib.is_file() {
        bins.push(lib);
    }
    Ok(bins)
}

/// Builds every guest test target (release, like the binaries they run) and returns
/// (target name, executable).
pub fn build_guest_tests(meta: &Metadata) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut all = Vec::new();
    for (pkg, target) in &meta.guest_tests {
        let mut cmd = cargo();
        cmd.args(["test", "--release", "--no-run", "-p", pkg, "--test", target]);
        let exes = build_executables(cmd, |m| {
            m["profile"]["test"] == true && m["target"]["name"] == target.as_str()
        })?;
        let exe = exes
            .into_iter()
            .next()
            .with_context(|| format!("cargo built no executable for {pkg}'s test {target}"))?;
        all.push((format!("{pkg}/{target}"), exe));
    }
    Ok(all)
}

/// The directories holding these binaries, for the guest's PATH.
pub fn bin_dirs(bins: &[PathBuf]) -> Vec<PathBuf> {
    let dirs: BTreeSet<&Path> = bins.iter().filter_map(|b| b.parent()).collect();
    dirs.into_iter().map(Path::to_path_buf).collect()
}
