//! Checkpoints and resets. SAFETY.md §3, a reset never reuses memory that is
//! still in use (and reclaims exactly what is not); SAFETY.md §5, misuse of
//! checkpoints is an error, never undefined behaviour.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

mod common;
counting_shim!();

use bumper::{Arena, EscapePolicy, LockedArena, ResetError, is_arena_pointer, with_bumper};
use common::count_inner;
use std::panic::{AssertUnwindSafe, catch_unwind};

#[test]
fn nested_no_escape_blocks_each_reclaim_their_own_allocations() {
    let arena = Arena::new();
    with_bumper(&arena, || {
        let outer = vec![1u64; 100];
        let in_use_0 = arena.stats().bytes_in_use;
        let total = arena.no_escape(|| {
            let a = vec![2u64; 1000];
            let in_use_1 = arena.stats().bytes_in_use;
            let inner = arena.no_escape(|| {
                let b = vec![3u64; 10_000];
                let c: Vec<String> = (0..100).map(|i| i.to_string()).collect();
                b.iter().sum::<u64>() + c.len() as u64
            });
            assert_eq!(
                arena.stats().bytes_in_use,
                in_use_1,
                "inner reset was not exact"
            );
            assert_eq!(arena.stats().live_blocks, 2); // outer, a
            inner + a.iter().sum::<u64>()
        });
        assert_eq!(
            arena.stats().bytes_in_use,
            in_use_0,
            "outer reset was not exact"
        );
        assert_eq!(arena.stats().live_blocks, 1);
        assert_eq!(total, 30_000 + 100 + 2000);
        assert_eq!(outer.iter().sum::<u64>(), 100);
    });
    let s = arena.stats();
    assert_eq!((s.resets, s.escapes, s.live_blocks), (2, 0, 0));
}

#[test]
fn the_same_memory_is_reused_by_every_iteration() {
    let arena = Arena::new();
    let mut first: Option<(usize, usize)> = None;
    let ((), inner) = count_inner(|| {
        with_bumper(&arena, || {
            for i in 0..100u32 {
                arena.no_escape(|| {
                    let a = vec![i; 5000];
                    let b = vec![i as u8; 300_000]; // needs a second chunk
                    let addrs = (a.as_ptr() as usize, b.as_ptr() as usize);
                    match first {
                        None => first = Some(addrs),
                        Some(f) => assert_eq!(f, addrs, "iteration {i} did not reuse memory"),
                    }
                    assert!(b.iter().all(|&x| x == i as u8) && a.iter().all(|&x| x == i));
                    // `a` is dropped after `b`, so it is not at the tip: the
                    // reset, not a tip free, hands it back.
                    drop(b);
                });
            }
        })
    });
    assert_eq!(inner.allocs, 0);
    let s = arena.stats();
    assert_eq!(
        (s.resets, s.escapes, s.live_blocks, s.bytes_in_use),
        (100, 0, 0, 0)
    );
}

#[test]
fn an_escape_in_the_first_iteration_does_not_stop_later_reuse() {
    // Like a lazy global first touched inside the loop: the first iteration
    // leaks one block; every later iteration reuses the memory above it.
    let arena = Arena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let mut seen = Vec::with_capacity(50);
    let mut leaked: Option<&'static mut [u8]> = None;
    with_bumper(&arena, || {
        for i in 0..50u8 {
            let addr = arena.no_escape(|| {
                if leaked.is_none() {
                    leaked = Some(Box::leak(vec![0xEEu8; 4000].into_boxed_slice()));
                }
                let work = vec![i; 20_000];
                assert!(work.iter().all(|&x| x == i));
                work.as_ptr() as usize
            });
            seen.push(addr);
        }
    });
    assert!(
        seen[1..].iter().all(|&a| a == seen[1]),
        "later iterations did not reuse memory"
    );
    let leaked = leaked.unwrap();
    assert!(
        leaked.iter().all(|&x| x == 0xEE),
        "the escaped block was overwritten"
    );
    let s = arena.stats();
    assert_eq!(s.escapes, 1);
    assert_eq!(s.escaped_blocks, 1);
    assert_eq!(s.live_blocks, 1);
}

