//! Ids of CPUs and NUMA nodes, and sorted sets of them.
//!
//! [`CpuId`] and [`NodeId`] are the numbers the operating system uses (hwloc's
//! `os_index`, Linux's `cpuN` / `nodeN`), never hwloc's logical indexes. One
//! generic [`IdSet`] sits behind the two set types [`CpuSet`] and [`NodeSet`], so
//! a set of CPUs can never be passed where a set of nodes is expected.

use std::fmt;
use std::ops::{BitAnd, BitOr, Sub};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::list::{self, ListError};

/// The number of a CPU (a hardware thread, hwloc's PU) as the OS numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CpuId(pub u32);

/// The number of a NUMA node as the OS numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u32);

/// Why a CPU or node number could not be read. Carries the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a {what} number")]
pub struct ParseIdError {
    /// The text that was given.
    pub input: String,
    /// `"CPU"` or `"node"`.
    pub what: &'static str,
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::CpuId {}
    impl Sealed for super::NodeId {}
}

/// What [`CpuId`] and [`NodeId`] have in common; lets [`IdSet`] hold either.
pub trait Id: Copy + Ord + fmt::Debug + sealed::Sealed {
    /// The name of this kind of id in messages: `"CPU"` or `"node"`.
    const WHAT: &'static str;
    /// The name of the set type: `"CpuSet"` or `"NodeSet"`.
    const SET_NAME: &'static str;
    /// Wraps a raw number.
    fn from_raw(raw: u32) -> Self;
    /// The raw number.
    fn raw(self) -> u32;
}

macro_rules! id_impls {
    ($ty:ident, $what:literal, $set:literal) => {
        impl Id for $ty {
            const WHAT: &'static str = $what;
            const SET_NAME: &'static str = $set;
            fn from_raw(raw: u32) -> Self {
                $ty(raw)
            }
            fn raw(self) -> u32 {
                self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $ty {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, ParseIdError> {
                let t = s.trim();
                match t.parse::<u32>() {
                    Ok(v) if t.bytes().all(|b| b.is_ascii_digit()) => Ok($ty(v)),
                    _ => Err(ParseIdError {
                        input: s.to_owned(),
                        what: $what,
                    }),
                }
            }
        }

        impl From<u32> for $ty {
            fn from(raw: u32) -> Self {
                $ty(raw)
            }
        }
    };
}

id_impls!(CpuId, "CPU", "CpuSet");
id_impls!(NodeId, "node", "NodeSet");

/// A sorted set of ids without duplicates. Use it as [`CpuSet`] or [`NodeSet`].
///
/// Displays in list form (`0-3,5`, the empty set as an empty string), parses
/// from it, and serializes as a JSON array of numbers.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct IdSet<I: Id> {
    /// Strictly increasing.
    ids: Vec<I>,
}

/// A set of CPUs.
pub type CpuSet = IdSet<CpuId>;
/// A set of NUMA nodes.
pub type NodeSet = IdSet<NodeId>;

impl<I: Id> IdSet<I> {
    /// The empty set.
    pub const fn new() -> Self {
        IdSet { ids: Vec::new() }
    }

    /// Number of ids in the set.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Truth that the set has no ids.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Truth that `id` is in the set.
    pub fn contains(&self, id: I) -> bool {
        self.ids.binary_search(&id).is_ok()
    }

    /// Adds `id`; returns whether it was new.
    pub fn insert(&mut self, id: I) -> bool {
        match self.ids.binary_search(&id) {
            Ok(_) => false,
            Err(at) => {
                self.ids.insert(at, id);
                true
            }
        }
    }

    /// Truth that every id of `self` is in `other`.
    pub fn is_subset(&self, other: &Self) -> bool {
        let mut theirs = other.ids.iter().peekable();
        self.ids.iter().all(|id| {
            while theirs.next_if(|t| *t < id).is_some() {}
            theirs.next_if_eq(&id).is_some()
        })
    }

    /// The ids in increasing order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = I> + ExactSizeIterator + '_ {
        self.ids.iter().copied()
    }

    /// The ids in increasing order, as a slice.
    pub fn as_slice(&self) -> &[I] {
        &self.ids
    }

    /// The smallest id, if any.
    pub fn first(&self) -> Option<I> {
        self.ids.first().copied()
    }

    /// The ids in `self`, `other` or both.
    pub fn union(&self, other: &Self) -> Self {
        self.merge(other, true, true, true)
    }

    /// The ids in both `self` and `other`.
    pub fn intersection(&self, other: &Self) -> Self {
        self.merge(other, false, true, false)
    }

    /// The ids in `self` but not in `other`.
    pub fn difference(&self, other: &Self) -> Self {
        self.merge(other, true, false, false)
    }

    /// One pass over both sorted lists, keeping the ids only in `self`, in
    /// both, and only in `other` as the three flags say.
    fn merge(&self, other: &Self, only_self: bool, both: bool, only_other: bool) -> Self {
        let (a, b) = (&self.ids, &other.ids);
        let mut ids = Vec::with_capacity(a.len().max(b.len()));
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            match a[i].cmp(&b[j]) {
                std::cmp::Ordering::Less => {
                    if only_self {
                        ids.push(a[i]);
                    }
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    if only_other {
                        ids.push(b[j]);
                    }
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    if both {
                        ids.push(a[i]);
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        if only_self {
            ids.extend_from_slice(&a[i..]);
        }
        if only_other {
            ids.extend_from_slice(&b[j..]);
        }
        IdSet { ids }
    }

    /// The raw numbers, in increasing order.
    pub fn to_raw(&self) -> Vec<u32> {
        self.ids.iter().map(|id| id.raw()).collect()
    }
}

impl<I: Id> Default for IdSet<I> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I: Id> FromIterator<I> for IdSet<I> {
    fn from_iter<T: IntoIterator<Item = I>>(iter: T) -> Self {
        let mut ids: Vec<I> = iter.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        IdSet { ids }
    }
}

impl<I: Id> Extend<I> for IdSet<I> {
    fn extend<T: IntoIterator<Item = I>>(&mut self, iter: T) {
        self.ids.extend(iter);
        self.ids.sort_unstable();
        self.ids.dedup();
    }
}

impl<'a, I: Id> IntoIterator for &'a IdSet<I> {
    type Item = I;
    type IntoIter = std::iter::Copied<std::slice::Iter<'a, I>>;
    fn into_iter(self) -> Self::IntoIter {
        self.ids.iter().copied()
    }
}

impl<I: Id> fmt::Display for IdSet<I> {
    /// List form: `0-3,5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&list::format_list(&self.to_raw()))
    }
}

impl<I: Id> fmt::Debug for IdSet<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({self})", I::SET_NAME)
    }
}

