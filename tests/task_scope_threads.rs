//! SAFETY.md §14, regions that follow work into threads: `bumper::thread`
//! children of a `LockedArena` region allocate from it, each on a lane of
//! its own; a `'static` child keeps its arena alive after the parent dropped
//! its `LockedArena`; children of an unlocked `Arena`'s region, and children
//! spawned outside regions, run outside any region, as std's do; panics
//! propagate through `join` as with std. Also `Region::current` (none
//! outside regions and inside an `Arena`'s, the newest shareable one
//! otherwise) and `Region::enter` from several threads at once.
//!
//! Spawning a thread allocates std's bookkeeping for it (the `Thread`
//! handle, the result packet), inside a region from the arena. Some of it is
//! freed by the child's thread-local destructors, after `join` returned, so
//! the tests that count live blocks after children ended wait, a bounded
//! number of times, for those last frees to arrive (`settle`).

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

mod common;
counting_shim!();

use bumper::{Arena, EscapePolicy, LockedArena, Region, is_arena_pointer, measure, with_bumper};
use common::count_inner;
use common::pattern::{check, filled};
use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Barrier};

/// Waits until `live()` is `want`, polling up to 3000 times 10 ms apart (a
/// bound, not a timing assertion: a thread's teardown normally takes
/// microseconds). Panics with `what` if it never is.
#[track_caller]
fn settle(what: &str, want: u64, live: impl Fn() -> u64) {
    for _ in 0..3000 {
        if live() == want {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{what}: live blocks stayed at {}, expected {want}", live());
}

/// The id of the current thread's shareable region, if any.
fn current_id() -> Option<u64> {
    Region::current().map(|r| r.arena_id())
}

/// A panic payload to recognise after `join`.
#[derive(Debug, PartialEq)]
struct Boom(u32);

fn boom(payload: &(dyn Any + Send)) -> Option<&Boom> {
    payload.downcast_ref::<Boom>()
}

// ---------------------------------------------------------------------------
// Children of a LockedArena region
// ---------------------------------------------------------------------------

#[test]
fn scope_children_allocate_from_the_region_each_on_its_own_lane() {
    const CHILDREN: usize = 4;
    const LEN: usize = 10_000;
    let arena = LockedArena::new();
    let barrier = Barrier::new(CHILDREN);
    let id = arena.id();
    // Made outside the region, with room for every result: on the heap, so
    // that the arena holds only what the children allocated (and the
    // spawns' bookkeeping, until the children are gone).
    let mut kept: Vec<Vec<u8>> = Vec::with_capacity(CHILDREN);
    with_bumper(&arena, || {
        bumper::thread::scope(|s| {
            let handles: Vec<_> = (0..CHILDREN as u64)
                .map(|t| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        assert_eq!(current_id(), Some(id), "child {t} is not in the region");
                        // All children are inside the region at once, so each
                        // holds a lane of its own.
                        barrier.wait();
                        let (v, inner) = count_inner(|| filled(LEN, t));
                        assert_eq!(inner.allocs + inner.reallocs, 0, "child {t} used the heap");
                        assert!(is_arena_pointer(v.as_ptr()));
                        barrier.wait();
                        v
                    })
                })
                .collect();
            kept.extend(handles.into_iter().map(|h| h.join().unwrap()));
        })
    });
    assert!(!is_arena_pointer(kept.as_ptr()));
    for (t, v) in kept.iter().enumerate() {
        check(v, t as u64, "a child's vector after the scope");
    }
    let s = arena.stats();
    // The parent's lane (it is inside the region while the children run)
    // and one per child.
    assert_eq!(s.lanes, 1 + CHILDREN as u32, "{s}");
    settle("children's vectors", CHILDREN as u64, || {
        arena.stats().live_blocks
    });
    assert_eq!(arena.stats().live_bytes, (CHILDREN * LEN) as u64);
    drop(kept);
    assert_eq!(arena.stats().live_blocks, 0);
    assert!(arena.reset().is_clean());
    assert_eq!(arena.stats().bytes_in_use, 0);
}

