//! `NumaAlloc` as this test binary's global allocator, on the host (usually one
//! node): alloc/free pairs across sizes and alignments, resizing, threads freeing
//! each other's blocks, scoped policies, and typed errors for policies the machine
//! cannot serve. Placement on real nodes is checked in `guest_global_alloc`.
//!
//! # Safety
//! The tests call the `GlobalAlloc` and `Allocator` methods directly: every layout
//! is non-zero-sized where `GlobalAlloc` needs it, every block is read and written
//! only within the size it was made for, and freed or resized exactly once with the
//! layout it was made for.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

use alloc_policies::registry::{self, AllocKind};
use alloc_policies::{
    LARGE_THRESHOLD, NumaAlloc, NumaAllocError, Policy, Stride, current_policy, with_policy,
};
use allocator_api2::alloc::Allocator;
use rset::{NodeId, NodeSet};

#[global_allocator]
static A: NumaAlloc = NumaAlloc::new();

const MIB: usize = 1 << 20;

/// Memory nodes of this machine, from sysfs.
fn memory_nodes() -> Vec<u32> {
    std::fs::read_to_string("/sys/devices/system/node/has_memory")
        .ok()
        .and_then(|s| rset::list::parse_list(s.trim()).ok())
        .unwrap_or_else(|| vec![0])
}

fn sizes() -> Vec<usize> {
    let mut v = vec![
        1, 2, 3, 7, 8, 9, 15, 16, 17, 24, 31, 32, 48, 64, 100, 128, 255, 512, 1000, 1024, 4095,
        4096, 4097, 10_000, 65_536, 100_000, 500_000,
    ];
    v.extend([
        LARGE_THRESHOLD - 1,
        LARGE_THRESHOLD,
        LARGE_THRESHOLD + 1,
        3 * MIB + 5,
        4 * MIB,
    ]);
    v
}

/// Fills a block with a pattern derived from `seed` and checks it back.
fn fill(p: *mut u8, len: usize, seed: u8) {
    // SAFETY: the callers pass live blocks of at least `len` bytes.
    let s = unsafe { std::slice::from_raw_parts_mut(p, len) };
    for (i, b) in s.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(seed);
    }
}

fn check(p: *const u8, len: usize, seed: u8) {
    // SAFETY: the callers pass live blocks of at least `len` bytes.
    let s = unsafe { std::slice::from_raw_parts(p, len) };
    for (i, &b) in s.iter().enumerate() {
        assert_eq!(
            b,
            (i as u8).wrapping_mul(31).wrapping_add(seed),
            "byte {i} of {len}"
        );
    }
}

#[test]
fn alloc_free_pairs_across_sizes_and_alignments() {
    for &size in &sizes() {
        for align in (0..=12).map(|s| 1usize << s) {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero size.
            let p = unsafe { A.alloc(layout) };
            assert!(!p.is_null(), "{layout:?}");
            assert_eq!(p as usize % align, 0, "{layout:?}");
            fill(p, size, size as u8);
            check(p, size, size as u8);
            // SAFETY: allocated above with this layout.
            unsafe { A.dealloc(p, layout) };

            // SAFETY: non-zero size.
            let z = unsafe { A.alloc_zeroed(layout) };
            assert!(!z.is_null(), "{layout:?}");
            // SAFETY: `size` bytes were just allocated.
            let zs = unsafe { std::slice::from_raw_parts(z, size) };
            assert!(zs.iter().all(|&b| b == 0), "alloc_zeroed {layout:?}");
            // SAFETY: allocated above with this layout.
            unsafe { A.dealloc(z, layout) };
        }
    }
}

#[test]
fn alignments_beyond_an_arena_page_are_mapped_and_aligned() {
    for align in [64 << 10, 128 << 10, 2 * MIB, 16 * MIB] {
        for size in [8, 4096, 3 * MIB] {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero size.
            let p = unsafe { A.alloc(layout) };
            assert!(!p.is_null(), "{layout:?}");
            assert_eq!(p as usize % align, 0, "{layout:?}");
            fill(p, size, 7);
            check(p, size, 7);
            // SAFETY: allocated above with this layout.
            unsafe { A.dealloc(p, layout) };
        }
    }
}

