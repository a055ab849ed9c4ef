//! SAFETY.md §14, `bumper::Current` in a binary that does NOT install the
//! shim (this file has no `#[global_allocator]`): `Current` still asks the
//! current scope, so inside `with_bumper` it allocates from the arena and
//! outside from the heap, while plain `std` collections, which go through
//! the default global allocator, never reach an arena. Frees are routed by
//! ownership (arena blocks back to their arena, from any thread), growth
//! at the tip stays in place, and zero-size allocations touch nothing.

use bumper::allocator_api2::alloc::{Allocator, Layout};
use bumper::allocator_api2::vec::Vec as AVec;
use bumper::{Arena, Current, LockedArena, is_arena_pointer, with_bumper};

/// `len` bytes of `Current` memory holding `byte`.
fn bytes(len: usize, byte: u8) -> AVec<u8, Current> {
    let mut v = AVec::with_capacity_in(len, Current);
    v.resize(len, byte);
    v
}

#[test]
fn current_uses_the_arena_inside_a_region_and_the_heap_outside() {
    let arena = Arena::new();
    let outside = bytes(100, 1);
    let (inside, plain) = with_bumper(&arena, || (bytes(100, 2), vec![3u8; 100]));
    assert!(!is_arena_pointer(outside.as_ptr()));
    assert!(is_arena_pointer(inside.as_ptr()));
    // Without the shim, a region does not reach `std`'s collections.
    assert!(!is_arena_pointer(plain.as_ptr()));
    let s = arena.stats();
    assert_eq!(
        (s.allocations, s.live_blocks, s.live_bytes),
        (1, 1, 104),
        "{s}"
    );
    assert!(inside.iter().all(|&b| b == 2) && outside.iter().all(|&b| b == 1));
    // Made in the region, dropped after it.
    drop(inside);
    assert_eq!(arena.stats().live_blocks, 0);
    assert!(arena.reset().is_clean());
}

#[test]
fn a_current_vec_made_in_a_region_is_freed_by_its_arena_on_another_thread() {
    let arena = LockedArena::new();
    let blocks: Vec<AVec<u8, Current>> =
        with_bumper(&arena, || (0..50).map(|i| bytes(10 + i, i as u8)).collect());
    // `blocks` itself is a std vector: on the heap, even inside the region.
    assert!(!is_arena_pointer(blocks.as_ptr()));
    assert_eq!(arena.stats().live_blocks, 50);
    std::thread::spawn(move || {
        for (i, v) in blocks.into_iter().enumerate() {
            assert!(is_arena_pointer(v.as_ptr()));
            assert!(v.iter().all(|&b| b == i as u8));
        }
    })
    .join()
    .unwrap();
    let s = arena.stats();
    assert_eq!(
        (s.allocations, s.live_blocks, s.live_bytes),
        (50, 0, 0),
        "{s}"
    );
}

#[test]
fn a_current_vec_grows_in_place_at_the_tip_and_moves_otherwise() {
    let arena = Arena::new();
    with_bumper(&arena, || {
        let mut tip = bytes(16, 4);
        let p = tip.as_ptr();
        for cap in [64, 512, 4096] {
            tip.reserve_exact(cap - tip.len());
            assert_eq!(tip.as_ptr(), p, "the tip block moved when it grew to {cap}");
            tip.resize(cap, 4);
        }
        let newer = bytes(16, 5);
        tip.reserve_exact(10_000);
        assert_ne!(tip.as_ptr(), p, "a block under a newer one grew in place");
        assert!(is_arena_pointer(tip.as_ptr()));
        assert!(tip.iter().all(|&b| b == 4) && newer.iter().all(|&b| b == 5));
        let s = arena.stats();
        assert_eq!(s.live_blocks, 2, "{s}");
    });
    assert_eq!(arena.stats().live_blocks, 0);
}

#[test]
fn explicit_handles_work_without_the_shim() {
    let arena = Arena::new();
    let locked = LockedArena::new();
    let mut a: AVec<u32, &Arena> = AVec::new_in(&arena);
    let mut b: AVec<u32, &LockedArena> = AVec::new_in(&locked);
    a.extend(0..1000);
    b.extend(0..1000);
    assert!(is_arena_pointer(a.as_ptr()) && is_arena_pointer(b.as_ptr()));
    assert_eq!(a.iter().sum::<u32>(), b.iter().sum::<u32>());
    // Pushing one at a time grows at the tip: one block each, however many
    // steps it took.
    assert_eq!(
        (arena.stats().live_blocks, locked.stats().live_blocks),
        (1, 1)
    );
    drop((a, b));
    assert_eq!(
        (arena.stats().live_blocks, locked.stats().live_blocks),
        (0, 0)
    );
}

#[test]
fn zero_size_current_allocations_touch_nothing() {
    let arena = Arena::new();
    with_bumper(&arena, || {
        for align in [1, 8, 256] {
            let layout = Layout::from_size_align(0, align).unwrap();
            let block = Current.allocate(layout).unwrap();
            assert_eq!(block.len(), 0);
            let p = block.cast::<u8>();
            assert!(p.as_ptr().addr().is_multiple_of(align));
            assert!(!is_arena_pointer(p.as_ptr()));
            // SAFETY: allocated just above by `Current` with `layout`.
            unsafe { Current.deallocate(p, layout) };
        }
        let mut units: AVec<(), Current> = AVec::new_in(Current);
        units.extend(std::iter::repeat_n((), 100));
        assert_eq!(units.len(), 100);
    });
    assert_eq!(arena.stats().allocations, 0);
}