impl<I: Id> FromStr for IdSet<I> {
    type Err = ListError;
    /// Reads the list form (`0-3,5`) with [`list::parse_list`]; an empty list
    /// is an error.
    fn from_str(s: &str) -> Result<Self, ListError> {
        Ok(list::parse_list(s)?.into_iter().map(I::from_raw).collect())
    }
}

impl<'de, I: Id + Deserialize<'de>> Deserialize<'de> for IdSet<I> {
    /// Any JSON array of numbers; duplicates and order do not matter.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<I>::deserialize(d)?.into_iter().collect())
    }
}

macro_rules! set_op {
    ($trait:ident, $method:ident, $via:ident) => {
        impl<I: Id> $trait<&IdSet<I>> for &IdSet<I> {
            type Output = IdSet<I>;
            fn $method(self, rhs: &IdSet<I>) -> IdSet<I> {
                self.$via(rhs)
            }
        }
        impl<I: Id> $trait for IdSet<I> {
            type Output = IdSet<I>;
            fn $method(self, rhs: IdSet<I>) -> IdSet<I> {
                self.$via(&rhs)
            }
        }
    };
}

set_op!(BitOr, bitor, union);
set_op!(BitAnd, bitand, intersection);
set_op!(Sub, sub, difference);

#[cfg(test)]
mod tests {
    use super::*;

    fn cpus(s: &str) -> CpuSet {
        s.parse().unwrap()
    }

    #[test]
    fn algebra_on_small_sets() {
        let (a, b) = (cpus("0-3,8"), cpus("2-5"));
        assert_eq!((&a | &b).to_string(), "0-5,8");
        assert_eq!((&a & &b).to_string(), "2-3");
        assert_eq!((&a - &b).to_string(), "0-1,8");
        assert!(cpus("2-3").is_subset(&a));
        assert!(!b.is_subset(&a));
        assert!(CpuSet::new().is_subset(&a));
        assert!(a.contains(CpuId(8)) && !a.contains(CpuId(4)));
        assert_eq!(a.len(), 5);
    }

    #[test]
    fn insert_keeps_order() {
        let mut s = NodeSet::new();
        assert!(s.insert(NodeId(3)));
        assert!(s.insert(NodeId(1)));
        assert!(!s.insert(NodeId(3)));
        assert_eq!(s.to_string(), "1,3");
        assert_eq!(format!("{s:?}"), "NodeSet(1,3)");
    }

    #[test]
    fn ids_parse_and_print() {
        assert_eq!("7".parse::<NodeId>(), Ok(NodeId(7)));
        assert_eq!(CpuId(12).to_string(), "12");
        let err = "x1".parse::<CpuId>().unwrap_err();
        assert_eq!(err.to_string(), "`x1` is not a CPU number");
        assert!("+1".parse::<NodeId>().is_err());
    }

    proptest::proptest! {
        /// The merge-based operations agree with `BTreeSet`.
        #[test]
        fn operations_match_a_btreeset(
            a in proptest::collection::btree_set(0u32..64, 0..24),
            b in proptest::collection::btree_set(0u32..64, 0..24),
        ) {
            let set = |s: &std::collections::BTreeSet<u32>| -> CpuSet {
                s.iter().map(|&i| CpuId(i)).collect()
            };
            let raw = |s: std::collections::BTreeSet<&u32>| -> Vec<u32> {
                s.into_iter().copied().collect()
            };
            let (sa, sb) = (set(&a), set(&b));
            proptest::prop_assert_eq!(sa.union(&sb).to_raw(), raw(a.union(&b).collect()));
            proptest::prop_assert_eq!(
                sa.intersection(&sb).to_raw(),
                raw(a.intersection(&b).collect())
            );
            proptest::prop_assert_eq!(
                sa.difference(&sb).to_raw(),
                raw(a.difference(&b).collect())
            );
            proptest::prop_assert_eq!(sa.is_subset(&sb), a.is_subset(&b));
            proptest::prop_assert_eq!(sa.len(), a.len());
            let shown = sa.to_string();
            if !a.is_empty() {
                proptest::prop_assert_eq!(shown.parse::<CpuSet>().unwrap(), sa);
            }
        }
    }

    #[test]
    fn serde_is_an_array_of_numbers() {
        let s = cpus("0-2,5");
        assert_eq!(serde_json::to_string(&s).unwrap(), "[0,1,2,5]");
        let back: CpuSet = serde_json::from_str("[5,0,2,1,1]").unwrap();
        assert_eq!(back, s);
        assert_eq!(serde_json::to_string(&NodeId(3)).unwrap(), "3");
    }
}
