//! `cargo xtask stacks PID` (hidden; the guest test runner calls it on a test binary
//! that ran out of time): every thread's state, kernel wait channel, user
//! instruction pointer and the likely return addresses on its stack, symbolised
//! from the mapped files' symbol tables, so a hang in a guest says where it hangs.
//!
//! Each thread is seized with `ptrace` (not stopped for long: interrupted, its
//! registers read, detached). Return addresses are candidates: words of the top of
//! the stack that point into executable mappings, as a release build without
//! frame pointers leaves no better chain.

use std::collections::HashMap;
use std::fs;
use std::io::IoSliceMut;
use std::path::PathBuf;

use anyhow::Context;
use nix::sys::ptrace;
use nix::sys::uio::{RemoteIoVec, process_vm_readv};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use object::{Object, ObjectSegment, ObjectSymbol, SymbolKind};

/// Stack words scanned for return addresses.
const STACK_WORDS: usize = 2048;
/// Return-address candidates printed per thread.
const MAX_FRAMES: usize = 40;

struct Mapping {
    start: u64,
    end: u64,
    offset: u64,
    exec: bool,
    path: String,
}

fn mappings(pid: i32) -> anyhow::Result<Vec<Mapping>> {
    let text = fs::read_to_string(format!("/proc/{pid}/maps"))
        .with_context(|| format!("reading /proc/{pid}/maps"))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms), Some(offset)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let path = f.nth(2).unwrap_or("").to_string();
        let Some((s, e)) = range.split_once('-') else {
            continue;
        };
        let hex = |t: &str| u64::from_str_radix(t, 16).unwrap_or(0);
        out.push(Mapping {
            start: hex(s),
            end: hex(e),
            offset: hex(offset),
            exec: perms.contains('x'),
            path,
        });
    }
    Ok(out)
}

/// A file's function symbols, sorted, with the load segments to turn a file offset
/// into an address.
struct Symbols {
    segments: Vec<(u64, u64, u64)>,
    funcs: Vec<(u64, u64, String)>,
}

fn load_symbols(path: &str) -> Option<Symbols> {
    let data = fs::read(path).ok()?;
    let file = object::File::parse(&*data).ok()?;
    let segments = file
        .segments()
        .filter_map(|s| {
            let (off, len) = s.file_range();
            Some((off, len, s.address())).filter(|_| len > 0)
        })
        .collect();
    let mut funcs: Vec<(u64, u64, String)> = file
        .symbols()
        .chain(file.dynamic_symbols())
        .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
        .filter_map(|s| {
            let name = s.name().ok()?;
            Some((
                s.address(),
                s.size(),
                rustc_demangle::demangle(name).to_string(),
            ))
        })
        .collect();
    funcs.sort_unstable_by_key(|f| f.0);
    Some(Symbols { segments, funcs })
}

struct Symboliser {
    maps: Vec<Mapping>,
    files: HashMap<String, Option<Symbols>>,
}

impl Symboliser {
    /// `file+0xoff (function+0xdelta)` for an address in an executable mapping.
    fn name(&mut self, addr: u64) -> Option<String> {
        let m = self
            .maps
            .iter()
            .find(|m| m.exec && m.start <= addr && addr < m.end)?;
        let file_off = addr - m.start + m.offset;
        let path = m.path.clone();
        let syms = self
            .files
            .entry(path.clone())
            .or_insert_with(|| load_symbols(&path))
            .as_ref();
        let func = syms.and_then(|s| {
            let &(off, _, vaddr) = s
                .segments
                .iter()
                .find(|&&(o, l, _)| o <= file_off && file_off < o + l)?;
            let at = file_off - off + vaddr;
            let i = s.funcs.partition_point(|f| f.0 <= at).checked_sub(1)?;
            let (start, size, name) = &s.funcs[i];
            (size == &0 || at < start + size).then(|| format!("{name}+{:#x}", at - start))
        });
        let short = path.rsplit('/').next().unwrap_or(&path);
        Some(match func {
            Some(f) => format!("{f}  [{short}+{file_off:#x}]"),
            None => format!("?  [{short}+{file_off:#x}]"),
        })
    }
}

fn read_stack(pid: i32, rsp: u64) -> Vec<u64> {
    let mut buf = vec![0u8; STACK_WORDS * 8];
    // Read as much of the stack as is mapped (shrinking on failure).
    let mut len = buf.len();
    while len >= 64 {
        let remote = [RemoteIoVec {
            base: rsp as usize,
            len,
        }];
        let mut local = [IoSliceMut::new(&mut buf[..len])];
        if let Ok(n) = process_vm_readv(Pid::from_raw(pid), &mut local, &remote) {
            len = n;
            break;
        }
        len /= 2;
    }
    buf[..len.min(buf.len())]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

fn field(pid: i32, tid: &str, name: &str) -> String {
    fs::read_to_string(format!("/proc/{pid}/task/{tid}/{name}"))
        .map(|s| s.trim().replace('\n', " | "))
        .unwrap_or_else(|e| format!("({e})"))
}

/// Prints every thread of `pid`.
pub fn run(pid: i32) -> anyhow::Result<u8> {
    let mut sym = Symboliser {
        maps: mappings(pid)?,
        files: HashMap::new(),
    };
    let mut tids: Vec<String> = fs::read_dir(format!("/proc/{pid}/task"))
        .with_context(|| format!("listing the threads of {pid}"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    tids.sort_by_key(|t| t.parse::<i32>().unwrap_or(0));
    for tid in tids {
        let stat = field(pid, &tid, "stat");
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
            .unwrap_or("?")
            .to_string();
        println!(
            "thread {tid} \"{}\" state {state} wchan {} syscall {}",
            field(pid, &tid, "comm"),
            field(pid, &tid, "wchan"),
            field(pid, &tid, "syscall"),
        );
        let kstack = field(pid, &tid, "stack");
        if !kstack.starts_with('(') && !kstack.is_empty() {
            println!("  kernel: {kstack}");
        }
        let t = Pid::from_raw(tid.parse().unwrap_or(0));
        if let Err(e) = ptrace::seize(t, ptrace::Options::empty()) {
            println!("  (ptrace: {e})");
            continue;
        }
        let regs = ptrace::interrupt(t)
            .and_then(|()| waitpid(t, Some(WaitPidFlag::__WALL)))
            .and_then(|_| ptrace::getregs(t));
        let _ = ptrace::detach(t, None);
        let regs = match regs {
            Ok(r) => r,
            Err(e) => {
                println!("  (registers: {e})");
                continue;
            }
        };
        println!(
            "  rip {:#x} {}  rsp {:#x} eflags {:#x}",
            regs.rip,
            sym.name(regs.rip).unwrap_or_default(),
            regs.rsp,
            regs.eflags
        );
        let mut shown = 0;
        for (i, w) in read_stack(pid, regs.rsp).into_iter().enumerate() {
            if shown == MAX_FRAMES {
                break;
            }
            if let Some(name) = sym.name(w) {
                println!("    sp+{:#06x}: {name}", i * 8);
                shown += 1;
            }
        }
    }
    Ok(0)
}

/// The path of this executable, for the guest runner.
pub fn me() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("finding xtask's own path")
}
