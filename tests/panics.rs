//! SAFETY.md §8: a panic inside a region or a `no_escape` block
//! unwinds cleanly. The previous scope is restored and later allocations go
//! where they should.
//!
//! Most tests unwind with `resume_unwind`, which skips the panic hook: the
//! default hook may capture a backtrace, and the caches it fills on first use
//! are (legitimately) allocated in whatever arena is active, which would make
//! exact counts depend on `RUST_BACKTRACE`. One test uses a real `panic!`.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

mod common;
counting_shim!();

use bumper::{Arena, EscapePolicy, LockedArena, is_arena_pointer, with_bumper};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

/// Unwinds with a small payload (allocated wherever the thread allocates).
fn throw() -> ! {
    resume_unwind(Box::new(0xDEAD_u64))
}

#[test]
fn a_panic_in_a_region_restores_the_previous_route() {
    let outer = Arena::new();
    let inner = Arena::new();
    with_bumper(&outer, || {
        let r = catch_unwind(AssertUnwindSafe(|| {
            with_bumper(&inner, || {
                let _v = vec![1u8; 100];
                throw();
            })
        }));
        let payload = r.unwrap_err();
        assert_eq!(payload.downcast_ref::<u64>(), Some(&0xDEAD));
        // Back in `outer`'s region.
        let b = Box::new(5u32);
        assert!(is_arena_pointer(&*b));
        assert_eq!(outer.stats().live_blocks, 1);
        // The unwound Vec was freed; the payload lives in `inner`.
        assert_eq!(inner.stats().live_blocks, 1);
        drop(payload);
        assert_eq!(inner.stats().live_blocks, 0);
    });
    // And outside every region again.
    let h = Box::new(6u32);
    assert!(!is_arena_pointer(&*h));
    assert_eq!(outer.stats().live_blocks, 0);
}

#[test]
fn a_panic_in_no_escape_resets_the_checkpoint() {
    let arena = Arena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    with_bumper(&arena, || {
        let base = arena.stats().bytes_in_use;
        let r = catch_unwind(AssertUnwindSafe(|| {
            arena.no_escape(|| {
                let _a = vec![0u8; 50_000];
                let _b: Vec<String> = (0..100).map(|i| i.to_string()).collect();
                throw();
            })
        }));
        let payload = r.unwrap_err();
        // The reset ran during unwinding, while the payload and the
        // unwinder's exception object (both allocated above the checkpoint)
        // were in use: those two were kept, everything else was not.
        let s = arena.stats();
        assert_eq!(s.active_checkpoints, 0);
        assert_eq!((s.escapes, s.escaped_blocks), (1, 2));
        // The exception object is gone after the catch; the payload remains.
        assert_eq!(s.live_blocks, 1);
        drop(payload);
        assert_eq!(arena.stats().live_blocks, 0);
        // The arena keeps working normally.
        let n = arena.no_escape(|| vec![1u8; 10_000].len());
        assert_eq!(n, 10_000);
        assert!(arena.stats().bytes_in_use >= base);
    });
    assert!(arena.reset().is_clean());
    assert_eq!(arena.stats().bytes_in_use, 0);
}

#[test]
fn nested_no_escape_unwinds_innermost_first() {
    let arena = Arena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| {
        with_bumper(&arena, || {
            arena.no_escape(|| {
                let _x = vec![1u8; 1000];
                arena.no_escape(|| {
                    let _y = vec![2u8; 1000];
                    arena.no_escape(|| throw());
                });
            });
        })
    }));
    let s = arena.stats();
    assert_eq!(s.active_checkpoints, 0);
    assert_eq!(s.escapes, 3); // the payload escapes each of the three blocks
    assert_eq!(s.live_blocks, 1);
    drop(r);
    assert_eq!(arena.stats().live_blocks, 0);
    assert!(arena.reset().is_clean());
    assert_eq!(arena.stats().bytes_in_use, 0);
}

#[test]
fn a_real_panic_with_the_default_hook_inside_a_region_unwinds_cleanly() {
    // The hook runs inside the region; whatever it allocates (message,
    // backtrace, caches) is arena memory that is kept valid.
    let arena = Arena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let data = with_bumper(&arena, || {
        let data: Vec<u32> = (0..1000).collect();
        let r = catch_unwind(AssertUnwindSafe(|| {
            arena.no_escape(|| {
                let _tmp = vec![0u8; 4096];
                panic!("a real panic inside no_escape");
            })
        }));
        let msg = *r.unwrap_err().downcast::<&str>().unwrap();
        assert_eq!(msg, "a real panic inside no_escape");
        assert!(is_arena_pointer(&*Box::new(1)));
        data
    });
    assert!(data.iter().copied().eq(0..1000));
    assert!(!is_arena_pointer(&*Box::new(2)));
    assert_eq!(arena.stats().active_checkpoints, 0);
}

#[test]
fn a_panic_on_another_thread_in_a_locked_region_frees_its_lane() {
    let arena = LockedArena::builder().max_threads(2).build().unwrap();
    for _ in 0..5 {
        std::thread::scope(|s| {
            let r = s
                .spawn(|| {
                    with_bumper(&arena, || {
                        let _v = vec![0u8; 1000];
                        throw();
                    })
                })
                .join();
            assert!(r.is_err());
        });
    }
    // If unwinding had not released the lanes, later regions would find
    // them all busy and spill.
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| with_bumper(&arena, || assert!(is_arena_pointer(&*Box::new(1)))));
        }
    });
    let st = arena.stats();
    assert_eq!(st.lanes_exhausted, 0, "{st}");
    assert_eq!(st.spills, 0, "{st}");
}
