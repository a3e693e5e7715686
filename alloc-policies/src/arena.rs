//! Where [`crate::NumaAlloc`] gets its memory: the machine's nodes, read from sysfs
//! into fixed tables; one mimalloc arena per node; direct mappings for large blocks.
//!
//! Everything here runs inside the global allocator, so nothing here allocates
//! through it: the topology is read with raw `open`/`read` into stack buffers (not
//! with hwloc, which allocates), tables are fixed-size arrays of at most
//! [`MAX_NODES`] nodes, node sets are 64-bit masks, and errors are `Copy` values.
//!
//! # Per-node arenas
//! The first small allocation for node `n` (under a spin lock, rare) maps an
//! anonymous `MAP_NORESERVE` range, `mbind`s it `MPOL_BIND {n}` *before anything
//! can touch it* (so each page lands on `n` whichever thread faults it in), and
//! hands it to mimalloc as an exclusive arena; a mimalloc heap made for that arena
//! then serves every small block for `n`. The range is sized from the node's memory
//! (`MemTotal`), at least 64 MiB and at most 16 GiB (one mimalloc arena): only
//! blocks under [`LARGE_THRESHOLD`] live there. mimalloc v3 gives each thread its
//! own cache (`theap`) of each heap it uses, so the thread-cache fast path is one
//! table lookup for the node plus mimalloc's own.
//!
//! # Large blocks
//! Blocks of [`LARGE_THRESHOLD`] bytes or more (or aligned beyond 64 KiB, which an
//! exclusive mimalloc arena cannot serve) are mapped directly and `mbind`-ed with the
//! policy's exact layout, page by page: one node, a node set, interleave (one VMA,
//! its start chosen so that page `p` is on the `p mod N`-th node), or stripes of `k`
//! pages (one `mbind` per stripe). Float blocks get no policy and keep to base
//! pages.
//!
//! # Placed before anyone can touch them
//! Every range (arena or large block) is mapped inaccessible (`PROT_NONE`), given
//! its policy and huge-page advice, and only then opened (`mprotect`): see
//! [`FreshMap`]. Mapped read-write at once, a range without a policy yet may be
//! merged by the kernel into an adjacent anonymous mapping (another thread's
//! stack, mimalloc's memory, a Float block), and a fault there can bring in a
//! transparent huge page that covers the range's first or last pages up to the
//! next 2 MiB boundary, on the faulting thread's node, where `mbind` leaves them.
//! Once open, a range merges only with neighbours of the same policy and advice,
//! so every huge page that covers it follows its own policy; Float blocks, which
//! have no policy to tell them from their neighbours, are advised
//! `MADV_NOHUGEPAGE` so that no neighbour's huge page can ever cover them.

use std::cell::Cell;
use std::ffi::CStr;
use std::fmt;
use std::ptr::NonNull;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use rset::NodeId;
use rset::sys::mempolicy::{self, MbindFlags, Mode};

use crate::arena_sys::{self, CpuHeapCache, FreshMap, Heap, HeapSlot};
use crate::global::NumaAllocError;
use crate::policy::Policy;

/// The most NUMA nodes the allocator serves (node ids `0..MAX_NODES`). A policy
/// naming a node beyond it gets [`NumaAllocError::NoSuchNode`].
pub const MAX_NODES: usize = 64;

/// Blocks of at least this many bytes are mapped directly, with the policy's layout
/// applied page by page; smaller ones come from the per-node arenas.
pub const LARGE_THRESHOLD: usize = 1 << 20;

/// Alignments above this are mapped directly too, whatever the size.
pub(crate) const MAX_ARENA_ALIGN: usize = arena_sys::MI_MAX_ARENA_ALIGN;

/// The most stripes (one VMA each) a single striped block may have; beyond it the
/// allocation fails with [`NumaAllocError::TooManyStripes`] rather than eat into
/// the process's `vm.max_map_count`.
pub(crate) const MAX_STRIPES: usize = 8192;

const MAX_CPUS: usize = 4096;
const NO_NODE: u8 = u8::MAX;
const SYS_NODE: &str = "/sys/devices/system/node";

