//! The examples of AllocArrays.jl's README (its demo and its "Examples of
//! improper usage"), good and bad, ported to Rust: SAFETY.md §3, §6 and
//! §10. The bad ones must be safe: correct results, no
//! corruption, and the misuse reported.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

mod common;
counting_shim!();

use bumper::{Arena, EscapePolicy, LockedArena, Region, is_arena_pointer, with_bumper};
use common::count_inner;
use std::sync::{Barrier, Mutex};

fn some_allocating_function(a: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let b = a.to_vec(); // similar(a); b .= a
    let c = a.to_vec();
    (b, c)
}

fn basic_reduction(a: &[f64]) -> f64 {
    let (b, c) = some_allocating_function(a);
    let sum: Vec<f64> = b.iter().zip(&c).map(|(x, y)| x + y).collect(); // b .+ c
    sum.iter().sum()
}

fn input() -> Vec<f64> {
    vec![1.0; 100_000]
}

#[test]
fn demo_bumper_reduction_makes_no_inner_allocations() {
    let a = input();
    let arena = Arena::new();
    let (plain, plain_calls) = count_inner(|| basic_reduction(&a));
    let (bumped, bumped_calls) =
        count_inner(|| with_bumper(&arena, || arena.no_escape(|| basic_reduction(&a))));
    assert_eq!(plain, 200_000.0);
    assert_eq!(bumped, 200_000.0);
    assert_eq!(plain_calls.allocs, 3);
    assert_eq!(
        bumped_calls.allocs + bumped_calls.reallocs + bumped_calls.frees,
        0
    );
    let s = arena.stats();
    assert_eq!((s.allocations, s.live_blocks, s.bytes_in_use), (3, 0, 0));
}

#[test]
fn good_function_1_copying_into_heap_memory_escapes_nothing() {
    let a = input();
    let arena = Arena::new();
    let mut output = vec![0.0f64; a.len()]; // outside the region: heap
    with_bumper(&arena, || {
        arena.no_escape(|| {
            let (b, _c) = some_allocating_function(&a);
            output.copy_from_slice(&b);
        })
    });
    assert!(!is_arena_pointer(output.as_ptr()));
    assert_eq!(output.iter().sum::<f64>(), 100_000.0);
    let s = arena.stats();
    assert_eq!((s.escapes, s.live_blocks), (0, 0));
}

#[test]
fn bad_function_1_escape_is_kept_and_counted() {
    let a = input();
    let arena = Arena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let mut output: Vec<Vec<f64>> = Vec::with_capacity(1);
    with_bumper(&arena, || {
        arena.no_escape(|| {
            let (b, _c) = some_allocating_function(&a);
            output.push(b); // wrong! `b` escapes
        });
        // Later work in the same arena must not overwrite it.
        for _ in 0..5 {
            arena.no_escape(|| basic_reduction(&a));
        }
    });
    let total: f64 = output.iter().flatten().sum();
    assert_eq!(total, 100_000.0);
    let s = arena.stats();
    assert_eq!((s.escapes, s.escaped_blocks), (1, 1));
}