#[test]
fn zero_sized_layouts_follow_the_allocator_api_rules() {
    for align in [1, 8, 4096, 1 << 20] {
        let layout = Layout::from_size_align(0, align).unwrap();
        let block = NumaAlloc::new().allocate(layout).unwrap();
        assert_eq!(block.len(), 0);
        assert_eq!(block.as_ptr().cast::<u8>() as usize % align, 0);
        // SAFETY: allocated by this allocator with this layout.
        unsafe { NumaAlloc::new().deallocate(block.cast(), layout) };
    }
    let mut v: allocator_api2::vec::Vec<(), _> = allocator_api2::vec::Vec::new_in(NumaAlloc::new());
    v.push(());
    assert_eq!(v.len(), 1);
    let mut b: allocator_api2::vec::Vec<u64, _> =
        allocator_api2::vec::Vec::new_in(NumaAlloc::new());
    b.reserve(10);
    b.extend(0..10);
    b.clear();
    b.shrink_to_fit();
    assert_eq!(b.capacity(), 0);
}

#[test]
fn realloc_grows_and_shrinks_keeping_contents() {
    let steps = [
        1,
        13,
        64,
        1000,
        4096,
        70_000,
        LARGE_THRESHOLD - 8,
        LARGE_THRESHOLD,
        2 * MIB + 3,
        4 * MIB,
        3 * MIB,
        LARGE_THRESHOLD + 1,
        LARGE_THRESHOLD - 1,
        5000,
        16,
        2,
    ];
    for align in [1, 8, 16, 64, 4096] {
        let mut layout = Layout::from_size_align(steps[0], align).unwrap();
        // SAFETY: non-zero size.
        let mut p = unsafe { A.alloc(layout) };
        assert!(!p.is_null());
        fill(p, layout.size(), 3);
        for &next in &steps[1..] {
            // SAFETY: `p` is live for `layout`; `next` is non-zero.
            let q = unsafe { A.realloc(p, layout, next) };
            assert!(!q.is_null(), "{layout:?} -> {next}");
            assert_eq!(q as usize % align, 0);
            check(q, layout.size().min(next), 3);
            layout = Layout::from_size_align(next, align).unwrap();
            p = q;
            fill(p, next, 3);
        }
        // SAFETY: live for `layout`.
        unsafe { A.dealloc(p, layout) };
    }

    // Through std collections too (RawVec grows by realloc).
    let mut v: Vec<u32> = Vec::new();
    for i in 0..(3 * MIB / 4) as u32 {
        v.push(i);
    }
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u32));
    v.truncate(1000);
    v.shrink_to_fit();
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u32));
}

#[test]
fn allocator_api_grow_zeroed_and_shrink_keep_their_promises() {
    let a = NumaAlloc::with(Policy::Float);
    let old = Layout::from_size_align(3 * MIB, 8).unwrap();
    let p = a.allocate(old).unwrap().cast::<u8>();
    fill(p.as_ptr(), old.size(), 9);
    // Shrink a large block, then grow it zeroed: the stale end of its last page
    // must read as zero.
    let small = Layout::from_size_align(LARGE_THRESHOLD + 100, 8).unwrap();
    // SAFETY: `p` is live for `old`; `small` is not larger.
    let p = unsafe { a.shrink(p, old, small) }.unwrap().cast::<u8>();
    check(p.as_ptr(), small.size(), 9);
    // SAFETY: `p` is live for `small`; `old` is not smaller.
    let p = unsafe { a.grow_zeroed(p, small, old) }
        .unwrap()
        .cast::<u8>();
    check(p.as_ptr(), small.size(), 9);
    let tail = p.as_ptr().wrapping_add(small.size());
    // SAFETY: the block is `old.size()` bytes.
    let tail = unsafe { std::slice::from_raw_parts(tail, old.size() - small.size()) };
    assert!(tail.iter().all(|&b| b == 0));
    // Changing alignment while growing.
    let wider = Layout::from_size_align(4 * MIB, 1 << 16).unwrap();
    // SAFETY: `p` is live for `old`.
    let p = unsafe { a.grow(p, old, wider) }.unwrap().cast::<u8>();
    assert_eq!(p.as_ptr() as usize % (1 << 16), 0);
    check(p.as_ptr(), small.size(), 9);
    // SAFETY: live for `wider`.
    unsafe { a.deallocate(p, wider) };

    // Small blocks: grow_zeroed clears what mimalloc may have reused.
    let l1 = Layout::from_size_align(24, 8).unwrap();
    let l2 = Layout::from_size_align(200, 8).unwrap();
    let p = a.allocate(l1).unwrap().cast::<u8>();
    fill(p.as_ptr(), 24, 1);
    // SAFETY: `p` is live for `l1`.
    let p = unsafe { a.grow_zeroed(p, l1, l2) }.unwrap().cast::<u8>();
    check(p.as_ptr(), 24, 1);
    // SAFETY: the block is 200 bytes.
    let rest = unsafe { std::slice::from_raw_parts(p.as_ptr().wrapping_add(24), 176) };
    assert!(rest.iter().all(|&b| b == 0));
    // SAFETY: live for `l2`.
    unsafe { a.deallocate(p, l2) };
}

