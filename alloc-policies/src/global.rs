//! The NUMA global allocator: [`NumaAlloc`], the calling thread's scoped memory
//! policy ([`with_policy`], [`current_policy`]), and [`PolicyAlloc`] handles that
//! place one collection by a fixed policy through allocator-api2 on stable Rust.
//!
//! ```no_run
//! use alloc_policies::{with_policy, NumaAlloc, Policy};
//!
//! #[global_allocator]
//! static A: NumaAlloc = NumaAlloc::new();
//!
//! let near = vec![0u8; 4096]; // Local (the default): on this thread's node
//! let far = with_policy(Policy::Remote, || vec![0u8; 4096]); // on the nearest other node
//! # drop((near, far));
//! ```
//!
//! # Where memory comes from
//! Each allocation follows the policy of the thread that makes it, resolved over
//! every memory node of the machine with the rules of [`Policy::resolve`]:
//!
//! | policy | small block (< [`LARGE_THRESHOLD`]) | large block |
//! | --- | --- | --- |
//! | `Local` (default) | arena of the node of the CPU the thread runs on now | mapped, `MPOL_BIND` that node |
//! | `Remote` | arena of the nearest other memory node | mapped, bound there |
//! | `RemoteTo(n)` | arena of `n` | mapped, bound to `n` |
//! | `Bind(set)` | arena of the set's node nearest the caller | mapped, `MPOL_BIND` the set (the kernel takes the nearest node with free memory) |
//! | `Interleave(set)` | arenas of the set's nodes, one block each in turn | page `p` on the `p mod N`-th node |
//! | `Striped { k }` | arenas of all memory nodes in turn | page `p` on node `(p / k) mod N` |
//! | `Float` | mimalloc's default heap (first touch) | mapped, no policy (first touch), base pages |
//!
//! A small block is never split across nodes. Large blocks are mapped directly so
//! that the policy's page layout applies to them exactly, and go back to the kernel
//! when freed. Blocks aligned beyond 64 KiB are mapped directly too. A mapping gets
//! its policy before it can be touched at all, so not one of its pages can come
//! from elsewhere (say, a transparent huge page faulted in next door); a Float
//! block, which has no policy, is kept to base pages for the same reason.
//!
//! A policy that cannot be served (Remote on a one-node machine, a node without
//! memory, an empty set) makes the allocation fail: the global allocator returns
//! null (so `Vec` and `Box` call `handle_alloc_error`), the [`Allocator`] API returns
//! `AllocError`, and [`NumaAlloc::try_allocate`] / [`PolicyAlloc::try_allocate`]
//! say why with a [`NumaAllocError`]. Nothing here panics or aborts.
//!
//! Everything that runs inside [`with_policy`] allocates under its policy, a panic's
//! message included: scope only policies the machine can serve, or a panic there
//! ends in `handle_alloc_error`.
//!
//! Where the kernel refuses memory policies altogether (no NUMA support, or a
//! seccomp filter that forbids `mbind`), the allocator keeps serving memory placed
//! by first touch and [`NumaAlloc::placement_enforced`] turns false.
//!
//! # Thread caches
//! Each node's arena has one mimalloc heap, and mimalloc gives every thread that
//! uses a heap its own cache of it (a `theap`), so blocks are taken and freed
//! without locks. On top, each thread keeps the CPU it last ran on and that CPU's
//! node's heap; the whole Local fast path is one read of the CPU number the kernel
//! keeps in the thread's rseq area (glibc >= 2.35), one compare, and
//! `mi_heap_malloc`. When the thread has moved to another CPU, the node is looked up
//! again (`sched_getcpu` and a CPU-to-node table read from sysfs at start-up).
//!
//! # Resizing
//! `realloc` keeps a block where it is when it can resize it in place (a small
//! block within its size class; a large block by `mremap`, which keeps its pages
//! and its memory policy, the grown tail included, except that a striped block is
//! never grown so: its tail must go on striping); when the block must move, the
//! new one follows the calling thread's current policy.
//!
//! # Threads
//! The policy is per thread and scoped: a thread spawned inside [`with_policy`]
//! starts with `Local`. Blocks may be freed by any thread.
//!
//! # Safety
//! The unsafe code here is the [`GlobalAlloc`] and [`Allocator`] impls, which forward
//! to the mimalloc and mapping calls of `arena_sys`, and one dereference of the
//! thread's policy pointer, which always points at the [`Policy`] owned by the
//! innermost [`with_policy`] frame still running on this thread (it is reset before
//! that frame's policy is dropped, on unwinding too).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::fmt;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, Ordering};

