//! A small tour of the core, sized for Miri (SAFETY.md, "How the proofs are
//! organised")
//! (`cargo +nightly miri test --test miri_core`), which checks it for
//! undefined behaviour: bumping, tip frees, checkpoints and resets, escapes,
//! frees from another thread, growth and moves, alloc_zeroed on reused
//! memory, locked arenas with two threads, an orphaned arena, and
//! `in_region`/`in_arena` futures dropped in place at completion or before.
//! It also runs as a normal test.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

mod common;
counting_shim!();

use bumper::{
    Arena, EscapePolicy, LockedArena, in_arena, in_region, is_arena_pointer, with_bumper,
};
use std::future::Future;
use std::task::{Context, Poll, Waker};

#[test]
fn bumped_blocks_freed_at_the_tip_or_by_no_escape_leave_the_arena_empty() {
    let arena = Arena::new();
    with_bumper(&arena, || {
        let a = vec![1u8; 100];
        let b = Box::new([2u64; 4]);
        arena.no_escape(|| {
            let c: Vec<u32> = (0..50).collect();
            let d = String::from("temporary");
            assert_eq!(c[49] as usize + d.len(), 58);
        });
        drop(b); // at the tip
        assert!(a.iter().all(|&x| x == 1));
    });
    let s = arena.stats();
    assert_eq!((s.live_blocks, s.resets, s.escapes), (0, 1, 0));
    assert!(arena.reset().is_clean());
    assert_eq!(arena.stats().bytes_in_use, 0);
}

#[test]
fn a_value_that_escapes_no_escape_stays_intact() {
    let arena = Arena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let kept = with_bumper(&arena, || {
        let kept = arena.no_escape(|| vec![7u8; 40]);
        arena.no_escape(|| drop(vec![0u8; 200]));
        kept
    });
    assert_eq!(kept, vec![7u8; 40]);
    assert_eq!(arena.stats().escaped_blocks, 1);
}

#[test]
fn a_grown_block_moves_when_not_at_the_tip_and_reused_memory_is_zeroed() {
    let arena = Arena::new();
    with_bumper(&arena, || {
        let mut v: Vec<u16> = Vec::with_capacity(2);
        for i in 0..300 {
            v.push(i);
        }
        let other = vec![9u8; 10];
        v.push(300); // not at the tip: moves
        assert!(v.iter().copied().eq(0..=300));
        drop(other);
        arena.no_escape(|| drop(vec![0xFFu8; 512]));
        let z = vec![0u8; 512]; // alloc_zeroed over reused memory
        assert!(z.iter().all(|&b| b == 0));
    });
    let heap_grown = with_bumper(&arena, || vec![1u8; 8]);
    let mut moved = heap_grown;
    moved.extend_from_slice(&[2; 100]); // outside the region: moves to the heap
    assert!(!is_arena_pointer(moved.as_ptr()));
    assert_eq!(moved.len(), 108);
}

#[test]
fn remote_frees_beside_a_second_lane_leave_a_locked_arena_empty() {
    let arena = LockedArena::new();
    let boxes: Vec<Box<u64>> = with_bumper(&arena, || (0..20).map(Box::new).collect());
    std::thread::scope(|s| {
        s.spawn(move || drop(boxes)); // freed on another thread
        s.spawn(|| with_bumper(&arena, || assert_eq!(vec![3u8; 30].len(), 30)));
    });
    let s = arena.stats();
    assert_eq!(s.live_blocks, 0, "{s}");
    assert!(arena.reset().is_clean());
}

#[test]
fn orphaned_arena_is_freed_by_the_last_block() {
    let arena = Arena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let v = with_bumper(&arena, || vec![5u8; 64]);
    drop(arena);
    assert!(v.iter().all(|&b| b == 5));
    std::thread::scope(|s| {
        s.spawn(move || drop(v));
    });
}

