//! Large blocks in the allocation [`registry`], when asked to
//! ([`NumaAlloc::record_large_blocks`](crate::NumaAlloc::record_large_blocks)):
//! each one labelled `heap`, with the policy that placed it (`remote -> node:1`).

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

use super::place::Placement;
use crate::policy::Policy;
use crate::registry::{self, AllocKind, Allocation, InlineStr, Label};

/// Whether large blocks are recorded in the [`registry`].
static RECORD_LARGE: AtomicBool = AtomicBool::new(false);

/// Starts (`true`) or stops recording large blocks.
pub(crate) fn record_large_blocks(on: bool) {
    RECORD_LARGE.store(on, Ordering::Relaxed);
}

/// Records a freshly mapped large block in the registry, when asked to.
pub(super) fn large_mapped(
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
pub(super) fn large_unmapped(block: *mut u8, moved_to: Option<(NonNull<u8>, usize)>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::machine::NodeMask;

    #[test]
    fn policies_print_with_their_placement() {
        let both = NodeMask::default().with(0).with(1);
        let text = |p: Option<&Policy>, pl| PolicyText(p, pl).to_string();
        assert_eq!(text(None, Placement::Node(0)), "local -> node:0");
        assert_eq!(
            text(Some(&Policy::Remote), Placement::Node(1)),
            "remote -> node:1"
        );
        assert_eq!(
            text(
                Some(&Policy::Interleave(Default::default())),
                Placement::Interleave(both)
            ),
            "interleave -> interleave:0,1"
        );
        assert_eq!(
            text(Some(&Policy::Float), Placement::FirstTouch),
            "float -> float"
        );
        assert_eq!(
            Placement::Stripes {
                stride: 4,
                nodes: both
            }
            .to_string(),
            "striped:4:0,1"
        );
    }
}
