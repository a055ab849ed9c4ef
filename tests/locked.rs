//! SAFETY.md §6, many threads, one arena: locked mode. Several threads allocate
//! from one `LockedArena` at once, with correct results and exact accounting.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

mod common;
counting_shim!();

use bumper::{EscapePolicy, LockedArena, is_arena_pointer, with_bumper};
use common::count_inner;
use common::pattern::{check, fill, holds};
use std::collections::HashMap;
use std::sync::Barrier;

#[test]
fn many_threads_allocate_from_one_locked_arena() {
    let arena = LockedArena::new();
    let threads = 8;
    let barrier = Barrier::new(threads);
    let cp = arena.checkpoint();
    let results: Vec<(u64, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads as u64)
            .map(|t| {
                let (arena, barrier) = (&arena, &barrier);
                s.spawn(move || {
                    let (r, inner) = count_inner(|| {
                        with_bumper(arena, || {
                            barrier.wait(); // all threads allocate at the same time
                            let mut map: HashMap<u64, Vec<u8>> = HashMap::new();
                            for i in 0..2000 {
                                let mut v = vec![0u8; (i % 300) as usize + 1];
                                fill(&mut v, t * 1_000_000 + i);
                                map.insert(i, v);
                            }
                            let ok = map.iter().all(|(i, v)| {
                                is_arena_pointer(v.as_ptr()) && holds(v, t * 1_000_000 + i)
                            });
                            assert!(ok, "thread {t}: data corrupted");
                            map.values().map(|v| v.len() as u64).sum::<u64>()
                        })
                    });
                    (r, inner.allocs + inner.reallocs)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let expect: u64 = (0..2000u64).map(|i| i % 300 + 1).sum();
    for (sum, inner) in &results {
        assert_eq!(*sum, expect);
        assert_eq!(*inner, 0, "a worker reached the inner allocator");
    }
    let s = arena.stats();
    assert_eq!(s.live_blocks, 0, "{s}");
    assert!(s.lanes >= 2, "threads shared one lane: {s}");
    assert!(s.lanes <= threads as u32);
    let r = arena.reset_to(cp);
    assert!(r.is_clean(), "{r}");
    assert_eq!(arena.stats().bytes_in_use, 0);
}

#[test]
fn lanes_are_reused_by_later_threads() {
    let arena = LockedArena::new();
    for round in 0..20 {
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| with_bumper(&arena, || drop(vec![round as u8; 1000])));
            }
        });
    }
    let s = arena.stats();
    assert!(
        s.lanes <= 2,
        "a lane was created per thread instead of reused: {s}"
    );
    assert_eq!(s.allocations, 40);
}

#[test]
fn a_reset_while_other_threads_are_inside_a_region_skips_their_lanes() {
    let arena = LockedArena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let ready = Barrier::new(2);
    let done = Barrier::new(2);
    std::thread::scope(|s| {
        let worker = s.spawn(|| {
            with_bumper(&arena, || {
                let mut v = vec![0u8; 100_000];
                fill(&mut v, 5);
                ready.wait();
                done.wait(); // the main thread resets meanwhile
                check(&v, 5, "a reset reclaimed memory in use on another thread");
                let w = vec![1u8; 100_000]; // keeps allocating afterwards
                w.len()
            })
        });
        ready.wait();
        let r = arena.reset();
        assert_eq!(r.busy_lanes, 1, "{r}");
        assert!(r.escaped());
        done.wait();
        assert_eq!(worker.join().unwrap(), 100_000);
    });
    let s = arena.stats();
    assert_eq!(s.escapes, 1);
    assert_eq!(s.live_blocks, 0);
    assert!(arena.reset().is_clean());
    assert_eq!(arena.stats().bytes_in_use, 0);
}

#[test]
fn threads_beyond_the_lane_limit_spill_safely() {
    let arena = LockedArena::builder().max_threads(1).build().unwrap();
    let barrier = Barrier::new(3);
    let results: Vec<(bool, usize)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    with_bumper(&arena, || {
                        barrier.wait(); // all three inside a region at once
                        let v = vec![3u8; 1000];
                        let r = (
                            is_arena_pointer(v.as_ptr()),
                            v.iter().map(|&x| x as usize).sum(),
                        );
                        barrier.wait();
                        r
                    })
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.iter().all(|&(_, sum)| sum == 3000));
    assert_eq!(
        results.iter().filter(|r| r.0).count(),
        1,
        "exactly one thread has the lane"
    );
    let s = arena.stats();
    assert_eq!(s.lanes_exhausted, 2);
    assert_eq!(s.spills, 2);
}

#[test]
fn checkpoints_cover_lanes_created_after_them() {
    let arena = LockedArena::new();
    let base = arena.stats().bytes_in_use;
    for _ in 0..5 {
        let cp = arena.checkpoint();
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let arena = &arena;
                s.spawn(move || {
                    with_bumper(arena, || {
                        // Dropped before the region ends, out of order.
                        let blocks: Vec<Vec<u8>> = (0..100).map(|i| vec![t; 100 + i]).collect();
                        let total: usize = blocks.iter().map(|b| b.len()).sum();
                        assert_eq!(total, 100 * 100 + 4950);
                    })
                });
            }
        });
        let r = arena.reset_to(cp);
        assert!(r.is_clean(), "{r}");
        assert_eq!(arena.stats().bytes_in_use, base);
    }
}

#[test]
fn locked_arena_is_usable_from_rayon() {
    use rayon::prelude::*;
    let arena = LockedArena::new();
    let sums: Vec<u64> = (0..64u64)
        .into_par_iter()
        .map(|i| {
            with_bumper(&arena, || {
                let v: Vec<u64> = (0..1000).map(|x| x * i).collect();
                assert!(is_arena_pointer(v.as_ptr()));
                v.iter().sum()
            })
        })
        .collect();
    assert!(
        sums.iter()
            .enumerate()
            .all(|(i, &s)| s == 499_500 * i as u64)
    );
    let s = arena.stats();
    assert_eq!(s.allocations, 64);
    assert_eq!(s.live_blocks, 0);
}
