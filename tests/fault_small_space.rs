//! SAFETY.md §10, running out never fails: an address-space reservation too
//! small for the work makes allocations spill to the inner allocator; nothing
//! aborts.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

mod common;
counting_shim!();

use bumper::{Arena, LockedArena, is_arena_pointer, space_stats, with_bumper};
use std::sync::Once;

const RESERVE: usize = 256 * 1024; // four 64 KiB slabs for the whole process

fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        bumper::configure_address_space(RESERVE).expect("configured before any arena");
    });
}

#[test]
fn the_reservation_is_the_configured_size() {
    setup();
    let _a = Arena::new();
    assert_eq!(space_stats().reserved, RESERVE as u64);
    assert!(matches!(
        bumper::configure_address_space(1 << 30),
        Err(bumper::SpaceError::AlreadyInitialized)
    ));
    assert!(matches!(
        bumper::configure_address_space(100),
        Err(bumper::SpaceError::TooSmall { requested: 100 })
    ));
}

#[test]
fn many_arenas_in_a_tiny_space_spill_and_stay_correct() {
    setup();
    let arenas: Vec<Arena> = (0..10).map(|_| Arena::new()).collect();
    let mut kept = Vec::with_capacity(10 * 50);
    for (i, arena) in arenas.iter().enumerate() {
        with_bumper(arena, || {
            for j in 0..50usize {
                kept.push(vec![(i * 50 + j) as u8; 10_000 + j]);
            }
        });
    }
    for (k, v) in kept.iter().enumerate() {
        assert!(v.iter().all(|&b| b == k as u8), "block {k} corrupted");
    }
    let in_arena = kept.iter().filter(|v| is_arena_pointer(v.as_ptr())).count();
    let spilled: u64 = arenas.iter().map(|a| a.stats().spills).sum();
    assert!(spilled > 0, "nothing spilled in a 256 KiB space");
    assert_eq!(in_arena as u64 + spilled, 500);
    assert!(space_stats().in_use <= RESERVE as u64);
}

#[test]
fn a_locked_arena_in_a_tiny_space_gives_every_thread_correct_results() {
    setup();
    let arena = LockedArena::new();
    let sums: Vec<u64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4u64)
            .map(|t| {
                let arena = &arena;
                s.spawn(move || with_bumper(arena, || arena_sum(t)))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (t, s) in sums.iter().enumerate() {
        assert_eq!(*s, (0..100_000u64).map(|x| x * t as u64).sum::<u64>());
    }
}

fn arena_sum(t: u64) -> u64 {
    let v: Vec<u64> = (0..100_000).map(|x| x * t).collect();
    v.iter().sum()
}