/// Truth that a block of this size and alignment is mapped directly rather than
/// taken from an arena. Depends on the layout only, so `dealloc` can tell.
#[inline(always)]
pub(crate) fn is_direct(size: usize, align: usize) -> bool {
    size >= LARGE_THRESHOLD || align > MAX_ARENA_ALIGN
}

/// A set of node ids below [`MAX_NODES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct NodeMask(u64);

impl NodeMask {
    fn with(self, n: u8) -> NodeMask {
        NodeMask(self.0 | (1 << n))
    }

    pub(crate) fn contains(self, n: u8) -> bool {
        (n as usize) < MAX_NODES && self.0 & (1 << n) != 0
    }

    pub(crate) fn count(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The `i`-th node in increasing order (`i < count`).
    pub(crate) fn nth(self, i: usize) -> u8 {
        self.iter().nth(i).unwrap_or(NO_NODE)
    }

    pub(crate) fn iter(self) -> impl Iterator<Item = u8> {
        (0..MAX_NODES as u8).filter(move |&n| self.contains(n))
    }

    /// The nodes as the `u32`s `mbind` takes, in `buf`.
    fn raw(self, buf: &mut [u32; MAX_NODES]) -> &[u32] {
        let mut k = 0;
        for n in self.iter() {
            buf[k] = n.into();
            k += 1;
        }
        &buf[..k]
    }
}

/// The machine as the allocator sees it: read once from sysfs, never reallocated.
pub(crate) struct Machine {
    /// Nodes that have memory (the global RSet's memory nodes).
    memory: NodeMask,
    /// Node of each CPU, [`NO_NODE`] when unknown.
    cpu_node: [u8; MAX_CPUS],
    /// `distance[a][b]` from sysfs (10 local, 20 remote when sysfs says nothing).
    distance: [[u8; MAX_NODES]; MAX_NODES],
    /// The Remote node of each node: nearest other memory node, lowest id on ties.
    remote_of: [u8; MAX_NODES],
    /// `MemTotal` of each node, bytes.
    mem_bytes: [u64; MAX_NODES],
}

static MACHINE: OnceLock<Machine> = OnceLock::new();

/// The machine, discovered on first use.
#[inline]
pub(crate) fn machine() -> &'static Machine {
    MACHINE.get_or_init(Machine::discover)
}

impl Machine {
    fn discover() -> Machine {
        arena_sys::find_rseq();
        let mut m = Machine {
            memory: NodeMask::default(),
            cpu_node: [NO_NODE; MAX_CPUS],
            distance: [[20; MAX_NODES]; MAX_NODES],
            remote_of: [NO_NODE; MAX_NODES],
            mem_bytes: [0; MAX_NODES],
        };
        for (i, row) in m.distance.iter_mut().enumerate() {
            row[i] = 10;
        }
        let mut buf = [0u8; 8192];
        let mut path = [0u8; 128];
        let mut online = NodeMask::default();
        match arena_sys::read_file(c"/sys/devices/system/node/online", &mut buf) {
            Some(list) => for_each_in_list(list, |n| {
                if (n as usize) < MAX_NODES {
                    online = online.with(n as u8);
                }
            }),
            None => {
                // A kernel without NUMA: one node with every CPU and all memory.
                m.memory = NodeMask::default().with(0);
                m.cpu_node = [0; MAX_CPUS];
                m.mem_bytes[0] = u64::MAX;
                return m;
            }
        }
        for n in online.iter() {
            if let Some(list) = arena_sys::read_file(node_file(&mut path, n, "cpulist"), &mut buf) {
                for_each_in_list(list, |cpu| {
                    if let Some(slot) = m.cpu_node.get_mut(cpu as usize) {
                        *slot = n;
                    }
                });
            }
            if let Some(text) = arena_sys::read_file(node_file(&mut path, n, "meminfo"), &mut buf) {
                m.mem_bytes[n as usize] = mem_total_kib(text).saturating_mul(1024);
            }
            if let Some(text) = arena_sys::read_file(node_file(&mut path, n, "distance"), &mut buf)
            {
                // One number per online node, in id order.
                for (to, d) in online.iter().zip(numbers(text)) {
                    m.distance[n as usize][to as usize] = d.min(u8::MAX as u32 - 1) as u8;
                }
            }
        }
        match arena_sys::read_file(c"/sys/devices/system/node/has_memory", &mut buf) {
            Some(list) => for_each_in_list(list, |n| {
                if online.contains_u32(n) {
                    m.memory = m.memory.with(n as u8);
                }
            }),
            None => {
                for n in online.iter() {
                    if m.mem_bytes[n as usize] > 0 {
                        m.memory = m.memory.with(n);
                    }
                }
            }
        }
        for n in online.iter() {
            m.remote_of[n as usize] = m
                .memory
                .iter()
                .filter(|&o| o != n)
                .min_by_key(|&o| (m.distance[n as usize][o as usize], o))
                .unwrap_or(NO_NODE);
        }
        m
    }