use allocator_api2::alloc::{AllocError, Allocator};
use rset::NodeId;

use crate::arena::{self, Machine, Placement, is_direct};
use crate::arena_sys::{self, Heap};
use crate::policy::Policy;
use crate::registry::{self, AllocKind, Allocation, InlineStr, Label};

pub use crate::arena::{LARGE_THRESHOLD, MAX_NODES};

thread_local! {
    /// The calling thread's policy: null for Local, else the policy of the innermost
    /// running `with_policy` frame. `const` and without a destructor, so reading it
    /// never allocates and works at any time in the thread's life.
    static POLICY: Cell<*const Policy> = const { Cell::new(ptr::null()) };
}

/// Runs `f` with `policy` as the calling thread's memory policy, then restores the
/// previous one (also when `f` panics). Nests.
///
/// ```
/// use alloc_policies::{current_policy, with_policy, Policy};
/// assert_eq!(current_policy(), Policy::Local);
/// with_policy(Policy::Float, || assert_eq!(current_policy(), Policy::Float));
/// assert_eq!(current_policy(), Policy::Local);
/// ```
pub fn with_policy<R>(policy: Policy, f: impl FnOnce() -> R) -> R {
    /// Puts the previous pointer back when dropped.
    struct Restore(*const Policy);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0;
            POLICY.with(|p| p.set(previous));
        }
    }
    let this: *const Policy = if policy == Policy::Local {
        ptr::null()
    } else {
        &policy
    };
    let _restore = Restore(POLICY.with(|p| p.replace(this)));
    f()
    // `_restore` drops here, before `policy`.
}

/// Sets the calling thread's policy for the rest of its life, with no scope to end
/// it: for code that cannot wrap a thread's work in a closure, such as a preloaded
/// library's thread start routine (`rset-run`). A [`with_policy`] inside still nests
/// on top of it and restores it.
///
/// ```
/// use alloc_policies::{current_policy, set_thread_policy, Policy};
/// static FLOAT: Policy = Policy::Float;
/// std::thread::spawn(|| {
///     set_thread_policy(&FLOAT);
///     assert_eq!(current_policy(), Policy::Float);
/// }).join().unwrap();
/// ```
pub fn set_thread_policy(policy: &'static Policy) {
    let this: *const Policy = if *policy == Policy::Local {
        ptr::null()
    } else {
        policy
    };
    POLICY.with(|p| p.set(this));
}

/// The calling thread's memory policy (`Local` outside any [`with_policy`]).
pub fn current_policy() -> Policy {
    thread_policy(|p| p.cloned().unwrap_or(Policy::Local))
}

/// Calls `f` with the calling thread's policy (`None` for Local).
#[inline(always)]
pub(crate) fn thread_policy<R>(f: impl FnOnce(Option<&Policy>) -> R) -> R {
    let p = POLICY.with(Cell::get);
    // SAFETY: POLICY is null or points at the policy of the innermost with_policy
    // frame running on this thread; that frame outlives this call (we run inside
    // it) and resets POLICY before its policy is dropped. The reference does not
    // escape `f`.
    f(unsafe { p.as_ref() })
}

/// Why an allocation could not be served. `Copy` and allocation-free, so the
/// allocator can make one from inside itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NumaAllocError {
    /// A node named by the policy has no memory, or is not on this machine (or is
    /// beyond the [`MAX_NODES`] the allocator serves).
    #[error("node {node} is not a memory node this allocator can serve")]
    NoSuchNode {
        /// The node.
        node: NodeId,
    },
    /// Local, but the calling thread's node has no memory.
    #[error("Local puts memory on the calling thread's node {node}, which has no memory")]
    LocalWithoutMemory {
        /// The caller's node.
        node: NodeId,
    },
    /// Remote, but no memory node other than the caller's exists.
    #[error(
        "Remote needs a memory node other than the calling thread's node {node}, and \
         the machine has none"
    )]
    RemoteNeedsTwoNodes {
        /// The caller's node.
        node: NodeId,
    },
    /// `RemoteTo(n)` where `n` is the calling thread's own node.
    #[error("remote:{node} is the calling thread's own node")]
    RemoteIsLocal {
        /// The node.
        node: NodeId,
    },
    /// `Bind` or `Interleave` with an empty set.
    #[error("the policy names no memory node")]
    NoNodes,
    /// A striped block would need more stripes (one memory area each) than one
    /// allocation may use.
    #[error(
        "a striped block of {stripes} stripes is more than the {max} one allocation may \
         have: use a larger stride"
    )]
    TooManyStripes {
        /// Stripes the block would need.
        stripes: usize,
        /// The limit.
        max: usize,
    },
    /// The node's arena could not be set up (the kernel refused the mapping or the
    /// `mbind`, or mimalloc the arena).
    #[error("the arena of node {node} could not be set up")]
    ArenaUnavailable {
        /// The node.
        node: NodeId,
    },
    /// No memory for a block of this layout under the policy.
    #[error("out of memory for {size} bytes aligned to {align}")]
    OutOfMemory {
        /// Requested size.
        size: usize,
        /// Requested alignment.
        align: usize,
    },
}

