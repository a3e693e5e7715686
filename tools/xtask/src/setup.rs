//! System packages for the host and the guest's kernel and busybox.
//!
//! Host packages are installed with apt-get when running as root; otherwise the exact
//! command is printed. The guest kernel (Debian's cloud kernel: NUMA, no modules
//! needed) and a static busybox are downloaded as Debian packages, unpacked and cached
//! under `target/xtask/guest/`; a second run reuses the cache. `RSET_VM_KERNEL` and
//! `RSET_VM_BUSYBOX` point at your own files instead.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The kernel meta-package whose dependency is the real kernel package.
const KERNEL_META: &str = "linux-image-cloud-amd64";

/// What one host requirement needs: a check, and the Debian package that fixes it.
struct Requirement {
    what: &'static str,
    package: &'static str,
    present: fn() -> bool,
}

fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
}

fn pkg_config_has(lib: &str) -> bool {
    Command::new("pkg-config")
        .args(["--exists", lib])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        what: "qemu-system-x86_64",
        package: "qemu-system-x86",
        present: || on_path("qemu-system-x86_64"),
    },
    Requirement {
        what: "pkg-config",
        package: "pkg-config",
        present: || on_path("pkg-config"),
    },
    Requirement {
        what: "hwloc headers (pkg-config hwloc)",
        package: "libhwloc-dev",
        present: || pkg_config_has("hwloc"),
    },
    Requirement {
        what: "libnuma headers (pkg-config numa), for the libnuma benchmarks",
        package: "libnuma-dev",
        present: || pkg_config_has("numa"),
    },
    Requirement {
        what: "libudev headers (pkg-config libudev)",
        package: "libudev-dev",
        present: || pkg_config_has("libudev"),
    },
    Requirement {
        what: "the LLVM OpenMP runtime (libomp.so.5), for rset-run's OpenMP guest test",
        package: "libomp5-14",
        present: || std::path::Path::new(LIBOMP).exists(),
    },
];

/// Where Debian 12's libomp5-14 puts the LLVM OpenMP runtime.
pub const LIBOMP: &str = "/usr/lib/llvm-14/lib/libomp.so.5";

