//! Which blocks are small (served by a node's mimalloc arena) and which are
//! direct (a mapping of their own, placed page by page). Decided by the layout
//! alone, so that `dealloc` can tell without looking the block up.

use super::mi::MI_MAX_ARENA_ALIGN;

/// Blocks of at least this many bytes are mapped directly, with the policy's layout
/// applied page by page; smaller ones come from the per-node arenas.
pub const LARGE_THRESHOLD: usize = 1 << 20;

/// Alignments above this are mapped directly too, whatever the size.
pub(crate) const MAX_ARENA_ALIGN: usize = MI_MAX_ARENA_ALIGN;

/// Truth that a block of this size and alignment is mapped directly rather than
/// taken from an arena. Depends on the layout only, so `dealloc` can tell.
#[inline(always)]
pub(crate) fn is_direct(size: usize, align: usize) -> bool {
    size >= LARGE_THRESHOLD || align > MAX_ARENA_ALIGN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_or_over_aligned_blocks_are_direct() {
        assert!(!is_direct(LARGE_THRESHOLD - 1, 8));
        assert!(is_direct(LARGE_THRESHOLD, 8));
        assert!(!is_direct(100, MAX_ARENA_ALIGN));
        assert!(is_direct(100, 2 * MAX_ARENA_ALIGN));
    }
}
