//! `Arena`, `LockedArena` and `Checkpoint` are `UnwindSafe` and
//! `RefUnwindSafe`: `catch_unwind(|| with_bumper(&arena, ..))` compiles
//! without `AssertUnwindSafe`, and after the panic the arena is consistent:
//! it serves new regions, and its live-block count is exact.
//!
//! Most panics here use `resume_unwind`, which skips the panic hook, so that
//! the hook's own allocations (a backtrace, the thread's name) cannot land in
//! the arena and blur the counts. One test uses a real `panic!` under a hook
//! that stays silent for that one message.

use std::panic::{RefUnwindSafe, UnwindSafe, catch_unwind, resume_unwind};
use std::sync::Once;

use bumper::{Arena, Checkpoint, EscapePolicy, LockedArena, is_arena_pointer, with_bumper};

#[global_allocator]
static GLOBAL: bumper::Bumper = bumper::Bumper::system();

/// Compiles only if `T` is both unwind-safety traits.
fn assert_unwind_safe<T: UnwindSafe + RefUnwindSafe>() {}

#[test]
fn the_arena_types_are_unwind_safe() {
    assert_unwind_safe::<Arena>();
    assert_unwind_safe::<LockedArena>();
    assert_unwind_safe::<Checkpoint<'static>>();
    assert_unwind_safe::<&Arena>();
    assert_unwind_safe::<&LockedArena>();
}

/// Unwinds with a payload boxed wherever the thread allocates.
fn throw(code: u32) -> ! {
    resume_unwind(Box::new(code))
}

#[test]
fn an_arena_works_after_a_panic_in_its_region() {
    let arena = Arena::new();
    let kept = with_bumper(&arena, || vec![1u8; 10]);
    assert_eq!(arena.stats().live_blocks, 1);

    let result = catch_unwind(|| {
        with_bumper(&arena, || -> usize {
            let temp = vec![0u8; 1000];
            let text = String::from("unwound");
            if temp.len() + text.len() > 0 {
                throw(7);
            }
            temp.len()
        })
    });
    let payload = result.expect_err("the region panicked");
    assert_eq!(payload.downcast_ref::<u32>(), Some(&7));
    // `temp` and `text` were dropped by the unwind; the payload was boxed in
    // the region, so it is the only new live block.
    assert!(is_arena_pointer(&*payload));
    assert_eq!(arena.stats().live_blocks, 2);
    drop(payload);
    assert_eq!(arena.stats().live_blocks, 1);

    // The panic left no region behind: this thread allocates on the heap...
    let heap = Box::new(1u64);
    assert!(!is_arena_pointer(&*heap));
    // ...and the arena serves the next region.
    let again = with_bumper(&arena, || Box::new(5u64));
    assert!(is_arena_pointer(&*again));
    assert_eq!(*again, 5);
    assert_eq!(arena.stats().live_blocks, 2);

    drop(again);
    assert_eq!(kept, vec![1u8; 10]);
    drop(kept);
    assert_eq!(arena.stats().live_blocks, 0);
    let report = arena.reset();
    assert!(report.is_clean(), "{report}");
    assert_eq!(arena.stats().bytes_in_use, 0);
}

