//! Who owns which elements of a shared array: a [`Partition`] of element ranges by
//! thread, checked against the array and the team, and the owner of every page
//! under the `reorg` layout.

use std::ops::Range;

/// What is wrong with a [`Partition`] for an array.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    /// A range reaches past the array.
    #[error("range {range:?} of thread {thread} reaches past the {len} elements")]
    OutOfBounds {
        /// The range.
        range: Range<usize>,
        /// Its owner.
        thread: usize,
        /// The array's length.
        len: usize,
    },
    /// A range is owned by a thread the team does not have.
    #[error("range {range:?} belongs to thread {thread}, but the team has {threads} threads")]
    NoSuchThread {
        /// The range.
        range: Range<usize>,
        /// The owner named.
        thread: usize,
        /// Threads in the team.
        threads: usize,
    },
    /// Two ranges share elements.
    #[error(
        "ranges {first:?} (thread {first_thread}) and {second:?} (thread {second_thread}) overlap"
    )]
    Overlap {
        /// One range.
        first: Range<usize>,
        /// Its owner.
        first_thread: usize,
        /// The other.
        second: Range<usize>,
        /// Its owner.
        second_thread: usize,
    },
}

/// Who owns which elements of a shared array: element ranges, each with its owning
/// thread. [`DataLayout::Reorg`](super::DataLayout::Reorg) places each range on its owner's node, and
/// [`Shared::own_mut`](super::Shared::own_mut) gives a thread its range (under
/// either layout). Ranges may come in any order; they must not overlap; elements no
/// range covers are padding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Partition {
    ranges: Vec<(Range<usize>, usize)>,
}

impl Partition {
    /// Ranges with their owners (checked by [`Partition::validate`] when an array
    /// is made).
    pub fn by_thread(ranges: Vec<(Range<usize>, usize)>) -> Partition {
        Partition { ranges }
    }

    /// `len` elements in `threads` contiguous blocks: thread `i` owns
    /// `i * len / threads .. (i + 1) * len / threads`.
    pub fn even(len: usize, threads: usize) -> Partition {
        let at = |i: usize| (i as u128 * len as u128 / threads.max(1) as u128) as usize;
        Partition {
            ranges: (0..threads).map(|i| (at(i)..at(i + 1), i)).collect(),
        }
    }

    /// The ranges and their owners, as given.
    pub fn ranges(&self) -> &[(Range<usize>, usize)] {
        &self.ranges
    }

    /// Checks the ranges against an array of `len` elements and a team of
    /// `threads` threads.
    ///
    /// # Errors
    /// The first [`PartitionError`] found.
    pub fn validate(&self, len: usize, threads: usize) -> Result<(), PartitionError> {
        for (r, t) in &self.ranges {
            if *t >= threads {
                return Err(PartitionError::NoSuchThread {
                    range: r.clone(),
                    thread: *t,
                    threads,
                });
            }
            if r.end > len || r.start > r.end {
                return Err(PartitionError::OutOfBounds {
                    range: r.clone(),
                    thread: *t,
                    len,
                });
            }
        }
        let mut sorted: Vec<&(Range<usize>, usize)> =
            self.ranges.iter().filter(|(r, _)| !r.is_empty()).collect();
        sorted.sort_by_key(|(r, _)| r.start);
        for w in sorted.windows(2) {
            let ((a, ta), (b, tb)) = (w[0], w[1]);
            if b.start < a.end {
                return Err(PartitionError::Overlap {
                    first: a.clone(),
                    first_thread: *ta,
                    second: b.clone(),
                    second_thread: *tb,
                });
            }
        }
        Ok(())
    }

    /// The owning thread of every page of an array of `len` elements of
    /// `elem_bytes` bytes each laid out from a page boundary: the lowest-numbered
    /// thread owning an element on the page; pages without owned elements take the
    /// owner of the nearest owned page before them (after them at the start);
    /// thread 0 if nothing is owned. The partition must be valid for `len`.
    pub fn page_owners(&self, len: usize, elem_bytes: usize, page_bytes: usize) -> Vec<usize> {
        let pages = (len * elem_bytes).div_ceil(page_bytes);
        let mut owner = vec![usize::MAX; pages];
        for (r, t) in &self.ranges {
            if r.is_empty() {
                continue;
            }
            let first = r.start * elem_bytes / page_bytes;
            let last = (r.end * elem_bytes - 1) / page_bytes;
            for o in &mut owner[first..=last] {
                *o = (*o).min(*t);
            }
        }
        let lead = owner
            .iter()
            .copied()
            .find(|&o| o != usize::MAX)
            .unwrap_or(0);
        let mut prev = lead;
        for o in &mut owner {
            if *o == usize::MAX {
                *o = prev;
            } else {
                prev = *o;
            }
        }
        owner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn even_partitions_cover_the_array_in_order() {
        let p = Partition::even(10, 3);
        assert_eq!(p.ranges(), &[(0..3, 0), (3..6, 1), (6..10, 2)]);
        assert!(p.validate(10, 3).is_ok());
        let p = Partition::even(2, 4);
        let total: usize = p.ranges().iter().map(|(r, _)| r.len()).sum();
        assert_eq!(total, 2);
        assert!(p.validate(2, 4).is_ok());
    }

    #[test]
    fn bad_partitions_name_the_culprit() {
        let past = Partition::by_thread(vec![(0..5, 0), (5..11, 1)]);
        assert_eq!(
            past.validate(10, 2),
            Err(PartitionError::OutOfBounds {
                range: 5..11,
                thread: 1,
                len: 10
            })
        );
        let thread = Partition::by_thread(vec![(0..5, 0), (5..10, 2)]);
        assert!(matches!(
            thread.validate(10, 2),
            Err(PartitionError::NoSuchThread { thread: 2, .. })
        ));
        let overlap = Partition::by_thread(vec![(4..8, 1), (0..5, 0)]);
        let e = overlap.validate(10, 2).unwrap_err();
        assert_eq!(
            e,
            PartitionError::Overlap {
                first: 0..5,
                first_thread: 0,
                second: 4..8,
                second_thread: 1
            }
        );
        assert!(e.to_string().contains("0..5"), "{e}");
    }

    #[test]
    fn straddling_pages_go_to_the_lower_thread_and_padding_to_its_neighbour() {
        // 8-byte elements, 64-byte "pages" (8 elements each): 4 pages.
        let p = Partition::by_thread(vec![(12..32, 0), (4..12, 1)]);
        // Page 0: elements 0-7, owner 1 (4..8) => 1. Page 1: 8-15, owners 1 and 0 => 0.
        assert_eq!(p.page_owners(32, 8, 64), vec![1, 0, 0, 0]);
        // Padding at the start takes the first owned page's owner; in the middle, the
        // previous one.
        let p = Partition::by_thread(vec![(16..24, 2), (32..40, 1)]);
        assert_eq!(p.page_owners(40, 8, 64), vec![2, 2, 2, 2, 1]);
        // Nothing owned: thread 0.
        assert_eq!(Partition::default().page_owners(9, 8, 64), vec![0, 0]);
    }
}