#[test]
fn spawned_children_allocate_from_the_region_each_on_its_own_lane() {
    const CHILDREN: usize = 3;
    let arena = LockedArena::new();
    let id = arena.id();
    let barrier = Arc::new(Barrier::new(CHILDREN));
    // On the heap (made outside the region, never grown inside it).
    let mut handles = Vec::with_capacity(CHILDREN);
    with_bumper(&arena, || {
        handles.extend((0..CHILDREN as u64).map(|t| {
            let barrier = Arc::clone(&barrier);
            bumper::thread::spawn(move || {
                assert_eq!(current_id(), Some(id));
                barrier.wait();
                let (v, m) = measure(|| filled(4096, 100 + t));
                assert_eq!((m.inner_calls, m.arena_calls), (0, 1), "child {t}: {m}");
                barrier.wait();
                v
            })
        }))
    });
    // Joined outside the region: the results are still arena memory.
    let kept: Vec<Vec<u8>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (t, v) in kept.iter().enumerate() {
        assert!(is_arena_pointer(v.as_ptr()));
        check(v, 100 + t as u64, "a spawned child's vector");
    }
    // The parent left the region before the children entered theirs, so
    // it may have given lane 0 back to one of them: 3 or 4 lanes.
    let lanes = arena.stats().lanes;
    assert!(
        (CHILDREN as u32..=CHILDREN as u32 + 1).contains(&lanes),
        "{lanes} lanes"
    );
    settle("spawned children's vectors", CHILDREN as u64, || {
        arena.stats().live_blocks
    });
    drop(kept);
    assert_eq!(arena.stats().live_blocks, 0);
    assert!(arena.reset().is_clean());
}

#[test]
fn a_static_child_keeps_working_after_the_parent_dropped_its_locked_arena() {
    let arena = LockedArena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let id = arena.id();
    // Made outside the region: on the heap.
    let dropped = Arc::new(Barrier::new(2));
    let child = {
        let dropped = Arc::clone(&dropped);
        with_bumper(&arena, || {
            bumper::thread::spawn(move || {
                let before = filled(50_000, 1);
                assert!(is_arena_pointer(before.as_ptr()));
                dropped.wait(); // the parent drops its `LockedArena` now
                dropped.wait();
                // Still in the region, which the child's handle keeps open.
                let region =
                    Region::current().expect("the child's region outlived the parent's arena");
                assert_eq!(region.arena_id(), id);
                let s0 = region.stats();
                let after = filled(70_000, 2);
                assert!(is_arena_pointer(after.as_ptr()));
                let s1 = region.stats();
                assert_eq!(s1.allocations, s0.allocations + 1, "{s1}");
                assert_eq!(s1.live_blocks, s0.live_blocks + 1, "{s1}");
                assert_eq!(s1.live_bytes, s0.live_bytes + 70_000, "{s1}");
                // The parent's drop reset nothing that was in use.
                check(&before, 1, "a block allocated before the parent's drop");
                check(&after, 2, "a block allocated after the parent's drop");
                (before, after)
            })
        })
    };
    dropped.wait();
    drop(arena);
    dropped.wait();
    let (before, after) = child.join().expect("the child failed");
    // Every handle is gone now; the blocks keep the arena's memory mapped.
    assert!(is_arena_pointer(before.as_ptr()) && is_arena_pointer(after.as_ptr()));
    check(&before, 1, "a child's block after every handle was dropped");
    check(&after, 2, "a child's block after every handle was dropped");
}

#[test]
fn a_region_keeps_its_arena_alive_after_the_locked_arena_is_dropped() {
    let region = {
        let arena = LockedArena::new();
        arena.region()
    };
    let v = region.enter(|| filled(1000, 9));
    assert!(is_arena_pointer(v.as_ptr()));
    let s = region.stats();
    assert_eq!((s.allocations, s.live_blocks, s.live_bytes), (1, 1, 1000));
    let clone = region.clone();
    drop(region);
    let w = clone.enter(|| filled(500, 10));
    check(&v, 9, "a block of a region whose arena value was dropped");
    drop(v);
    drop(w);
    let s = clone.stats();
    assert_eq!((s.allocations, s.live_blocks), (2, 0));
}

// ---------------------------------------------------------------------------
// Children that run outside any region
// ---------------------------------------------------------------------------