/// The NUMA global allocator. Each allocation follows the calling thread's policy
/// (see the [module docs](self)): small blocks come from per-node mimalloc arenas
/// through per-thread caches, large ones are mapped directly with the policy's
/// page layout.
///
/// ```no_run
/// use alloc_policies::NumaAlloc;
/// #[global_allocator]
/// static A: NumaAlloc = NumaAlloc::new();
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NumaAlloc {
    _private: (),
}

impl NumaAlloc {
    /// The allocator (a unit value: all state is process-wide).
    pub const fn new() -> NumaAlloc {
        NumaAlloc { _private: () }
    }

    /// A handle that allocates by `policy` whatever the calling thread's policy,
    /// for allocator-api2 collections:
    /// `allocator_api2::vec::Vec::new_in(NumaAlloc::with(Policy::RemoteTo(NodeId(1))))`.
    pub fn with(policy: Policy) -> PolicyAlloc {
        PolicyAlloc { policy }
    }

    /// Truth that placements are enforced: false once the kernel refused memory
    /// policies altogether (`ENOSYS`: a kernel without NUMA; `EPERM`: a seccomp
    /// filter, such as a container's default one, that forbids `mbind`). The
    /// allocator then keeps serving memory, placed by first touch, rather than fail
    /// every allocation of the process; check this before trusting a placement.
    pub fn placement_enforced() -> bool {
        arena::placement_enforced()
    }

    /// Starts (`true`) or stops recording every large block (at least
    /// [`LARGE_THRESHOLD`] bytes) in the allocation [`registry`], labelled `heap`,
    /// with the policy that placed it (`remote -> node:1`), the allocating thread
    /// and its node, so the monitor can name them. Off by default; small blocks are
    /// never recorded. Process-wide.
    pub fn record_large_blocks(on: bool) {
        RECORD_LARGE.store(on, Ordering::Relaxed);
    }

    /// Allocates a block for `layout` under the calling thread's policy, saying why
    /// when it cannot. A zero-sized layout gets a dangling, aligned pointer.
    ///
    /// # Errors
    /// The [`NumaAllocError`] of the policy or the memory that failed.
    pub fn try_allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, NumaAllocError> {
        thread_policy(|p| allocate_in(p, layout, false))
    }
}

/// An allocator-api2 [`Allocator`] that places every block by one fixed policy,
/// whatever the calling thread's policy. Made by [`NumaAlloc::with`]. Blocks it
/// returns may be freed by any `NumaAlloc` or `PolicyAlloc` (placement is not
/// needed to free).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyAlloc {
    policy: Policy,
}

impl PolicyAlloc {
    /// The policy this handle allocates by.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// As [`NumaAlloc::try_allocate`], under this handle's policy.
    ///
    /// # Errors
    /// The [`NumaAllocError`] of the policy or the memory that failed.
    pub fn try_allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, NumaAllocError> {
        allocate_in(Some(&self.policy), layout, false)
    }
}

/// The heap a small block comes from under `policy` (`None` for Local), or `None`
/// for mimalloc's default heap (Float).
#[inline(always)]
fn small_heap(policy: Option<&Policy>) -> Result<Option<Heap>, NumaAllocError> {
    match policy {
        None => local_heap().map(Some),
        Some(Policy::Float) => Ok(None),
        Some(p) => policy_heap(arena::machine(), p),
    }
}

/// Local: the cached heap of the CPU the thread runs on, else the slow lookup.
#[inline(always)]
fn local_heap() -> Result<Heap, NumaAllocError> {
    match arena::cached_local_heap() {
        Some(heap) => Ok(heap),
        None => arena::local_heap(arena::machine()),
    }
}

