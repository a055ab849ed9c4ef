//! SAFETY.md §14, the `allocator_api2` handles, in a binary with the shim
//! installed: `&Arena` and `&LockedArena` allocate from their arena, in or
//! out of any region; growth at the tip stays in place and anything else
//! moves; frees are routed by ownership, from any thread, with exact
//! counts; `Current` asks the current scope; zero-size allocations touch no
//! arena. `current_without_shim.rs` checks `Current` in a binary without
//! the shim.
//!
//! The shim here is the counting one: it panics if the inner allocator is
//! ever handed an arena pointer.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

mod common;
counting_shim!();

use bumper::allocator_api2::alloc::{Allocator, Layout};
use bumper::allocator_api2::boxed::Box as ABox;
use bumper::allocator_api2::vec::Vec as AVec;
use bumper::{Arena, Current, LockedArena, is_arena_pointer, with_bumper};
use common::pattern::{check, fill};

fn round8(n: usize) -> u64 {
    n.next_multiple_of(8) as u64
}

/// A byte vector of `len` bytes holding the pattern of `id`, made with `a`.
fn patterned<A: Allocator>(len: usize, id: u64, a: A) -> AVec<u8, A> {
    let mut v = AVec::with_capacity_in(len, a);
    v.resize(len, 0);
    fill(&mut v, id);
    v
}

// ---------------------------------------------------------------------------
// Explicit handles
// ---------------------------------------------------------------------------

#[test]
fn explicit_handles_allocate_from_their_arena_outside_any_region() {
    let arena = Arena::new();
    let locked = LockedArena::new();
    let mut a: AVec<u64, &Arena> = AVec::new_in(&arena);
    let mut b: AVec<u64, &LockedArena> = AVec::new_in(&locked);
    assert_eq!(
        (arena.stats().allocations, locked.stats().allocations),
        (0, 0)
    );
    a.reserve_exact(100);
    b.reserve_exact(100);
    a.extend(0..100);
    b.extend(0..100);
    assert!(is_arena_pointer(a.as_ptr()) && is_arena_pointer(b.as_ptr()));
    for s in [arena.stats(), locked.stats()] {
        assert_eq!(
            (s.allocations, s.live_blocks, s.live_bytes),
            (1, 1, 800),
            "{s}"
        );
    }
    assert_eq!(a.iter().sum::<u64>(), 4950);
    assert_eq!(b.iter().sum::<u64>(), 4950);
    drop((a, b));
    assert_eq!(
        (arena.stats().live_blocks, locked.stats().live_blocks),
        (0, 0)
    );
    assert!(arena.reset().is_clean() && locked.reset().is_clean());
}

#[test]
fn an_explicit_handle_wins_over_the_current_region() {
    let arena = LockedArena::new();
    let other = Arena::new();
    let v = with_bumper(&other, || patterned(1000, 1, &arena));
    assert!(is_arena_pointer(v.as_ptr()));
    assert_eq!(arena.stats().live_blocks, 1);
    assert_eq!(other.stats().allocations, 0);
    check(&v, 1, "a block of an explicit handle");
    drop(v);
    assert_eq!(arena.stats().live_blocks, 0);
}

#[test]
fn an_explicit_handle_inside_its_own_arenas_region_shares_the_threads_lane() {
    let arena = Arena::new();
    with_bumper(&arena, || {
        let mut v = patterned(16, 20, &arena);
        let p = v.as_ptr();
        // The shim serves this from the same lane: `v` is no longer the tip.
        let w = vec![0u8; 100];
        assert!(is_arena_pointer(w.as_ptr()));
        v.reserve_exact(1000);
        assert_ne!(v.as_ptr(), p);
        check(&v, 20, "a block moved past a newer one of the same lane");
        let s = arena.stats();
        assert_eq!((s.allocations, s.live_blocks), (3, 2), "{s}");
    });
    assert_eq!(arena.stats().live_blocks, 0);
}