#[test]
fn a_locked_arena_works_after_a_panic_in_its_region() {
    let arena = LockedArena::new();
    let kept = with_bumper(&arena, || vec![2u16; 10]);

    let result = catch_unwind(|| {
        with_bumper(&arena, || -> usize {
            let temp: Vec<String> = (0..50).map(|i| i.to_string()).collect();
            if !temp.is_empty() {
                throw(8);
            }
            temp.len()
        })
    });
    let payload = result.expect_err("the region panicked");
    assert_eq!(payload.downcast_ref::<u32>(), Some(&8));
    assert!(is_arena_pointer(&*payload));
    assert_eq!(arena.stats().live_blocks, 2);
    drop(payload);
    assert_eq!(arena.stats().live_blocks, 1);

    // Its lane was released by the unwind: other threads, and this one, get
    // lanes again.
    let lens: Vec<usize> = std::thread::scope(|s| {
        let arena = &arena;
        let handles: Vec<_> = (0..3)
            .map(|i| {
                s.spawn(move || {
                    with_bumper(arena, || {
                        let v = vec![i; 100];
                        assert!(is_arena_pointer(v.as_ptr()));
                        v.len()
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(lens, vec![100; 3]);
    let again = with_bumper(&arena, || Box::new(9u8));
    assert!(is_arena_pointer(&*again));
    assert_eq!(arena.stats().live_blocks, 2);

    drop(again);
    drop(kept);
    assert_eq!(arena.stats().live_blocks, 0);
    assert!(arena.reset().is_clean());
}

#[test]
fn no_escape_resets_when_a_caught_panic_unwinds_through_it() {
    let arena = Arena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let result = catch_unwind(|| {
        with_bumper(&arena, || {
            arena.no_escape(|| -> usize {
                let temp = vec![3u32; 10_000];
                if temp[0] == 3 {
                    throw(9);
                }
                temp.len()
            })
        })
    });
    let payload = result.expect_err("the block panicked");
    // The reset on unwind kept the payload (still in use) and reclaimed the
    // rest: no checkpoint is left active.
    let s = arena.stats();
    assert_eq!(s.active_checkpoints, 0);
    assert_eq!(s.live_blocks, 1);
    assert_eq!(s.resets, 1);
    drop(payload);
    assert_eq!(arena.stats().live_blocks, 0);

    // The arena keeps working, checkpoints included.
    let n = with_bumper(&arena, || arena.no_escape(|| vec![0u8; 500].len()));
    assert_eq!(n, 500);
    let s = arena.stats();
    assert_eq!((s.live_blocks, s.active_checkpoints), (0, 0));
    assert!(arena.reset().is_clean());
    assert_eq!(arena.stats().bytes_in_use, 0);
}

#[test]
fn a_checkpoint_can_move_into_catch_unwind() {
    let arena = LockedArena::new();
    let cp = arena.checkpoint();
    let result = catch_unwind(|| {
        with_bumper(&arena, || drop(vec![0u8; 64]));
        arena.reset_to(cp)
    });
    let report = result.expect("nothing escaped, so nothing panicked");
    assert!(report.is_clean());
    assert_eq!(arena.stats().active_checkpoints, 0);
}

const QUIET: &str = "bumper unwind-safety test panic";

/// Installs, once, a panic hook that is silent for [`QUIET`] and hands every
/// other panic to the previous hook.
fn quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&QUIET) {
                previous(info);
            }
        }));
    });
}

#[test]
fn a_real_panic_in_a_region_leaves_both_kinds_consistent() {
    quiet_hook();

    let arena = Arena::new();
    let result = catch_unwind(|| {
        with_bumper(&arena, || -> usize {
            let temp = vec![0u8; 4096];
            if temp.len() == 4096 {
                panic!("bumper unwind-safety test panic");
            }
            temp.len()
        })
    });
    let payload = result.expect_err("the region panicked");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&QUIET));
    assert_eq!(arena.stats().live_blocks, 1);
    drop(payload);
    assert_eq!(arena.stats().live_blocks, 0);
    assert_eq!(with_bumper(&arena, || vec![1u8; 3].len()), 3);
    assert_eq!(arena.stats().live_blocks, 0);

    let locked = LockedArena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let result = catch_unwind(|| {
        with_bumper(&locked, || {
            locked.no_escape(|| -> usize {
                let temp = vec![0u8; 4096];
                if temp.len() == 4096 {
                    panic!("bumper unwind-safety test panic");
                }
                temp.len()
            })
        })
    });
    let payload = result.expect_err("the block panicked");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&QUIET));
    assert_eq!(locked.stats().active_checkpoints, 0);
    assert_eq!(locked.stats().live_blocks, 1);
    drop(payload);
    assert_eq!(locked.stats().live_blocks, 0);
    assert_eq!(with_bumper(&locked, || vec![1u8; 3].len()), 3);
    assert!(locked.reset().is_clean());
}