    /// The node of `id` as an index, if it is a memory node we serve.
    fn memory_node(&self, id: NodeId) -> Result<u8, NumaAllocError> {
        match u8::try_from(id.0) {
            Ok(n) if self.memory.contains(n) => Ok(n),
            _ => Err(NumaAllocError::NoSuchNode { node: id }),
        }
    }

    /// The mask of a node set, every node of which must be a memory node.
    fn mask_of(&self, ids: &[NodeId]) -> Result<NodeMask, NumaAllocError> {
        if ids.is_empty() {
            return Err(NumaAllocError::NoNodes);
        }
        ids.iter().try_fold(NodeMask::default(), |mask, &id| {
            self.memory_node(id).map(|n| mask.with(n))
        })
    }

    /// The node of `mask` nearest to `from` (itself if in it), lowest id on ties.
    fn nearest(&self, from: u8, mask: NodeMask) -> u8 {
        if mask.contains(from) {
            return from;
        }
        match self.distance.get(from as usize) {
            Some(row) => mask
                .iter()
                .min_by_key(|&n| (row[n as usize], n))
                .unwrap_or(NO_NODE),
            None => mask.nth(0),
        }
    }

    /// Bytes of the arena reserved for `node`: its memory, between 64 MiB and
    /// 16 GiB, in whole 32 MiB steps.
    fn arena_len(&self, node: u8) -> usize {
        let mem = usize::try_from(self.mem_bytes[node as usize]).unwrap_or(usize::MAX);
        let len = mem.clamp(2 * arena_sys::MI_ARENA_MIN, arena_sys::MI_ARENA_MAX);
        len.div_ceil(arena_sys::MI_ARENA_MIN) * arena_sys::MI_ARENA_MIN
    }
}

impl NodeMask {
    fn contains_u32(self, n: u32) -> bool {
        u8::try_from(n).is_ok_and(|n| self.contains(n))
    }
}

/// `/sys/devices/system/node/node<n>/<leaf>` as a C string in `buf`.
fn node_file<'b>(buf: &'b mut [u8; 128], node: u8, leaf: &str) -> &'b CStr {
    let mut k = 0;
    let mut push = |bytes: &[u8]| {
        for &b in bytes {
            if k < buf.len() - 1 {
                buf[k] = b;
                k += 1;
            }
        }
    };
    push(SYS_NODE.as_bytes());
    push(b"/node");
    let mut digits = [0u8; 3];
    let mut v = node;
    let mut d = digits.len();
    loop {
        d -= 1;
        digits[d] = b'0' + v % 10;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    push(&digits[d..]);
    push(b"/");
    push(leaf.as_bytes());
    buf[k] = 0;
    CStr::from_bytes_until_nul(&buf[..=k]).unwrap_or(c"")
}

/// Calls `f` for every id of a kernel list (`0-3,8,10-11`).
fn for_each_in_list(text: &[u8], mut f: impl FnMut(u32)) {
    for part in text.split(|&b| b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() {
            continue;
        }
        let (lo, hi) = match part.iter().position(|&b| b == b'-') {
            Some(i) => (number(&part[..i]), number(&part[i + 1..])),
            None => (number(part), number(part)),
        };
        if let (Some(lo), Some(hi)) = (lo, hi) {
            for id in lo..=hi.min(lo.saturating_add(1 << 16)) {
                f(id);
            }
        }
    }
}