/// Grows `v` in steps while it is the newest block of its arena; it never
/// moves and keeps its contents.
fn grows_in_place<A: Allocator>(mut v: AVec<u8, A>, id: u64) -> AVec<u8, A> {
    let p = v.as_ptr();
    for cap in [64, 256, 1024, 4096, 16_384] {
        v.reserve_exact(cap - v.len());
        assert!(v.capacity() >= cap);
        assert_eq!(v.as_ptr(), p, "the tip block moved when it grew to {cap}");
        check(&v, id, "a block grown in place");
        // Fill the new room too, so that the next step checks all of it.
        v.resize(cap, 0);
        fill(&mut v, id);
    }
    v
}

#[test]
fn growth_at_the_tip_stays_in_place() {
    let arena = Arena::new();
    let v = grows_in_place(patterned(16, 2, &arena), 2);
    let s = arena.stats();
    assert_eq!(
        (s.live_blocks, s.live_bytes),
        (1, round8(v.capacity())),
        "{s}"
    );
    drop(v);
    let locked = LockedArena::new();
    let v = grows_in_place(patterned(16, 3, &locked), 3);
    let s = locked.stats();
    assert_eq!(
        (s.live_blocks, s.live_bytes),
        (1, round8(v.capacity())),
        "{s}"
    );
    drop(v);
    assert_eq!(
        (arena.stats().live_blocks, locked.stats().live_blocks),
        (0, 0)
    );
}

#[test]
fn growth_not_at_the_tip_moves_and_frees_the_old_block() {
    let arena = LockedArena::new();
    let mut first = patterned(100, 4, &arena);
    let second = patterned(100, 5, &arena); // now the tip
    let p = first.as_ptr();
    first.reserve_exact(10_000);
    assert_ne!(
        first.as_ptr(),
        p,
        "a block that is not the tip grew in place"
    );
    assert!(is_arena_pointer(first.as_ptr()));
    check(&first, 4, "a moved block");
    check(&second, 5, "the tip block, after another block moved");
    let s = arena.stats();
    assert_eq!(s.live_blocks, 2, "{s}");
    assert_eq!(s.live_bytes, round8(first.capacity()) + round8(100), "{s}");
    drop((first, second));
    assert_eq!(arena.stats().live_blocks, 0);
}

#[test]
fn shrinking_keeps_the_contents_and_the_counts() {
    let arena = Arena::new();
    let mut v = patterned(4096, 6, &arena);
    v.truncate(100);
    v.shrink_to_fit();
    assert_eq!(v.capacity(), 100);
    check(&v, 6, "a shrunk block");
    let s = arena.stats();
    assert_eq!((s.live_blocks, s.live_bytes), (1, round8(100)), "{s}");
    drop(v);
    assert_eq!(arena.stats().live_blocks, 0);
}

#[test]
fn blocks_freed_on_another_thread_go_back_to_their_arena() {
    const BLOCKS: u64 = 200;
    let arena = LockedArena::new();
    // Allocated here, freed on another thread.
    let here: Vec<AVec<u8, &LockedArena>> = (0..BLOCKS)
        .map(|i| patterned(1 + i as usize * 3, i, &arena))
        .collect();
    // Allocated on another thread (through a lane it claims for each call),
    // freed here.
    let there: Vec<AVec<u8, &LockedArena>> = std::thread::scope(|s| {
        let arena = &arena;
        s.spawn(move || {
            for (i, v) in here.into_iter().enumerate() {
                check(&v, i as u64, "a block sent to another thread");
                drop(v);
            }
            (0..BLOCKS)
                .map(|i| patterned(7 + i as usize, 1000 + i, arena))
                .collect()
        })
        .join()
        .unwrap()
    });
    let s = arena.stats();
    assert_eq!(s.allocations, 2 * BLOCKS, "{s}");
    assert_eq!(s.live_blocks, BLOCKS, "{s}");
    let bytes: u64 = (0..BLOCKS as usize).map(|i| round8(7 + i)).sum();
    assert_eq!(s.live_bytes, bytes, "{s}");
    for (i, v) in there.iter().enumerate() {
        check(v, 1000 + i as u64, "a block made on another thread");
    }
    drop(there);
    let s = arena.stats();
    assert_eq!((s.live_blocks, s.live_bytes), (0, 0), "{s}");
    assert!(arena.reset().is_clean());
    assert_eq!(arena.stats().bytes_in_use, 0);
}

