//! SAFETY.md §3 and §14, `Arena::scoped` and `LockedArena::scoped`:
//! `with_bumper` plus `no_escape` in one call. Everything allocated inside
//! is handed back when the closure returns or panics; what escapes is kept,
//! counted and reported exactly as `no_escape` reports it.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

mod common;
counting_shim!();

use bumper::{Arena, EscapePolicy, LockedArena, Region, is_arena_pointer, with_bumper};
use common::pattern::{check, filled};
use common::{Child, Expect, count_inner, is_child};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Barrier;

/// Allocates blocks and frees them out of order, so that memory stays in
/// use below the bump pointer until a reset; returns a checksum.
fn work(n: usize) -> u64 {
    let blocks: Vec<Vec<u8>> = (0..n).map(|i| filled(100 + i * 10, i as u64)).collect();
    let mut sum = 0;
    for (i, b) in blocks.iter().enumerate() {
        check(b, i as u64, "a block of `work`");
        sum += b.len() as u64;
    }
    // Front to back: the newest block is freed last.
    for b in blocks {
        drop(b);
    }
    sum
}

fn work_sum(n: usize) -> u64 {
    (0..n as u64).map(|i| 100 + i * 10).sum()
}

#[test]
fn arena_scoped_reclaims_everything_and_reuses_the_memory() {
    let arena = Arena::new();
    let (sum, inner) = count_inner(|| arena.scoped(|| work(200)));
    assert_eq!(sum, work_sum(200));
    assert_eq!(
        inner.allocs + inner.reallocs,
        0,
        "the region reached the heap"
    );
    let s = arena.stats();
    assert_eq!(
        (s.live_blocks, s.bytes_in_use, s.resets, s.escapes),
        (0, 0, 1, 0),
        "{s}"
    );
    assert!(s.bytes_reclaimed > 0, "nothing was left for the reset: {s}");
    let chunks = s.chunk_bytes;
    for round in 0..50 {
        assert_eq!(arena.scoped(|| work(200)), work_sum(200));
        assert_eq!(arena.stats().chunk_bytes, chunks, "grew in round {round}");
    }
    let s = arena.stats();
    assert_eq!(
        (s.live_blocks, s.bytes_in_use, s.resets, s.escapes),
        (0, 0, 51, 0),
        "{s}"
    );
    // The region ended with `scoped`.
    assert!(!is_arena_pointer(vec![0u8; 10].as_ptr()));
}

#[test]
fn locked_scoped_reclaims_what_other_threads_allocated_in_its_region() {
    let arena = LockedArena::new();
    let region = arena.region();
    let (entered, done) = (Barrier::new(2), Barrier::new(2));
    std::thread::scope(|s| {
        // Spawned before the region, so none of std's bookkeeping for the
        // thread is in the arena.
        s.spawn(|| {
            entered.wait();
            assert_eq!(region.enter(|| work(100)), work_sum(100));
            done.wait();
        });
        let sum = arena.scoped(|| {
            assert_eq!(Region::current().map(|r| r.arena_id()), Some(arena.id()));
            entered.wait();
            let mine = work(50);
            done.wait(); // the other thread has left the region
            mine
        });
        assert_eq!(sum, work_sum(50));
    });
    let s = arena.stats();
    assert_eq!(s.allocations, 2 + 150, "{s}");
    assert_eq!((s.live_blocks, s.bytes_in_use, s.escapes), (0, 0, 0), "{s}");
}

#[test]
fn nested_scoped_calls_each_hand_back_their_own_memory() {
    let arena = Arena::new();
    let outer = arena.scoped(|| {
        let kept = filled(1000, 1);
        let before = arena.stats().bytes_in_use;
        let inner = arena.scoped(|| work(100));
        assert_eq!(
            arena.stats().bytes_in_use,
            before,
            "the inner scope left memory in use"
        );
        check(&kept, 1, "the outer scope's block after the inner scope");
        inner + kept.len() as u64
    });
    assert_eq!(outer, work_sum(100) + 1000);
    let s = arena.stats();
    assert_eq!((s.bytes_in_use, s.resets, s.escapes), (0, 2, 0), "{s}");
}

/// The stats figures an escape shows, for comparing two arenas.
fn escape_figures(s: bumper::ArenaStats) -> (u64, u64, u64, u64, u64) {
    (
        s.escapes,
        s.escaped_blocks,
        s.escaped_bytes,
        s.live_blocks,
        s.resets,
    )
}

#[test]
fn escapes_from_scoped_are_kept_and_counted_as_for_no_escape() {
    let scoped = Arena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let by_hand = Arena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let a = scoped.scoped(|| filled(5000, 7));
    let b = with_bumper(&by_hand, || by_hand.no_escape(|| filled(5000, 7)));
    assert!(is_arena_pointer(a.as_ptr()) && is_arena_pointer(b.as_ptr()));
    // Later work in the arena does not overwrite the escaped block.
    for _ in 0..10 {
        scoped.scoped(|| work(100));
    }
    check(&a, 7, "a block that escaped `scoped`");
    let (mut s, h) = (
        escape_figures(scoped.stats()),
        escape_figures(by_hand.stats()),
    );
    s.4 -= 10; // the ten later scopes' resets
    assert_eq!(s, h);
    assert_eq!(h, (1, 1, 5000, 1, 1));
    drop((a, b));
    assert_eq!(scoped.stats().live_blocks, 0);
    let locked = LockedArena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let c = locked.scoped(|| filled(64, 8));
    assert_eq!(escape_figures(locked.stats()), (1, 1, 64, 1, 1));
    drop(c);
}

