//! Starting an unmodified program with `librset_preload.so` (for `rset-run` and
//! `rset-mon record`): finding the program as `execvp` would, refusing with a clear
//! reason what a preload cannot reach (static programs, set-user-ID programs), and
//! finding the library.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::cli::Failure;
use rset_protocol::LIBRARY;

/// Why a program cannot be started under the preload.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LaunchError {
    /// Not found in `PATH` (or at the path given).
    #[error("{0}: command not found")]
    NotFound(String),
    /// Found but not executable, or a directory.
    #[error("{0}: not executable")]
    NotExecutable(String),
    /// Statically linked: there is no dynamic loader to preload anything.
    #[error(
        "{0} is statically linked: a preloaded library cannot reach its threads or heap \
         (use `rset bind SPEC -- PROGRAM` to bind the whole process)"
    )]
    Static(String),
    /// Set-user-ID or set-group-ID for someone else: the loader ignores `LD_PRELOAD`.
    #[error(
        "{0} is set-user-ID or set-group-ID: the dynamic loader ignores LD_PRELOAD for it \
         (secure-execution mode), so nothing would be placed"
    )]
    Setuid(String),
    /// The library was not found.
    #[error(
        "cannot find {LIBRARY} next to {0} or in ../lib/rset/: build it with `cargo build \
         -p rset-preload` (same profile), or set RSET_PRELOAD to its path"
    )]
    NoLibrary(String),
}

impl From<LaunchError> for Failure {
    fn from(e: LaunchError) -> Failure {
        let code = match e {
            LaunchError::NotFound(_) => 127,
            LaunchError::NotExecutable(_) => 126,
            _ => 2,
        };
        Failure::usage(e.to_string()).with_code(code)
    }
}

/// Finds `program` as `execvp` does: a name with a `/` is a path; otherwise each
/// directory of `PATH` in turn.
///
/// # Errors
/// [`LaunchError::NotFound`] or [`LaunchError::NotExecutable`].
pub fn resolve(program: &OsStr) -> Result<PathBuf, LaunchError> {
    let name = program.to_string_lossy().into_owned();
    let candidates: Vec<PathBuf> = if program.as_encoded_bytes().contains(&b'/') {
        vec![PathBuf::from(program)]
    } else {
        let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
        std::env::split_paths(&path)
            .map(|d| d.join(program))
            .collect()
    };
    let mut seen_unexecutable = false;
    for c in candidates {
        match std::fs::metadata(&c) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => return Ok(c),
            Ok(_) => seen_unexecutable = true,
            Err(_) => {}
        }
    }
    if seen_unexecutable {
        Err(LaunchError::NotExecutable(name))
    } else {
        Err(LaunchError::NotFound(name))
    }
}

/// Checks that a preload can act on `path`: dynamically linked (or a `#!` script
/// whose interpreter is), and not set-user-ID for another user.
///
/// # Errors
/// [`LaunchError::Static`], [`LaunchError::Setuid`], or the interpreter's error.
pub fn check_preloadable(path: &Path) -> Result<(), LaunchError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|_| LaunchError::NotFound(shown.clone()))?;
    let euid = nix::unistd::geteuid().as_raw();
    let egid = nix::unistd::getegid().as_raw();
    let mode = meta.mode();
    if (mode & 0o4000 != 0 && meta.uid() != euid) || (mode & 0o2000 != 0 && meta.gid() != egid) {
        return Err(LaunchError::Setuid(shown));
    }
    let file = File::open(path).map_err(|_| LaunchError::NotExecutable(shown.clone()))?;
    // The ELF and program headers are at the start of the file.
    let mut head = Vec::new();
    use std::io::Read;
    file.take(1 << 20)
        .read_to_end(&mut head)
        .map_err(|_| LaunchError::NotExecutable(shown.clone()))?;
    if let Some(rest) = head.strip_prefix(b"#!") {
        let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let interp = line.split_whitespace().next().unwrap_or_default();
        if interp.is_empty() {
            return Err(LaunchError::NotExecutable(shown));
        }
        return check_preloadable(Path::new(interp));
    }
    match elf_interpreter(&head) {
        Some(true) => Ok(()),
        Some(false) => Err(LaunchError::Static(shown)),
        // Not ELF (or headers beyond the first MiB): let exec decide.
        None => Ok(()),
    }
}

