//! SAFETY.md §4, growth in place only at the tip, and only for a block at or
//! after the innermost checkpoint: growth in place happens only for the last
//! block, and only if it lies at or after the innermost active checkpoint.
//! (GHSA-xhx6-q96x-pf9c in bump-scope was a use-after-free from growing a block
//! that belonged to an enclosing scope.)

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec, clippy::slow_vector_initialization)]

mod common;
counting_shim!();

use bumper::{Arena, EscapePolicy, is_arena_pointer, with_bumper};
use common::pattern::{check, fill};

#[test]
fn the_last_block_grows_in_place() {
    let arena = Arena::new();
    with_bumper(&arena, || {
        let mut v: Vec<u8> = Vec::with_capacity(8);
        let p = v.as_ptr();
        for i in 0..10_000u32 {
            v.push(i as u8);
        }
        assert_eq!(v.as_ptr(), p, "the tip block was moved instead of grown");
        v.truncate(10);
        v.shrink_to_fit();
        assert_eq!(v.as_ptr(), p, "a shrink moved the block");
        let w = vec![1u8; 10];
        // The shrink gave the tail back: the next block follows directly.
        assert_eq!(w.as_ptr() as usize, p as usize + 16);
    });
}

#[test]
fn a_block_that_is_not_last_moves_when_it_grows() {
    let arena = Arena::new();
    with_bumper(&arena, || {
        let mut v: Vec<u8> = Vec::with_capacity(64);
        v.resize(64, 3);
        let after = vec![9u8; 64];
        let p = v.as_ptr();
        v.resize(1000, 4);
        assert_ne!(v.as_ptr(), p);
        assert!(v[..64].iter().all(|&x| x == 3) && v[64..].iter().all(|&x| x == 4));
        assert!(
            after.iter().all(|&x| x == 9),
            "growth overwrote the next block"
        );
    });
}

#[test]
fn a_block_from_before_the_checkpoint_never_grows_in_place() {
    let arena = Arena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    with_bumper(&arena, || {
        let mut v: Vec<u8> = Vec::with_capacity(32);
        v.resize(32, 0);
        fill(&mut v, 1);
        let before = v.as_ptr();
        arena.no_escape(|| {
            // `v` is the last block, but it was allocated before the
            // checkpoint. Growing it in place would put its tail above the
            // checkpoint, where the reset below would hand it out again.
            v.resize(4096, 0xAB);
            assert_ne!(
                v.as_ptr(),
                before,
                "an outer block grew across the checkpoint"
            );
            let tmp = vec![0u8; 4096];
            assert_eq!(tmp.len(), 4096);
        });
        // `v` escaped the block (it now lives above the checkpoint); the
        // reset kept it. New allocations must not overlap it.
        let mut noise: Vec<Vec<u8>> = Vec::new();
        for i in 0..100 {
            let mut n = vec![0u8; 512];
            fill(&mut n, 1000 + i);
            noise.push(n);
        }
        check(&v[..32], 1, "the first 32 bytes of the escaped block");
        assert!(
            v[32..].iter().all(|&x| x == 0xAB),
            "an escaped block was overwritten"
        );
    });
    assert_eq!(arena.stats().escapes, 1);
}

#[test]
fn an_outer_block_shrunk_inside_a_checkpoint_stays_valid() {
    let arena = Arena::new();
    with_bumper(&arena, || {
        let mut v: Vec<u64> = (0..1000).collect();
        arena.no_escape(|| {
            v.truncate(10);
            v.shrink_to_fit(); // in place, but the bump pointer does not move
            let tmp: Vec<u64> = vec![7; 2000];
            assert_eq!(tmp.len(), 2000);
        });
        let noise = vec![u64::MAX; 4000];
        assert!(v.iter().copied().eq(0..10));
        assert_eq!(noise.len(), 4000);
        assert!(is_arena_pointer(v.as_ptr()));
    });
    let s = arena.stats();
    assert_eq!(s.escapes, 0);
    assert_eq!(s.live_blocks, 0);
}

#[test]
fn a_block_grown_inside_a_checkpoint_is_reclaimed_with_it() {
    let arena = Arena::new();
    with_bumper(&arena, || {
        let in_use = arena.stats().bytes_in_use;
        arena.no_escape(|| {
            let mut v: Vec<u8> = Vec::new();
            for i in 0..100_000u32 {
                v.push(i as u8);
            }
            let w = vec![0u8; 10];
            drop(v); // not the tip any more: only the reset reclaims it
            drop(w);
        });
        assert_eq!(arena.stats().bytes_in_use, in_use);
    });
}

/// Pushes `n` values into a fresh `Vec`, and returns how many times its
/// buffer moved once it was large (64 KiB and up, a chunk of its own).
fn push_and_count_large_moves(n: u64) -> usize {
    let mut v: Vec<u64> = Vec::new();
    let mut moves = 0;
    let mut last = v.as_ptr();
    for i in 0..n {
        v.push(i);
        if v.as_ptr() != last {
            if v.capacity() * 8 > 64 << 10 {
                moves += 1;
            }
            last = v.as_ptr();
        }
    }
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64));
    assert!(is_arena_pointer(v.as_ptr()));
    moves
}

#[test]
fn a_growing_large_buffer_gets_room_to_grow_in_place() {
    let arena = Arena::new();
    // 64 KiB .. 4 MiB is six doublings; each used to be a copy into a chunk
    // exactly its size. Now a move leaves room for 4x, so at most two moves
    // happen in a loop with no chunk to reuse, and a steady loop takes last
    // loop's roomiest chunk and moves only once: out of the bump chain. The
    // first loop retains nothing (no reset is behind it yet: its chunks go
    // back as they are freed), so the second one starts from scratch too.
    for warm_up in 0..2 {
        let moves = with_bumper(&arena, || {
            arena.no_escape(|| push_and_count_large_moves(1 << 19))
        });
        assert!(moves <= 2, "{moves} moves in warm-up loop {warm_up}");
    }
    for round in 0..20 {
        let moves = with_bumper(&arena, || {
            arena.no_escape(|| push_and_count_large_moves(1 << 19))
        });
        assert_eq!(moves, 1, "round {round}");
    }
    let before = (arena.stats(), bumper::space_stats().os_calls);
    for _ in 0..20 {
        with_bumper(&arena, || {
            arena.no_escape(|| push_and_count_large_moves(1 << 19))
        });
    }
    let after = (arena.stats(), bumper::space_stats().os_calls);
    // The steady loop keeps the chunks it uses: nothing trimmed and taken
    // again, no memory system call.
    assert_eq!(after.0.trimmed_bytes, before.0.trimmed_bytes, "{}", after.0);
    assert_eq!(after.0.chunk_bytes, before.0.chunk_bytes);
    assert_eq!(after.1, before.1);
    assert_eq!(after.0.live_blocks, 0);
}