fn is_root() -> bool {
    // Effective uid is the second field of the Uid: line.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Makes sure the host has QEMU and the build's system libraries.
pub fn host_packages() -> anyhow::Result<()> {
    if std::env::consts::ARCH != "x86_64" {
        bail!(
            "the emulated NUMA machine needs an x86_64 host (this is {})",
            std::env::consts::ARCH
        );
    }
    let missing: Vec<&Requirement> = REQUIREMENTS.iter().filter(|r| !(r.present)()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|r| r.package).collect();
    let cmd = format!(
        "apt-get install -y --no-install-recommends {}",
        packages.join(" ")
    );
    if !is_root() || !on_path("apt-get") {
        let what: Vec<&str> = missing.iter().map(|r| r.what).collect();
        bail!("missing {}; install with: sudo {cmd}", what.join(", "));
    }
    eprintln!("xtask: installing {}", packages.join(" "));
    if !apt_install(&packages)? {
        eprintln!("xtask: apt-get install failed; running apt-get update and retrying");
        run_quiet(Command::new("apt-get").arg("update"), "apt-get update")?;
        if !apt_install(&packages)? {
            bail!("`{cmd}` failed (see its output above)");
        }
    }
    let still: Vec<&str> = REQUIREMENTS
        .iter()
        .filter(|r| !(r.present)())
        .map(|r| r.what)
        .collect();
    if !still.is_empty() {
        bail!("still missing after installing: {}", still.join(", "));
    }
    Ok(())
}

fn apt_install(packages: &[&str]) -> anyhow::Result<bool> {
    let out = Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .context("running apt-get")?;
    if !out.status.success() {
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.status.success())
}

fn run_quiet(cmd: &mut Command, what: &str) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The guest's kernel image and static busybox.
pub struct GuestAssets {
    pub kernel: PathBuf,
    pub busybox: PathBuf,
}

/// Returns the cached guest files, downloading them on first use.
pub fn guest_assets(xtask_dir: &Path) -> anyhow::Result<GuestAssets> {
    let dir = xtask_dir.join("guest");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let kernel = match std::env::var_os("RSET_VM_KERNEL") {
        Some(p) => existing(PathBuf::from(p), "RSET_VM_KERNEL")?,
        None => cached(&dir, "vmlinuz", || {
            // A fresh machine may have no package lists yet.
            let package = match kernel_package() {
                Err(_) if is_root() => {
                    run_quiet(Command::new("apt-get").arg("update"), "apt-get update")?;
                    kernel_package()?
                }
                other => other?,
            };
            Ok((package, "boot/vmlinuz-".to_owned()))
        })?,
    };
    let busybox = match std::env::var_os("RSET_VM_BUSYBOX") {
        Some(p) => existing(PathBuf::from(p), "RSET_VM_BUSYBOX")?,
        None => cached(&dir, "busybox", || {
            Ok(("busybox-static".to_owned(), "bin/busybox".to_owned()))
        })?,
    };
    Ok(GuestAssets { kernel, busybox })
}

fn existing(p: PathBuf, var: &str) -> anyhow::Result<PathBuf> {
    if !p.is_file() {
        bail!("{var}={}: no such file", p.display());
    }
    Ok(p)
}

/// `dir/name` if present; otherwise downloads the package `which()` names and copies
/// the first file whose path starts with the given prefix to `dir/name`.
fn cached(
    dir: &Path,
    name: &str,
    which: impl FnOnce() -> anyhow::Result<(String, String)>,
) -> anyhow::Result<PathBuf> {
    let dest = dir.join(name);
    if dest.is_file() {
        return Ok(dest);
    }
    if !on_path("apt-get") {
        bail!(
            "no {name} cached in {} and no apt-get to fetch one: set RSET_VM_{}",
            dir.display(),
            name.to_uppercase()
        );
    }
    let (package, prefix) = which()?;
    eprintln!(
        "xtask: fetching {package} for the guest (cached in {})",
        dir.display()
    );
    let work = dir.join(format!("download-{name}"));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let download = || {
        Command::new("apt-get")
            .args(["download", "-q", &package])
            .current_dir(&work)
            .stdin(Stdio::null())
            .output()
    };
    let mut out = download().context("running apt-get download")?;
    if !out.status.success() && is_root() {
        run_quiet(Command::new("apt-get").arg("update"), "apt-get update")?;
        out = download().context("running apt-get download")?;
    }
    if !out.status.success() {
        bail!(
            "apt-get download {package} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let deb = std::fs::read_dir(&work)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .with_context(|| format!("apt-get download {package} left no .deb"))?;
    let root = work.join("root");
    run_quiet(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root),
        "dpkg-deb -x",
    )?;
    let found =
        find_prefixed(&root, &prefix)?.with_context(|| format!("{package} holds no {prefix}*"))?;
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::copy(&found, &tmp)?;
    std::fs::rename(&tmp, &dest)?;
    std::fs::write(dir.join(format!("{name}.package")), format!("{package}\n"))?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(dest)
}

/// The first file under `root` whose relative path starts with `prefix`.
fn find_prefixed(root: &Path, prefix: &str) -> anyhow::Result<Option<PathBuf>> {
    let (sub, file_prefix) = match prefix.rsplit_once('/') {
        Some((d, f)) => (root.join(d), f),
        None => (root.to_path_buf(), prefix),
    };
    let mut hits: Vec<PathBuf> = std::fs::read_dir(&sub)
        .with_context(|| format!("reading {}", sub.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(file_prefix))
        })
        .collect();
    hits.sort();
    Ok(hits.into_iter().next())
}

/// The versioned kernel package the meta-package points at today.
fn kernel_package() -> anyhow::Result<String> {
    let out = run_quiet(
        Command::new("apt-cache").args(["depends", KERNEL_META]),
        "apt-cache depends",
    )?;
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-"))
        .map(str::to_owned)
        .with_context(|| format!("apt-cache depends {KERNEL_META} names no kernel package"))
}