#[test]
fn bytes_in_use_return_exactly_to_the_checkpoint() {
    let arena = Arena::new();
    let keep = with_bumper(&arena, || vec![0u8; 12_345]);
    let base = arena.stats();
    for size in [1usize, 7, 8, 9, 100, 4096, 70_000, 1 << 20, 5 << 20] {
        let cp = arena.checkpoint();
        let held = with_bumper(&arena, || {
            let v: Vec<Vec<u8>> = (0..10).map(|i| vec![i as u8; size]).collect();
            v.iter().map(|x| x.len()).sum::<usize>()
        });
        assert_eq!(held, 10 * size);
        let r = arena.reset_to(cp);
        assert!(r.is_clean(), "{r}");
        let s = arena.stats();
        assert_eq!(s.bytes_in_use, base.bytes_in_use, "size {size}");
        assert_eq!(s.live_blocks, base.live_blocks);
        assert_eq!(s.live_bytes, base.live_bytes);
    }
    drop(keep);
    assert!(arena.reset().is_clean());
    assert_eq!(arena.stats().bytes_in_use, 0);
}

#[test]
fn reset_reclaims_whole_chunks_and_reuses_them() {
    let arena = Arena::new();
    // Two warm-up loops: the first retains nothing (no reset is behind it,
    // so its chunks go back as they are freed); from the second on, the
    // retained capacity keeps what a loop needs.
    for _ in 0..2 {
        with_bumper(&arena, || {
            arena.no_escape(|| {
                let blocks: Vec<Vec<u8>> = (0..64).map(|_| vec![1u8; 100_000]).collect();
                assert!(blocks.iter().all(|b| is_arena_pointer(b.as_ptr())));
            });
        });
    }
    let after_warm_up = arena.stats();
    assert_eq!(after_warm_up.bytes_in_use, 0);
    let chunk_bytes = after_warm_up.chunk_bytes;
    assert!(chunk_bytes >= 64 * (128 << 10), "{after_warm_up}");
    for _ in 0..10 {
        with_bumper(&arena, || {
            arena.no_escape(|| {
                let blocks: Vec<Vec<u8>> = (0..64).map(|_| vec![2u8; 100_000]).collect();
                assert_eq!(blocks.len(), 64);
            });
        });
    }
    assert_eq!(
        arena.stats().chunk_bytes,
        chunk_bytes,
        "the arena kept growing"
    );
}

#[test]
fn checkpoint_from_another_arena_is_an_error() {
    let a = Arena::new();
    let b = Arena::new();
    let cp = a.checkpoint();
    let err = b.try_reset_to(cp).unwrap_err();
    assert_eq!(
        err,
        ResetError::WrongArena {
            checkpoint_arena: a.id(),
            arena: b.id()
        }
    );
    assert!(
        err.to_string()
            .contains("can only reset the arena it was taken on")
    );
    // `a` is unaffected: its checkpoint was discarded, so a full reset works.
    assert!(a.try_reset().is_ok());
}

#[test]
#[should_panic(expected = "a checkpoint can only reset the arena it was taken on")]
fn reset_to_panics_on_a_foreign_checkpoint() {
    let a = LockedArena::new();
    let b = LockedArena::new();
    b.reset_to(a.checkpoint());
}

#[test]
fn out_of_order_reset_is_an_error_and_leaves_memory_valid() {
    let arena = Arena::new();
    let outer = arena.checkpoint();
    let v = with_bumper(&arena, || vec![5u8; 1000]);
    let inner = arena.checkpoint();
    let w = with_bumper(&arena, || vec![6u8; 1000]);
    let err = arena.try_reset_to(outer).unwrap_err();
    assert_eq!(err, ResetError::OutOfOrder { newer: 1 });
    assert!(err.to_string().contains("out-of-order reset"));
    // Nothing was reclaimed; both vectors are intact.
    assert!(v.iter().all(|&x| x == 5) && w.iter().all(|&x| x == 6));
    drop(w);
    assert!(arena.reset_to(inner).is_clean());
    drop(v);
    assert!(arena.reset().is_clean());
    assert_eq!(arena.stats().bytes_in_use, 0);
}

/// The message of a caught panic raised by bumper (a formatted `String`).
fn panic_message(caught: std::thread::Result<impl Sized>) -> String {
    let payload = caught.err().expect("the call panicked");
    payload
        .downcast_ref::<String>()
        .cloned()
        .expect("a formatted panic message")
}

/// What `reset()` says when `tokens` checkpoints of the thread are active
/// and it runs inside `blocks` `no_escape` blocks.
fn full_reset_message(arena: u64, tokens: usize, blocks: usize) -> String {
    let mut m = format!(
        "bumper: out-of-order reset: a full reset of arena #{arena} must come after every \
         checkpoint of this thread is reset or dropped, but "
    );
    if tokens > 0 {
        m += &format!(
            "{tokens} `Checkpoint`(s) taken on this thread are still active (not yet reset or \
             dropped, or leaked with `mem::forget`, which keeps one active for good)"
        );
    }
    if blocks > 0 {
        if tokens > 0 {
            m += ", and ";
        }
        m += &format!(
            "the reset runs inside {blocks} `no_escape` or `scoped` block(s) of the arena"
        );
    }
    m += ". Nothing was reset.";
    if tokens > 0 {
        m += " Reset or drop those checkpoints first; if one was leaked, \
              `discard_checkpoints()` on the arena discards this thread's checkpoints \
              (their tokens become stale) and resets work again.";
    }
    if blocks > 0 {
        m += " Reset the whole arena after the block returns (the block hands back its own \
              allocations when it ends).";
    }
    m
}