#[test]
fn good_function_2_one_no_escape_around_the_threads_hands_their_memory_back() {
    let a = input();
    let buf = LockedArena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let output = Mutex::new(Vec::with_capacity(10)); // outside the region
    with_bumper(&buf, || {
        buf.no_escape(|| {
            // The children inherit the region, as the seed's tasks inherit
            // its scoped allocator: none of them enters it by hand.
            bumper::thread::scope(|s| {
                for _ in 0..10 {
                    s.spawn(|| {
                        assert_eq!(Region::current().map(|r| r.arena_id()), Some(buf.id()));
                        let (scalar, inner) = count_inner(|| basic_reduction(&a));
                        assert_eq!(inner.allocs + inner.reallocs, 0, "a child used the heap");
                        output.lock().unwrap().push(scalar);
                    });
                }
            });
        }) // OK! reset once the threads are done
    });
    let output = output.into_inner().unwrap();
    assert_eq!(output.len(), 10);
    assert_eq!(output.iter().sum::<f64>(), 2_000_000.0);
    let s = buf.stats();
    // `bumper::thread` keeps std's bookkeeping for the spawns on the heap,
    // but a child's own thread-local destructor list is allocated in its
    // region, and `thread::scope` returns before the children's teardown
    // frees it, so the reset may find a few small blocks still in use: kept
    // and counted, never reused.
    // The arrays of `basic_reduction` (2.3 MB per thread) are all handed
    // back; only those few blocks pin memory.
    assert!(s.escaped_bytes < 4096, "{s}");
    assert!(s.bytes_in_use < 4096, "{s}");
    // ...after they were served by the arena (lanes are reused by threads
    // that start after others finished, so peaks need not add up).
    assert!(s.allocations >= 10 * 3, "{s}");
    assert!(s.peak_bytes_in_use >= 3 * 800_000, "{s}");
    // Once the threads are gone, their last frees arrive.
    let mut polls = 0;
    while buf.stats().live_blocks != 0 {
        polls += 1;
        assert!(
            polls < 500,
            "blocks freed by thread teardown were never accounted"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(buf.reset().is_clean());
    assert_eq!(buf.stats().bytes_in_use, 0);
}

#[test]
fn good_function_2_entered_by_hand_leaves_no_thread_bookkeeping_in_the_arena() {
    // The variant before `bumper::thread`: std's threads, each entering the
    // region itself, spawned from outside it. std's bookkeeping for the
    // threads is then on the heap, so the counts are exact and the reset
    // finds nothing in use, always.
    let a = input();
    let buf = LockedArena::new();
    let output = Mutex::new(Vec::with_capacity(10));
    buf.no_escape(|| {
        std::thread::scope(|s| {
            for _ in 0..10 {
                s.spawn(|| {
                    let scalar = with_bumper(&buf, || basic_reduction(&a));
                    output.lock().unwrap().push(scalar);
                });
            }
        });
    });
    let output = output.into_inner().unwrap();
    assert_eq!(output.iter().sum::<f64>(), 2_000_000.0);
    let s = buf.stats();
    assert_eq!(s.allocations, 30, "{s}");
    assert_eq!(
        (s.resets, s.escapes, s.live_blocks, s.bytes_in_use),
        (1, 0, 0, 0),
        "{s}"
    );
}

#[test]
fn good_function_2b_a_no_escape_per_iteration_reclaims_everything() {
    let a = input();
    let buf = LockedArena::new();
    let mut output = Vec::with_capacity(10);
    let ((), inner) = count_inner(|| {
        with_bumper(&buf, || {
            for _ in 0..10 {
                buf.no_escape(|| {
                    let scalar = basic_reduction(&a);
                    output.push(scalar);
                }); // OK to reset here
            }
        })
    });
    assert_eq!(output.iter().sum::<f64>(), 2_000_000.0);
    assert_eq!(inner.allocs, 0);
    let s = buf.stats();
    assert_eq!(
        (s.resets, s.escapes, s.live_blocks, s.bytes_in_use),
        (10, 0, 0, 0)
    );
    assert_eq!(s.allocations, 30);
}

#[test]
fn bad_function_2_concurrent_resets_are_safe_and_reported() {
    let a = input();
    let buf = LockedArena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let output = Mutex::new(Vec::with_capacity(10));
    let start = Barrier::new(10);
    let middle = Barrier::new(10);
    std::thread::scope(|s| {
        for t in 0..10u64 {
            let (a, buf, output, start, middle) = (&a, &buf, &output, &start, &middle);
            s.spawn(move || {
                with_bumper(buf, || {
                    start.wait();
                    buf.no_escape(|| {
                        let (b, c) = some_allocating_function(a);
                        middle.wait(); // every thread holds memory now
                        let scalar: f64 =
                            b.iter().zip(&c).map(|(x, y)| x + y).sum::<f64>() + t as f64;
                        output.lock().unwrap().push(scalar);
                        // Keep using the memory while other threads reset.
                        assert!(b.iter().all(|&x| x == 1.0) && c.iter().all(|&x| x == 1.0));
                    }) // wrong! other threads are still using `buf`
                })
            });
        }
    });
    let mut output = output.into_inner().unwrap();
    output.sort_by(f64::total_cmp);
    let expect: Vec<f64> = (0..10).map(|t| 200_000.0 + t as f64).collect();
    assert_eq!(output, expect, "results were corrupted");
    let s = buf.stats();
    assert!(
        s.escapes > 0,
        "the concurrent resets were not reported: {s}"
    );
    assert_eq!(s.live_blocks, 0);
    // Once everyone is done, a full reset reclaims everything.
    assert!(buf.reset().is_clean());
    assert_eq!(buf.stats().bytes_in_use, 0);
}

/// Like `basic_reduction`, but the arrays are freed in the order they were
/// allocated, as a garbage collector might free them. Frees in reverse order
/// are handed back at once by the bump allocator (see the next test); these
/// are not, so without a reset dead small blocks pile up.
fn basic_reduction_fifo(a: &[f64]) -> f64 {
    let (b, c) = some_allocating_function(a);
    let sum: Vec<f64> = b.iter().zip(&c).map(|(x, y)| x + y).collect();
    drop(b);
    drop(c);
    sum.iter().sum()
}

#[test]
fn bad_function_3_never_resetting_is_bounded_because_large_arrays_go_back_when_freed() {
    // The arrays (800 KB each) are large blocks: each gets a chunk of its own,
    // which goes back to the arena the moment the array is freed, in any
    // order. So the loop that never resets does not grow, and never reaches
    // its capacity limit.
    let a = input();
    let buf = LockedArena::builder()
        .capacity_limit(4 << 20)
        .build()
        .unwrap();
    let n = 100;
    let mut output = Vec::with_capacity(n);
    let ((), inner) = count_inner(|| {
        with_bumper(&buf, || {
            for _ in 0..n {
                output.push(basic_reduction_fifo(&a));
            }
        })
    });
    assert_eq!(output.len(), n);
    assert!(output.iter().all(|&x| x == 200_000.0));
    let s = buf.stats();
    assert_eq!((s.spills, inner.allocs), (0, 0), "{s}");
    assert_eq!(s.allocations, 3 * n as u64);
    assert_eq!((s.live_blocks, s.resets), (0, 0));
    assert!(s.chunk_bytes <= 4 << 20, "{s}");
}

#[test]
fn bad_function_3_never_resetting_spills_under_a_capacity_limit() {
    // With chunks of 4 MiB, the 800 KB arrays are below a quarter of the
    // chunk size, so they are bump-allocated: freed in allocation order,
    // they are not handed back until a reset, and without one the arena
    // fills up to its capacity limit, then spills to the inner allocator.
    let a = input();
    let buf = LockedArena::builder()
        .capacity_limit(4 << 20)
        .chunk_size(4 << 20)
        .build()
        .unwrap();
    let n = 100; // each iteration leaves ~1.6 MB of dead arrays behind
    let mut output = Vec::with_capacity(n);
    let ((), inner) = count_inner(|| {
        with_bumper(&buf, || {
            for _ in 0..n {
                let scalar = basic_reduction_fifo(&a);
                output.push(scalar);
            }
        })
    });
    assert_eq!(output.len(), n);
    assert!(output.iter().all(|&x| x == 200_000.0));
    let s = buf.stats();
    assert!(
        s.chunk_bytes <= 4 << 20,
        "the capacity limit was exceeded: {s}"
    );
    assert!(s.spills as usize > n, "nothing spilled: {s}");
    assert_eq!(
        s.spills, inner.allocs,
        "spills and inner-allocator calls disagree"
    );
    assert_eq!(s.allocations + s.spills, 3 * n as u64);
    assert_eq!(s.live_blocks, 0);
    // The fix: reset. Everything is handed back.
    assert!(buf.reset().is_clean());
    assert_eq!(buf.stats().bytes_in_use, 0);
}

#[test]
fn a_loop_that_frees_in_reverse_order_never_grows_without_resets() {
    let a = input();
    let buf = Arena::builder().capacity_limit(4 << 20).build().unwrap();
    let ((), inner) = count_inner(|| {
        with_bumper(&buf, || {
            for _ in 0..100 {
                assert_eq!(basic_reduction(&a), 200_000.0);
            }
        })
    });
    assert_eq!(inner.allocs, 0);
    let s = buf.stats();
    assert_eq!((s.spills, s.resets, s.bytes_in_use), (0, 0, 0), "{s}");
}