/// The whole fast path of the global allocator: a small block under Local whose
/// CPU's heap is in the thread's cache. `None` sends the caller to the general path.
#[inline(always)]
fn fast_local_heap(layout: Layout) -> Option<Heap> {
    if is_direct(layout.size(), layout.align()) || !POLICY.with(Cell::get).is_null() {
        return None;
    }
    arena::cached_local_heap()
}

/// The general path of `GlobalAlloc::alloc` and `alloc_zeroed`.
#[inline(never)]
fn global_alloc_slow(layout: Layout, zero: bool) -> *mut u8 {
    thread_policy(|p| alloc_block(p, layout, zero)).map_or(ptr::null_mut(), NonNull::as_ptr)
}

#[inline(never)]
fn policy_heap(m: &Machine, policy: &Policy) -> Result<Option<Heap>, NumaAllocError> {
    let caller = arena::current_node(m);
    let placement = arena::resolve(m, policy, caller)?;
    arena::small_node(m, placement, caller)
        .map(arena::node_heap)
        .transpose()
}

/// Allocates a non-zero-sized block.
#[inline(always)]
pub(crate) fn alloc_block(
    policy: Option<&Policy>,
    layout: Layout,
    zero: bool,
) -> Result<NonNull<u8>, NumaAllocError> {
    let (size, align) = (layout.size(), layout.align());
    if is_direct(size, align) {
        return alloc_large(policy, size, align);
    }
    let p = match small_heap(policy)? {
        Some(heap) => heap.alloc(size, align, zero),
        None => arena_sys::default_alloc(size, align, zero),
    };
    NonNull::new(p).ok_or(NumaAllocError::OutOfMemory { size, align })
}

#[cold]
#[inline(never)]
fn alloc_large(
    policy: Option<&Policy>,
    size: usize,
    align: usize,
) -> Result<NonNull<u8>, NumaAllocError> {
    let m = arena::machine();
    let caller = arena::current_node(m);
    let placement = match policy {
        None => arena::resolve_local(m, caller)?,
        Some(p) => arena::resolve(m, p, caller)?,
    };
    let block = arena::map_large(placement, size, align)?;
    large_mapped_hook(block, size, policy, placement);
    Ok(block)
}

/// Frees a non-zero-sized block.
///
/// # Safety
/// `ptr` must be a live block from this allocator made for `layout`.
#[inline(always)]
pub(crate) unsafe fn free_block(ptr: *mut u8, layout: Layout) {
    if is_direct(layout.size(), layout.align()) {
        // SAFETY: a direct block is a whole mapping (function contract).
        unsafe { free_large(ptr, layout.size()) }
    } else {
        // SAFETY: a small block comes from mimalloc (function contract).
        unsafe { arena_sys::free(ptr) }
    }
}

/// # Safety
/// `ptr` must be the start of a live large block of `size` bytes.
#[cold]
#[inline(never)]
pub(crate) unsafe fn free_large(ptr: *mut u8, size: usize) {
    large_unmapped_hook(ptr, None);
    let len = size.next_multiple_of(arena_sys::page_size());
    // SAFETY: the block is the whole mapping `[ptr, ptr + len)` that map_large made
    // (or remap resized); the caller gives it up.
    unsafe { arena_sys::unmap(ptr, len) }
}

