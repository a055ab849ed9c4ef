//! Explicit `&Arena` / `&LockedArena` handles outside a region (issue 16,
//! §4): each call holds the arena's lane for the call only, frees at the
//! tip hand memory back at once (not through the cross-thread free list),
//! and inside a region of the same arena the region's lane is used.

use bumper::allocator_api2::boxed::Box as ABox;
use bumper::allocator_api2::vec::Vec as AVec;
use bumper::{Arena, LockedArena, is_arena_pointer, with_bumper};

#[global_allocator]
static GLOBAL: bumper::Bumper = bumper::Bumper::system();

#[test]
fn outside_a_region_a_free_at_the_tip_is_reused_at_once() {
    let arena = Arena::new();
    let a = ABox::new_in(1u64, &arena);
    let b = ABox::new_in(2u64, &arena);
    let b_addr = &*b as *const u64;
    drop(b);
    let c = ABox::new_in(3u64, &arena);
    assert_eq!(
        &*c as *const u64, b_addr,
        "the freed tip block is handed out again"
    );
    assert_eq!((*a, *c), (1, 3));
    drop((a, c));
    let s = arena.stats();
    assert_eq!((s.live_blocks, s.bytes_in_use), (0, 0), "{s}");
}

#[test]
fn a_vec_grown_outside_a_region_ends_with_nothing_live() {
    let (arena, shared) = (Arena::new(), LockedArena::new());
    let mut v = AVec::new_in(&arena);
    v.extend(0..10_000u64);
    assert!(is_arena_pointer(v.as_ptr()));
    assert!(v.iter().copied().eq(0..10_000));
    drop(v);
    let mut w = AVec::new_in(&shared);
    w.extend(0..10_000u64);
    assert!(is_arena_pointer(w.as_ptr()));
    assert!(w.iter().copied().eq(0..10_000));
    drop(w);
    for s in [arena.stats(), shared.stats()] {
        assert_eq!((s.live_blocks, s.live_bytes), (0, 0), "{s}");
    }
    assert!(arena.reset().is_clean() && shared.reset().is_clean());
}

#[test]
fn inside_a_region_of_another_arena_explicit_calls_go_to_their_own() {
    let (a, b) = (Arena::new(), Arena::new());
    let (x, y) = with_bumper(&b, || {
        let x = ABox::new_in([7u8; 32], &a);
        let y = Box::new([8u8; 32]); // the region's arena
        (x, y)
    });
    assert_eq!(a.stats().live_blocks, 1);
    assert_eq!(b.stats().live_blocks, 1);
    drop((x, y));
    assert!(a.reset().is_clean() && b.reset().is_clean());
}

#[test]
fn threads_use_one_locked_arena_through_explicit_handles_at_once() {
    let arena = LockedArena::new();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let arena = &arena;
            s.spawn(move || {
                for i in 0..2_000u64 {
                    let mut v = AVec::new_in(arena);
                    v.extend((0..(i % 50)).map(|k| k + t));
                    assert_eq!(v.iter().sum::<u64>(), (0..(i % 50)).map(|k| k + t).sum());
                    let b = ABox::new_in(i, arena);
                    assert_eq!(*b, i);
                }
            });
        }
    });
    let s = arena.stats();
    assert_eq!((s.live_blocks, s.live_bytes), (0, 0), "{s}");
    assert!(arena.reset().is_clean());
}