fn number(text: &[u8]) -> Option<u32> {
    let text = text.trim_ascii();
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    text.iter().try_fold(0u32, |v, &b| {
        v.checked_mul(10)?.checked_add((b - b'0').into())
    })
}

/// The whitespace-separated numbers of `text`.
fn numbers(text: &[u8]) -> impl Iterator<Item = u32> + '_ {
    text.split(u8::is_ascii_whitespace).filter_map(number)
}

/// `MemTotal` in KiB from a node's `meminfo` (`Node 0 MemTotal:  524288 kB`).
fn mem_total_kib(text: &[u8]) -> u64 {
    const KEY: &[u8] = b"MemTotal:";
    text.windows(KEY.len())
        .position(|w| w == KEY)
        .and_then(|at| {
            let rest = &text[at + KEY.len()..];
            let line = rest.split(|&b| b == b'\n').next().unwrap_or(rest);
            numbers(line).next()
        })
        .map_or(0, u64::from)
}

/// The node of the CPU the calling thread runs on now: `sched_getcpu` (no system
/// call with glibc's rseq) and the CPU table, or `getcpu(2)` for a CPU beyond it.
/// [`u8::MAX`] for a node beyond [`MAX_NODES`].
#[inline]
pub(crate) fn current_node(m: &Machine) -> u8 {
    match m.cpu_node.get(arena_sys::current_cpu() as usize) {
        Some(&n) if n != NO_NODE => n,
        _ => current_node_slow(),
    }
}

#[cold]
fn current_node_slow() -> u8 {
    rset::sys::affinity::getcpu()
        .ok()
        .and_then(|(_, node)| u8::try_from(node).ok())
        .filter(|&n| (n as usize) < MAX_NODES)
        .unwrap_or(NO_NODE)
}

/// The raw node id for messages (`u8::MAX` stays a large, impossible id).
pub(crate) fn node_id(n: u8) -> NodeId {
    NodeId(if n == NO_NODE { u32::MAX } else { n.into() })
}

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
    let cpu = arena_sys::current_cpu();
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
        match arena_sys::new_arena_heap(len, bind) {
            Some(heap) => break Some(heap),
            None if len > 2 * arena_sys::MI_ARENA_MIN => {
                len = (len / 2).div_ceil(arena_sys::MI_ARENA_MIN) * arena_sys::MI_ARENA_MIN;
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

/// Set once the kernel refused memory policies altogether.
static UNENFORCED: AtomicBool = AtomicBool::new(false);

/// False once the kernel refused memory policies altogether (`ENOSYS`: a kernel
/// without NUMA; `EPERM`: a seccomp filter, such as a container's default one,
/// that forbids `mbind`). The allocator then keeps serving memory, placed by first
/// touch, rather than fail every allocation of the process.
pub(crate) fn placement_enforced() -> bool {
    !UNENFORCED.load(Ordering::Relaxed)
}

/// `mbind(at, len, mode, nodes)`, which "succeeds" without a policy where the
/// kernel refuses memory policies altogether (see [`placement_enforced`]).
fn mbind(at: *const u8, len: usize, mode: Mode, nodes: &[u32]) -> Result<(), ()> {
    enforced(
        mempolicy::mbind(at, len, mode, nodes, MbindFlags::default())
            .map_err(|e| e.raw_os_error().unwrap_or(0)),
    )
}

/// The outcome of an `mbind`: an error, except where the kernel refuses memory
/// policies altogether (see [`placement_enforced`]).
fn enforced(result: Result<(), i32>) -> Result<(), ()> {
    match result {
        Ok(()) => Ok(()),
        Err(libc::ENOSYS | libc::EPERM) => {
            UNENFORCED.store(true, Ordering::Relaxed);
            Ok(())
        }
        Err(_) => Err(()),
    }
}

/// Where a block's pages go: a policy resolved for the calling thread, in a form
/// that needs no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Float: wherever first touch puts them.
    FirstTouch,
    /// Every page on this node.
    Node(u8),
    /// `MPOL_BIND` over these nodes (nearest first).
    Bind(NodeMask),
    /// Page `p` on the `(p mod N)`-th node.
    Interleave(NodeMask),
    /// Page `p` on the `((p / stride) mod N)`-th node.
    Stripes {
        /// Pages per stripe (1 only when an interleave cannot be put in phase).
        stride: usize,
        /// The nodes in turn.
        nodes: NodeMask,
    },
}

impl fmt::Display for Placement {
    /// `float`, `node:1`, `bind:0,2`, `interleave:0,1,2`, `striped:4:0,1`; written
    /// without allocating.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, mask: NodeMask| -> fmt::Result {
            for (i, n) in mask.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{n}")?;
            }
            Ok(())
        };
        match *self {
            Placement::FirstTouch => f.write_str("float"),
            Placement::Node(n) => write!(f, "node:{n}"),
            Placement::Bind(mask) => {
                f.write_str("bind:")?;
                list(f, mask)
            }
            Placement::Interleave(mask) => {
                f.write_str("interleave:")?;
                list(f, mask)
            }
            Placement::Stripes { stride, nodes } => {
                write!(f, "striped:{stride}:")?;
                list(f, nodes)
            }
        }
    }
}