/// The message of a panic payload, with every arena id replaced by `#N`.
fn message(payload: Box<dyn std::any::Any + Send>) -> String {
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .expect("a formatted panic message");
    let mut out = String::new();
    let mut rest = msg.as_str();
    while let Some(at) = rest.find('#') {
        out.push_str(&rest[..at]);
        out.push_str("#N");
        rest = rest[at + 1..].trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

fn strict() -> Arena {
    Arena::builder()
        .escape_policy(EscapePolicy::Panic)
        .build()
        .unwrap()
}

#[test]
fn under_the_panic_policy_scoped_panics_with_no_escapes_message() {
    // `scoped` raises its escape panic inside the region, so the panic hook
    // runs there, and the caches the default hook fills when it captures a
    // backtrace would stay in the arena (see the ignored test below). In a
    // process of its own with a hook that does nothing, the panic leaves
    // nothing behind and the counts are exact.
    const NAME: &str = "under_the_panic_policy_scoped_panics_with_no_escapes_message";
    if !is_child(NAME) {
        Child::new(NAME).run(Expect::Success);
        return;
    }
    std::panic::set_hook(Box::new(|_| {}));
    let (a, b) = (strict(), strict());
    let mut outer_a = Vec::with_capacity(1); // heap: only the pushed value escapes
    let mut outer_b = Vec::with_capacity(1);
    let from_scoped = catch_unwind(AssertUnwindSafe(|| {
        a.scoped(|| outer_a.push(filled(100, 1)));
    }))
    .unwrap_err();
    let from_no_escape = catch_unwind(AssertUnwindSafe(|| {
        with_bumper(&b, || b.no_escape(|| outer_b.push(filled(100, 1))));
    }))
    .unwrap_err();
    let (ms, mn) = (message(from_scoped), message(from_no_escape));
    assert_eq!(ms, mn);
    assert!(
        ms.contains("memory escaped arena #N at the end of a `no_escape` block"),
        "{ms}"
    );
    assert!(ms.contains("1 block(s) (104 bytes)"), "{ms}");
    // Kept valid before the panic.
    check(&outer_a[0], 1, "a block that escaped a panicking `scoped`");
    for arena in [&a, &b] {
        let s = arena.stats();
        assert_eq!((s.escapes, s.escaped_blocks), (1, 1), "{s}");
        assert_eq!((s.active_checkpoints, s.live_blocks), (0, 1), "{s}");
    }
    drop((outer_a, outer_b));
    assert_eq!((a.stats().live_blocks, b.stats().live_blocks), (0, 0));
}

/// `scoped` resets after its region has ended, so the escape panic of the
/// `Panic` policy is raised outside the region: with `RUST_BACKTRACE=1` the
/// default panic hook fills std's symbolisation caches (tens of thousands of
/// blocks) from the heap, not from the arena, and the arena's drop finds
/// nothing left (it would panic again under the `Panic` policy).
#[test]
fn scoped_under_the_panic_policy_leaves_nothing_of_the_panic_in_the_arena() {
    const NAME: &str = "scoped_under_the_panic_policy_leaves_nothing_of_the_panic_in_the_arena";
    if !is_child(NAME) {
        let out = Child::new(NAME)
            .include_ignored()
            .env("RUST_BACKTRACE", "1")
            .run(Expect::Success);
        assert!(out.stderr.contains("memory escaped arena"), "{out}");
        return;
    }
    let arena = strict();
    let mut outer = Vec::with_capacity(1);
    let payload = catch_unwind(AssertUnwindSafe(|| {
        arena.scoped(|| outer.push(filled(100, 1)));
    }))
    .unwrap_err();
    drop(payload);
    drop(outer);
    let s = arena.stats();
    // Its drop would panic again if blocks were left: forget the arena.
    std::mem::forget(arena);
    assert_eq!(s.live_blocks, 0, "the panic left blocks in the arena: {s}");
}

#[test]
fn a_panic_inside_scoped_resets_and_ends_the_region() {
    let arena = LockedArena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let caught = catch_unwind(AssertUnwindSafe(|| {
        arena.scoped(|| {
            let _temp = filled(10_000, 3);
            // A zero-sized payload: nothing of the panic but the unwinder's
            // exception object is allocated.
            resume_unwind(Box::new(()))
        })
    }));
    assert!(caught.is_err());
    assert!(Region::current().is_none(), "the region outlived the panic");
    // The reset ran during unwinding, while the unwinder's exception object
    // (allocated in the region, above the checkpoint) was in use: it alone
    // was kept, as for `no_escape` (panics.rs). It is gone after the catch.
    let s = arena.stats();
    assert_eq!((s.resets, s.escapes, s.escaped_blocks), (1, 1, 1), "{s}");
    assert_eq!((s.live_blocks, s.active_checkpoints), (0, 0), "{s}");
    // Usable again, and a reset reclaims what the kept block pinned.
    assert_eq!(arena.scoped(|| work(10)), work_sum(10));
    assert!(arena.reset().is_clean());
    assert_eq!(arena.stats().bytes_in_use, 0);
}

#[test]
fn scoped_panics_if_the_closure_leaves_its_checkpoint_active() {
    let arena = Arena::new();
    let caught = catch_unwind(AssertUnwindSafe(|| {
        let cp = arena.scoped(|| arena.checkpoint());
        drop(cp);
    }))
    .unwrap_err();
    let msg = caught
        .downcast_ref::<String>()
        .cloned()
        .expect("a formatted panic message");
    assert!(msg.contains("no_escape"), "{msg}");
    // The arena stays usable.
    assert_eq!(arena.stats().active_checkpoints, 0);
    assert_eq!(arena.scoped(|| work(10)), work_sum(10));
}
