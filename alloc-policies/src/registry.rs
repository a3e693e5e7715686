//! The allocation registry: every live [`Region`](crate::region::Region) (and, when
//! the global allocator is asked to, every large heap allocation) with a label, the
//! thread that made it, that thread's node, its address, size and policy. The
//! monitor names the data areas it reports from it.
//!
//! ```
//! use alloc_policies::registry::{self, AllocKind, Allocation, Label};
//!
//! let buf = vec![0u8; 1 << 20];
//! let id = registry::register(
//!     Allocation::here(AllocKind::Heap, Label::name("scratch"), buf.as_ptr() as usize, buf.len())
//!         .with_policy("float"),
//! );
//! let found = registry::find(buf.as_ptr() as usize + 100).unwrap();
//! assert_eq!(found.label.to_string(), "scratch");
//! registry::unregister(id);
//! ```
//!
//! # The rule: the registry never allocates through the global allocator
//!
//! The global allocator of this crate calls [`register`] and [`unregister_at`] from
//! inside `GlobalAlloc::alloc` and `dealloc`. Were the registry to allocate through
//! the global allocator there, it would recurse into itself, and, holding its own
//! lock, deadlock. So, on every path reachable from [`register`] and the
//! `unregister` functions:
//!
//! - the table lives in memory from [`std::alloc::System`] (an
//!   `allocator_api2::vec::Vec<_, System>`), grown with `try_reserve` so that a
//!   failure drops the record ([`dropped`] counts them) instead of aborting;
//! - an [`Allocation`] is plain `Copy` data: its label and policy are [`InlineStr`]s
//!   (a fixed inline buffer, truncated, never a `String`) or a `#[track_caller]`
//!   [`Location`], which is `'static`;
//! - the lock is a `std::sync::Mutex`, which on Linux is a futex word and does not
//!   allocate; no code running under it allocates through the global allocator;
//! - the thread id and node come from the `gettid` and `getcpu` system calls.
//!
//! [`snapshot`] copies the table under the lock into `System` memory and builds the
//! `Vec` it returns after releasing the lock, so it may be called from a thread that
//! allocates concurrently.

use std::fmt;
use std::ops::Deref;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use allocator_api2::alloc::System;
use rset::NodeId;
use rset::sys::affinity::{self, Tid};

/// Bytes an [`InlineStr`] holds.
pub const INLINE_STR_BYTES: usize = 47;

/// A short string stored inline (at most [`INLINE_STR_BYTES`] bytes of UTF-8),
/// `Copy`, never allocated. Longer text is cut at a character boundary.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct InlineStr {
    buf: [u8; INLINE_STR_BYTES],
    len: u8,
}

impl InlineStr {
    /// The empty string.
    pub const EMPTY: InlineStr = InlineStr {
        buf: [0; INLINE_STR_BYTES],
        len: 0,
    };

    /// `s`, cut to [`INLINE_STR_BYTES`] bytes at a character boundary.
    pub fn new(s: &str) -> InlineStr {
        let mut out = InlineStr::EMPTY;
        out.push_str(s);
        out
    }

    /// Appends as much of `s` as fits; returns false when some was cut.
    fn push_str(&mut self, s: &str) -> bool {
        let len = self.len as usize;
        let room = INLINE_STR_BYTES - len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.buf[len..len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len = (len + take) as u8;
        take == s.len()
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only whole characters of valid strings are ever copied in, so this never
        // fails; an empty string is the harmless answer if it somehow did.
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or_default()
    }

    /// Formats `value` into a fresh inline string (cut when too long). Allocates
    /// only if `value`'s own `Display` does.
    pub fn display(value: &dyn fmt::Display) -> InlineStr {
        let mut out = InlineStr::EMPTY;
        // Our `write_str` never fails (it truncates), so neither does this.
        let _ = fmt::write(&mut out, format_args!("{value}"));
        out
    }
}

impl Default for InlineStr {
    fn default() -> Self {
        InlineStr::EMPTY
    }
}

impl fmt::Write for InlineStr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

impl Deref for InlineStr {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for InlineStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for InlineStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// What an allocation is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// A name the program gave (`ocean.psi`).
    Name(InlineStr),
    /// No name: where in the source it was allocated (`#[track_caller]`).
    Caller(&'static Location<'static>),
}

impl Label {
    /// A given name (cut to [`INLINE_STR_BYTES`] bytes).
    pub fn name(name: &str) -> Label {
        Label::Name(InlineStr::new(name))
    }

    /// The caller's source location (through every `#[track_caller]` function).
    #[track_caller]
    pub fn caller() -> Label {
        Label::Caller(Location::caller())
    }
}

impl fmt::Display for Label {
    /// The name, or `file:line`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Label::Name(s) => f.write_str(s),
            Label::Caller(loc) => write!(f, "{}:{}", loc.file(), loc.line()),
        }
    }
}

/// Which allocator made an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AllocKind {
    /// A [`Region`](crate::region::Region).
    Region,
    /// A large allocation of the global allocator.
    Heap,
}

