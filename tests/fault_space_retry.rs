//! SAFETY.md §10, running out never fails: when the OS refuses the default
//! address-space reservation (a low `ulimit -v`, valgrind, strict overcommit),
//! bumper retries with smaller ones instead of giving up.

mod common;
counting_shim!();

use bumper::{Arena, is_arena_pointer, space_stats, with_bumper};

#[test]
fn a_refused_reservation_is_retried_smaller() {
    // Nothing else in this test binary creates arenas. The first two
    // attempts (64 GiB, then 32 GiB) fail at their first OS call.
    bumper::__testing::fail_next_os_calls(2);
    let arena = Arena::new();
    let reserved = space_stats().reserved;
    assert_eq!(reserved, 16 << 30, "expected the third, quartered attempt");
    let v = with_bumper(&arena, || vec![1u8; 1 << 20]);
    assert!(is_arena_pointer(v.as_ptr()));
    assert_eq!(arena.stats().spills, 0);
}