/// Resolves `policy` for a thread on node `caller`, with the rules of
/// [`Policy::resolve`] over the global RSet (every memory node).
///
/// # Errors
/// The [`NumaAllocError`] naming the node or set that cannot be served.
pub(crate) fn resolve(
    m: &Machine,
    policy: &Policy,
    caller: u8,
) -> Result<Placement, NumaAllocError> {
    let single = |mask: NodeMask| {
        if mask.count() == 1 {
            Placement::Node(mask.nth(0))
        } else {
            Placement::Interleave(mask)
        }
    };
    match policy {
        Policy::Float => Ok(Placement::FirstTouch),
        Policy::Local => resolve_local(m, caller),
        Policy::Remote => match m.remote_of.get(caller as usize) {
            Some(&r) if r != NO_NODE => Ok(Placement::Node(r)),
            _ => Err(NumaAllocError::RemoteNeedsTwoNodes {
                node: node_id(caller),
            }),
        },
        Policy::RemoteTo(id) => {
            if id.0 == u32::from(caller) {
                return Err(NumaAllocError::RemoteIsLocal { node: *id });
            }
            m.memory_node(*id).map(Placement::Node)
        }
        Policy::Striped { stride_pages } => {
            if m.memory.count() == 0 {
                return Err(NumaAllocError::NoNodes);
            }
            Ok(match stride_pages.pages() {
                1 => single(m.memory),
                _ if m.memory.count() == 1 => Placement::Node(m.memory.nth(0)),
                stride => Placement::Stripes {
                    stride,
                    nodes: m.memory,
                },
            })
        }
        Policy::Bind(set) => {
            let mask = m.mask_of(set.as_slice())?;
            Ok(if mask.count() == 1 {
                Placement::Node(mask.nth(0))
            } else {
                Placement::Bind(mask)
            })
        }
        Policy::Interleave(set) => m.mask_of(set.as_slice()).map(single),
    }
}

/// Local: the caller's node, which must have memory.
#[inline]
pub(crate) fn resolve_local(m: &Machine, caller: u8) -> Result<Placement, NumaAllocError> {
    if m.memory.contains(caller) {
        Ok(Placement::Node(caller))
    } else {
        Err(NumaAllocError::LocalWithoutMemory {
            node: node_id(caller),
        })
    }
}

thread_local! {
    /// Round-robin position for small blocks under Interleave and Striped.
    static NEXT: Cell<usize> = const { Cell::new(0) };
}

