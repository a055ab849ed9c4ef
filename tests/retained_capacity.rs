//! SAFETY.md §15, bounded memory: an arena keeps about 1.1 times what its
//! last 8 resets needed and gives the rest back, so a one-off spike does not
//! stay resident; a steady loop makes no memory system calls after its
//! warm-up; `trim` gives back everything unused now; dropping an arena
//! gives its memory back to the OS.
//!
//! The tests of this file read process-wide figures (`space_stats`), so they
//! run one at a time.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

use std::sync::Mutex;

use bumper::{Arena, Bumper, LockedArena, space_stats, with_bumper};

#[global_allocator]
static GLOBAL: Bumper = Bumper::system();

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// One iteration of a loop that needs about `bytes` of scratch in blocks
/// of 1 KiB, all freed by the reset.
fn iteration(arena: &Arena, bytes: usize) -> usize {
    with_bumper(arena, || {
        arena.no_escape(|| {
            let blocks: Vec<Vec<u8>> = (0..bytes / 1024).map(|i| vec![i as u8; 1024]).collect();
            blocks.iter().map(|b| b[0] as usize).sum()
        })
    })
}

#[test]
fn after_a_spike_the_arena_returns_to_its_steady_need_within_8_resets() {
    let _g = serial();
    let arena = Arena::new();
    for _ in 0..10 {
        iteration(&arena, 256 << 10);
    }
    let steady = arena.stats().chunk_bytes;
    let decommitted_before = space_stats().decommitted;
    iteration(&arena, 64 << 20); // the spike
    let spike = arena.stats().chunk_bytes;
    assert!(spike >= 64 << 20, "the spike took {spike} bytes");
    let mut after = Vec::new();
    for _ in 0..8 {
        iteration(&arena, 256 << 10);
        after.push(arena.stats().chunk_bytes);
    }
    let last = *after.last().unwrap();
    // Within 1.25x of the steady need, plus one chunk (the largest a lane
    // takes is 64 MiB, but a steady need of 256 KiB fits in 1 MiB chunks).
    assert!(
        last <= steady + steady / 4 + (1 << 20),
        "steady {steady}, spike {spike}, after the spike {after:?}"
    );
    // The spike's chunks went back to the OS, not just to a free list.
    let given_back = space_stats().decommitted - decommitted_before;
    assert!(
        given_back >= 32 << 20,
        "only {given_back} bytes decommitted"
    );
    assert!(arena.stats().trimmed_bytes >= spike - last);
    // The spike is remembered for 8 resets: until then, it is kept.
    assert!(after[..6].iter().all(|&b| b >= 64 << 20), "{after:?}");
}

#[test]
fn a_steady_loop_makes_no_memory_system_calls_after_its_warm_up() {
    let _g = serial();
    let arena = Arena::new();
    for size in [100 << 10, 300 << 10, 200 << 10] {
        iteration(&arena, size);
    }
    let before = space_stats();
    for i in 0..200 {
        // Needs vary a little from one iteration to the next.
        iteration(&arena, [100 << 10, 300 << 10, 200 << 10][i % 3]);
    }
    let after = space_stats();
    assert_eq!(
        after.os_calls, before.os_calls,
        "system calls in a steady loop: before {before}, after {after}"
    );
    assert_eq!(arena.stats().live_blocks, 0);
}

#[test]
fn trim_gives_back_every_unused_chunk_and_autoscale_off_keeps_them() {
    let _g = serial();
    let keep = Arena::builder().autoscale(false).build().unwrap();
    iteration(&keep, 32 << 20);
    for _ in 0..10 {
        iteration(&keep, 64 << 10);
    }
    let held = keep.stats().chunk_bytes;
    assert!(
        held >= 32 << 20,
        "autoscale(false) gave memory back: {held}"
    );
    assert_eq!(keep.stats().trimmed_bytes, 0);
    let given = keep.trim();
    assert!(given >= 32 << 20, "trim gave back {given}");
    let s = keep.stats();
    assert_eq!(s.chunk_bytes, held - given);
    assert_eq!(s.trimmed_bytes, given);
    // The arena still works after a trim, and takes chunks again.
    assert_eq!(iteration(&keep, 1 << 20), (0..1024).map(|i| i % 256).sum());
    assert_eq!(keep.stats().live_blocks, 0);
}

#[test]
fn max_retained_bounds_what_a_lane_keeps() {
    let _g = serial();
    let arena = Arena::builder().max_retained(2 << 20).build().unwrap();
    for _ in 0..3 {
        iteration(&arena, 16 << 20);
        // Whatever each iteration needed, at most 2 MiB stay after its reset.
        assert!(arena.stats().chunk_bytes <= 2 << 20, "{}", arena.stats());
    }
}

