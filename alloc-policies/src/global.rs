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
//! The only unsafe code here is the `unsafe impl`s of [`GlobalAlloc`] and [`Allocator`]
//! for [`NumaAlloc`] and [`PolicyAlloc`], each method a one-line forward to the
//! allocator's internals (`engine`), whose own `# Safety` sections they meet:
//! - `GlobalAlloc`'s caller promises a non-zero-sized layout and, for `dealloc`
//!   and `realloc`, a live block of this allocator made for that layout, which is
//!   the contract of `engine::block::free_block` and `engine::block::resize`.
//! - allocator-api2's caller promises a block currently allocated by this
//!   allocator (any `NumaAlloc` or `PolicyAlloc`: they share the process-wide
//!   arenas and mappings) that fits the layout, the contract of `resize`, which
//!   also takes zero-sized blocks (dangling pointers, never freed).
//! - Every block returned is aligned as asked (mimalloc's aligned calls, mappings
//!   aligned by construction) and not handed out again before it is freed;
//!   nothing unwinds: failures are null or `AllocError`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ptr::{self, NonNull};

use allocator_api2::alloc::{AllocError, Allocator};

use crate::engine::alloc::{alloc_block, allocate, fast_local_heap};
use crate::engine::block::{free_block, resize};
use crate::engine::thread_policy::thread_policy;
use crate::engine::{enforce, record};
use crate::policy::Policy;

pub use crate::engine::class::LARGE_THRESHOLD;
pub use crate::engine::machine::MAX_NODES;
pub use crate::engine::thread_policy::{current_policy, set_thread_policy, with_policy};
pub use crate::error::NumaAllocError;

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
        enforce::placement_enforced()
    }

    /// Starts (`true`) or stops recording every large block (at least
    /// [`LARGE_THRESHOLD`] bytes) in the allocation [`registry`](crate::registry),
    /// labelled `heap`, with the policy that placed it (`remote -> node:1`), the
    /// allocating thread and its node, so the monitor can name them. Off by
    /// default; small blocks are never recorded. Process-wide.
    pub fn record_large_blocks(on: bool) {
        record::record_large_blocks(on);
    }

    /// Allocates a block for `layout` under the calling thread's policy, saying why
    /// when it cannot. A zero-sized layout gets a dangling, aligned pointer.
    ///
    /// # Errors
    /// The [`NumaAllocError`] of the policy or the memory that failed.
    pub fn try_allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, NumaAllocError> {
        self.using(|p| allocate(p, layout, false))
            .map(|q| slice(q, layout))
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
        self.using(|p| allocate(p, layout, false))
            .map(|q| slice(q, layout))
    }
}

/// Where an allocator's policy comes from: the calling thread's ([`NumaAlloc`]) or
/// the handle's own ([`PolicyAlloc`]).
trait PolicySource {
    /// Calls `f` with the policy (`None` for Local).
    fn using<R>(&self, f: impl FnOnce(Option<&Policy>) -> R) -> R;
}

impl PolicySource for NumaAlloc {
    #[inline(always)]
    fn using<R>(&self, f: impl FnOnce(Option<&Policy>) -> R) -> R {
        thread_policy(f)
    }
}

impl PolicySource for PolicyAlloc {
    #[inline(always)]
    fn using<R>(&self, f: impl FnOnce(Option<&Policy>) -> R) -> R {
        f(Some(&self.policy))
    }
}

/// The block at `p` as the slice of `layout.size()` bytes the `Allocator` API returns.
fn slice(p: NonNull<u8>, layout: Layout) -> NonNull<[u8]> {
    NonNull::slice_from_raw_parts(p, layout.size())
}

/// The general path of `GlobalAlloc::alloc` and `alloc_zeroed`.
#[inline(never)]
fn global_alloc_slow(layout: Layout, zero: bool) -> *mut u8 {
    thread_policy(|p| alloc_block(p, layout, zero)).map_or(ptr::null_mut(), NonNull::as_ptr)
}

// SAFETY: see the module docs: blocks come from mimalloc or fresh mappings,
// aligned as asked and not handed out twice; dealloc and realloc forward to
// free_block and resize, whose contracts are GlobalAlloc's. Nothing unwinds.
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
        let Ok(new) = Layout::from_size_align(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        // SAFETY: GlobalAlloc::realloc's contract (a live block for `layout`, a
        // non-zero new size) covers resize's.
        self.using(|p| unsafe { resize(p, ptr, layout, new, false) })
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }
}

/// `unsafe impl Allocator` for a [`PolicySource`], every method forwarding to
/// `allocate`, `free_block` or `resize` under the source's policy.
macro_rules! forward_allocator {
    ($($ty:ty),*) => {$(
        // SAFETY: see the module docs: blocks stay valid until deallocated through
        // any NumaAlloc or PolicyAlloc (all share the process-wide arenas), and the
        // methods keep allocator-api2's contracts, which are resize's; zero-sized
        // layouts get dangling pointers that deallocate ignores.
        unsafe impl Allocator for $ty {
            #[inline]
            fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
                self.using(|p| allocate(p, layout, false))
                    .map(|q| slice(q, layout))
                    .map_err(|_| AllocError)
            }

            #[inline]
            fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
                self.using(|p| allocate(p, layout, true))
                    .map(|q| slice(q, layout))
                    .map_err(|_| AllocError)
            }

            #[inline]
            unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
                if layout.size() != 0 {
                    // SAFETY: a non-zero-sized block from us made for `layout`
                    // (Allocator::deallocate's contract).
                    unsafe { free_block(ptr.as_ptr(), layout) }
                }
            }

            unsafe fn grow(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, AllocError> {
                // SAFETY: Allocator::grow's contract covers resize's.
                unsafe { resize_to(self, ptr, old, new, false) }
            }

            unsafe fn grow_zeroed(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, AllocError> {
                // SAFETY: Allocator::grow_zeroed's contract covers resize's.
                unsafe { resize_to(self, ptr, old, new, true) }
            }

            unsafe fn shrink(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, AllocError> {
                // SAFETY: Allocator::shrink's contract covers resize's.
                unsafe { resize_to(self, ptr, old, new, false) }
            }
        }
    )*};
}

forward_allocator!(NumaAlloc, PolicyAlloc);

/// allocator-api2's `grow`, `grow_zeroed` and `shrink`: [`resize`] under `a`'s
/// policy, as the `Allocator` API returns it.
///
/// # Safety
/// As [`Allocator::grow`] / [`Allocator::shrink`]: `ptr` is a block currently
/// allocated by this allocator that fits `old`.
#[inline]
unsafe fn resize_to(
    a: &impl PolicySource,
    ptr: NonNull<u8>,
    old: Layout,
    new: Layout,
    zero: bool,
) -> Result<NonNull<[u8]>, AllocError> {
    // SAFETY: the caller's contract (above) is resize's.
    a.using(|p| unsafe { resize(p, ptr.as_ptr(), old, new, zero) })
        .map(|q| slice(q, new))
        .map_err(|_| AllocError)
}