/// The node whose arena serves a small block under `placement`, `None` for
/// mimalloc's default heap (Float). A small block is never split across nodes:
/// under `Bind` it goes to the set's node nearest the caller; under `Interleave`
/// and `Stripes` successive small blocks of a thread go to the set's nodes in turn.
pub(crate) fn small_node(m: &Machine, placement: Placement, caller: u8) -> Option<u8> {
    match placement {
        Placement::FirstTouch => None,
        Placement::Node(n) => Some(n),
        Placement::Bind(mask) => Some(m.nearest(caller, mask)),
        Placement::Interleave(mask) | Placement::Stripes { nodes: mask, .. } => {
            let i = NEXT.with(|c| {
                let i = c.get();
                c.set(i.wrapping_add(1));
                i
            });
            Some(mask.nth(i % mask.count().max(1)))
        }
    }
}

/// Maps a large block of `size` bytes aligned to `align` with `placement` applied
/// page by page. The block starts at the mapping's start and the mapping is
/// `size` rounded up to whole pages.
///
/// # Errors
/// [`NumaAllocError::OutOfMemory`] if the kernel refuses the mapping or the policy,
/// [`NumaAllocError::TooManyStripes`] for a striped block of too many stripes.
pub(crate) fn map_large(
    placement: Placement,
    size: usize,
    align: usize,
) -> Result<NonNull<u8>, NumaAllocError> {
    let oom = NumaAllocError::OutOfMemory { size, align };
    let page = arena_sys::page_size();
    let len = size
        .max(1)
        .checked_next_multiple_of(page)
        .filter(|&l| l <= isize::MAX as usize)
        .ok_or(oom)?;
    let pages = len / page;
    let align_pages = (align / page).max(1);
    if let Placement::Interleave(mask) = placement {
        return map_interleaved(mask, len, align_pages, oom);
    }
    if let Placement::Stripes { stride, .. } = placement {
        let stripes = pages.div_ceil(stride);
        if stripes > MAX_STRIPES {
            return Err(NumaAllocError::TooManyStripes {
                stripes,
                max: MAX_STRIPES,
            });
        }
    }
    let map = FreshMap::new(len, align_pages).ok_or(oom)?;
    apply(placement, map.start(), len, page).map_err(|()| oom)?;
    map.into_raw().ok_or(oom)
}

/// Truth that the large block at `ptr` may grow by `mremap`, which gives the grown
/// tail the policy of the block's mapping: right for every layout made of one
/// mapping (one node, a node set, an interleave, whose phase moves with the
/// mapping, Float), wrong for stripes, whose tail must go on striping. A striped
/// block of several stripes spans several mappings, which `mremap` refuses anyway;
/// one no longer than its stride is a single mapping bound to its first node, told
/// from a one-node block by the mark [`apply`] gives every stripe.
pub(crate) fn may_grow_by_remap(ptr: *const u8) -> bool {
    !placement_enforced() || arena_sys::is_marked_bind(ptr) == Ok(false)
}

/// Maps `len` bytes under one `MPOL_INTERLEAVE` over `mask`, starting where the
/// kernel's interleave puts the block's first page on the set's first node.
///
/// The kernel puts page `p` of an interleaved VMA on the `((vm_pgoff + p) mod N)`-th
/// node, and an anonymous VMA's `vm_pgoff` is its address in pages; but Linux 6.1
/// cuts that sum to 32 bits before the modulo and later kernels do not, which
/// differ when N is not a power of two. So the phase is measured, not computed:
/// `N * align` spare pages are mapped before the block, the first one is written
/// and located, and the block starts at the first aligned spare page in phase (the
/// probed page is unmapped with the other spares). Should no aligned start be in
/// phase (an alignment sharing a factor with N), the block is striped one page at
/// a time instead.
fn map_interleaved(
    mask: NodeMask,
    len: usize,
    align_pages: usize,
    oom: NumaAllocError,
) -> Result<NonNull<u8>, NumaAllocError> {
    let page = arena_sys::page_size();
    let n = mask.count();
    let spare = n.checked_mul(align_pages).ok_or(oom)?;
    let total = spare
        .checked_mul(page)
        .and_then(|s| s.checked_add(len))
        .ok_or(oom)?;
    let mut map = FreshMap::new(total, align_pages).ok_or(oom)?;
    apply(Placement::Interleave(mask), map.start(), total, page).map_err(|()| oom)?;
    if !map.open() {
        return Err(oom);
    }
    let Some(first) = map.probe_node(0) else {
        return if placement_enforced() {
            Err(oom)
        } else {
            // No memory policies on this system: nothing to put in phase.
            map.keep(spare * page, len)
                .and_then(FreshMap::into_raw)
                .ok_or(oom)
        };
    };
    let phase = mask
        .iter()
        .position(|node| u32::from(node) == first)
        .ok_or(oom)?;
    // Page s is on the ((phase + s) mod N)-th node.
    match (1..=n)
        .map(|i| i * align_pages)
        .find(|&s| (phase + s) % n == 0)
    {
        Some(s) => map
            .keep(s * page, len)
            .and_then(FreshMap::into_raw)
            .ok_or(oom),
        None => {
            drop(map);
            map_large(
                Placement::Stripes {
                    stride: 1,
                    nodes: mask,
                },
                len,
                align_pages * page,
            )
        }
    }
}