impl fmt::Display for AllocKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AllocKind::Region => "region",
            AllocKind::Heap => "heap",
        })
    }
}

/// The registry's id for one allocation (never reused within a process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AllocId(pub u64);

impl fmt::Display for AllocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One live allocation. Plain `Copy` data (see the module docs for why).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    /// Its id ([`register`] assigns it; 0 before).
    pub id: AllocId,
    /// Its name or the source location that made it.
    pub label: Label,
    /// First byte.
    pub addr: usize,
    /// Length in bytes.
    pub len: usize,
    /// The policy it was made with, as text (`striped:4`), possibly empty.
    pub policy: InlineStr,
    /// The allocating thread.
    pub thread: Tid,
    /// The allocating thread's node when it allocated.
    pub node: NodeId,
    /// Region or heap.
    pub kind: AllocKind,
}

impl Allocation {
    /// An allocation made now by the calling thread (its id and current node are
    /// read with `gettid` and `getcpu`); no policy text.
    pub fn here(kind: AllocKind, label: Label, addr: usize, len: usize) -> Allocation {
        Allocation {
            id: AllocId(0),
            label,
            addr,
            len,
            policy: InlineStr::EMPTY,
            thread: affinity::gettid(),
            node: crate::policy::current_node(),
            kind,
        }
    }

    /// With this policy text (cut to [`INLINE_STR_BYTES`] bytes).
    pub fn with_policy(mut self, policy: &str) -> Allocation {
        self.policy = InlineStr::new(policy);
        self
    }

    /// With this allocating node (instead of the node read by [`Allocation::here`]).
    pub fn with_node(mut self, node: NodeId) -> Allocation {
        self.node = node;
        self
    }

    /// One past the last byte.
    pub fn end(&self) -> usize {
        self.addr.saturating_add(self.len)
    }

    /// Whether `addr` lies inside.
    pub fn contains(&self, addr: usize) -> bool {
        addr >= self.addr && addr < self.end()
    }
}

impl fmt::Display for Allocation {
    /// `ocean.psi: 0x7f..000+4194304 striped:4, thread 812 on node 0 (region #3)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:#x}+{}", self.label, self.addr, self.len)?;
        if !self.policy.is_empty() {
            write!(f, " {}", self.policy)?;
        }
        write!(
            f,
            ", thread {} on node {} ({} #{})",
            self.thread, self.node, self.kind, self.id
        )
    }
}

type Table = allocator_api2::vec::Vec<Allocation, System>;

/// Live allocations sorted by address.
static TABLE: Mutex<Table> = Mutex::new(Table::new_in(System));
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static DROPPED: AtomicU64 = AtomicU64::new(0);

fn table() -> MutexGuard<'static, Table> {
    // A panic while holding the lock cannot leave the table inconsistent (every
    // change is one insert or remove), so a poisoned lock is still usable.
    TABLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Records `alloc` (its `id` field is replaced) and returns its id. An entry at
/// the same address (a stale one: the memory was freed without unregistering) is
/// replaced. Never allocates through the global allocator; if the table cannot
/// grow, the record is dropped and counted by [`dropped`].
pub fn register(mut alloc: Allocation) -> AllocId {
    let id = AllocId(NEXT_ID.fetch_add(1, Ordering::Relaxed));
    alloc.id = id;
    let mut t = table();
    match t.binary_search_by_key(&alloc.addr, |a| a.addr) {
        Ok(i) => t[i] = alloc,
        Err(i) => {
            if t.try_reserve(1).is_err() {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            } else {
                t.insert(i, alloc);
            }
        }
    }
    id
}

/// Forgets the allocation with this id; returns it, or `None` if it is not
/// recorded. Linear in the number of live allocations: where the address is at
/// hand (a `dealloc`), [`unregister_at`] is logarithmic.
pub fn unregister(id: AllocId) -> Option<Allocation> {
    let mut t = table();
    let i = t.iter().position(|a| a.id == id)?;
    Some(t.remove(i))
}

/// Forgets the allocation that starts at `addr`; returns it, or `None`.
pub fn unregister_at(addr: usize) -> Option<Allocation> {
    let mut t = table();
    let i = t.binary_search_by_key(&addr, |a| a.addr).ok()?;
    Some(t.remove(i))
}

/// The live allocation that contains `addr`, if any.
pub fn find(addr: usize) -> Option<Allocation> {
    let t = table();
    // The last allocation starting at or below addr is the only candidate:
    // allocations do not overlap.
    let i = t.partition_point(|a| a.addr <= addr).checked_sub(1)?;
    let a = t[i];
    a.contains(addr).then_some(a)
}

/// Replaces the policy text of the allocation with this id; false if it is not
/// recorded.
pub fn set_policy(id: AllocId, policy: InlineStr) -> bool {
    let mut t = table();
    match t.iter_mut().find(|a| a.id == id) {
        Some(a) => {
            a.policy = policy;
            true
        }
        None => false,
    }
}