#[test]
fn threads_free_each_others_blocks() {
    let threads = 4;
    let rounds = 20_000;
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..threads).map(|_| mpsc::channel::<Vec<u8>>()).unzip();
    std::thread::scope(|s| {
        for (t, rx) in receivers.into_iter().enumerate() {
            let to = senders[(t + 1) % threads].clone();
            s.spawn(move || {
                let mut kept: Vec<Box<[u8]>> = Vec::new();
                for i in 0..rounds {
                    let size = 1 + (i * 37 + t * 101) % 700;
                    let v = vec![(i % 251) as u8; size];
                    if i % 3 == 0 {
                        to.send(v).unwrap();
                    } else {
                        kept.push(v.into_boxed_slice());
                        if kept.len() > 64 {
                            kept.swap_remove(i % kept.len());
                        }
                    }
                    if i % 1000 == 0 {
                        let big = vec![t as u8; 2 * MIB];
                        to.send(big).unwrap();
                    }
                    while let Ok(got) = rx.try_recv() {
                        let first = got[0];
                        assert!(got.iter().all(|&b| b == first));
                        drop(got);
                    }
                }
                // Our sender goes first, so the ring drains without waiting in a cycle.
                drop(to);
                for got in rx.iter() {
                    let first = got[0];
                    assert!(got.iter().all(|&b| b == first));
                }
            });
        }
        drop(senders);
    });
}

#[test]
fn with_policy_nests_and_restores_even_on_panic() {
    assert_eq!(current_policy(), Policy::Local);
    with_policy(Policy::Float, || {
        assert_eq!(current_policy(), Policy::Float);
        let striped = Policy::Striped {
            stride_pages: Stride::new(4).unwrap(),
        };
        with_policy(striped.clone(), || {
            assert_eq!(current_policy(), striped);
            // A new thread starts with Local.
            std::thread::spawn(|| assert_eq!(current_policy(), Policy::Local))
                .join()
                .unwrap();
        });
        assert_eq!(current_policy(), Policy::Float);
        // (Panicking allocates, so the policy must be one this machine can serve.)
        let bind = Policy::Bind([NodeId(memory_nodes()[0])].into_iter().collect());
        let r = catch_unwind(AssertUnwindSafe(|| {
            with_policy(bind.clone(), || {
                assert_eq!(current_policy(), bind);
                panic!("unwinding through with_policy");
            })
        }));
        assert!(r.is_err());
        assert_eq!(current_policy(), Policy::Float);
    });
    assert_eq!(current_policy(), Policy::Local);
}

#[test]
fn every_servable_policy_allocates_through_the_global_allocator() {
    let nodes = memory_nodes();
    let first = NodeId(nodes[0]);
    let all: NodeSet = nodes.iter().map(|&n| NodeId(n)).collect();
    let mut policies = vec![
        Policy::Float,
        Policy::Local,
        Policy::Striped {
            stride_pages: Stride::ONE,
        },
        Policy::Striped {
            stride_pages: Stride::new(3).unwrap(),
        },
        Policy::Bind([first].into_iter().collect()),
        Policy::Bind(all.clone()),
        Policy::Interleave(all),
    ];
    if nodes.len() > 1 {
        policies.push(Policy::Remote);
    }
    for policy in policies {
        with_policy(policy.clone(), || {
            for size in [16, 200, 5000, 3 * MIB] {
                let v = vec![0xA5u8; size];
                assert!(v.iter().all(|&b| b == 0xA5), "{policy} {size}");
                let b = Box::new([7u64; 32]);
                assert_eq!(b[31], 7);
            }
        });
        let a = NumaAlloc::with(policy.clone());
        let mut v = allocator_api2::vec::Vec::new_in(a);
        v.extend(0..100_000u64);
        assert_eq!(v.iter().sum::<u64>(), 99_999 * 100_000 / 2, "{policy}");
    }
}

