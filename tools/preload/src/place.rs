//! The placement role (`rset-run`): slots for threads in creation order, each
//! thread bound to its slot's CPU and given its slot's memory policy from inside
//! itself before its start routine runs; pages placed counted per policy and node.

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use alloc_policies::{Policy, set_thread_policy};
use rset_protocol::{PolicyPages, ProtocolError, Record, RunConfig};

use crate::log;

/// Distinct policies counted (more are counted under the last).
const POLICIES: usize = 16;
/// Nodes counted; index `NODES` is "first touch".
const NODES: usize = 64;

struct State {
    cfg: RunConfig,
    /// Per slot: index into `policies`.
    slot_policy: Vec<usize>,
    /// Distinct policies of the plan (a row of `PAGES` each).
    policies: Vec<Policy>,
}

static STATE: OnceLock<State> = OnceLock::new();
/// The float policy, for threads no slot governs.
static FLOAT: Policy = Policy::Float;
/// Next creation index (the main thread is 0).
static CREATED: AtomicUsize = AtomicUsize::new(1);
/// Next slot.
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
static PAGES: [[AtomicU64; NODES + 1]; POLICIES] =
    [const { [const { AtomicU64::new(0) }; NODES + 1] }; POLICIES];
/// Heap blocks served, counted per thread: one counter for all threads made every
/// malloc of a multi-threaded program fight over one cache line (a third of the
/// time of a 2-thread malloc/free loop), and even an uncontended atomic add costs
/// more than the rest of the count. The first `SHARDS - 1` threads each own a
/// shard on its own cache lines, which only they write (a plain load and store);
/// later threads share the last shard, atomically.
static BLOCKS: [Shard; SHARDS] = [const { Shard(AtomicU64::new(0)) }; SHARDS];
const SHARDS: usize = 256;
/// Next shard handed to a thread.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

#[repr(align(128))]
struct Shard(AtomicU64);