/// The live allocation with this id, if any.
pub fn get(id: AllocId) -> Option<Allocation> {
    table().iter().find(|a| a.id == id).copied()
}

/// Every live allocation, sorted by address.
pub fn snapshot() -> Vec<Allocation> {
    let copy: Table = {
        let t = table();
        let mut copy = Table::new_in(System);
        if copy.try_reserve_exact(t.len()).is_err() {
            return Vec::new();
        }
        copy.extend_from_slice(&t);
        copy
    };
    // The lock is released: allocating through the global allocator is fine now.
    copy.iter().copied().collect()
}

/// How many allocations are recorded now.
pub fn live() -> usize {
    table().len()
}

/// How many records were dropped because the table could not grow.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heap(addr: usize, len: usize, name: &str) -> Allocation {
        Allocation::here(AllocKind::Heap, Label::name(name), addr, len)
    }

    #[test]
    fn inline_strings_cut_at_char_boundaries() {
        assert_eq!(InlineStr::new("ocean.psi").as_str(), "ocean.psi");
        let long = "é".repeat(40); // 80 bytes
        let s = InlineStr::new(&long);
        assert_eq!(s.len(), 46);
        assert!(s.chars().all(|c| c == 'é'));
        assert_eq!(
            InlineStr::display(&format_args!("{}:{}", "a", 7)).as_str(),
            "a:7"
        );
    }

    #[test]
    fn caller_labels_name_this_file() {
        let l = Label::caller();
        assert!(l.to_string().starts_with(file!()), "{l}");
    }

    // Addresses far from anything real so that tests running in parallel (and
    // regions made by other tests) do not collide.
    const BASE: usize = 0x7ff0_0000_0000;

    #[test]
    #[cfg_attr(miri, ignore)] // records name the thread and its node (gettid, getcpu)
    fn find_register_and_unregister() {
        let a = register(heap(BASE, 100, "a").with_policy("local"));
        let b = register(heap(BASE + 1000, 10, "b"));
        assert_eq!(find(BASE + 99).unwrap().id, a);
        assert_eq!(find(BASE + 99).unwrap().policy.as_str(), "local");
        assert!(find(BASE + 100).is_none_or(|x| x.id != a && x.id != b));
        assert_eq!(find(BASE + 1005).unwrap().id, b);
        assert!(snapshot().iter().any(|x| x.id == a));
        assert_eq!(get(b).unwrap().label, Label::name("b"));
        assert_eq!(unregister(a).unwrap().addr, BASE);
        assert!(unregister(a).is_none());
        assert_eq!(unregister_at(BASE + 1000).unwrap().id, b);
        assert!(find(BASE + 1005).is_none_or(|x| x.id != b));
    }

    #[test]
    #[cfg_attr(miri, ignore)] // records name the thread and its node (gettid, getcpu)
    fn a_stale_entry_at_the_same_address_is_replaced() {
        let addr = BASE + 0x10_0000;
        let old = register(heap(addr, 8, "old"));
        let new = register(heap(addr, 16, "new"));
        assert!(get(old).is_none());
        assert_eq!(find(addr + 12).unwrap().id, new);
        unregister(new);
    }

    #[test]
    #[cfg_attr(miri, ignore)] // records name the thread and its node (gettid, getcpu)
    fn allocations_print_on_one_line() {
        let mut a = heap(0x1000, 64, "grid").with_policy("striped:4");
        a.id = AllocId(3);
        let s = a.to_string();
        assert!(s.starts_with("grid: 0x1000+64 striped:4, thread "), "{s}");
        assert!(s.ends_with("(heap #3)"), "{s}");
    }

    /// A record made by hand (no gettid or getcpu, so Miri runs the bookkeeping).
    fn record(addr: usize, len: usize) -> Allocation {
        Allocation {
            id: AllocId(0),
            label: Label::name("hand"),
            addr,
            len,
            policy: InlineStr::EMPTY,
            thread: Tid(1),
            node: NodeId(0),
            kind: AllocKind::Region,
        }
    }

    #[test]
    fn records_are_found_by_any_address_inside_them() {
        let base = BASE + 0x20_0000;
        let a = register(record(base, 4096));
        let b = register(record(base + 8192, 100));
        assert_ne!(a, b);
        assert_eq!(find(base).map(|x| x.id), Some(a));
        assert_eq!(find(base + 4095).map(|x| x.id), Some(a));
        assert!(find(base + 4096).is_none_or(|x| x.id != a && x.id != b));
        assert_eq!(find(base + 8199).map(|x| x.id), Some(b));
        assert!(set_policy(b, InlineStr::new("remote -> node:1")));
        assert_eq!(get(b).unwrap().policy.as_str(), "remote -> node:1");
        assert_eq!(unregister_at(base + 8192).map(|x| x.id), Some(b));
        assert!(!set_policy(b, InlineStr::EMPTY));
        assert_eq!(unregister(a).map(|x| x.addr), Some(base));
        assert!(get(a).is_none());
    }
}