#[test]
fn children_of_an_unlocked_arena_region_run_outside_any_region() {
    let arena = Arena::new();
    let child_side = |label: &str| {
        assert_eq!(current_id(), None, "{label}: inside a region");
        let (v, m) = measure(|| filled(2048, 3));
        assert_eq!((m.arena_calls, m.inner_calls), (0, 1), "{label}: {m}");
        assert!(!is_arena_pointer(v.as_ptr()), "{label}");
        v
    };
    let (spawned, scoped) = with_bumper(&arena, || {
        let spawned = bumper::thread::spawn(move || child_side("spawn"));
        let scoped = bumper::thread::scope(|s| s.spawn(|| child_side("scope")).join().unwrap());
        (spawned.join().unwrap(), scoped)
    });
    assert!(!is_arena_pointer(spawned.as_ptr()) && !is_arena_pointer(scoped.as_ptr()));
    // Only the spawns' own bookkeeping, made by the parent inside the
    // region, can be in the arena; nothing the children allocated is.
    let s = arena.stats();
    assert!(s.bytes_allocated < 2048, "{s}");
}

#[test]
fn an_arena_region_nested_inside_a_locked_one_keeps_children_out_of_both() {
    let locked = LockedArena::new();
    let unlocked = Arena::new();
    let (inner, outer) = with_bumper(&locked, || {
        let inner = with_bumper(&unlocked, || {
            bumper::thread::scope(|s| s.spawn(current_id).join().unwrap())
        });
        // Back in the locked region only: children inherit it again.
        let outer = bumper::thread::scope(|s| s.spawn(current_id).join().unwrap());
        (inner, outer)
    });
    assert_eq!(
        inner, None,
        "the newest region is unlocked: the child must run outside"
    );
    assert_eq!(outer, Some(locked.id()));
}

#[test]
fn outside_regions_bumper_threads_behave_as_std_threads() {
    let data = vec![1u64; 1000];
    let (sum, m) = measure(|| {
        let spawned = bumper::thread::spawn(|| {
            assert_eq!(current_id(), None);
            let v: Vec<u64> = (0..100).collect();
            assert!(!is_arena_pointer(v.as_ptr()));
            v.iter().sum::<u64>()
        });
        let scoped: u64 = bumper::thread::scope(|s| {
            let (a, b) = data.split_at(500); // borrows, as std's scope allows
            let left = s.spawn(|| a.iter().sum::<u64>());
            let right = s.spawn(|| b.iter().sum::<u64>());
            assert_eq!(current_id(), None);
            left.join().unwrap() + right.join().unwrap()
        });
        spawned.join().unwrap() + scoped
    });
    assert_eq!(sum, 4950 + 1000);
    assert_eq!(m.arena_calls, 0, "{m}");
    // The handle types are std's.
    let h: std::thread::JoinHandle<u8> = bumper::thread::spawn(|| 5);
    assert_eq!(h.join().unwrap(), 5);
}

#[test]
fn plain_std_threads_spawned_inside_a_region_do_not_inherit_it() {
    // README: "plain `std::thread::spawn`: no".
    let arena = LockedArena::new();
    let (spawned, scoped) = with_bumper(&arena, || {
        let spawned = std::thread::spawn(|| {
            let v = vec![0u8; 256];
            (current_id(), is_arena_pointer(v.as_ptr()))
        });
        let scoped = std::thread::scope(|s| {
            s.spawn(|| {
                let v = vec![0u8; 256];
                (current_id(), is_arena_pointer(v.as_ptr()))
            })
            .join()
            .unwrap()
        });
        (spawned.join().unwrap(), scoped)
    });
    assert_eq!(spawned, (None, false));
    assert_eq!(scoped, (None, false));
}

// ---------------------------------------------------------------------------
// Panics
// ---------------------------------------------------------------------------

#[test]
fn a_panic_in_a_spawned_child_comes_back_through_join_as_with_std() {
    let arena = LockedArena::new();
    let (ours, std_) = with_bumper(&arena, || {
        (
            bumper::thread::spawn(|| -> u8 { resume_unwind(Box::new(Boom(1))) }).join(),
            std::thread::spawn(|| -> u8 { resume_unwind(Box::new(Boom(1))) }).join(),
        )
    });
    let (ours, std_) = (ours.unwrap_err(), std_.unwrap_err());
    assert_eq!(boom(&*ours), Some(&Boom(1)));
    assert_eq!(boom(&*std_), Some(&Boom(1)));
    // The arena is consistent and usable after the child's panic.
    drop((ours, std_));
    assert_eq!(with_bumper(&arena, || vec![1u8; 10].len()), 10);
}