thread_local! {
    /// This thread's policy index, `usize::MAX` for float (no slot).
    static CURRENT: Cell<usize> = const { Cell::new(usize::MAX) };
    /// This thread's shard of `BLOCKS`, `usize::MAX` until its first block.
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Adds one block to the calling thread's count.
#[inline]
fn count_one() {
    let i = SHARD
        .try_with(|s| {
            let mut i = s.get();
            if i == usize::MAX {
                i = NEXT_SHARD.fetch_add(1, Ordering::Relaxed).min(SHARDS - 1);
                s.set(i);
            }
            i
        })
        .unwrap_or(SHARDS - 1);
    let shard = &BLOCKS[i].0;
    if i < SHARDS - 1 {
        // Only this thread writes its shard.
        shard.store(shard.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    } else {
        shard.fetch_add(1, Ordering::Relaxed);
    }
}

/// Reads the configuration (the value of `RSET_RUN`).
///
/// # Errors
/// What [`RunConfig::from_env_value`] refuses.
pub fn init(value: &str) -> Result<(), ProtocolError> {
    let cfg = RunConfig::from_env_value(value)?;
    let mut policies: Vec<Policy> = Vec::new();
    let slot_policy = cfg
        .slots
        .iter()
        .map(|s| match policies.iter().position(|p| *p == s.policy) {
            Some(i) => i,
            None => {
                policies.push(s.policy.clone());
                policies.len() - 1
            }
        })
        .collect();
    if let Some(path) = &cfg.log {
        log::open(path);
    }
    let _ = STATE.set(State {
        cfg,
        slot_policy,
        policies,
    });
    Ok(())
}

/// In the creating thread: the new thread's creation index and slot.
pub fn next_thread() -> (usize, Option<usize>) {
    let created = CREATED.fetch_add(1, Ordering::Relaxed);
    (created, take_slot(created))
}

fn take_slot(created: usize) -> Option<usize> {
    let st = STATE.get()?;
    if st.cfg.skips(created) {
        return None;
    }
    Some(NEXT_SLOT.fetch_add(1, Ordering::Relaxed))
}

/// The main thread's placement (creation index 0), from the library's constructor.
pub fn place_main() {
    let slot = take_slot(0);
    place_current(0, slot);
}

/// A thread no slot governs (the monitor's own): float memory, unbound.
pub fn unplaced() {
    set_thread_policy(&FLOAT);
    if let Some(st) = STATE.get() {
        let _ = rset::sys::affinity::set_affinity(None, &st.cfg.rset_cpus);
    }
}

/// In the new thread, before its start routine: binds it to its slot's CPU and
/// memory, sets its allocator policy, and logs where it is.
pub fn place_current(created: usize, slot: Option<usize>) {
    let Some(st) = STATE.get() else {
        set_thread_policy(&FLOAT);
        return;
    };
    let (policy, bound) = match slot {
        Some(s) => {
            let i = s % st.cfg.slots.len();
            let slot = &st.cfg.slots[i];
            let pi = st.slot_policy[i];
            let policy = &st.policies[pi];
            set_thread_policy(policy);
            CURRENT.with(|c| c.set(pi));
            let cpu = rset::sys::affinity::set_affinity(None, &[slot.cpu.0]);
            let mem = rset::sys::mempolicy::set_mempolicy(
                rset::sys::mempolicy::Mode::Bind,
                &st.cfg.rset_nodes,
            );
            (
                policy,
                cpu.and(mem).map_err(|e| format!("CPU {}: {e}", slot.cpu.0)),
            )
        }
        None => {
            set_thread_policy(&FLOAT);
            let cpu = rset::sys::affinity::set_affinity(None, &st.cfg.rset_cpus);
            (&FLOAT, cpu.map_err(|e| format!("CPUs of the RSet: {e}")))
        }
    };
    // Read back where the thread runs now: the report states facts, not the plan.
    std::thread::yield_now();
    let (cpu, node) = rset::sys::affinity::getcpu().unwrap_or((u32::MAX, u32::MAX));
    let tid = rset::sys::affinity::gettid().0;
    let pid = std::process::id();
    if let Err(e) = &bound {
        log::stderr(&format!(
            "rset-run: thread {created} (tid {tid}) could not be bound: {e}\n"
        ));
    }
    if st.cfg.verbose {
        let what = match slot {
            Some(s) => format!("slot {}", s % st.cfg.slots.len()),
            None => "skipped".to_string(),
        };
        log::stderr(&format!(
            "rset-run: pid {pid} thread {created} (tid {tid}): {what}, CPU {cpu}, node {node}, memory {policy}\n"
        ));
    }
    let rec = Record::Thread {
        pid,
        tid,
        created,
        slot: slot.map(|s| s % st.cfg.slots.len()),
        cpu,
        node,
        policy: policy.clone(),
    };
    if let Ok(line) = serde_json::to_string(&rec) {
        log::append(line);
    }
}

/// Counts a heap block of `size` bytes the calling thread just got.
#[inline]
pub fn count_block(size: usize) {
    if STATE.get().is_none() {
        return;
    }
    count_one();
    if size < alloc_policies::LARGE_THRESHOLD {
        return;
    }
    count_large(size);
}

#[cold]
fn count_large(size: usize) {
    let Some(st) = STATE.get() else { return };
    let page = rset::sys::mempolicy::page_size();
    let pages = size.div_ceil(page) as u64;
    let pi = CURRENT.with(Cell::get);
    if pi == usize::MAX {
        PAGES[POLICIES - 1][NODES].fetch_add(pages, Ordering::Relaxed);
        return;
    }
    let row = &PAGES[pi.min(POLICIES - 1)];
    let node_ix = |n: u32| (n as usize).min(NODES - 1);
    match st.policies[pi] {
        Policy::Float => {
            row[NODES].fetch_add(pages, Ordering::Relaxed);
        }
        Policy::Local => {
            let node = alloc_policies::current_node();
            row[node_ix(node.0)].fetch_add(pages, Ordering::Relaxed);
        }
        Policy::RemoteTo(n) => {
            row[node_ix(n.0)].fetch_add(pages, Ordering::Relaxed);
        }
        Policy::Striped { stride_pages } => {
            let nodes = &st.cfg.memory_nodes;
            let k = stride_pages.pages() as u64;
            if nodes.is_empty() {
                return;
            }
            let n = nodes.len() as u64;
            let runs = pages / k;
            // Whole rounds of n runs, then the remaining runs and the tail.
            for (i, &node) in nodes.iter().enumerate() {
                let i = i as u64;
                let full = runs / n * k + if i < runs % n { k } else { 0 };
                let tail = if i == runs % n { pages % k } else { 0 };
                row[node_ix(node)].fetch_add(full + tail, Ordering::Relaxed);
            }
        }
        _ => {
            row[NODES].fetch_add(pages, Ordering::Relaxed);
        }
    }
}

/// At exit: the pages placed per policy and node.
pub fn exit_record() {
    let Some(st) = STATE.get() else { return };
    let mut pages = Vec::new();
    for (pi, row) in PAGES.iter().enumerate() {
        let policy = if pi == POLICIES - 1 && st.policies.len() < POLICIES {
            Policy::Float
        } else {
            match st.policies.get(pi) {
                Some(p) => p.clone(),
                None => continue,
            }
        };
        let nodes: Vec<(Option<u32>, u64)> = row
            .iter()
            .enumerate()
            .filter_map(|(n, c)| {
                let v = c.load(Ordering::Relaxed);
                (v > 0).then_some(((n < NODES).then_some(n as u32), v))
            })
            .collect();
        if !nodes.is_empty() || pi < st.policies.len() {
            pages.push(PolicyPages { policy, nodes });
        }
    }
    let exe = std::fs::read_link("/proc/self/exe")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let rec = Record::Exit {
        pid: std::process::id(),
        exe,
        pages,
        blocks: BLOCKS.iter().map(|s| s.0.load(Ordering::Relaxed)).sum(),
    };
    if let Ok(line) = serde_json::to_string(&rec) {
        log::append(line);
    }
}