#[test]
fn reset_with_an_active_checkpoint_panics_naming_it_and_resets_nothing() {
    let arena = Arena::new();
    let cp = arena.checkpoint();
    let v = with_bumper(&arena, || vec![4u8; 100]);
    let before = arena.stats();
    let msg = panic_message(catch_unwind(AssertUnwindSafe(|| arena.reset())));
    assert_eq!(msg, full_reset_message(arena.id(), 1, 0));
    assert_eq!(arena.try_reset(), Err(ResetError::OutOfOrder { newer: 1 }));
    // Nothing was reset, and the checkpoint is still active and usable.
    let after = arena.stats();
    assert_eq!(
        (
            after.resets,
            after.bytes_in_use,
            after.live_blocks,
            after.active_checkpoints
        ),
        (before.resets, before.bytes_in_use, 1, 1)
    );
    assert!(v.iter().all(|&x| x == 4));
    drop(v);
    assert!(arena.reset_to(cp).is_clean());
    assert!(arena.reset().is_clean());
    assert_eq!(arena.stats().bytes_in_use, 0);
}

#[test]
fn a_full_reset_inside_no_escape_names_the_block() {
    let arena = Arena::new();
    let id = arena.id();
    arena.no_escape(|| {
        assert_eq!(arena.try_reset(), Err(ResetError::OutOfOrder { newer: 1 }));
        let msg = panic_message(catch_unwind(AssertUnwindSafe(|| arena.reset())));
        assert_eq!(msg, full_reset_message(id, 0, 1));
        let _cp = arena.checkpoint();
        let msg = panic_message(catch_unwind(AssertUnwindSafe(|| arena.reset())));
        assert_eq!(msg, full_reset_message(id, 1, 1));
        // A block's own checkpoint is not a token: it is never discarded.
        assert_eq!(arena.discard_checkpoints(), 1);
        assert_eq!(arena.stats().active_checkpoints, 1);
    });
    let s = arena.stats();
    assert_eq!((s.active_checkpoints, s.resets, s.escapes), (0, 1, 0));
    assert!(arena.reset().is_clean());
}

#[test]
fn dropping_a_checkpoint_discards_it() {
    let arena = Arena::new();
    let outer = arena.checkpoint();
    let inner = arena.checkpoint();
    let v = with_bumper(&arena, || vec![1u8; 100]);
    drop(inner); // discarded: its allocations now belong to `outer`
    assert_eq!(arena.stats().active_checkpoints, 1);
    drop(v);
    let r = arena.reset_to(outer);
    assert!(r.is_clean(), "{r}");
    assert_eq!(arena.stats().bytes_in_use, 0);
}

#[test]
fn forgotten_checkpoint_makes_resets_fail_loudly_until_discarded() {
    let arena = Arena::new();
    let outer = arena.checkpoint();
    std::mem::forget(arena.checkpoint());
    let v = with_bumper(&arena, || vec![9u8; 64]);
    let before = arena.stats();
    let err = arena.try_reset_to(outer).unwrap_err();
    assert_eq!(err, ResetError::OutOfOrder { newer: 1 });
    assert_eq!(
        err.to_string(),
        "bumper: out-of-order reset: 1 newer checkpoint(s) of this thread are still active \
         (`Checkpoint`s not yet reset or dropped, or `no_escape` blocks still running); reset \
         or drop them first (checkpoints are reset innermost first). Nothing was reset; a \
         checkpoint passed to `reset_to` is discarded and its allocations kept. A `Checkpoint` \
         leaked with `mem::forget` stays active for good: `discard_checkpoints()` on the arena \
         discards this thread's checkpoints and resets work again"
    );
    // Every full reset fails too, for good, and says why.
    for _ in 0..3 {
        assert_eq!(arena.try_reset(), Err(ResetError::OutOfOrder { newer: 1 }));
    }
    let msg = panic_message(catch_unwind(AssertUnwindSafe(|| arena.reset())));
    assert_eq!(msg, full_reset_message(arena.id(), 1, 0));
    // Nothing was reclaimed, and the value is intact.
    let after = arena.stats();
    assert_eq!(
        (
            after.resets,
            after.bytes_in_use,
            after.live_blocks,
            after.active_checkpoints
        ),
        (before.resets, before.bytes_in_use, 1, 1)
    );
    assert!(v.iter().all(|&x| x == 9));
    // The way out: discard the leaked checkpoint. Then resets work again.
    assert_eq!(arena.discard_checkpoints(), 1);
    assert_eq!(arena.discard_checkpoints(), 0);
    assert_eq!(arena.stats().active_checkpoints, 0);
    assert!(v.iter().all(|&x| x == 9));
    drop(v);
    let r = arena.reset();
    assert!(r.is_clean(), "{r}");
    assert_eq!(arena.stats().bytes_in_use, 0);
}