/// A zero-size allocation from `a`: an empty, aligned block outside any
/// arena, freed again.
fn check_empty<A: Allocator>(a: A, layout: Layout) {
    let block = a.allocate(layout).unwrap();
    assert_eq!(block.len(), 0);
    let p = block.cast::<u8>();
    assert!(p.as_ptr().addr().is_multiple_of(layout.align()));
    assert!(!is_arena_pointer(p.as_ptr()));
    // SAFETY: `p` was allocated by `a` with `layout` and is not used again.
    unsafe { a.deallocate(p, layout) };
}

#[test]
fn zero_size_allocations_touch_no_arena() {
    let arena = Arena::new();
    let locked = LockedArena::new();
    for layout in [
        Layout::from_size_align(0, 1).unwrap(),
        Layout::from_size_align(0, 64).unwrap(),
        Layout::from_size_align(0, 4096).unwrap(),
    ] {
        check_empty(&arena, layout);
        check_empty(&locked, layout);
        check_empty(Current, layout);
    }
    let mut units: AVec<(), &Arena> = AVec::new_in(&arena);
    units.extend(std::iter::repeat_n((), 1000));
    let unit_box = ABox::new_in((), &locked);
    let empty: AVec<u64, &LockedArena> = AVec::with_capacity_in(0, &locked);
    assert_eq!(units.len(), 1000);
    drop((units, unit_box, empty));
    for s in [arena.stats(), locked.stats()] {
        assert_eq!((s.allocations, s.live_blocks), (0, 0), "{s}");
    }
}

// ---------------------------------------------------------------------------
// Current
// ---------------------------------------------------------------------------

#[test]
fn current_allocates_from_the_region_inside_it_and_from_the_heap_outside() {
    let arena = Arena::new();
    let outside = patterned(100, 7, Current);
    let inside = with_bumper(&arena, || patterned(100, 8, Current));
    assert!(!is_arena_pointer(outside.as_ptr()));
    assert!(is_arena_pointer(inside.as_ptr()));
    let s = arena.stats();
    assert_eq!(
        (s.allocations, s.live_blocks, s.live_bytes),
        (1, 1, 104),
        "{s}"
    );
    // Made in the region, dropped after it: freed by its arena.
    drop(inside);
    drop(outside);
    assert_eq!(arena.stats().live_blocks, 0);
}

#[test]
fn current_follows_the_newest_region_and_a_shareable_one_across_threads() {
    let locked = LockedArena::new();
    let unlocked = Arena::new();
    let (a, b) = with_bumper(&locked, || {
        let a = patterned(10, 9, Current);
        let b = with_bumper(&unlocked, || patterned(20, 10, Current));
        (a, b)
    });
    assert_eq!(locked.stats().live_blocks, 1);
    assert_eq!(unlocked.stats().live_blocks, 1);
    // A Current vector of a LockedArena region, freed on another thread.
    let c = with_bumper(&locked, || patterned(30, 11, Current));
    std::thread::spawn(move || {
        check(&c, 11, "a Current block sent to another thread");
        drop(c);
    })
    .join()
    .unwrap();
    drop((a, b));
    assert_eq!(
        (locked.stats().live_blocks, unlocked.stats().live_blocks),
        (0, 0)
    );
    assert_eq!(locked.stats().allocations, 2);
}

#[test]
fn a_current_vec_grows_in_place_at_the_tip_inside_its_region() {
    let arena = LockedArena::new();
    let v = with_bumper(&arena, || grows_in_place(patterned(16, 12, Current), 12));
    assert!(is_arena_pointer(v.as_ptr()));
    let s = arena.stats();
    assert_eq!(
        (s.live_blocks, s.live_bytes),
        (1, round8(v.capacity())),
        "{s}"
    );
    drop(v);
    assert_eq!(arena.stats().live_blocks, 0);
}

