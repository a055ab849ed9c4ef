//! Regions that end out of order (SAFETY.md §13): a stackful coroutine can
//! suspend inside `with_bumper(&a, ..)` and be resumed, or dropped, inside
//! `with_bumper(&b, ..)`. Each exit must remove exactly its own region, and
//! the route must always name a live region or none, so that no allocation
//! is ever served by an arena that has been dropped.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

use std::rc::Rc;

use bumper::{Arena, Bumper, EscapePolicy, LockedArena, ResetError, is_arena_pointer, with_bumper};
use corosensei::{Coroutine, CoroutineResult, Yielder};

#[global_allocator]
static GLOBAL: Bumper = Bumper::system();

/// Allocation after the coroutine games: nothing may be served by a dropped
/// arena, and arenas made now must not hand out memory that is still in use.
/// This is the tail of the reproducer that printed "corrupted bytes of x:
/// 936" before regions were tracked per entry.
fn assert_no_stale_route() {
    let d = Arena::new();
    let y = vec![1u8; 64];
    assert!(
        !is_arena_pointer(y.as_ptr()),
        "no region is active, yet the allocation came from an arena"
    );
    drop(d);
    let x = vec![0xAAu8; 1000];
    assert!(!is_arena_pointer(x.as_ptr()));
    drop(y);
    let e = Arena::new();
    let z = with_bumper(&e, || vec![0x55u8; 1000]);
    assert!(is_arena_pointer(z.as_ptr()));
    let bad = x.iter().filter(|&&b| b != 0xAA).count();
    assert_eq!(bad, 0, "corrupted bytes of x");
    assert!(z.iter().all(|&b| b == 0x55));
    drop(z);
    assert_eq!(e.stats().live_blocks, 0);
}

#[test]
fn a_region_that_ends_inside_a_newer_region_leaves_the_newer_one_active() {
    let mut co = Coroutine::new(|y: &Yielder<(), ()>, ()| {
        let a = Arena::new();
        with_bumper(&a, || {
            let before = vec![1u8; 100];
            assert!(is_arena_pointer(before.as_ptr()));
            y.suspend(());
            // Resumed inside region(b): the newest region is b's.
            drop(before);
        });
        assert_eq!(a.stats().live_blocks, 0);
        // `a` is dropped here, while region(b) is active.
    });
    assert!(matches!(co.resume(()), CoroutineResult::Yield(())));
    let b = Arena::new();
    let kept = with_bumper(&b, || {
        assert!(matches!(co.resume(()), CoroutineResult::Return(())));
        // Region(a) ended and `a` was dropped; region(b) is still active.
        let v = vec![2u8; 100];
        assert!(is_arena_pointer(v.as_ptr()));
        v
    });
    assert_eq!(b.stats().live_blocks, 1, "the block was served by b");
    assert_eq!(b.stats().allocations, 1);
    drop(co);
    // Leaving region(b) must not restore the route to a's freed lane.
    let after = vec![3u8; 100];
    assert!(!is_arena_pointer(after.as_ptr()));
    assert!(kept.iter().all(|&x| x == 2));
    drop(kept);
    assert_eq!(b.stats().live_blocks, 0);
    assert_no_stale_route();
}

#[test]
fn a_coroutine_dropped_while_suspended_in_a_region_ends_only_that_region() {
    let a = Rc::new(Arena::new());
    let a2 = Rc::clone(&a);
    let mut co = Coroutine::new(move |y: &Yielder<(), ()>, ()| {
        with_bumper(&*a2, || {
            let v = vec![7u8; 64];
            y.suspend(());
            unreachable!("never resumed: {v:?}");
        })
    });
    assert!(matches!(co.resume(()), CoroutineResult::Yield(())));
    let b = Arena::new();
    with_bumper(&b, || {
        // Dropping the suspended coroutine unwinds its stack: region(a) ends
        // while region(b) is the newest.
        drop(co);
        let v = vec![1u8; 32];
        assert!(is_arena_pointer(v.as_ptr()));
        assert_eq!(b.stats().live_blocks, 1);
    });
    assert_eq!(
        a.stats().live_blocks,
        0,
        "unwinding freed the coroutine's block"
    );
    let v = vec![0u8; 32];
    assert!(!is_arena_pointer(v.as_ptr()));
    drop(a);
    assert_no_stale_route();
}

#[test]
fn interleaved_regions_of_two_coroutines_route_to_the_newest_live_region() {
    let a = Rc::new(Arena::new());
    let b = Rc::new(Arena::new());
    let (ac, bc) = (Rc::clone(&a), Rc::clone(&b));
    // Each coroutine enters its arena's region, suspends, allocates on
    // resume and ends its region on the next resume.
    let make = |arena: Rc<Arena>| {
        Coroutine::new(move |y: &Yielder<(), usize>, ()| {
            with_bumper(&*arena, || {
                y.suspend(0);
                let v = vec![9u8; 48];
                let in_arena = is_arena_pointer(v.as_ptr()) as usize;
                y.suspend(in_arena);
                drop(v);
            });
            0
        })
    };
    let mut ca = make(ac);
    let mut cb = make(bc);
    assert!(matches!(ca.resume(()), CoroutineResult::Yield(0))); // list: [a]
    assert!(matches!(cb.resume(()), CoroutineResult::Yield(0))); // list: [a, b]
    // The thread's newest region is b's: allocations go there, whichever
    // coroutine runs.
    assert!(matches!(ca.resume(()), CoroutineResult::Yield(1)));
    assert_eq!(b.stats().live_blocks, 1, "served by the newest region");
    assert_eq!(a.stats().live_blocks, 0);
    // End region(a) first, while region(b) is newer: out of order.
    assert!(matches!(ca.resume(()), CoroutineResult::Return(0))); // list: [b]
    let v = vec![5u8; 16];
    assert!(is_arena_pointer(v.as_ptr()));
    assert_eq!(b.stats().live_blocks, 1, "region(b) is still the newest");
    drop(v);
    assert!(matches!(cb.resume(()), CoroutineResult::Yield(1)));
    assert_eq!(b.stats().live_blocks, 1);
    assert!(matches!(cb.resume(()), CoroutineResult::Return(0))); // list: []
    let w = vec![5u8; 16];
    assert!(!is_arena_pointer(w.as_ptr()), "no region is left");
    drop((ca, cb));
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.live_blocks, sb.live_blocks), (0, 0));
    drop((a, b));
    assert_no_stale_route();
}

