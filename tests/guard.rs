//! Guard mode (SAFETY.md, "Guard mode"). Memory reclaimed by a reset is
//! poisoned and, for whole pages, protected until it is reused, so a raw
//! pointer kept past a reset faults loudly instead of reading stale data.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

mod common;
counting_shim!();

use bumper::{Arena, EscapePolicy, LockedArena, is_arena_pointer, with_bumper};
use common::{Child, Expect, is_child};

#[test]
fn guarded_arenas_serve_intact_and_zeroed_memory_across_resets() {
    let arena = Arena::builder().guard_mode(true).build().unwrap();
    with_bumper(&arena, || {
        for round in 0..50u32 {
            arena.no_escape(|| {
                let small: Vec<u32> = (0..1000).map(|i| i * round).collect();
                let big = vec![round as u8; 200_000]; // spans pages and chunks
                let zeroed = vec![0u64; 5000]; // poisoned memory must read as zero
                assert!(zeroed.iter().all(|&x| x == 0), "round {round}");
                assert!(big.iter().all(|&b| b == round as u8));
                assert_eq!(small[999], 999 * round);
                assert!(is_arena_pointer(big.as_ptr()));
            });
        }
    });
    let s = arena.stats();
    assert_eq!(
        (s.resets, s.escapes, s.spills, s.live_blocks),
        (50, 0, 0, 0)
    );
    assert!(arena.reset().is_clean());
    assert_eq!(arena.stats().bytes_in_use, 0);
}

#[test]
fn escaped_memory_is_neither_poisoned_nor_protected() {
    let arena = LockedArena::builder()
        .escape_policy(EscapePolicy::Keep)
        .guard_mode(true)
        .build()
        .unwrap();
    let kept = with_bumper(&arena, || {
        let kept = arena.no_escape(|| vec![7u8; 100_000]);
        for _ in 0..10 {
            arena.no_escape(|| drop(vec![1u8; 300_000]));
        }
        kept
    });
    assert!(
        kept.iter().all(|&b| b == 7),
        "guard mode touched live memory"
    );
    assert_eq!(arena.stats().escaped_blocks, 1);
}

#[test]
fn dropping_a_guarded_arena_returns_usable_chunks() {
    // Chunks with protected pages go back to the space unprotected: a later
    // arena that gets them must be able to use every byte.
    for _ in 0..5 {
        let guarded = Arena::builder().guard_mode(true).build().unwrap();
        with_bumper(&guarded, || {
            guarded.no_escape(|| drop(vec![1u8; 2 << 20]));
        });
        drop(guarded);
        let plain = Arena::new();
        with_bumper(&plain, || {
            let v = vec![2u8; 4 << 20];
            assert!(v.iter().all(|&b| b == 2));
        });
    }
}

#[test]
fn a_pointer_used_after_a_reset_faults_with_a_message() {
    const NAME: &str = "a_pointer_used_after_a_reset_faults_with_a_message";
    if is_child(NAME) {
        let arena = Arena::builder().guard_mode(true).build().unwrap();
        let stale: *const u8 = with_bumper(&arena, || {
            arena.no_escape(|| {
                let v = vec![42u8; 64 * 1024];
                let p = v.as_ptr().wrapping_add(32 * 1024); // well inside whole pages
                let _later = vec![0u8; 16];
                drop(v); // not the last block: only the reset hands it back
                p
            })
        });
        println!("before the stale read");
        // SAFETY: none; this is the bug guard mode exists to catch.
        let x = unsafe { stale.read_volatile() };
        println!("unreachable: read {x}");
        return;
    }
    let out = Child::new(NAME).run(Expect::Signal(libc::SIGSEGV));
    assert!(out.stdout.contains("before the stale read"), "{out}");
    assert!(
        !out.stdout.contains("unreachable"),
        "the stale read succeeded: {out}"
    );
    assert!(
        out.stderr
            .contains("bumper: guard mode caught an access to arena memory"),
        "{out}"
    );
    assert!(out.stderr.contains("use after reset"), "{out}");
}

#[test]
fn reclaimed_bytes_in_a_partial_page_read_as_poison() {
    const NAME: &str = "reclaimed_bytes_in_a_partial_page_read_as_poison";
    if is_child(NAME) {
        let arena = Arena::builder().guard_mode(true).build().unwrap();
        let stale: *const u8 = with_bumper(&arena, || {
            // Blocks start 128-aligned in a chunk: 8 bytes put the checkpoint
            // inside a page, whatever the arena's own bookkeeping takes.
            std::mem::forget(vec![0u8; 8]);
            arena.no_escape(|| {
                let v = vec![42u8; 24]; // first bytes after the checkpoint
                let p = v.as_ptr();
                let _other = vec![1u8; 16];
                drop(v); // not the last block: only the reset hands it back
                p
            })
        });
        // SAFETY: none; reading reclaimed memory is the bug being detected.
        let bytes: Vec<u8> = (0..24)
            .map(|i| unsafe { stale.add(i).read_volatile() })
            .collect();
        println!("stale bytes: {bytes:?}");
        return;
    }
    let out = Child::new(NAME).run(Expect::Success);
    let expect = format!("stale bytes: {:?}", vec![0xBDu8; 24]);
    assert!(out.stdout.contains(&expect), "{out}");
}

#[test]
fn a_fault_outside_the_arena_still_reaches_the_previous_handler() {
    // The handler chains: std's stack-overflow report (its own SIGSEGV
    // handler) must keep working once guard mode installed ours.
    const NAME: &str = "a_fault_outside_the_arena_still_reaches_the_previous_handler";
    if is_child(NAME) {
        let _arena = Arena::builder().guard_mode(true).build().unwrap();
        fn recurse(n: u64) -> u64 {
            let buf = [n; 64];
            std::hint::black_box(&buf);
            // Deep enough to overflow any stack; the bound only keeps the
            // compiler from seeing infinite recursion.
            if n > u64::MAX / 2 {
                return buf[3];
            }
            recurse(n + 1) + buf[3]
        }
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| recurse(0))
            .unwrap()
            .join()
            .unwrap();
        return;
    }
    // How std ends the process after its report is its own business.
    let out = Child::new(NAME).run(Expect::Any);
    assert!(out.stderr.contains("has overflowed its stack"), "{out}");
    assert!(!out.stderr.contains("bumper: guard mode"), "{out}");
}

#[test]
fn a_large_block_grows_in_place_over_pages_guard_mode_protected() {
    // A 600 KiB block dirties most of a 1 MiB side chunk; its free protects
    // those pages. The next round's smaller block reuses the chunk, and
    // growing it in place must lift the protection first. (Two rounds of the
    // large block: the first loop of an arena retains no chunk, the second,
    // with a reset behind it, keeps this one.)
    let arena = Arena::builder().guard_mode(true).build().unwrap();
    with_bumper(&arena, || {
        for _ in 0..2 {
            arena.no_escape(|| {
                let v = vec![1u8; 600 << 10];
                assert!(is_arena_pointer(v.as_ptr()));
            });
        }
        arena.no_escape(|| {
            let mut v: Vec<u8> = Vec::with_capacity(300 << 10);
            v.resize(300 << 10, 2);
            let p = v.as_ptr();
            v.reserve_exact(600 << 10);
            assert_eq!(v.as_ptr(), p, "the block did not grow in its own chunk");
            v.resize(900 << 10, 3);
            assert!(v[..300 << 10].iter().all(|&b| b == 2));
            assert!(v[300 << 10..].iter().all(|&b| b == 3));
        });
    });
    assert_eq!(arena.stats().live_blocks, 0);
}