/// Resizes a non-zero-sized block to `new_size` (same alignment), keeping its
/// contents up to the smaller size. The old block stays valid on failure.
///
/// # Safety
/// `ptr` must be a live block from this allocator made for `layout`.
pub(crate) unsafe fn resize_block(
    policy: Option<&Policy>,
    ptr: *mut u8,
    layout: Layout,
    new_size: usize,
) -> Result<NonNull<u8>, NumaAllocError> {
    let align = layout.align();
    let oom = NumaAllocError::OutOfMemory {
        size: new_size,
        align,
    };
    let (old_direct, new_direct) = (is_direct(layout.size(), align), is_direct(new_size, align));
    if !old_direct && !new_direct {
        let q = match small_heap(policy)? {
            // SAFETY: `ptr` is a live mimalloc block of alignment `align` (contract).
            Some(heap) => unsafe { heap.realloc(ptr, new_size, align) },
            // SAFETY: as above.
            None => unsafe { arena_sys::default_realloc(ptr, new_size, align) },
        };
        return NonNull::new(q).ok_or(oom);
    }
    let page = arena_sys::page_size();
    if old_direct && new_direct && align <= page {
        let old_len = layout.size().next_multiple_of(page);
        let new_len = new_size.checked_next_multiple_of(page).ok_or(oom)?;
        if old_len == new_len {
            return NonNull::new(ptr).ok_or(oom);
        }
        if new_len < old_len || arena::may_grow_by_remap(ptr) {
            // SAFETY: the block is the whole mapping `[ptr, ptr + old_len)`
            // (contract); on success we return the new address and never use the
            // old one.
            if let Some(q) = unsafe { arena_sys::remap(ptr, old_len, new_len) } {
                large_unmapped_hook(ptr, Some((q, new_size)));
                return Ok(q);
            }
        }
    }
    let new_layout = Layout::from_size_align(new_size, align).map_err(|_| oom)?;
    let q = alloc_block(policy, new_layout, false)?;
    // SAFETY: both blocks are live, distinct, and at least `min(old, new)` long.
    unsafe { ptr::copy_nonoverlapping(ptr, q.as_ptr(), layout.size().min(new_size)) };
    // SAFETY: the old block is ours for `layout` (contract) and no longer used.
    unsafe { free_block(ptr, layout) };
    Ok(q)
}

/// Whether large blocks are recorded in the [`registry`].
static RECORD_LARGE: AtomicBool = AtomicBool::new(false);

/// Records a freshly mapped large block in the registry, when asked to.
fn large_mapped_hook(
    block: NonNull<u8>,
    size: usize,
    policy: Option<&Policy>,
    placement: Placement,
) {
    if RECORD_LARGE.load(Ordering::Relaxed) {
        let mut record = Allocation::here(
            AllocKind::Heap,
            Label::name("heap"),
            block.as_ptr() as usize,
            size,
        );
        record.policy = InlineStr::display(&PolicyText(policy, placement));
        registry::register(record);
    }
}

/// Forgets a large block about to be unmapped; with `moved_to`, records it again
/// at its new address and size (after `mremap`).
fn large_unmapped_hook(block: *mut u8, moved_to: Option<(NonNull<u8>, usize)>) {
    if RECORD_LARGE.load(Ordering::Relaxed) {
        let old = registry::unregister_at(block as usize);
        if let (Some(mut record), Some((new, size))) = (old, moved_to) {
            record.addr = new.as_ptr() as usize;
            record.len = size;
            registry::register(record);
        }
    }
}

/// `remote -> node:1`: the policy asked for and where it put the block, written
/// without allocating (a node set's own `Display` would).
struct PolicyText<'a>(Option<&'a Policy>, Placement);

impl fmt::Display for PolicyText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("local")?,
            Some(Policy::Bind(_)) => f.write_str("bind")?,
            Some(Policy::Interleave(_)) => f.write_str("interleave")?,
            Some(p) => write!(f, "{p}")?,
        }
        write!(f, " -> {}", self.1)
    }
}

/// A dangling pointer aligned to `align`, for zero-sized blocks.
fn dangling(align: usize) -> NonNull<[u8]> {
    let p = NonNull::new(ptr::without_provenance_mut::<u8>(align)).unwrap_or(NonNull::dangling());
    NonNull::slice_from_raw_parts(p, 0)
}

/// allocator-api2 `allocate` with a typed error.
fn allocate_in(
    policy: Option<&Policy>,
    layout: Layout,
    zero: bool,
) -> Result<NonNull<[u8]>, NumaAllocError> {
    if layout.size() == 0 {
        return Ok(dangling(layout.align()));
    }
    alloc_block(policy, layout, zero).map(|p| NonNull::slice_from_raw_parts(p, layout.size()))
}

/// allocator-api2 `deallocate`.
///
/// # Safety
/// As [`Allocator::deallocate`].
unsafe fn deallocate_in(ptr: NonNull<u8>, layout: Layout) {
    if layout.size() != 0 {
        // SAFETY: a non-zero-sized block from us made for `layout` (contract).
        unsafe { free_block(ptr.as_ptr(), layout) }
    }
}

