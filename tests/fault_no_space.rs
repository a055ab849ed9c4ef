//! SAFETY.md §10, running out never fails: if the OS refuses the address-space
//! reservation itself, arenas still work: every allocation spills to the inner
//! allocator.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

mod common;
counting_shim!();

use bumper::{Arena, LockedArena, is_arena_pointer, space_stats, with_bumper};
use common::count_inner;
use std::sync::Once;

fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(bumper::__testing::refuse_address_space);
}

#[test]
fn arenas_without_an_address_space_spill_everything() {
    setup();
    let arena = Arena::new();
    assert_eq!(space_stats().reserved, 0);
    let (v, inner) = count_inner(|| with_bumper(&arena, || arena.no_escape(|| vec![9u8; 5000])));
    assert!(!is_arena_pointer(v.as_ptr()));
    assert!(v.iter().all(|&b| b == 9));
    assert_eq!(inner.allocs, 1);
    let s = arena.stats();
    assert_eq!((s.spills, s.allocations, s.chunk_bytes), (1, 0, 0));
    assert!(arena.reset().is_clean());
}

#[test]
fn locked_arenas_without_an_address_space_spill_everything() {
    setup();
    let arena = LockedArena::new();
    let total: usize = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    with_bumper(&arena, || {
                        vec![1u8; 1000].iter().map(|&b| b as usize).sum::<usize>()
                    })
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(total, 3000);
    assert_eq!(arena.stats().spills, 3);
}
