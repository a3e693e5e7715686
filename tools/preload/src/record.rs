//! The monitor role (`rset-mon record`): a software-sampling session inside the
//! program, watching its heap blocks of at least `min_size` bytes as they are
//! allocated (or only given parts of them, for refinement, or given ranges), and
//! writing the session file at `exit`.
//!
//! The monitor's own threads (the session's worker and the sampler's controller)
//! are marked as they are created, take no placement slot, and bypass every hook
//! here: their allocations are not watched, their reads and writes not paused.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use monitor::session::{Session, SessionError, Software};
use monitor::{FilterSpec, Granularity, Label};
use rset_protocol::MonConfig;

use crate::log;

struct Mon {
    cfg: MonConfig,
    session: Session,
    pid: u32,
}

static MON: OnceLock<Mon> = OnceLock::new();
/// Monitoring in this process now (false in a forked child, and after exit began).
static ON: AtomicBool = AtomicBool::new(false);
/// Next heap block sequence number.
static SEQ: AtomicU64 = AtomicU64::new(0);
/// Watched heap blocks (address, size), sorted by address.
static BLOCKS: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());
/// The pause held across `fork` (see [`init`]).
static FORK_PAUSE: Mutex<Option<monitor::sampler::Pause>> = Mutex::new(None);

thread_local! {
    /// True on the monitor's own threads, and on a program thread while it runs
    /// monitor code.
    static IN_MON: Cell<bool> = const { Cell::new(false) };
}

/// Truth that hooks should act: monitoring, and not on a monitor thread.
#[inline]
pub fn on() -> bool {
    // The thread-local lookup (a call to __tls_get_addr in a shared library) only
    // when monitoring: inlined, the compiler would make it on every malloc.
    ON.load(Ordering::Relaxed) && !in_monitor()
}

/// Truth that the calling thread is the monitor's (so threads it creates are too).
#[inline(never)]
pub fn in_monitor() -> bool {
    IN_MON.with(Cell::get)
}

/// Marks the calling thread as one of the monitor's.
pub fn enter_monitor_thread() {
    IN_MON.with(|c| c.set(true));
}

/// Runs `f` as monitor code (hooks off on this thread meanwhile).
fn as_monitor<R>(f: impl FnOnce() -> R) -> R {
    let was = IN_MON.with(|c| c.replace(true));
    let r = f();
    IN_MON.with(|c| c.set(was));
    r
}

/// Starts monitoring from the configuration, if this process is the one
/// The software sampler for this run: a zoomed round watches a few granules of
/// blocks not allocated yet, the protect sampler's case (see
/// [`monitor::session::Software::Auto`]), unless one was named.
fn software(cfg: &MonConfig) -> Software {
    match cfg.sampler {
        Software::Auto if !cfg.zoom.is_empty() => Software::Protect,
        other => other,
    }
}

/// `rset-mon` started.
pub fn init(json: &str) {
    let cfg = match MonConfig::from_env_value(json) {
        Ok(c) => c,
        Err(e) => {
            log::stderr(&format!("rset-mon: {e}; not monitoring\n"));
            return;
        }
    };
    if std::os::unix::process::parent_id() != cfg.parent {
        return;
    }
    as_monitor(|| {
        let builder = || {
            Session::builder()
                .dynamic()
                .rate_hz(cfg.rate_hz)
                .max_overhead(cfg.max_overhead)
                .software(software(&cfg))
        };
        // Live counters for `rset-top PID`; without them if the file cannot be made.
        let session = match builder().live(monitor::live::live_dir()).start() {
            Err(SessionError::Live(e)) => {
                log::stderr(&format!(
                    "rset-mon: no live counters for rset-top: {e}; monitoring without\n"
                ));
                builder().start()
            }
            other => other,
        };
        let session = match session {
            Ok(s) => s,
            Err(e) => {
                log::stderr(&format!("rset-mon: the monitor could not start: {e}\n"));
                return;
            }
        };
        for (i, &(start, size, gran)) in cfg.filters.iter().enumerate() {
            let name = format!("range#{i}");
            let spec = match Granularity::new(gran) {
                Ok(g) => FilterSpec::new(start, size, g).name(name.clone()),
                Err(e) => {
                    log::stderr(&format!("rset-mon: filter {i}: {e}\n"));
                    continue;
                }
            };
            if let Err(e) = session.add_filter(spec, Some(Label::new(start, size, name))) {
                log::stderr(&format!("rset-mon: filter {i}: {e}\n"));
            }
        }
        let _ = MON.set(Mon {
            cfg,
            session,
            pid: std::process::id(),
        });
        register_fork_handlers();
        ON.store(true, Ordering::Release);
    });
}