#[test]
fn a_panic_in_a_scoped_child_propagates_as_with_std() {
    let arena = LockedArena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    // A joined child's panic is the handle's error.
    let joined = with_bumper(&arena, || {
        bumper::thread::scope(|s| {
            s.spawn(|| -> u8 { resume_unwind(Box::new(Boom(2))) })
                .join()
        })
    });
    assert_eq!(boom(&*joined.unwrap_err()), Some(&Boom(2)));
    // A child's panic that nobody joined makes `scope` panic, with std's
    // message.
    let ours = catch_unwind(AssertUnwindSafe(|| {
        with_bumper(&arena, || {
            bumper::thread::scope(|s| {
                s.spawn(|| -> u8 { resume_unwind(Box::new(Boom(3))) });
            })
        })
    }))
    .unwrap_err();
    let std_ = catch_unwind(|| {
        std::thread::scope(|s| {
            s.spawn(|| -> u8 { resume_unwind(Box::new(Boom(3))) });
        })
    })
    .unwrap_err();
    let text = |p: &(dyn Any + Send)| {
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
    };
    assert_eq!(text(&*ours), text(&*std_));
    assert!(text(&*ours).is_some_and(|t| t.contains("a scoped thread panicked")));
}

// ---------------------------------------------------------------------------
// Region::current and Region::enter
// ---------------------------------------------------------------------------

#[test]
fn region_current_is_none_outside_regions_and_in_arena_regions() {
    assert!(Region::current().is_none());
    let arena = Arena::new();
    assert!(with_bumper(&arena, Region::current).is_none());
    assert!(Region::current().is_none());
}

#[test]
fn region_current_is_the_newest_shareable_region() {
    let a = LockedArena::new();
    let b = LockedArena::new();
    let unlocked = Arena::new();
    with_bumper(&a, || {
        assert_eq!(current_id(), Some(a.id()));
        with_bumper(&b, || {
            assert_eq!(current_id(), Some(b.id()), "the newest region wins");
            with_bumper(&unlocked, || {
                assert_eq!(current_id(), None, "the newest region is unlocked");
                // A locked region inside the unlocked one is shareable again.
                a.region().enter(|| assert_eq!(current_id(), Some(a.id())));
                assert_eq!(current_id(), None);
            });
            assert_eq!(current_id(), Some(b.id()));
        });
        assert_eq!(current_id(), Some(a.id()));
    });
    assert_eq!(current_id(), None);
    // Through `Region::enter` too, and the handle it returns enters the same
    // arena.
    let region = b.region();
    let again = region.enter(|| Region::current().expect("inside `enter`"));
    assert_eq!(again.arena_id(), b.id());
    let v = again.enter(|| vec![0u8; 64]);
    assert!(is_arena_pointer(v.as_ptr()));
    assert_eq!(b.stats().live_blocks, 1);
}

#[test]
fn region_enter_from_several_threads_at_once() {
    const THREADS: usize = 4;
    const BLOCKS: u64 = 100;
    let arena = LockedArena::new();
    let region = arena.region();
    let barrier = Barrier::new(THREADS);
    // Spawned outside any region: nothing but the work below is in the
    // arena, so the counts are exact.
    std::thread::scope(|s| {
        for t in 0..THREADS as u64 {
            let (region, barrier) = (&region, &barrier);
            s.spawn(move || {
                region.enter(|| {
                    barrier.wait(); // every thread holds a lane now
                    let blocks: Vec<Vec<u8>> =
                        (0..BLOCKS).map(|i| filled(100, t * 1000 + i)).collect();
                    for (i, b) in blocks.iter().enumerate() {
                        assert!(is_arena_pointer(b.as_ptr()));
                        check(b, t * 1000 + i as u64, "a block of a thread in the region");
                    }
                    barrier.wait(); // nobody frees before everyone checked
                });
                assert_eq!(current_id(), None, "the region did not end with `enter`");
            });
        }
    });
    let s = arena.stats();
    assert_eq!(s.lanes, THREADS as u32, "{s}");
    // Per thread: the blocks and the vector holding them.
    assert_eq!(s.allocations, THREADS as u64 * (BLOCKS + 1), "{s}");
    assert_eq!(s.live_blocks, 0, "{s}");
    assert!(arena.reset().is_clean());
    assert_eq!(arena.stats().bytes_in_use, 0);
}
