//! SAFETY.md §10, running out never fails: when the OS refuses memory (a failed
//! `mmap`/`mprotect`), allocations spill to the inner allocator; nothing
//! aborts.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

mod common;
counting_shim!();

use bumper::{__testing::fail_next_os_calls, Arena, LockedArena, is_arena_pointer, with_bumper};
use common::count_inner;
use std::sync::Mutex;

/// Injected failures are process-wide: run these tests one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn a_refused_chunk_spills_to_the_inner_allocator() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let arena = Arena::new();
    with_bumper(&arena, || {
        let small = vec![1u8; 100]; // fits in the first chunk
        assert!(is_arena_pointer(small.as_ptr()));
        // A chunk larger than any released so far in this process, so it must
        // come fresh from the OS: refused.
        fail_next_os_calls(1);
        let (big, inner) = count_inner(|| vec![2u8; 32 << 20]);
        fail_next_os_calls(0);
        assert!(
            !is_arena_pointer(big.as_ptr()),
            "the refused chunk was used"
        );
        assert_eq!(inner.allocs, 1);
        assert!(big.iter().all(|&b| b == 2));
        // The next request asks the OS again and succeeds.
        let again = vec![3u8; 1 << 20];
        assert!(is_arena_pointer(again.as_ptr()));
        assert_eq!(small.len() + big.len() + again.len(), 100 + (33 << 20));
    });
    let s = arena.stats();
    assert_eq!((s.spills, s.live_blocks), (1, 0));
}

#[test]
fn a_refused_lane_for_a_locked_arena_spills() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // At its capacity limit, so a second lane cannot take a chunk and must
    // map its bookkeeping directly: that mapping is refused.
    let arena = LockedArena::builder()
        .capacity_limit(64 * 1024)
        .build()
        .unwrap();
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        let (arena, barrier) = (&arena, &barrier);
        let first = s.spawn(move || {
            with_bumper(arena, || {
                barrier.wait(); // holds lane 0
                barrier.wait();
                is_arena_pointer(Box::new(1).as_ref())
            })
        });
        barrier.wait();
        // The second thread needs a new lane.
        fail_next_os_calls(1);
        let second = s
            .spawn(move || {
                with_bumper(arena, || {
                    (is_arena_pointer(Box::new(2).as_ref()), vec![5u8; 1000])
                })
            })
            .join()
            .unwrap();
        fail_next_os_calls(0);
        barrier.wait();
        assert!(first.join().unwrap());
        assert!(!second.0, "a lane was created although the OS refused");
        assert!(second.1.iter().all(|&b| b == 5));
    });
    let s = arena.stats();
    assert_eq!(s.lanes_exhausted, 1, "{s}");
    assert!(s.spills >= 2, "{s}");
}