#[test]
fn a_current_vec_of_a_region_grown_after_it_moves_to_the_heap() {
    let arena = Arena::new();
    let mut v = with_bumper(&arena, || patterned(100, 13, Current));
    v.reserve_exact(10_000);
    assert!(
        !is_arena_pointer(v.as_ptr()),
        "grew outside its region, into the arena"
    );
    check(&v, 13, "a block moved out of its arena");
    let s = arena.stats();
    assert_eq!(s.live_blocks, 0, "the old block was not freed: {s}");
}

// ---------------------------------------------------------------------------
// Known bugs in src/api2.rs (ignored so the suite stays green; run them with
// `cargo test --test allocator_api2 -- --ignored`)
// ---------------------------------------------------------------------------

/// When an arena cannot serve a request through an explicit handle (here:
/// past its capacity limit), the handle falls back to the global allocator
/// with no region active: never to the arena of the region the thread is in,
/// where the block would count against that arena and escape its next reset.
#[test]
fn an_explicit_handle_past_its_limit_never_allocates_from_another_arenas_region() {
    let limited = Arena::builder().capacity_limit(64 << 10).build().unwrap();
    let other = LockedArena::new();
    let v: AVec<u8, &Arena> = with_bumper(&other, || AVec::with_capacity_in(200 << 10, &limited));
    let s = other.stats();
    assert_eq!(
        (s.allocations, s.live_blocks),
        (0, 0),
        "another arena served an explicit handle of `limited`: {s}"
    );
    assert!(!is_arena_pointer(v.as_ptr()));
}

/// That fallback is counted as a spill of the handle's arena, inside or
/// outside regions, with or without the shim.
#[test]
fn an_explicit_handles_fallback_is_counted_as_a_spill_outside_regions() {
    let limited = Arena::builder().capacity_limit(64 << 10).build().unwrap();
    let v: AVec<u8, &Arena> = AVec::with_capacity_in(200 << 10, &limited);
    assert!(!is_arena_pointer(v.as_ptr()));
    let s = limited.stats();
    assert_eq!((s.spills, s.spilled_bytes), (1, 200 << 10), "{s}");
}

#[test]
fn a_heap_block_grown_through_current_inside_a_region_stays_on_the_heap() {
    let arena = Arena::new();
    let mut v: AVec<u8, Current> = AVec::with_capacity_in(16, Current);
    v.extend_from_slice(&[3; 16]);
    assert!(!is_arena_pointer(v.as_ptr()));
    with_bumper(&arena, || {
        v.reserve(10_000); // grows inside a region: stays on the heap
        v.extend_from_slice(&[4; 1000]);
    });
    assert!(
        !is_arena_pointer(v.as_ptr()),
        "a heap block moved into the arena"
    );
    assert_eq!(&v[..16], &[3; 16]);
    assert_eq!(arena.stats().allocations, 0);
}

/// Pushes 512 Ki values into a vector of `a` and returns how often its buffer
/// moved once it was large (64 KiB and up).
fn large_moves<A: Allocator>(a: A) -> usize {
    let mut v = AVec::new_in(a);
    let (mut moves, mut last) = (0, v.as_ptr());
    for i in 0..1u64 << 19 {
        v.push(i);
        if v.as_ptr() != last {
            moves += usize::from(v.capacity() * 8 > 64 << 10);
            last = v.as_ptr();
        }
    }
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64));
    assert!(is_arena_pointer(v.as_ptr()));
    moves
}

#[test]
fn handles_give_a_growing_large_buffer_room_to_grow_in_place() {
    // Six doublings from 64 KiB to 4 MiB; a move leaves room for 4x, so at
    // most two of them copy (the first one out of the bump chain).
    let arena = Arena::new();
    assert!(large_moves(&arena) <= 2);
    let locked = LockedArena::new();
    assert!(large_moves(&locked) <= 2);
    let scratch = Arena::new();
    assert!(with_bumper(&scratch, || large_moves(Current)) <= 2);
    assert_eq!(arena.stats().live_blocks, 0);
    assert_eq!(locked.stats().live_blocks, 0);
}