#[test]
fn nested_checkpoints_across_two_coroutines_are_rejected_not_corrupted() {
    let arena = Rc::new(Arena::new());
    let (a1, a2) = (Rc::clone(&arena), Rc::clone(&arena));
    // Coroutine 1 takes a checkpoint and allocates, coroutine 2 does the
    // same, then coroutine 1 resets first: its checkpoint is older than
    // coroutine 2's on the same thread, so the reset is out of order.
    let mut c1 = Coroutine::new(move |y: &Yielder<(), Option<ResetError>>, ()| {
        let cp = a1.checkpoint();
        let kept = with_bumper(&*a1, || vec![0x11u8; 200]);
        y.suspend(None);
        let err = a1.try_reset_to(cp).err();
        y.suspend(err);
        assert!(
            kept.iter().all(|&b| b == 0x11),
            "c1's block was overwritten"
        );
        None::<ResetError>
    });
    let mut c2 = Coroutine::new(move |y: &Yielder<(), Option<ResetError>>, ()| {
        let cp = a2.checkpoint();
        let kept = with_bumper(&*a2, || vec![0x22u8; 200]);
        y.suspend(None);
        // Still live: the reset keeps it.
        let report = a2.try_reset_to(cp).expect("c2's checkpoint is the newest");
        assert_eq!(report.escaped_blocks, 1);
        let again = with_bumper(&*a2, || vec![0x33u8; 200]);
        assert!(
            kept.iter().all(|&b| b == 0x22),
            "c2's block was overwritten"
        );
        assert!(again.iter().all(|&b| b == 0x33));
        None::<ResetError>
    });
    assert!(matches!(c1.resume(()), CoroutineResult::Yield(None)));
    assert!(matches!(c2.resume(()), CoroutineResult::Yield(None)));
    match c1.resume(()) {
        CoroutineResult::Yield(Some(ResetError::OutOfOrder { newer: 1 })) => {}
        other => panic!(
            "expected an out-of-order error, got {:?}",
            matches!(other, CoroutineResult::Return(_))
        ),
    }
    assert!(matches!(c2.resume(()), CoroutineResult::Return(None)));
    assert!(matches!(c1.resume(()), CoroutineResult::Return(None)));
    drop((c1, c2));
    let s = arena.stats();
    assert_eq!(s.live_blocks, 0);
    assert_eq!(s.active_checkpoints, 0);
    // Both checkpoints are gone: a full reset works again.
    assert!(arena.try_reset().is_ok());
    drop(arena);
    assert_no_stale_route();
}

#[test]
fn a_locked_arena_region_ended_out_of_order_gives_its_lane_back() {
    let locked: &'static LockedArena = Box::leak(Box::new(LockedArena::new()));
    let mut co = Coroutine::new(move |y: &Yielder<(), ()>, ()| {
        with_bumper(locked, || y.suspend(()));
    });
    assert!(matches!(co.resume(()), CoroutineResult::Yield(())));
    assert_eq!(locked.stats().lanes, 1);
    let b = Arena::new();
    with_bumper(&b, || {
        assert!(matches!(co.resume(()), CoroutineResult::Return(())));
        let v = vec![1u8; 10];
        assert!(is_arena_pointer(v.as_ptr()));
        assert_eq!(b.stats().live_blocks, 1);
    });
    // The lane was given back: another thread's region takes it instead of
    // needing a second lane.
    std::thread::spawn(move || {
        let v = with_bumper(locked, || vec![4u8; 10]);
        assert!(is_arena_pointer(v.as_ptr()));
    })
    .join()
    .unwrap();
    let s = locked.stats();
    assert_eq!((s.lanes, s.busy_lanes, s.live_blocks), (1, 0, 0));
    drop(co);
    assert_no_stale_route();
}

#[test]
fn a_leaked_coroutine_keeps_its_region_and_its_arena_valid() {
    // A coroutine that owns its arena and is forgotten while inside the
    // region: the region never ends and the arena is never dropped. The
    // route keeps naming that live region; nothing dangles.
    let mut co = Coroutine::new(|y: &Yielder<(), ()>, ()| {
        let a = Arena::new();
        with_bumper(&a, || y.suspend(()));
    });
    assert!(matches!(co.resume(()), CoroutineResult::Yield(())));
    std::mem::forget(co);
    // Inside the leaked region: allocations come from its (live) arena, and
    // other arenas still work and keep their memory apart.
    let v = vec![0x77u8; 4096];
    assert!(is_arena_pointer(v.as_ptr()));
    let other = Arena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let w = with_bumper(&other, || vec![0x88u8; 4096]);
    drop(other);
    let x: Vec<u64> = (0..10_000).collect();
    assert!(v.iter().all(|&b| b == 0x77));
    assert!(w.iter().all(|&b| b == 0x88));
    assert_eq!(x.iter().sum::<u64>(), 49_995_000);
}
