//! Taking a block: the fast path of Local (the thread's cached heap), the heap a
//! small block comes from under any policy, and large blocks mapped with the
//! policy's layout.

use std::alloc::Layout;
use std::ptr::{self, NonNull};

use super::class::is_direct;
use super::machine::{Machine, current_node, machine};
use super::mi::{self, Heap};
use super::thread_policy::thread_is_local;
use super::{arena, place, record};
use crate::error::NumaAllocError;
use crate::policy::Policy;

/// The whole fast path of the global allocator: a small block under Local whose
/// CPU's heap is in the thread's cache. `None` sends the caller to the general path.
#[inline(always)]
pub(crate) fn fast_local_heap(layout: Layout) -> Option<Heap> {
    if is_direct(layout.size(), layout.align()) || !thread_is_local() {
        return None;
    }
    arena::cached_local_heap()
}

/// The heap a small block comes from under `policy` (`None` for Local), or `None`
/// for mimalloc's default heap (Float).
#[inline(always)]
pub(super) fn small_heap(policy: Option<&Policy>) -> Result<Option<Heap>, NumaAllocError> {
    match policy {
        None => local_heap().map(Some),
        Some(Policy::Float) => Ok(None),
        Some(p) => policy_heap(machine(), p),
    }
}

/// Local: the cached heap of the CPU the thread runs on, else the slow lookup.
#[inline(always)]
fn local_heap() -> Result<Heap, NumaAllocError> {
    match arena::cached_local_heap() {
        Some(heap) => Ok(heap),
        None => arena::local_heap(machine()),
    }
}

#[inline(never)]
fn policy_heap(m: &Machine, policy: &Policy) -> Result<Option<Heap>, NumaAllocError> {
    let caller = current_node(m);
    let placement = place::resolve(m, policy, caller)?;
    place::small_node(m, placement, caller)
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
        None => mi::default_alloc(size, align, zero),
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
    let m = machine();
    let caller = current_node(m);
    let placement = match policy {
        None => place::resolve_local(m, caller)?,
        Some(p) => place::resolve(m, p, caller)?,
    };
    let block = place::map_large(placement, size, align)?;
    record::large_mapped(block, size, policy, placement);
    Ok(block)
}

/// A dangling pointer aligned to `align`, for zero-sized blocks.
pub(crate) fn dangling(align: usize) -> NonNull<u8> {
    NonNull::new(ptr::without_provenance_mut::<u8>(align)).unwrap_or(NonNull::dangling())
}

/// allocator-api2 `allocate`, with a typed error: a dangling pointer for a
/// zero-sized layout, else a block of `policy`.
pub(crate) fn allocate(
    policy: Option<&Policy>,
    layout: Layout,
    zero: bool,
) -> Result<NonNull<u8>, NumaAllocError> {
    if layout.size() == 0 {
        return Ok(dangling(layout.align()));
    }
    alloc_block(policy, layout, zero)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_sized_blocks_are_dangling_and_aligned() {
        for align in [1, 8, 4096, 1 << 21] {
            let layout = Layout::from_size_align(0, align).unwrap();
            let p = allocate(Some(&Policy::Remote), layout, true).unwrap();
            assert_eq!(p.as_ptr() as usize % align, 0);
        }
    }
}
