//! The guest's root file system: an uncompressed `newc` cpio archive that the kernel
//! unpacks into RAM. Host files keep their absolute paths, and every dynamically
//! linked program brings the shared libraries `ldd` lists for it.

use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;

enum Entry {
    Dir,
    HostFile { source: PathBuf, mode: u32 },
    Bytes { data: Vec<u8>, mode: u32 },
    CharDev { major: u32, minor: u32 },
}

/// A file tree to be written as an initramfs, keyed by absolute guest path.
pub struct Initramfs {
    entries: BTreeMap<PathBuf, Entry>,
}

impl Initramfs {
    /// The skeleton every guest has: the top-level directories and `/dev/console`
    /// (init needs it before devtmpfs is mounted).
    pub fn new() -> Self {
        let mut fs = Initramfs {
            entries: BTreeMap::new(),
        };
        for d in [
            "/bin",
            "/sbin",
            "/usr/bin",
            "/usr/sbin",
            "/proc",
            "/sys",
            "/dev",
            "/tmp",
            "/root",
            "/etc",
            "/run",
            "/mnt",
        ] {
            fs.add_dir(Path::new(d));
        }
        fs.entries.insert(
            PathBuf::from("/dev/console"),
            Entry::CharDev { major: 5, minor: 1 },
        );
        fs
    }

    /// Adds a directory and its parents.
    pub fn add_dir(&mut self, path: &Path) {
        for anc in path.ancestors() {
            if anc == Path::new("/") || anc.as_os_str().is_empty() {
                break;
            }
            self.entries.entry(anc.to_path_buf()).or_insert(Entry::Dir);
        }
    }

    fn add_parents(&mut self, path: &Path) {
        if let Some(p) = path.parent() {
            self.add_dir(p);
        }
    }

    /// Adds literal contents at `path`.
    pub fn add_bytes(&mut self, path: &str, data: impl Into<Vec<u8>>, mode: u32) {
        let path = PathBuf::from(path);
        self.add_parents(&path);
        self.entries.insert(
            path,
            Entry::Bytes {
                data: data.into(),
                mode,
            },
        );
    }

    /// Adds the host file `source` at the guest path `path`.
    pub fn add_file_as(&mut self, path: &Path, source: &Path) -> anyhow::Result<()> {
        let meta =
            std::fs::metadata(source).with_context(|| format!("reading {}", source.display()))?;
        self.add_parents(path);
        self.entries.insert(
            path.to_path_buf(),
            Entry::HostFile {
                source: source.to_path_buf(),
                mode: std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777,
            },
        );
        Ok(())
    }

    /// Adds a host file or directory (recursively) at the same absolute path, with the
    /// shared libraries of every dynamically linked ELF file in it.
    pub fn add_host_path(&mut self, path: &Path) -> anyhow::Result<()> {
        if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
            bail!("{}: needs an absolute path without `..`", path.display());
        }
        let meta =
            std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        if meta.is_dir() {
            self.add_dir(path);
            let mut children: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading {}", path.display()))?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()?;
            children.sort();
            for child in children {
                self.add_host_path(&child)?;
            }
            return Ok(());
        }
        if !meta.is_file() {
            bail!("{}: not a regular file or directory", path.display());
        }
        self.add_file_as(path, path)?;
        for lib in shared_libraries(path)? {
            if !self.entries.contains_key(&lib) {
                self.add_file_as(&lib, &lib)?;
            }
        }
        Ok(())
    }

    /// Bytes the archive's file contents will take (for a memory check).
    pub fn content_bytes(&self) -> u64 {
        self.entries
            .values()
            .map(|e| match e {
                Entry::HostFile { source, .. } => {
                    std::fs::metadata(source).map(|m| m.len()).unwrap_or(0)
                }
                Entry::Bytes { data, .. } => data.len() as u64,
                _ => 0,
            })
            .sum()
    }

    /// Writes the archive (uncompressed: unpacking is faster than inflating under
    /// emulation).
    pub fn write(&self, out: &Path) -> anyhow::Result<()> {
        let file =
            std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
        let mut w = BufWriter::new(file);
        for (ino, (path, entry)) in self.entries.iter().enumerate() {
            let name = path
                .strip_prefix("/")
                .expect("guest paths are absolute")
                .to_str()
                .with_context(|| format!("{}: not UTF-8", path.display()))?;
            let builder = cpio::newc::Builder::new(name)
                .ino(ino as u32 + 1)
                .uid(0)
                .gid(0)
                .nlink(1);
            w = match entry {
                Entry::Dir => builder.mode(S_IFDIR | 0o755).write(w, 0).finish()?,
                Entry::CharDev { major, minor } => builder
                    .mode(S_IFCHR | 0o600)
                    .rdev_major(*major)
                    .rdev_minor(*minor)
                    .write(w, 0)
                    .finish()?,
                Entry::Bytes { data, mode } => {
                    let mut f = builder.mode(S_IFREG | mode).write(w, data.len() as u32);
                    f.write_all(data)?;
                    f.finish()?
                }
                Entry::HostFile { source, mode } => {
                    let data = slim(source, &out.with_extension(format!("slim{ino}")))?;
                    let size = u32::try_from(data.len())
                        .with_context(|| format!("{}: over 4 GiB", source.display()))?;
                    let mut f = builder.mode(S_IFREG | mode).write(w, size);
                    f.write_all(&data)?;
                    f.finish()?
                }
            };
        }
        let w = cpio::newc::trailer(w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(())
    }
}