/// Sets the memory policy and huge-page advice of the fresh range
/// `[start, start + len)`, before it is opened. Stripes are bound with
/// [`arena_sys::bind_marked`], so that [`may_grow_by_remap`] can tell a striped
/// block from a one-node one.
fn apply(placement: Placement, start: NonNull<u8>, len: usize, page: usize) -> Result<(), ()> {
    let mut buf = [0u32; MAX_NODES];
    let bind = mbind;
    let p = start.as_ptr().cast_const();
    match placement {
        Placement::FirstTouch => {
            arena_sys::no_huge_pages(p, len);
            Ok(())
        }
        Placement::Node(n) => bind(p, len, Mode::Bind, &[n.into()]),
        Placement::Bind(mask) => bind(p, len, Mode::Bind, mask.raw(&mut buf)),
        Placement::Interleave(mask) => {
            arena_sys::no_huge_pages(p, len);
            bind(p, len, Mode::Interleave, mask.raw(&mut buf))
        }
        Placement::Stripes { stride, nodes } => {
            arena_sys::no_huge_pages(p, len);
            let run = stride * page;
            let count = nodes.count();
            for (i, off) in (0..len).step_by(run).enumerate() {
                let node = nodes.nth(i % count);
                enforced(arena_sys::bind_marked(
                    p.wrapping_add(off),
                    run.min(len - off),
                    node,
                ))?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_numbers_and_meminfo_parse_without_allocating_helpers() {
        let mut got = [0u32; 8];
        let mut k = 0;
        for_each_in_list(b"0-2,5, 7\n", |id| {
            got[k] = id;
            k += 1;
        });
        assert_eq!(&got[..k], &[0, 1, 2, 5, 7]);
        assert_eq!(
            numbers(b"10 20  30\n").collect::<Vec<_>>(),
            vec![10, 20, 30]
        );
        assert_eq!(
            mem_total_kib(b"Node 0 MemTotal:        7825620 kB\nNode 0 MemFree: 1 kB\n"),
            7_825_620
        );
        assert_eq!(number(b"x1"), None);
    }

    #[test]
    fn node_files_are_named_like_sysfs() {
        let mut buf = [0u8; 128];
        assert_eq!(
            node_file(&mut buf, 12, "cpulist").to_str().unwrap(),
            "/sys/devices/system/node/node12/cpulist"
        );
    }

    #[test]
    fn masks_count_and_index() {
        let m = NodeMask::default().with(1).with(3).with(63);
        assert_eq!(m.count(), 3);
        assert_eq!(m.nth(0), 1);
        assert_eq!(m.nth(2), 63);
        assert!(!m.contains(64));
        let mut buf = [0; MAX_NODES];
        assert_eq!(m.raw(&mut buf), &[1, 3, 63]);
    }

    #[test]
    fn the_host_machine_has_a_memory_node_and_a_cpu_table() {
        let m = machine();
        assert!(m.memory.count() >= 1);
        let here = current_node(m);
        assert!(m.memory.contains(here), "node {here}");
    }
}
