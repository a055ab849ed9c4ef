//! SAFETY.md §10, running out never fails: when the OS refuses even the few
//! pages an arena needs for its own bookkeeping, `Arena::new()` does not
//! abort. The arena is degraded: its regions spill everything to the inner
//! allocator, its checkpoints are untracked, and dropping it is harmless.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

mod common;
counting_shim!();

use bumper::__testing::{fail_next_os_calls, refuse_address_space};
use bumper::{Arena, LockedArena, is_arena_pointer, with_bumper};
use common::count_inner;
use std::sync::{Mutex, Once};

/// Injected failures are process-wide: run these tests one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn setup() -> std::sync::MutexGuard<'static, ()> {
    static ONCE: Once = Once::new();
    // No address space: an arena's bookkeeping needs a mapping of its own,
    // which `fail_next_os_calls(1)` then refuses.
    ONCE.call_once(refuse_address_space);
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn an_arena_whose_bookkeeping_is_refused_spills_everything() {
    let _g = setup();
    fail_next_os_calls(1);
    let arena = Arena::new();
    fail_next_os_calls(0);
    assert_eq!(arena.id(), 0, "a degraded arena has id 0");
    let (v, inner) = count_inner(|| with_bumper(&arena, || vec![3u8; 4000]));
    assert!(!is_arena_pointer(v.as_ptr()));
    assert!(v.iter().all(|&b| b == 3));
    assert_eq!(inner.allocs, 1);
    // Checkpoints are untracked; resets reclaim nothing and report it.
    let cp = arena.checkpoint();
    let report = arena.reset_to(cp);
    assert!(report.untracked);
    assert!(!report.escaped());
    let total: usize = with_bumper(&arena, || arena.no_escape(|| vec![1u8; 100].len()));
    assert_eq!(total, 100);
    let s = arena.stats();
    assert_eq!((s.allocations, s.live_blocks, s.chunk_bytes), (0, 0, 0));
    assert!(s.spills >= 2, "{s}");
    drop(arena);
    drop(v);
}

#[test]
fn degraded_arenas_do_not_order_each_others_checkpoints() {
    let _g = setup();
    fail_next_os_calls(2);
    let a = Arena::new();
    let b = LockedArena::new();
    fail_next_os_calls(0);
    assert_eq!((a.id(), b.id()), (0, 0));
    // Interleaved checkpoints of two degraded arenas: both share one core,
    // yet neither reset is out of order.
    let ca = a.checkpoint();
    let cb = b.checkpoint();
    assert!(a.try_reset_to(ca).is_ok());
    assert!(b.try_reset_to(cb).is_ok());
    // Dropping one while the other is inside a region leaves that region
    // working.
    with_bumper(&b, || {
        drop(a);
        let v = vec![8u8; 64];
        assert!(!is_arena_pointer(v.as_ptr()));
        assert!(v.iter().all(|&x| x == 8));
    });
    drop(b);
}

#[test]
fn a_normal_arena_still_works_after_a_degraded_one() {
    let _g = setup();
    fail_next_os_calls(1);
    let degraded = Arena::new();
    fail_next_os_calls(0);
    let normal = Arena::new();
    assert_ne!(normal.id(), 0);
    let v = with_bumper(&normal, || vec![4u8; 100]);
    // No address space: even a normal arena spills, but it is its own.
    assert!(!is_arena_pointer(v.as_ptr()));
    assert_eq!(normal.stats().spills, 1);
    drop((degraded, normal, v));
}