/// ELF files larger than this travel without their DWARF sections.
const SLIM_OVER: usize = 4 << 20;

/// The contents of `source` for the guest: a large ELF file without its debug
/// sections (`objcopy --strip-debug`, through `tmp`), since the guest holds the
/// archive in RAM and the release binaries' debuginfo is most of their size
/// (rset-top: 29.3 MB, 2.5 MB without); symbol tables stay, so backtraces and
/// `xtask stacks` still name functions. Without objcopy, the file as it is.
fn slim(source: &Path, tmp: &Path) -> anyhow::Result<Vec<u8>> {
    let data = std::fs::read(source).with_context(|| format!("reading {}", source.display()))?;
    if data.len() <= SLIM_OVER || !data.starts_with(b"\x7fELF") {
        return Ok(data);
    }
    let _ = std::fs::remove_file(tmp);
    let stripped = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(source)
        .arg(tmp)
        .status()
        .is_ok_and(|s| s.success());
    let slim = if stripped {
        std::fs::read(tmp).ok()
    } else {
        None
    };
    let _ = std::fs::remove_file(tmp);
    Ok(slim.unwrap_or(data))
}

/// The shared libraries (and the dynamic loader) a host file needs, as `ldd` lists
/// them; empty for files that are not dynamically linked ELF programs.
fn shared_libraries(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut magic = [0u8; 4];
    let is_elf = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && magic == *b"\x7fELF";
    if !is_elf {
        return Ok(Vec::new());
    }
    let out = Command::new("ldd")
        .arg(path)
        .output()
        .context("running ldd (package libc-bin)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_ldd(&text).with_context(|| format!("libraries of {}", path.display()))
}

fn parse_ldd(text: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.contains("not a dynamic executable") || line.contains("statically linked") {
            return Ok(Vec::new());
        }
        if let Some((name, rest)) = line.split_once("=>") {
            let rest = rest.trim();
            if rest.starts_with("not found") {
                bail!("{} was not found on this host", name.trim());
            }
            if let Some(p) = rest
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/'))
            {
                libs.push(PathBuf::from(p));
            }
        } else if let Some(p) = line
            .split_whitespace()
            .next()
            .filter(|p| p.starts_with('/'))
        {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_yields_library_paths() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibhwloc.so.15 => /lib/x86_64-linux-gnu/libhwloc.so.15 (0x00007f)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        let libs = parse_ldd(text).unwrap();
        assert_eq!(
            libs,
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libhwloc.so.15"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }

    #[test]
    fn missing_library_is_named() {
        let e = parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err();
        assert!(e.to_string().contains("libfoo.so.1 was not found"), "{e}");
    }

    #[test]
    fn static_programs_need_nothing() {
        assert!(
            parse_ldd("\tnot a dynamic executable\n")
                .unwrap()
                .is_empty()
        );
        assert!(parse_ldd("\tstatically linked\n").unwrap().is_empty());
    }

    #[test]
    fn archive_holds_parents_before_children() {
        let mut fs = Initramfs::new();
        fs.add_bytes("/a/b/c.txt", "hi", 0o644);
        let dir = std::env::temp_dir().join(format!("xtask-cpio-{}", std::process::id()));
        fs.write(&dir).unwrap();
        let data = std::fs::read(&dir).unwrap();
        std::fs::remove_file(&dir).unwrap();
        let mut names = Vec::new();
        let mut rest: &[u8] = &data;
        loop {
            let r = cpio::NewcReader::new(rest).unwrap();
            let name = r.entry().name().to_owned();
            if r.entry().is_trailer() {
                break;
            }
            names.push(name);
            rest = r.finish().unwrap();
        }
        let pos = |n: &str| names.iter().position(|x| x == n).unwrap();
        assert!(pos("a") < pos("a/b") && pos("a/b") < pos("a/b/c.txt"));
        assert!(names.contains(&"dev/console".to_owned()));
    }
}