#[test]
fn chunks_that_die_under_deep_checkpoints_are_freed_and_never_hold_a_live_block() {
    // `segment_relabel_uaf.rs` of issue 15, at Miri's size: chunk switches
    // under 63 nested checkpoints, resets and discards in between, frees in
    // any order. Under Miri every chunk is an allocation of its own, freed
    // when it leaves its lane: a chunk given back while a block in it is
    // still live is a use after free here (the `b` checks below).
    use bumper::{Checkpoint, EscapePolicy};
    let arena = Arena::builder()
        .chunk_size(64 << 10)
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let mut cps: Vec<Checkpoint<'_>> = Vec::with_capacity(80);
    let mut kept: Vec<Vec<u8>> = Vec::with_capacity(8);
    let b = with_bumper(&arena, || {
        for _ in 0..63 {
            cps.push(arena.checkpoint());
        }
        drop(Vec::<u8>::with_capacity(15_000));
        drop(cps.remove(0));
        cps.push(arena.checkpoint());
        let f1: Vec<u8> = vec![1; 100];
        drop(cps.remove(0));
        cps.push(arena.checkpoint());
        let b: Vec<u8> = vec![0x5A; 1000];
        let g1: Vec<u8> = Vec::with_capacity(15_000);
        let cp = cps.pop().unwrap();
        let _ = arena.reset_to(cp);
        let i = cps.len() - 2;
        drop(cps.remove(i));
        drop(Vec::<u8>::with_capacity(15_000));
        drop(f1);
        for _ in 0..3 {
            kept.push(vec![0xEE; 15_000]);
        }
        drop(g1);
        b
    });
    assert!(b.iter().all(|&x| x == 0x5A));
    drop(cps);
    assert!(kept.iter().all(|v| v.iter().all(|&x| x == 0xEE)));
    drop(kept);
    drop(b);
    assert!(arena.reset().is_clean());
}

#[test]
fn blocks_freed_in_any_order_across_chunks_stay_intact_until_freed() {
    // Blocks over several 64 KiB chunks, freed every other one first, then
    // the rest: each chunk leaves the chain at its last block's free (and is
    // freed under Miri), never earlier. Each block is checked before its
    // free, so a chunk given back too early is a use after free.
    let arena = Arena::builder().chunk_size(64 << 10).build().unwrap();
    with_bumper(&arena, || {
        let mut blocks: Vec<Option<Vec<u8>>> = (0..60u8).map(|i| Some(vec![i; 6000])).collect();
        for start in [1, 0] {
            for i in (start..60).step_by(2) {
                let b = blocks[i].take().unwrap();
                // Under Miri one read of freed memory is enough to report it.
                assert_eq!((b[0], b[5999]), (i as u8, i as u8));
                if !cfg!(miri) {
                    assert!(b.iter().all(|&x| x == i as u8));
                }
                drop(b);
            }
        }
        assert!(blocks.iter().all(Option::is_none));
    });
    let s = arena.stats();
    assert_eq!(s.live_blocks, 0, "{s}");
}

/// A future that holds an arena block across one `Pending` and checks it
/// when it completes; its state is dropped in place by the wrappers.
async fn holds_a_block_across_a_yield(fill: u8) -> usize {
    let v = vec![fill; 200];
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
    assert!(is_arena_pointer(v.as_ptr()));
    assert!(v.iter().all(|&b| b == fill));
    v.len()
}

#[test]
fn in_region_futures_are_dropped_in_place_when_they_complete_or_before() {
    let mut cx = Context::from_waker(Waker::noop());
    let locked = LockedArena::new();
    // Completed: dropped by the poll that completed it.
    let mut done = Box::pin(in_region(locked.region(), holds_a_block_across_a_yield(1)));
    assert!(done.as_mut().poll(&mut cx).is_pending());
    assert_eq!(locked.stats().live_blocks, 1);
    assert_eq!(done.as_mut().poll(&mut cx), Poll::Ready(200));
    assert_eq!(locked.stats().live_blocks, 0);
    drop(done);
    // Dropped before it completed, holding its block.
    let mut early = Box::pin(in_region(locked.region(), holds_a_block_across_a_yield(2)));
    assert!(early.as_mut().poll(&mut cx).is_pending());
    drop(early);
    assert_eq!(locked.stats().live_blocks, 0);
    // The same with an unlocked arena.
    let arena = Arena::new();
    let mut done = Box::pin(in_arena(&arena, holds_a_block_across_a_yield(3)));
    assert!(done.as_mut().poll(&mut cx).is_pending());
    assert_eq!(done.as_mut().poll(&mut cx), Poll::Ready(200));
    drop(done);
    let mut early = Box::pin(in_arena(&arena, holds_a_block_across_a_yield(4)));
    assert!(early.as_mut().poll(&mut cx).is_pending());
    drop(early);
    assert_eq!(arena.stats().live_blocks, 0);
    assert!(arena.reset().is_clean());
    assert!(locked.reset().is_clean());
}

