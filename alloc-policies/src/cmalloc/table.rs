//! The table of live large blocks (address, size, alignment) that the C calls need,
//! since `free` and `realloc` are not told how large a block is: open addressing
//! with linear probing and backward-shift deletion (no tombstones), in slots of its
//! own mapping (nothing here allocates), under a lock: large blocks cost a system
//! call each, which dwarfs the lock.
//!
//! The probing works on any power-of-two slice of slots ([`insert_in`],
//! [`find_in`], [`remove_in`]), so that the tests (and Miri) run it on small ones.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::sys::anon::leak_zeroed;

/// Slots in the table of live large blocks (a power of two). Each holds one live
/// block; a process with more live large blocks than this (at least 1 MiB each,
/// so a petabyte) gets null from further large allocations.
pub(super) const SLOTS: usize = 1 << 20;

/// Large blocks live now.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Large blocks live now (read without the lock).
pub(super) fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// One live large block; address 0 is an empty slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Zeroable)]
pub(super) struct Entry {
    /// Its start.
    pub(super) addr: usize,
    /// Its size in bytes.
    pub(super) size: usize,
    /// Its alignment.
    pub(super) align: usize,
}

/// The empty slot.
const EMPTY: Entry = Entry {
    addr: 0,
    size: 0,
    align: 0,
};

/// Live large blocks in [`SLOTS`] slots, mapped on first use.
pub(super) struct Table {
    slots: Option<&'static mut [Entry]>,
}

impl Table {
    /// A table whose slots are not mapped yet.
    pub(super) const fn new() -> Table {
        Table { slots: None }
    }

    /// The slots, mapped on first use; `None` if the kernel refuses the mapping.
    fn slots(&mut self) -> Option<&mut [Entry]> {
        if self.slots.is_none() {
            self.slots = leak_zeroed(SLOTS);
        }
        self.slots.as_deref_mut()
    }

    /// Records `e`; false if the table is full (or cannot be mapped).
    pub(super) fn insert(&mut self, e: Entry) -> bool {
        let done = self.slots().is_some_and(|s| insert_in(s, e));
        if done {
            LIVE.fetch_add(1, Ordering::Relaxed);
        }
        done
    }

    /// The block that starts at `addr`.
    pub(super) fn find(&mut self, addr: usize) -> Option<Entry> {
        find_in(self.slots()?, addr).map(|(_, e)| e)
    }

    /// Forgets the block that starts at `addr`, returning it.
    pub(super) fn remove(&mut self, addr: usize) -> Option<Entry> {
        let removed = remove_in(self.slots()?, addr);
        if removed.is_some() {
            LIVE.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }
}

/// The slot where probing for `addr` starts, among `len` (a power of two, at
/// least 2).
fn home(addr: usize, len: usize) -> usize {
    ((addr >> 12).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (usize::BITS - len.trailing_zeros()))
        & (len - 1)
}

/// Puts `e` in the first free slot from its home on; false if none is free.
pub(super) fn insert_in(slots: &mut [Entry], e: Entry) -> bool {
    let len = slots.len();
    let mut i = home(e.addr, len);
    for _ in 0..len {
        if slots[i].addr == 0 {
            slots[i] = e;
            return true;
        }
        i = (i + 1) & (len - 1);
    }
    false
}

/// The slot and entry of the block at `addr`.
pub(super) fn find_in(slots: &[Entry], addr: usize) -> Option<(usize, Entry)> {
    let len = slots.len();
    let mut i = home(addr, len);
    for _ in 0..len {
        match slots[i].addr {
            0 => return None,
            a if a == addr => return Some((i, slots[i])),
            _ => i = (i + 1) & (len - 1),
        }
    }
    None
}

/// Empties the slot of the block at `addr` and returns its entry.
pub(super) fn remove_in(slots: &mut [Entry], addr: usize) -> Option<Entry> {
    let len = slots.len();
    let (mut hole, found) = find_in(slots, addr)?;
    // Backward-shift deletion: move later entries of the run into the hole
    // when their home is not between the hole and them. The run ends at the
    // next empty slot, or after every other slot of a full table.
    let mut j = hole;
    for _ in 1..len {
        j = (j + 1) & (len - 1);
        if slots[j].addr == 0 {
            break;
        }
        let home = home(slots[j].addr, len);
        let between = if hole <= j {
            hole < home && home <= j
        } else {
            hole < home || home <= j
        };
        if !between {
            slots[hole] = slots[j];
            hole = j;
        }
    }
    slots[hole] = EMPTY;
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(addr: usize) -> Entry {
        Entry {
            addr,
            size: addr / 2,
            align: 16,
        }
    }

    #[test]
    fn every_block_is_found_until_removed_in_any_order() {
        let mut slots = vec![EMPTY; 64];
        // Addresses one page apart collide in runs; 48 of 64 slots fill up.
        let addrs: Vec<usize> = (1..=48).map(|i| i * 4096 * 3).collect();
        for &a in &addrs {
            assert!(insert_in(&mut slots, entry(a)));
        }
        for &a in &addrs {
            assert_eq!(find_in(&slots, a).map(|(_, e)| e), Some(entry(a)));
        }
        assert_eq!(find_in(&slots, 5), None);
        for (k, &a) in addrs.iter().enumerate().filter(|(k, _)| k % 3 != 1) {
            assert_eq!(remove_in(&mut slots, a), Some(entry(a)), "block {k}");
            assert_eq!(find_in(&slots, a), None);
        }
        for (k, &a) in addrs.iter().enumerate() {
            let want = (k % 3 == 1).then(|| entry(a));
            assert_eq!(find_in(&slots, a).map(|(_, e)| e), want, "block {k}");
        }
        assert_eq!(remove_in(&mut slots, addrs[0]), None);
    }

    #[test]
    fn a_full_table_refuses_more() {
        let mut slots = vec![EMPTY; 4];
        for a in 1..=4 {
            assert!(insert_in(&mut slots, entry(a << 12)));
        }
        assert!(!insert_in(&mut slots, entry(5 << 12)));
        assert_eq!(remove_in(&mut slots, 3 << 12), Some(entry(3 << 12)));
        assert!(insert_in(&mut slots, entry(5 << 12)));
        for a in [1, 2, 4, 5] {
            assert!(find_in(&slots, a << 12).is_some(), "block {a}");
        }
    }

    #[test]
    fn homes_spread_over_the_slots() {
        let mut seen = [false; 16];
        for a in 0..64 {
            seen[home(a << 12, 16)] = true;
        }
        assert!(seen.iter().filter(|&&s| s).count() > 8);
        assert!((0..1000).all(|a| home(a << 12, SLOTS) < SLOTS));
    }
}