#[test]
fn unservable_policies_fail_with_typed_errors_not_aborts() {
    let nodes = memory_nodes();
    let here = alloc_policies::current_node();
    let small = Layout::from_size_align(64, 8).unwrap();
    let large = Layout::from_size_align(2 * MIB, 8).unwrap();
    let err = |policy: Policy, layout: Layout| {
        NumaAlloc::with(policy)
            .try_allocate(layout)
            .map(drop)
            .unwrap_err()
    };
    for layout in [small, large] {
        if nodes.len() == 1 {
            assert_eq!(
                err(Policy::Remote, layout),
                NumaAllocError::RemoteNeedsTwoNodes { node: here }
            );
            // The global allocator answers null: no abort, no panic.
            let p = with_policy(Policy::Remote, || {
                // SAFETY: non-zero size.
                unsafe { A.alloc(layout) }
            });
            assert!(p.is_null());
            // And the Allocator API an AllocError.
            assert!(NumaAlloc::with(Policy::Remote).allocate(layout).is_err());
            let mut v = allocator_api2::vec::Vec::<u8, _>::new_in(NumaAlloc::with(Policy::Remote));
            assert!(v.try_reserve(100).is_err());
        }
        assert_eq!(
            err(Policy::RemoteTo(here), layout),
            NumaAllocError::RemoteIsLocal { node: here }
        );
        for bad in [NodeId(63), NodeId(64), NodeId(1000), NodeId(u32::MAX)] {
            assert_eq!(
                err(Policy::RemoteTo(bad), layout),
                NumaAllocError::NoSuchNode { node: bad }
            );
            assert_eq!(
                err(Policy::Bind([bad].into_iter().collect()), layout),
                NumaAllocError::NoSuchNode { node: bad }
            );
            assert_eq!(
                err(
                    Policy::Interleave([NodeId(nodes[0]), bad].into_iter().collect()),
                    layout
                ),
                NumaAllocError::NoSuchNode { node: bad }
            );
        }
        assert_eq!(
            err(Policy::Bind(NodeSet::new()), layout),
            NumaAllocError::NoNodes
        );
        assert_eq!(
            err(Policy::Interleave(NodeSet::new()), layout),
            NumaAllocError::NoNodes
        );
    }
    // Sizes no machine can map.
    let huge = Layout::from_size_align(isize::MAX as usize - 4096, 4096).unwrap();
    assert!(matches!(
        NumaAlloc::new().try_allocate(huge),
        Err(NumaAllocError::OutOfMemory { .. })
    ));
    // SAFETY: non-zero size.
    assert!(unsafe { A.alloc(huge) }.is_null());
    let mut v: Vec<u8> = Vec::new();
    assert!(v.try_reserve(isize::MAX as usize / 2).is_err());
    // Messages name the problem.
    assert_eq!(
        NumaAllocError::RemoteIsLocal { node: NodeId(2) }.to_string(),
        "remote:2 is the calling thread's own node"
    );
}

#[test]
fn large_blocks_are_recorded_in_the_registry_when_asked() {
    NumaAlloc::record_large_blocks(true);
    let v = vec![1u8; 2 * MIB];
    let addr = v.as_ptr() as usize;
    let rec = registry::find(addr + 100).expect("the large block is recorded");
    assert_eq!(rec.kind, AllocKind::Heap);
    assert_eq!(rec.addr, addr);
    assert_eq!(rec.len, 2 * MIB);
    assert!(rec.policy.starts_with("local -> node:"), "{}", rec.policy);
    let w = with_policy(Policy::Float, || vec![2u8; 3 * MIB]);
    let rec_w = registry::find(w.as_ptr() as usize).expect("recorded");
    assert_eq!(&*rec_w.policy, "float -> float");
    // Growing by mremap records the block again, at its new address and size,
    // with the same label and policy.
    let mut w = w;
    w.reserve_exact(5 * MIB);
    let moved = registry::find(w.as_ptr() as usize).expect("still recorded after growing");
    assert_eq!(moved.addr, w.as_ptr() as usize);
    assert_eq!(moved.len, w.capacity());
    assert_eq!(&*moved.policy, "float -> float");
    drop(v);
    drop(w);
    // Freed blocks are forgotten (other tests may record blocks meanwhile, even at
    // the same address, so look the records up by id).
    assert!(registry::get(rec.id).is_none());
    assert!(registry::get(rec_w.id).is_none());
    assert!(registry::get(moved.id).is_none());
    NumaAlloc::record_large_blocks(false);
}