#[test]
fn initial_capacity_is_taken_at_creation_and_never_trimmed() {
    let _g = serial();
    let arena = Arena::builder().initial_capacity(8 << 20).build().unwrap();
    let at_start = arena.stats().chunk_bytes;
    assert!(at_start >= 8 << 20, "{at_start}");
    let before = space_stats();
    for _ in 0..20 {
        iteration(&arena, 4 << 20);
    }
    // The first regions used the capacity taken at creation: no new chunk.
    assert_eq!(space_stats().mprotect_calls, before.mprotect_calls);
    assert!(arena.stats().chunk_bytes >= 8 << 20);
}

#[test]
fn dropping_an_arena_gives_its_memory_back_to_the_os() {
    let _g = serial();
    let before = space_stats();
    let arena = LockedArena::new();
    let blocks = with_bumper(&arena, || {
        let blocks: Vec<Vec<u8>> = (0..256).map(|_| vec![1u8; 1 << 20]).collect();
        blocks
    });
    assert_eq!(blocks.len(), 256);
    let during = space_stats();
    assert!(during.in_use >= before.in_use + (256 << 20));
    // Freed after their region (taken in by the arena's drop) with the arena.
    drop(blocks);
    drop(arena);
    let after = space_stats();
    assert!(
        after.in_use <= before.in_use + (1 << 20),
        "before {before}, after {after}"
    );
    // Chunks of 1 MiB and more are always given back to the OS; smaller ones
    // are kept for reuse up to a process-wide 64 MiB.
    assert!(
        after.decommitted >= before.decommitted + (200 << 20),
        "{after}"
    );
    assert!(after.retained <= 64 << 20, "{after}");
}

#[test]
fn a_steady_loop_with_a_large_buffer_reuses_its_chunk_without_system_calls() {
    let _g = serial();
    let arena = Arena::new();
    let iteration = || {
        with_bumper(&arena, || {
            arena.no_escape(|| {
                let mut big = vec![0u8; 1 << 20]; // a chunk of its own
                big[12345] = 7;
                let small: Vec<String> = (0..100).map(|i| i.to_string()).collect();
                big[12345] as usize + small.len()
            })
        })
    };
    for _ in 0..3 {
        assert_eq!(iteration(), 107);
    }
    let before = space_stats();
    for _ in 0..200 {
        assert_eq!(iteration(), 107);
    }
    let after = space_stats();
    assert_eq!(
        after.os_calls, before.os_calls,
        "before {before}, after {after}"
    );
    let s = arena.stats();
    assert_eq!((s.live_blocks, s.large_blocks, s.escapes), (0, 0, 0), "{s}");
}

#[test]
fn loops_with_varied_large_blocks_or_an_occasional_peak_make_no_system_calls() {
    let _g = serial();
    // Large blocks of several sizes, one after the other (im2col-like).
    let arena = Arena::new();
    let sizes = [1 << 20, 3 << 20, 2 << 20, 700 << 10];
    let iteration = |extra: usize| {
        with_bumper(&arena, || {
            arena.no_escape(|| {
                let mut sum = 0usize;
                for &n in &sizes {
                    let v = vec![1u8; n];
                    sum += v[n / 2] as usize;
                }
                let small: Vec<Vec<u8>> = (0..(64 + extra)).map(|_| vec![0u8; 1024]).collect();
                sum + small.len()
            })
        })
    };
    for _ in 0..3 {
        iteration(0);
        iteration(2000);
    }
    let before = space_stats();
    for i in 0..100 {
        // Every 12th iteration needs about 2 MiB more than the others: more
        // rarely than the 8 resets the arena remembers.
        let extra = if i % 12 == 11 { 2000 } else { 0 };
        iteration(extra);
    }
    let after = space_stats();
    assert_eq!(
        after.os_calls, before.os_calls,
        "before {before}, after {after}"
    );
}

#[test]
fn a_long_region_that_frees_what_it_allocates_reuses_a_few_chunks() {
    // One region, no reset: 500,000 allocations of 8..=512 bytes, each kept
    // in a 64-slot ring at a random slot and freed when replaced, so frees
    // come in random order and the bump pointer rarely rewinds. A chunk goes
    // back to the lane's spares when its last block is freed, so the lane
    // keeps cycling through a few chunks instead of holding everything it
    // ever served (about 130 MiB here).
    let _g = serial();
    let arena = Arena::new();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let served = with_bumper(&arena, || {
        let mut ring: Vec<Vec<u8>> = (0..64).map(|_| Vec::new()).collect();
        let mut served = 0usize;
        for i in 0..500_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = 8 + (x % 505) as usize;
            served += len;
            let slot = (x >> 32) as usize % 64;
            let old = std::mem::replace(&mut ring[slot], vec![i as u8; len]);
            assert!(old.iter().all(|&b| b == old[0]), "a block changed");
        }
        for (slot, v) in ring.iter().enumerate() {
            assert!(v.iter().all(|&b| b == v[0]), "slot {slot} changed");
        }
        served
    });
    let s = arena.stats();
    assert!(served > 100 << 20);
    assert_eq!(s.live_blocks, 0, "{s}");
    assert!(s.chunk_bytes <= 4 << 20, "{s}");
    assert!(s.peak_bytes_in_use <= 4 << 20, "{s}");
}
