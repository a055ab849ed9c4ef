//! `examples/parallel.rs` (issue 11, item 4): parallel batches over one
//! `LockedArena` with the batch-then-reset pattern. Children spawned with
//! `bumper::thread::scope` inside the region allocate from the arena; once
//! they have been joined, every reset after a round is clean and leaves
//! nothing in use, and the results equal a serial loop's on the heap.
//!
//! The test runs the example's own code (its global allocator included) on
//! 60 items: rounds of 3 threads x 4 items, so four full rounds and a last
//! one with a single child.

#[allow(dead_code)]
#[path = "../examples/parallel.rs"]
mod example;

use bumper::LockedArena;
use example::{run, serial};

const ITEMS: usize = 60;
const THREADS: usize = 3;
const PER_THREAD: usize = 4;

#[test]
fn every_reset_after_a_round_is_clean_and_results_match_the_serial_loop() {
    let expected = serial(ITEMS);
    let arena = LockedArena::new();
    let bumped = run(ITEMS, THREADS, PER_THREAD, Some(&arena));
    assert_eq!(bumped.results, expected);

    assert_eq!(bumped.rounds.len(), ITEMS.div_ceil(THREADS * PER_THREAD));
    for (i, round) in bumped.rounds.iter().enumerate() {
        assert!(round.report.is_clean(), "round {i}: {}", round.report);
        assert_eq!(round.report.escaped_blocks, 0, "round {i}");
        assert_eq!(round.report.busy_lanes, 0, "round {i}");
        assert_eq!(round.live_blocks, 0, "round {i}: blocks left live");
        assert_eq!(round.bytes_in_use, 0, "round {i}: bytes left in use");
    }
    let s = arena.stats();
    assert_eq!((s.escapes, s.spills, s.live_blocks), (0, 0, 0));
    assert!(s.lanes >= 2, "the children ran on lanes of their own");
    // The spawning thread's and the children's `measure`s together saw
    // exactly what the arena served.
    assert_eq!(bumped.m.arena_calls, s.allocations);
    assert_eq!(bumped.m.arena_bytes, s.bytes_allocated);
}

#[test]
fn the_same_rounds_on_the_heap_make_100x_more_inner_calls() {
    // A warm-up: std's first spawn in a process allocates once for itself
    // (it reads `RUST_MIN_STACK`), which the comparison below must not see.
    drop(run(THREADS, THREADS, 1, None));
    let heap = run(ITEMS, THREADS, PER_THREAD, None);
    assert_eq!(heap.results, serial(ITEMS));
    assert!(heap.rounds.is_empty());
    let arena = LockedArena::new();
    let bumped = run(ITEMS, THREADS, PER_THREAD, Some(&arena));
    assert!(heap.m.inner_calls > 10_000);
    assert_eq!(heap.m.arena_calls, 0);
    assert!(
        bumped.m.inner_calls.saturating_mul(100) <= heap.m.inner_calls,
        "inner calls fell only from {} to {}",
        heap.m.inner_calls,
        bumped.m.inner_calls
    );
    assert!(bumped.m.inner_bytes.saturating_mul(100) <= heap.m.inner_bytes);
    // The two runs made the same calls, spawns included; in the region the
    // arena served all but std's bookkeeping for the spawns (kept on the
    // heap by bumper::thread).
    assert_eq!(
        bumped.m.arena_calls + bumped.m.inner_calls,
        heap.m.inner_calls
    );
    assert!(bumped.m.arena_calls.saturating_mul(100) >= heap.m.inner_calls.saturating_mul(99));
}