#[test]
fn a_discarded_checkpoint_is_stale_and_never_reclaims_memory_in_use() {
    let arena = Arena::new();
    let kept = with_bumper(&arena, || vec![1u8; 1000]);
    let cp = arena.checkpoint();
    let later = arena.checkpoint();
    let v = with_bumper(&arena, || vec![2u8; 5000]);
    assert_eq!(arena.discard_checkpoints(), 2);
    let before = arena.stats();
    assert_eq!(arena.try_reset_to(later), Err(ResetError::Stale));
    let err = arena.try_reset_to(cp).unwrap_err();
    assert_eq!(err, ResetError::Stale);
    assert_eq!(
        err.to_string(),
        "bumper: the checkpoint is no longer active (`discard_checkpoints()` discarded it); \
         nothing was reset"
    );
    let after = arena.stats();
    assert_eq!(
        (after.resets, after.bytes_in_use, after.live_blocks),
        (before.resets, before.bytes_in_use, 2)
    );
    assert!(kept.iter().all(|&x| x == 1) && v.iter().all(|&x| x == 2));
    // `reset_to` panics with the same message, naming nothing else.
    let stale = {
        let cp = arena.checkpoint();
        assert_eq!(arena.discard_checkpoints(), 1);
        cp
    };
    let msg = panic_message(catch_unwind(AssertUnwindSafe(|| arena.reset_to(stale))));
    assert_eq!(msg, ResetError::Stale.to_string());
    // A new checkpoint after the discard resets in order, and is exact.
    let cp = arena.checkpoint();
    drop(with_bumper(&arena, || vec![3u8; 70_000]));
    assert!(arena.reset_to(cp).is_clean());
    assert_eq!(arena.stats().bytes_in_use, before.bytes_in_use);
    drop((kept, v));
    assert!(arena.reset().is_clean());
    assert_eq!(arena.stats().bytes_in_use, 0);
}

#[test]
fn discarding_checkpoints_leaves_other_threads_checkpoints_alone() {
    // A reset from another thread while this one's checkpoint is active
    // resets nothing and counts as a contended escape: Keep, to stay quiet.
    let arena = LockedArena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let cp = arena.checkpoint();
    let v = with_bumper(&arena, || vec![5u8; 100]);
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(arena.discard_checkpoints(), 0);
            let r = arena.try_reset().unwrap();
            assert_eq!((r.concurrent_checkpoints, r.reclaimed_bytes), (1, 0));
        });
    });
    assert_eq!(arena.stats().active_checkpoints, 1);
    assert!(v.iter().all(|&x| x == 5));
    drop(v);
    assert!(arena.reset_to(cp).is_clean());
    assert_eq!(arena.stats().bytes_in_use, 0);
}

#[test]
fn checkpoints_nested_at_any_depth_are_tracked() {
    let arena = Arena::new();
    fn recurse(arena: &Arena, depth: usize, out: &mut Vec<usize>) {
        if depth == 0 {
            return;
        }
        arena.no_escape(|| {
            let v = vec![depth; 10];
            recurse(arena, depth - 1, out);
            out.push(v.iter().sum());
        });
    }
    let mut out = Vec::with_capacity(100); // outside the region: heap
    with_bumper(&arena, || recurse(&arena, 100, &mut out));
    assert_eq!(out.len(), 100);
    assert!(out.iter().enumerate().all(|(i, &s)| s == (i + 1) * 10));
    let s = arena.stats();
    assert_eq!(s.live_blocks, 0);
    // No fixed limit: every one of the 100 was tracked and reset cleanly.
    assert_eq!(
        (s.untracked_checkpoints, s.resets, s.escapes),
        (0, 100, 0),
        "{s}"
    );
    assert_eq!(s.bytes_in_use, 0, "{s}");
    assert!(arena.reset().is_clean());
    assert_eq!(arena.stats().bytes_in_use, 0);
}

