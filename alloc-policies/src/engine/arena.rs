//! The per-node arenas: the first small allocation for node `n` (under a spin
//! lock, rare) maps an anonymous `MAP_NORESERVE` range, `mbind`s it
//! `MPOL_BIND {n}` *before anything can touch it* (so each page lands on `n`
//! whichever thread faults it in), and hands it to mimalloc as an exclusive arena;
//! a mimalloc heap made for that arena then serves every small block for `n`. The
//! range is sized from the node's memory (`MemTotal`), at least 64 MiB and at most
//! 16 GiB (one mimalloc arena): only blocks under
//! [`LARGE_THRESHOLD`](super::class::LARGE_THRESHOLD) live there. mimalloc v3 gives each
//! thread its own cache (`theap`) of each heap it uses, so the thread-cache fast
//! path is one table lookup for the node plus mimalloc's own.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

use rset::sys::mempolicy::Mode;

use super::enforce::mbind;
use super::machine::{MAX_CPUS, MAX_NODES, Machine, NO_NODE, current_node_slow, machine, node_id};
use super::mi::{CpuHeapCache, Heap, HeapSlot, MI_ARENA_MIN};
use crate::error::NumaAllocError;
use crate::sys::cpu;

thread_local! {
    /// The calling thread's last Local answer: a CPU and the heap of its node.
    /// `const`, no destructor: reading it never allocates.
    static LOCAL: CpuHeapCache = const { CpuHeapCache::new() };
}

/// The thread-cache fast path of Local: if the thread still runs on the CPU it ran
/// on last time, the heap of that CPU's node, from a thread-local cache.
#[inline(always)]
pub(crate) fn cached_local_heap() -> Option<Heap> {
    LOCAL.with(CpuHeapCache::get)
}

/// Local without the cache: the node of the current CPU and its heap, which then
/// fills the cache.
///
/// # Errors
/// [`NumaAllocError::LocalWithoutMemory`] if the node has no memory,
/// [`NumaAllocError::ArenaUnavailable`] if its arena could not be set up.
pub(crate) fn local_heap(m: &Machine) -> Result<Heap, NumaAllocError> {
    let cpu = cpu::current_cpu();
    let node = match m.cpu_node.get(cpu as usize) {
        Some(&n) if n != NO_NODE => n,
        _ => current_node_slow(),
    };
    let heap = node_heap(node).map_err(|e| match e {
        NumaAllocError::NoSuchNode { node } => NumaAllocError::LocalWithoutMemory { node },
        e => e,
    })?;
    if (cpu as usize) < MAX_CPUS {
        LOCAL.with(|c| c.set(cpu, heap));
    }
    Ok(heap)
}

static HEAPS: [HeapSlot; MAX_NODES] = [const { HeapSlot::empty() }; MAX_NODES];
static FAILED: [AtomicBool; MAX_NODES] = [const { AtomicBool::new(false) }; MAX_NODES];
static CREATING: AtomicBool = AtomicBool::new(false);

/// The heap of node `n`'s arena, made on first use.
///
/// # Errors
/// [`NumaAllocError::NoSuchNode`] for a node without memory;
/// [`NumaAllocError::ArenaUnavailable`] if the arena could not be set up.
#[inline]
pub(crate) fn node_heap(n: u8) -> Result<Heap, NumaAllocError> {
    match HEAPS.get(n as usize).and_then(HeapSlot::get) {
        Some(heap) => Ok(heap),
        None => create_node_heap(n),
    }
}

/// Holds [`CREATING`] while alive.
struct CreateLock;

impl CreateLock {
    fn take() -> CreateLock {
        while CREATING
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::thread::yield_now();
        }
        CreateLock
    }
}

impl Drop for CreateLock {
    fn drop(&mut self) {
        CREATING.store(false, Ordering::Release);
    }
}

#[cold]
#[inline(never)]
fn create_node_heap(n: u8) -> Result<Heap, NumaAllocError> {
    let m = machine();
    if !m.memory.contains(n) {
        return Err(NumaAllocError::NoSuchNode { node: node_id(n) });
    }
    let _lock = CreateLock::take();
    if let Some(heap) = HEAPS[n as usize].get() {
        return Ok(heap);
    }
    let unavailable = NumaAllocError::ArenaUnavailable { node: node_id(n) };
    if FAILED[n as usize].load(Ordering::Relaxed) {
        return Err(unavailable);
    }
    // Smaller reservations if the kernel refuses a big one (strict overcommit).
    let mut len = m.arena_len(n);
    let heap = loop {
        let bind = |start: NonNull<u8>, len: usize| {
            mbind(start.as_ptr(), len, Mode::Bind, &[n.into()]).is_ok()
        };
        match Heap::new_arena(len, bind) {
            Some(heap) => break Some(heap),
            None if len > 2 * MI_ARENA_MIN => {
                len = (len / 2).div_ceil(MI_ARENA_MIN) * MI_ARENA_MIN;
            }
            None => break None,
        }
    };
    match heap {
        Some(heap) => {
            HEAPS[n as usize].set(heap);
            Ok(heap)
        }
        None => {
            FAILED[n as usize].store(true, Ordering::Relaxed);
            Err(unavailable)
        }
    }
}