/// `Some(true)` for an ELF file with a program interpreter (dynamically linked),
/// `Some(false)` for one without, `None` if `head` is not a readable ELF header.
pub fn elf_interpreter(head: &[u8]) -> Option<bool> {
    use object::read::elf::{FileHeader, ProgramHeader};
    let kind = object::FileKind::parse(head).ok()?;
    match kind {
        object::FileKind::Elf64 => {
            let h = object::elf::FileHeader64::<object::Endianness>::parse(head).ok()?;
            let e = h.endian().ok()?;
            let phs = h.program_headers(e, head).ok()?;
            Some(phs.iter().any(|p| p.p_type(e) == object::elf::PT_INTERP))
        }
        object::FileKind::Elf32 => {
            let h = object::elf::FileHeader32::<object::Endianness>::parse(head).ok()?;
            let e = h.endian().ok()?;
            let phs = h.program_headers(e, head).ok()?;
            Some(phs.iter().any(|p| p.p_type(e) == object::elf::PT_INTERP))
        }
        _ => None,
    }
}

/// The library: `RSET_PRELOAD`, else next to the running executable, else in
/// `../lib/rset/` from it (an installed layout).
///
/// # Errors
/// [`LaunchError::NoLibrary`].
pub fn library() -> Result<PathBuf, LaunchError> {
    if let Some(p) = std::env::var_os("RSET_PRELOAD") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(std::path::absolute(&p).unwrap_or(p))
        } else {
            Err(LaunchError::NoLibrary(p.display().to_string()))
        };
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // `cargo test` runs binaries from target/<profile>/; the library is there too,
    // and test executables live in target/<profile>/deps/.
    let candidates = [
        dir.join(LIBRARY),
        dir.join("../lib/rset").join(LIBRARY),
        dir.join("..").join(LIBRARY),
    ];
    candidates
        .into_iter()
        .find(|c| c.is_file())
        .ok_or_else(|| LaunchError::NoLibrary(exe.display().to_string()))
}

/// The exit status a launcher passes on: the program's, or 128+N if signal N
/// killed it (as shells do).
pub fn status_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c.clamp(0, 255) as u8,
        (None, Some(sig)) => (128 + sig).clamp(0, 255) as u8,
        _ => 1,
    }
}

/// `LD_PRELOAD` with the library first and whatever was there after it.
pub fn ld_preload(lib: &Path) -> OsString {
    let mut v = OsString::from(lib.as_os_str());
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|o| !o.is_empty()) {
        v.push(":");
        v.push(old);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_in_path_and_names_missing_ones() {
        assert!(resolve(OsStr::new("sh")).is_ok());
        assert_eq!(
            resolve(OsStr::new("no-such-program-xyz")),
            Err(LaunchError::NotFound("no-such-program-xyz".into()))
        );
        let plain = std::env::temp_dir().join(format!("rset-launch-test-{}", std::process::id()));
        std::fs::write(&plain, b"data").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let shown = plain.display().to_string();
        assert_eq!(
            resolve(plain.as_os_str()),
            Err(LaunchError::NotExecutable(shown))
        );
        std::fs::remove_file(&plain).unwrap();
    }

    #[test]
    fn dynamic_and_static_elf_told_apart() {
        let sh = std::fs::read("/bin/sh").expect("/bin/sh");
        assert_eq!(elf_interpreter(&sh), Some(true));
        assert_eq!(elf_interpreter(b"#!/bin/sh\n"), None);
        assert!(check_preloadable(Path::new("/bin/sh")).is_ok());
    }
}