#[test]
fn reset_cost_does_not_depend_on_allocation_count() {
    // Not a timing test (those live in benches/): a reset only consults the
    // per-segment counters, so after a million allocations, freed in an order
    // that defeats tip rewinding, one reset hands everything back.
    let arena = Arena::new();
    let cp = arena.checkpoint();
    with_bumper(&arena, || {
        let v: Vec<Box<u64>> = (0..1_000_000).map(Box::new).collect();
        assert_eq!(*v[999_999], 999_999);
        // Dropping `v` frees the oldest box first: none is at the tip.
    });
    let before = arena.stats();
    assert_eq!(before.live_blocks, 0);
    // The million boxes, all dead, but the last one rewound at the tip. Each
    // chunk between the first and the current one went back to the spares
    // when its last box was freed; the dead boxes of those two are what is
    // still in use. (The 8 MB `Vec` holding them was a large block in a
    // chunk of its own, given back when it was freed.)
    assert!(before.bytes_in_use > 0, "{before}");
    assert!(before.bytes_in_use < 999_999 * 8, "{before}");
    let r = arena.reset_to(cp);
    assert!(r.is_clean(), "{r}");
    assert_eq!(r.reclaimed_bytes, before.bytes_in_use);
    assert_eq!(arena.stats().bytes_in_use, 0);
}

/// Rounds of scratch over many small chunks, with a few blocks kept across
/// resets and freed later in random order, inner checkpoints reset midway,
/// and an outer checkpoint reset every round. Dead chunks leave the chain
/// as soon as their last block is freed, so positions have gaps; every
/// reset must still land inside a chunk, keep every kept block intact and
/// count exactly.
fn resets_across_chunk_gaps(guard: bool, seed: u64) {
    use common::pattern::{check, filled};
    use common::rng::Rng;

    let arena = Arena::builder()
        .escape_policy(EscapePolicy::Keep)
        .chunk_size(64 << 10)
        .guard_mode(guard)
        .build()
        .unwrap();
    let mut rng = Rng::new(seed);
    // Its buffer is made outside the region, big enough never to move.
    let mut kept: Vec<(u64, Vec<u8>)> = Vec::with_capacity(2000);
    let mut id = 0u64;
    for round in 0..150 {
        let outer = arena.checkpoint();
        let kept_before = kept.len();
        with_bumper(&arena, || {
            let mut scratch: Vec<(u64, Vec<u8>)> = Vec::new();
            let inner = (rng.below(3) == 0).then(|| arena.checkpoint());
            for _ in 0..50 + rng.below(300) {
                id += 1;
                let block = (id, filled(16 + rng.below(3000), id));
                if rng.below(40) == 0 {
                    kept.push(block);
                } else {
                    scratch.push(block);
                }
            }
            // Free the scratch in random order: few frees hit the tip.
            while !scratch.is_empty() {
                let (i, b) = scratch.swap_remove(rng.below(scratch.len()));
                check(&b, i, format_args!("round {round}: scratch"));
            }
            if let Some(cp) = inner {
                // Blocks kept since the inner checkpoint escape it (and the
                // scratch list's buffer is freed by now).
                drop(scratch);
                let r = arena.reset_to(cp);
                assert_eq!(r.escaped_blocks, (kept.len() - kept_before) as u64, "{r}");
            }
        });
        arena.reset_to(outer);
        // Free some kept blocks, from anywhere.
        let mut i = 0;
        while i < kept.len() {
            if rng.below(3) == 0 {
                let (k, b) = kept.swap_remove(i);
                check(&b, k, format_args!("round {round}: kept"));
            } else {
                i += 1;
            }
        }
        for (k, b) in &kept {
            check(b, *k, format_args!("round {round}: kept"));
        }
        let s = arena.stats();
        assert_eq!(s.live_blocks, kept.len() as u64, "round {round}: {s}");
    }
    let n = kept.len() as u64;
    drop(kept);
    assert_eq!(arena.stats().live_blocks, 0);
    let r = arena.reset();
    assert!(r.is_clean(), "{r}");
    assert_eq!(arena.stats().bytes_in_use, 0);
    assert!(n < 200);
}

#[test]
fn resets_across_gaps_left_by_dead_chunks_keep_every_live_block() {
    for seed in 1..=4 {
        resets_across_chunk_gaps(false, seed);
    }
}

#[test]
fn resets_across_gaps_left_by_dead_chunks_in_guard_mode() {
    for seed in 5..=6 {
        resets_across_chunk_gaps(true, seed);
    }
}