/// allocator-api2 `grow`, `grow_zeroed` and `shrink`.
///
/// # Safety
/// As [`Allocator::grow`] / [`Allocator::shrink`].
unsafe fn resize_in(
    policy: Option<&Policy>,
    ptr: NonNull<u8>,
    old: Layout,
    new: Layout,
    zero: bool,
) -> Result<NonNull<[u8]>, AllocError> {
    if old.size() == 0 {
        return allocate_in(policy, new, zero).map_err(|_| AllocError);
    }
    if new.size() == 0 {
        // SAFETY: contract of deallocate, given by ours.
        unsafe { deallocate_in(ptr, old) };
        return Ok(dangling(new.align()));
    }
    let q = if old.align() == new.align() {
        // SAFETY: `ptr` is a live non-zero-sized block for `old` (contract).
        unsafe { resize_block(policy, ptr.as_ptr(), old, new.size()) }.map_err(|_| AllocError)?
    } else {
        let q = alloc_block(policy, new, false).map_err(|_| AllocError)?;
        // SAFETY: both blocks live, distinct, at least `min(old, new)` long.
        unsafe { ptr::copy_nonoverlapping(ptr.as_ptr(), q.as_ptr(), old.size().min(new.size())) };
        // SAFETY: the old block is ours for `old` (contract) and no longer used.
        unsafe { free_block(ptr.as_ptr(), old) };
        q
    };
    if zero && new.size() > old.size() {
        // Fresh mappings are zero already: clear only what mimalloc may have reused,
        // or the stale end of a mapping's last page after an earlier shrink.
        let end = if is_direct(new.size(), new.align()) {
            old.size()
                .next_multiple_of(arena_sys::page_size())
                .min(new.size())
        } else {
            new.size()
        };
        let tail = q.as_ptr().wrapping_add(old.size());
        // SAFETY: `[old.size(), end)` lies inside the new block of `new.size()` bytes.
        unsafe { ptr::write_bytes(tail, 0, end - old.size()) };
    }
    Ok(NonNull::slice_from_raw_parts(q, new.size()))
}

// SAFETY: every block comes from mimalloc or from a fresh mapping, is aligned as
// asked (mimalloc's aligned calls, or mappings aligned by construction), is not
// handed out twice before it is freed, and `dealloc` tells the two kinds apart
// from the layout alone (`is_direct`). Nothing here unwinds: failures are null.
unsafe impl GlobalAlloc for NumaAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match fast_local_heap(layout) {
            Some(heap) => heap.alloc(layout.size(), layout.align(), false),
            None => global_alloc_slow(layout, false),
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match fast_local_heap(layout) {
            Some(heap) => heap.alloc(layout.size(), layout.align(), true),
            None => global_alloc_slow(layout, true),
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: GlobalAlloc::dealloc's contract is free_block's.
        unsafe { free_block(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: GlobalAlloc::realloc's contract covers resize_block's.
        thread_policy(|p| unsafe { resize_block(p, ptr, layout, new_size) })
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }
}

// SAFETY: blocks stay valid until deallocated through any NumaAlloc (all share the
// process-wide arenas), and the methods keep allocator-api2's contracts (see
// allocate_in / resize_in); zero-sized layouts get dangling pointers that
// deallocate ignores.
unsafe impl Allocator for NumaAlloc {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        thread_policy(|p| allocate_in(p, layout, false)).map_err(|_| AllocError)
    }

    #[inline]
    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        thread_policy(|p| allocate_in(p, layout, true)).map_err(|_| AllocError)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: same contract.
        unsafe { deallocate_in(ptr, layout) }
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: same contract.
        thread_policy(|p| unsafe { resize_in(p, ptr, old, new, false) })
    }

    unsafe fn grow_zeroed(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: same contract.
        thread_policy(|p| unsafe { resize_in(p, ptr, old, new, true) })
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: same contract.
        thread_policy(|p| unsafe { resize_in(p, ptr, old, new, false) })
    }
}

// SAFETY: as for NumaAlloc; the policy is this handle's instead of the thread's.
// Clones share everything but the policy, so a block may be freed by any clone.
unsafe impl Allocator for PolicyAlloc {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        allocate_in(Some(&self.policy), layout, false).map_err(|_| AllocError)
    }

    #[inline]
    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        allocate_in(Some(&self.policy), layout, true).map_err(|_| AllocError)
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: same contract.
        unsafe { deallocate_in(ptr, layout) }
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: same contract.
        unsafe { resize_in(Some(&self.policy), ptr, old, new, false) }
    }

    unsafe fn grow_zeroed(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: same contract.
        unsafe { resize_in(Some(&self.policy), ptr, old, new, true) }
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: same contract.
        unsafe { resize_in(Some(&self.policy), ptr, old, new, false) }
    }
}