#[test]
fn blocks_after_a_tip_free_carry_the_arena_s_provenance_not_the_freed_block_s() {
    // Under Miri: the tip free moves the bump pointer back over `b`; a write
    // through `keep` then invalidates `b`'s tag for that memory. The next
    // block must not be derived from `b`'s pointer. The same for a block
    // grown or shrunk in place at the tip.
    let arena = Arena::new();
    with_bumper(&arena, || {
        let mut keep = Box::new(0u64);
        let b = Box::new(1u64);
        drop(b);
        *keep = 5;
        drop(keep);
        let c = Box::new(7u64);
        assert_eq!(*c, 7);
        drop(c);
        let mut keep = Box::new(0u64);
        let mut v: Vec<u8> = Vec::with_capacity(16);
        v.extend_from_slice(&[3; 16]);
        v.reserve_exact(32); // grows in place at the tip
        v.shrink_to_fit(); // shrinks in place
        drop(v);
        *keep = 9;
        let d = vec![4u8; 24];
        assert!(d.iter().all(|&x| x == 4));
        assert_eq!(*keep, 9);
    });
    assert_eq!(arena.stats().live_blocks, 0);
}

#[test]
fn tracked_blocks_freed_in_any_order_under_miri() {
    let arena = Arena::builder()
        .track_sites(true)
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    with_bumper(&arena, || {
        let mut a = Box::new(1u64);
        let b = Box::new(2u64);
        let c = vec![3u8; 40];
        *a += 1;
        drop(b);
        let d = Box::new(4u64);
        drop(c);
        assert_eq!((*a, *d), (2, 4));
    });
    assert_eq!(arena.stats().live_blocks, 0);
    assert!(arena.reset().is_clean());
}

#[test]
fn blocks_freed_by_another_thread_are_linked_through_the_arena_s_provenance() {
    // A remote free links the block into its lane's list by writing into it
    // (16 bytes for a block of 9 to 16): through the arena's pointer, not
    // the caller's, whose tag covers only the block's own bytes.
    let arena = LockedArena::new();
    let (a, b, c, d) = with_bumper(&arena, || {
        (
            Box::new([1u8; 12]),
            Box::new(2u64),
            Box::new([3u8; 20]),
            Box::new(4u32),
        )
    });
    std::thread::spawn(move || {
        drop(a);
        drop(b);
        drop(c);
        drop(d);
    })
    .join()
    .unwrap();
    with_bumper(&arena, || {
        let d = Box::new([4u8; 12]);
        assert_eq!(*d, [4u8; 12]);
    });
    assert_eq!(arena.stats().live_blocks, 0);
}

#[test]
fn a_block_resized_in_place_comes_back_with_the_arena_s_provenance() {
    use bumper::allocator_api2::alloc::Allocator;
    use std::alloc::Layout;
    use std::ptr::NonNull;
    // The caller's pointer covers only the old bytes: the block resized in
    // place must come back derived from the arena's pointer, or the first
    // write past the old end is undefined behaviour.
    let arena = Arena::new();
    with_bumper(&arena, || {
        // At the tip of the chain, through the shim.
        let b: Box<[u8]> = vec![1u8; 8].into_boxed_slice();
        let mut v = b.into_vec();
        drop(Box::new(7u64)); // a neighbour written and freed at the tip
        v.reserve_exact(8);
        v.extend_from_slice(&[2u8; 8]);
        assert_eq!(v[..], [[1u8; 8], [2u8; 8]].concat()[..]);
        drop(v);
        // A large block, in its own chunk.
        let mut big = vec![1u8; 70_000];
        big.reserve(100_000);
        big.truncate(69_000);
        let mut big = big.into_boxed_slice().into_vec();
        big.push(3);
        assert_eq!((big[68_999], big[69_000]), (1, 3));
    });
    // Through an allocator_api2 handle, outside a region.
    let l8 = Layout::new::<u64>();
    let l16 = Layout::from_size_align(16, 8).unwrap();
    let p = (&arena).allocate(l8).unwrap();
    // SAFETY: `p` is a fresh block of 8 bytes; `q` likewise; the grown block
    // is 16 bytes; each block is given back once.
    unsafe {
        let r = &mut *p.as_ptr().cast::<u64>();
        *r = 1;
        let n = NonNull::from(r).cast::<u8>();
        let q = (&arena).allocate(l8).unwrap();
        q.cast::<u64>().write(5);
        (&arena).deallocate(q.cast(), l8);
        let g = (&arena).grow(n, l8, l16).unwrap();
        g.cast::<u8>().add(12).write(2);
        assert_eq!(g.cast::<u64>().read(), 1);
        (&arena).deallocate(g.cast(), l16);
    }
    assert_eq!(arena.stats().live_blocks, 0);
}