extern "C" fn fork_prepare() {
    if ON.load(Ordering::Acquire) {
        let p = as_monitor(monitor::sampler::pause);
        *FORK_PAUSE.lock().unwrap_or_else(|p| p.into_inner()) = Some(p);
    }
}

extern "C" fn fork_parent() {
    drop(FORK_PAUSE.lock().unwrap_or_else(|p| p.into_inner()).take());
}

extern "C" fn fork_child() {
    // The sampler's threads do not exist here: stay disarmed for good.
    ON.store(false, Ordering::Release);
    std::mem::forget(FORK_PAUSE.lock().unwrap_or_else(|p| p.into_inner()).take());
}

fn register_fork_handlers() {
    crate::lifecycle::at_fork(fork_prepare, fork_parent, fork_child);
}

/// A heap block of `size` bytes was handed out at `addr`.
#[inline]
pub fn allocated(addr: usize, size: usize) {
    if !on() {
        return;
    }
    let Some(mon) = MON.get() else { return };
    if (size as u64) < mon.cfg.min_size || (!mon.cfg.heap && mon.cfg.zoom.is_empty()) {
        return;
    }
    as_monitor(|| watch_block(mon, addr, size));
}

#[cold]
fn watch_block(mon: &Mon, addr: usize, size: usize) {
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let mut specs = Vec::new();
    if mon.cfg.zoom.is_empty() {
        if let Ok(g) = Granularity::new(mon.cfg.granularity) {
            let name = format!("heap#{seq}");
            specs.push((
                FilterSpec::new(addr as u64, size as u64, g).name(name.clone()),
                Label::new(
                    addr as u64,
                    size as u64,
                    format!("{name} ({})", bytes(size as u64)),
                ),
            ));
        }
    } else {
        for &(zseq, off, zsize, gran) in &mon.cfg.zoom {
            if zseq != seq || off >= size as u64 {
                continue;
            }
            let zsize = zsize.min(size as u64 - off);
            if let Ok(g) = Granularity::new(gran) {
                let name = format!("heap#{seq}+{off:#x}");
                let start = addr as u64 + off;
                specs.push((
                    FilterSpec::new(start, zsize, g).name(name.clone()),
                    Label::new(start, zsize, format!("{name} ({})", bytes(zsize))),
                ));
            }
        }
    }
    if specs.is_empty() {
        return;
    }
    {
        let mut blocks = BLOCKS.lock().unwrap_or_else(|p| p.into_inner());
        let at = blocks.partition_point(|&(a, _)| a < addr);
        blocks.insert(at, (addr, size));
    }
    for (spec, label) in specs {
        if let Err(e) = mon.session.add_filter(spec, Some(label)) {
            log::stderr(&format!("rset-mon: heap block #{seq} not watched: {e}\n"));
        }
    }
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{} GiB", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

/// The heap block at `addr` is about to be freed (or moved by `realloc`): stop
/// watching it before its memory can go back to the kernel.
#[inline]
pub fn freeing(addr: usize) {
    if !on() {
        return;
    }
    let Some(mon) = MON.get() else { return };
    let found = {
        let mut blocks = BLOCKS.lock().unwrap_or_else(|p| p.into_inner());
        match blocks.binary_search_by_key(&addr, |&(a, _)| a) {
            Ok(i) => Some(blocks.remove(i)),
            Err(_) => None,
        }
    };
    if let Some((a, size)) = found {
        as_monitor(|| mon.session.unwatch(a as u64, size as u64));
    }
}

/// At exit: stops the session and writes its file.
pub fn finish() {
    let Some(mon) = MON.get() else { return };
    if mon.pid != std::process::id() || !ON.swap(false, Ordering::AcqRel) {
        return;
    }
    enter_monitor_thread();
    match mon.session.finish() {
        Ok(done) => {
            if let Err(e) = done.file.save(&mon.cfg.output) {
                log::stderr(&format!("rset-mon: writing {}: {e}\n", mon.cfg.output));
            }
        }
        Err(e) => log::stderr(&format!("rset-mon: the monitor failed: {e}\n")),
    }
}
