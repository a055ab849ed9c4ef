//! SAFETY.md §10, running out never fails: past an arena's capacity limit,
//! allocations spill to the inner allocator, counted, without failing.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

mod common;
counting_shim!();

use bumper::{Arena, ConfigError, is_arena_pointer, with_bumper};
use common::count_inner;

#[test]
fn allocations_past_the_limit_spill_and_are_counted() {
    let arena = Arena::builder().capacity_limit(1 << 20).build().unwrap();
    let (blocks, inner) = count_inner(|| {
        with_bumper(&arena, || {
            (0..100).map(|i| vec![i as u8; 100_000]).collect::<Vec<_>>()
        })
    });
    let in_arena = blocks
        .iter()
        .filter(|b| is_arena_pointer(b.as_ptr()))
        .count();
    let spilled = blocks.len() - in_arena;
    assert!(in_arena > 0 && spilled > 0);
    for (i, b) in blocks.iter().enumerate() {
        assert!(b.iter().all(|&x| x == i as u8));
    }
    let s = arena.stats();
    assert!(s.chunk_bytes <= 1 << 20, "{s}");
    assert_eq!(
        s.spills,
        spilled as u64 + u64::from(!is_arena_pointer(blocks.as_ptr()))
    );
    assert_eq!(s.spills, inner.allocs);
    assert!(s.spilled_bytes >= 100_000 * spilled as u64);
    // Spilled blocks are freed by the inner allocator (the counting
    // allocator asserts it never sees an arena pointer).
    let (_, inner) = count_inner(|| drop(blocks));
    assert_eq!(inner.frees, s.spills);
}

#[test]
fn a_single_request_larger_than_the_limit_spills() {
    let arena = Arena::builder().capacity_limit(256 << 10).build().unwrap();
    let v = with_bumper(&arena, || vec![7u8; 10 << 20]);
    assert!(!is_arena_pointer(v.as_ptr()));
    assert_eq!(arena.stats().spills, 1);
    assert!(v.iter().all(|&x| x == 7));
}

#[test]
fn memory_reclaimed_by_a_reset_is_used_again_before_spilling() {
    let arena = Arena::builder().capacity_limit(2 << 20).build().unwrap();
    with_bumper(&arena, || {
        for _ in 0..50 {
            arena.no_escape(|| {
                let v: Vec<Vec<u8>> = (0..10).map(|_| vec![1u8; 100_000]).collect();
                assert!(v.iter().all(|b| is_arena_pointer(b.as_ptr())));
            });
        }
    });
    assert_eq!(arena.stats().spills, 0);
}

#[test]
fn a_capacity_that_is_too_small_is_rejected() {
    let err = Arena::builder().capacity_limit(4096).build().unwrap_err();
    assert_eq!(
        err,
        ConfigError::CapacityTooSmall {
            requested: 4096,
            minimum: 65536
        }
    );
    assert!(err.to_string().contains("too small"));
    let err = Arena::builder().chunk_size(1000).build().unwrap_err();
    assert!(matches!(
        err,
        ConfigError::InvalidChunkSize {
            requested: 1000,
            ..
        }
    ));
    assert!(err.to_string().contains("power of two"));
    let err = bumper::LockedArena::builder()
        .max_threads(100_000)
        .build()
        .unwrap_err();
    assert!(matches!(
        err,
        ConfigError::InvalidMaxThreads {
            requested: 100_000,
            ..
        }
    ));
}

#[test]
fn a_growing_large_block_in_a_capped_arena_takes_no_growth_room() {
    // Outside a capacity limit, a large block that must move gets a chunk
    // with room for 4x its new size. Under a limit that room would count
    // against it, so a capped arena grows blocks into exact-size chunks:
    // 1 MiB of `Vec` takes 4 MiB of chunks at most (with the room: 4.6).
    let arena = Arena::builder().capacity_limit(6 << 20).build().unwrap();
    with_bumper(&arena, || {
        arena.no_escape(|| {
            let mut v: Vec<u64> = Vec::new();
            for i in 0..1u64 << 17 {
                v.push(i);
            }
            assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64));
            assert!(is_arena_pointer(v.as_ptr()));
        })
    });
    let s = arena.stats();
    assert_eq!(s.spills, 0, "{s}");
    assert!(s.chunk_bytes <= 4 << 20, "{s}");
}
