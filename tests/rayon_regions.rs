//! SAFETY.md §14, rayon: the supported pattern is a `Region` of a
//! `LockedArena` entered per work item,
//! `items.par_iter().map(|x| region.enter(|| work(x)))`. Each item's
//! allocations come from the arena, on whichever pool thread runs it, with
//! exact counts, and a reset after the parallel batch reclaims everything.
//!
//! Why bumper has no deeper rayon integration (no `rayon` feature). rayon
//! has no per-job hook on its workers: a job cannot say "run my closures
//! inside this region" except by wrapping them, which is what the pattern
//! does. The alternative, worker threads that live inside a region for good
//! (a pool whose `start_handler` enters it), would hold their lanes for
//! ever: a reset skips a lane that a region holds, so resets could never
//! reclaim what those threads allocated, and every job of every user of the
//! pool would allocate from that one arena. Entering per item costs a
//! thread-local update and, the first time a thread meets the arena, a
//! lane; the lane is given back when the item ends, so the batch's memory
//! is the arena's to reset as soon as the batch returns.
//! `a_thread_that_stays_in_the_region_keeps_its_lane_from_resets` shows the
//! problem with staying inside.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

mod common;
counting_shim!();

use bumper::{EscapePolicy, LockedArena, Region, is_arena_pointer};
use common::count_inner;
use common::pattern::{check, filled};
use rayon::prelude::*;
use std::sync::Barrier;

const THREADS: usize = 4;

fn pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(THREADS)
        .build()
        .expect("a rayon pool")
}

/// Blocks per work item.
const BLOCKS: usize = 8;

/// One work item: allocates `BLOCKS` blocks (and the vector holding them)
/// and frees them oldest first, so that memory stays in use below the bump
/// pointer until a reset; checks they are arena memory of `arena_id` and
/// that nothing reached the heap. Returns a checksum.
fn work(x: u64, arena_id: u64) -> u64 {
    assert_eq!(Region::current().map(|r| r.arena_id()), Some(arena_id));
    let (sum, inner) = count_inner(|| {
        let blocks: Vec<Vec<u8>> = (0..BLOCKS)
            .map(|k| filled(64 + (x as usize % 7) * 16 + k, x * 100 + k as u64))
            .collect();
        let mut sum = 0;
        for (k, b) in blocks.iter().enumerate() {
            assert!(is_arena_pointer(b.as_ptr()));
            check(b, x * 100 + k as u64, "a work item's block");
            sum += b.len() as u64;
        }
        for b in blocks {
            drop(b);
        }
        sum
    });
    assert_eq!(
        inner.allocs + inner.reallocs,
        0,
        "item {x} reached the heap"
    );
    sum
}

fn work_sum(x: u64) -> u64 {
    (0..BLOCKS as u64).map(|k| 64 + (x % 7) * 16 + k).sum()
}

#[test]
fn per_item_region_enter_allocates_every_item_from_the_arena() {
    const ITEMS: u64 = 1000;
    let pool = pool();
    let arena = LockedArena::new();
    let region = arena.region();
    let id = arena.id();
    let items: Vec<u64> = (0..ITEMS).collect();
    let sums: Vec<u64> = pool.install(|| {
        items
            .par_iter()
            .map(|&x| region.enter(|| work(x, id)))
            .collect()
    });
    for (x, &sum) in sums.iter().enumerate() {
        assert_eq!(sum, work_sum(x as u64), "item {x}");
    }
    let s = arena.stats();
    // Exact: each item's blocks and their vector, and nothing of rayon's.
    assert_eq!(s.allocations, ITEMS * (BLOCKS as u64 + 1), "{s}");
    assert_eq!((s.live_blocks, s.spills), (0, 0), "{s}");
    assert!(s.lanes as usize <= THREADS, "{s}");
    // Every item freed what it allocated: each lane's bump pointer went back
    // at the free that emptied its top piece (SAFETY.md, invariant R1).
    assert_eq!(s.bytes_in_use, 0, "{s}");
    // No pool thread is left inside the region, so the reset reclaims all.
    let outside = pool.broadcast(|_| Region::current().is_none());
    assert!(
        outside.iter().all(|&o| o),
        "a pool thread stayed in the region"
    );
    let report = arena.reset();
    assert!(report.is_clean(), "{report}");
    assert_eq!(arena.stats().bytes_in_use, 0);
    // The next batch runs on the reset arena, as exactly.
    let again: u64 = pool.install(|| {
        items
            .par_iter()
            .map(|&x| region.enter(|| work(x, id)))
            .sum()
    });
    assert_eq!(again, (0..ITEMS).map(work_sum).sum::<u64>());
    let s = arena.stats();
    assert_eq!(s.allocations, 2 * ITEMS * (BLOCKS as u64 + 1), "{s}");
    assert!(arena.reset().is_clean());
    assert_eq!(arena.stats().bytes_in_use, 0);
}

#[test]
fn a_thread_that_stays_in_the_region_keeps_its_lane_from_resets() {
    let arena = LockedArena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let region = arena.region();
    let (inside, reset_done) = (Barrier::new(2), Barrier::new(2));
    std::thread::scope(|s| {
        s.spawn(|| {
            region.enter(|| {
                let _v = filled(10_000, 1);
                inside.wait();
                reset_done.wait(); // still inside, as a worker living in the region would be
            });
        });
        inside.wait();
        let report = arena.reset();
        assert_eq!(report.busy_lanes, 1, "{report}");
        assert!(!report.is_clean());
        reset_done.wait();
    });
    // Once the thread has left, the reset reclaims everything.
    assert!(arena.reset().is_clean());
    assert_eq!(arena.stats().bytes_in_use, 0);
}
