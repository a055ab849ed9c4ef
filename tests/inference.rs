//! `examples/inference.rs` (issue 11, item 1): the digits-model CNN, written
//! with ndarray's allocating operations, gives the heap's outputs bit for bit
//! inside an `Arena` (a reset per batch) and a `LockedArena` shared by
//! `bumper::thread::scope` children (a reset per round), while the bytes that
//! reach the inner allocator fall by at least 100x. No timing is asserted.
//!
//! The test runs the example's own code (its global allocator included) on
//! 100 images: three full batches of 32 and a last one of 4, small enough for
//! a debug build.

#[allow(dead_code)]
#[path = "../examples/inference.rs"]
mod example;

use bumper::{Arena, LockedArena};
use example::{BATCH, CLASSES, Model, Run, images, run_arena, run_heap, run_locked, same_bits};

const IMAGES: usize = 100;

fn check_probabilities(run: &Run) {
    assert_eq!(run.probs.dim(), (IMAGES, CLASSES));
    for row in run.probs.rows() {
        assert!(row.iter().all(|p| p.is_finite() && *p >= 0.0));
        let sum: f32 = row.sum();
        assert!((sum - 1.0).abs() < 1e-4, "a softmax row sums to {sum}");
    }
}

fn assert_100x_fewer_inner_bytes(heap: &Run, bumped: &Run) {
    assert!(heap.m.inner_calls > 0 && heap.m.inner_bytes > 0);
    assert_eq!(heap.m.arena_calls, 0);
    assert!(
        bumped.m.inner_bytes.saturating_mul(100) <= heap.m.inner_bytes,
        "inner bytes fell only from {} to {}",
        heap.m.inner_bytes,
        bumped.m.inner_bytes
    );
    // What the heap served, the arena served instead.
    assert!(bumped.m.arena_calls >= heap.m.inner_calls);
    assert!(bumped.m.arena_bytes >= heap.m.inner_bytes);
}

#[test]
fn arena_run_matches_the_heap_bit_for_bit_with_100x_fewer_inner_bytes() {
    let model = Model::new();
    let images = images(IMAGES);
    let heap = run_heap(&model, &images);
    check_probabilities(&heap);

    let arena = Arena::new();
    let bumped = run_arena(&model, &images, &arena);
    assert!(same_bits(&heap.probs, &bumped.probs), "outputs differ");
    assert_100x_fewer_inner_bytes(&heap, &bumped);
    // On one thread nothing at all reaches the inner allocator.
    assert_eq!((bumped.m.inner_calls, bumped.m.inner_bytes), (0, 0));
    assert_eq!(bumped.m.arena_calls, heap.m.inner_calls);

    // One clean reset per batch; nothing left behind.
    assert_eq!(bumped.resets, IMAGES.div_ceil(BATCH));
    assert_eq!(bumped.clean_resets, bumped.resets);
    let s = arena.stats();
    assert_eq!((s.live_blocks, s.escapes, s.spills), (0, 0, 0));
    // `measure`'s arena columns are the arena's own counters.
    assert_eq!(bumped.m.arena_calls, s.allocations);
    assert_eq!(bumped.m.arena_bytes, s.bytes_allocated);
}

#[test]
fn locked_arena_threads_match_the_heap_bit_for_bit_with_100x_fewer_inner_bytes() {
    let model = Model::new();
    let images = images(IMAGES);
    let heap = run_heap(&model, &images);

    // Three threads: a round of three batches, then a round of one.
    let arena = LockedArena::new();
    let threaded = run_locked(&model, &images, &arena, 3);
    assert!(same_bits(&heap.probs, &threaded.probs), "outputs differ");
    // The children's own measurements are summed in: every batch allocated
    // from the arena. What reaches the inner allocator is std's bookkeeping
    // for the spawns, which bumper::thread keeps on the heap: a few small
    // blocks per spawn, so the calls fall less than the bytes.
    assert_100x_fewer_inner_bytes(&heap, &threaded);
    assert!(
        threaded.m.inner_calls <= 16 * 4,
        "at most 16 calls per spawn"
    );

    assert_eq!(threaded.resets, 2);
    assert_eq!(threaded.clean_resets, 2, "a reset after the joins is clean");
    let s = arena.stats();
    assert_eq!((s.live_blocks, s.escapes, s.spills), (0, 0, 0));
    // The spawning thread's and the children's `measure`s together saw
    // exactly what the arena served (the children ran on lanes of their own).
    assert_eq!(threaded.m.arena_calls, s.allocations);
    assert_eq!(threaded.m.arena_bytes, s.bytes_allocated);
    assert!(s.lanes >= 2);
}
