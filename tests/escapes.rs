//! SAFETY.md §3, a reset never reuses memory that is still in use, and
//! its "Escape policies": values that escape a `no_escape` block stay intact
//! through the reset and through many later allocations, the escape is
//! counted, and the panic policy explains what escaped and how to fix it.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

mod common;
counting_shim!();

use bumper::{Arena, EscapePolicy, LockedArena, is_arena_pointer, with_bumper};
use common::pattern::{check, fill};
use common::{Child, Expect, is_child};
use std::sync::{LazyLock, Mutex, OnceLock};

/// Allocates a lot in the arena afterwards, to overwrite anything that a
/// faulty reset handed out again.
fn churn(arena: &Arena, rounds: usize) {
    for r in 0..rounds {
        arena.no_escape(|| {
            let mut junk: Vec<Vec<u8>> = Vec::new();
            for i in 0..200 {
                let mut v = vec![0u8; 64 + i * 13];
                fill(&mut v, 1_000_000 + r as u64);
                junk.push(v);
            }
            let big = vec![0x5Au8; 256 * 1024];
            assert_eq!(big[big.len() - 1], 0x5A);
        });
    }
}

#[test]
fn a_returned_value_escapes_and_stays_intact() {
    let arena = Arena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let kept = with_bumper(&arena, || {
        let v = arena.no_escape(|| {
            let mut v = vec![0u8; 10_000];
            fill(&mut v, 7);
            v
        });
        churn(&arena, 20);
        v
    });
    assert!(is_arena_pointer(kept.as_ptr()));
    check(&kept, 7, "an escaped value was overwritten");
    let s = arena.stats();
    assert_eq!(s.escapes, 1);
    assert_eq!(s.escaped_blocks, 1);
    assert_eq!(s.escaped_bytes, 10_000);
    assert_eq!(s.live_blocks, 1);
}

#[test]
fn a_value_pushed_into_an_outer_vec_escapes() {
    // `bad_function_1` of AllocArrays.jl's "Examples of improper usage".
    let arena = Arena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let mut output: Vec<Vec<f64>> = Vec::with_capacity(10); // heap
    with_bumper(&arena, || {
        for i in 0..10 {
            arena.no_escape(|| {
                let b = vec![i as f64; 1000];
                let c = vec![0.0f64; 1000];
                output.push(b); // wrong in Bumper.jl; kept valid here
                drop(c);
            });
        }
        churn(&arena, 10);
    });
    assert!(!is_arena_pointer(output.as_ptr()));
    for (i, b) in output.iter().enumerate() {
        assert!(is_arena_pointer(b.as_ptr()));
        assert!(
            b.iter().all(|&x| x == i as f64),
            "escaped vector {i} was corrupted"
        );
    }
    let s = arena.stats();
    assert_eq!(s.escapes, 10);
    assert_eq!(s.escaped_blocks, 10);
    drop(output);
    assert_eq!(arena.stats().live_blocks, 0);
    assert!(arena.reset().is_clean());
    assert_eq!(arena.stats().bytes_in_use, 0);
}

#[test]
fn a_leaked_value_escapes() {
    let arena = Arena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let leaked: &'static mut [u64] = with_bumper(&arena, || {
        arena.no_escape(|| Box::leak((0..1000u64).collect::<Vec<_>>().into_boxed_slice()))
    });
    with_bumper(&arena, || churn(&arena, 20));
    assert!(leaked.iter().copied().eq(0..1000));
    assert_eq!(arena.stats().escaped_blocks, 1);
    // Dropping the arena with a live block orphans it; the leak stays valid.
    drop(arena);
    assert!(leaked.iter().copied().eq(0..1000));
    leaked[0] = 42;
}

static LAZY_TABLE: LazyLock<Mutex<Vec<String>>> =
    LazyLock::new(|| Mutex::new((0..100).map(|i| format!("entry {i}")).collect()));
static ONCE: OnceLock<Box<[u8]>> = OnceLock::new();

#[test]
fn lazily_initialised_statics_escape_and_are_never_overwritten() {
    let arena = Arena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    with_bumper(&arena, || {
        arena.no_escape(|| {
            // First touch happens inside the region: allocated in the arena.
            assert_eq!(LAZY_TABLE.lock().unwrap().len(), 100);
            ONCE.get_or_init(|| {
                let mut b = vec![0u8; 3000];
                fill(&mut b, 99);
                b.into_boxed_slice()
            });
        });
        churn(&arena, 30);
    });
    assert!(is_arena_pointer(ONCE.get().unwrap().as_ptr()));
    check(ONCE.get().unwrap(), 99, "the OnceLock's boxed slice");
    let table = LAZY_TABLE.lock().unwrap();
    assert!(
        table
            .iter()
            .enumerate()
            .all(|(i, s)| *s == format!("entry {i}"))
    );
    let s = arena.stats();
    assert_eq!(s.escapes, 1);
    assert_eq!(s.escaped_blocks, 102); // the Vec, its 100 strings, the boxed slice
}

#[test]
fn the_panic_policy_names_the_escape_and_the_fix() {
    let arena = Arena::builder()
        .escape_policy(EscapePolicy::Panic)
        .build()
        .unwrap();
    let mut outer = Vec::with_capacity(1); // on the heap: only the pushed value escapes
    // The region is inside `no_escape`, so the panic (its message, and any
    // backtrace the panic hook captures and caches) is raised outside the
    // region and does not itself allocate in the arena.
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        arena.no_escape(|| with_bumper(&arena, || outer.push(vec![1u8; 100])));
    }))
    .unwrap_err();
    let msg = err.downcast_ref::<String>().expect("a formatted message");
    assert!(msg.contains("memory escaped arena"), "{msg}");
    assert!(msg.contains("1 block(s) (104 bytes)"), "{msg}");
    assert!(msg.contains("`no_escape`"), "{msg}");
    assert!(
        msg.contains("Fix: copy results into memory allocated outside the region"),
        "{msg}"
    );
    // The memory was kept valid before the panic.
    assert_eq!(outer[0], vec![1u8; 100]);
    // The arena is still usable: the checkpoint was consumed.
    assert_eq!(arena.stats().active_checkpoints, 0);
    assert_eq!(
        with_bumper(&arena, || arena.no_escape(|| vec![2u8; 10].len())),
        10
    );
    drop(outer);
    let s = arena.stats();
    assert_eq!((s.escapes, s.escaped_blocks, s.live_blocks), (1, 1, 0));
}

#[test]
fn no_escape_without_escapes_does_not_panic_under_the_panic_policy() {
    let arena = LockedArena::builder()
        .escape_policy(EscapePolicy::Panic)
        .build()
        .unwrap();
    let n = with_bumper(&arena, || {
        arena.no_escape(|| {
            let v: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
            v.len()
        })
    });
    assert_eq!(n, 1000);
}

#[test]
fn the_abort_policy_aborts_with_the_message() {
    const NAME: &str = "the_abort_policy_aborts_with_the_message";
    if is_child(NAME) {
        let arena = Arena::builder()
            .escape_policy(EscapePolicy::Abort)
            .build()
            .unwrap();
        let kept = with_bumper(&arena, || arena.no_escape(|| vec![3u8; 50]));
        println!("unreachable: {}", kept.len());
        return;
    }
    let out = Child::new(NAME).run(Expect::Signal(libc::SIGABRT));
    assert!(out.stderr.contains("memory escaped arena"), "{out}");
    assert!(!out.stdout.contains("unreachable"), "{out}");
}

#[test]
fn the_warn_policy_prints_the_message_once_per_arena() {
    const NAME: &str = "the_warn_policy_prints_the_message_once_per_arena";
    if is_child(NAME) {
        // The default in debug builds, named here so that the test holds in
        // release builds too. Two escapes on one arena, one on another.
        let first = Arena::builder()
            .escape_policy(EscapePolicy::Warn)
            .build()
            .unwrap();
        let second = Arena::builder()
            .escape_policy(EscapePolicy::Warn)
            .build()
            .unwrap();
        let a = with_bumper(&first, || first.no_escape(|| vec![1u8; 40]));
        let b = with_bumper(&first, || first.no_escape(|| vec![2u8; 40]));
        let c = with_bumper(&second, || second.no_escape(|| vec![3u8; 40]));
        // The memory stays valid, and every escape is counted.
        assert_eq!((a[0], b[0], c[0]), (1, 2, 3));
        assert_eq!(first.stats().escapes, 2);
        assert_eq!(second.stats().escapes, 1);
        // On a line of its own, after libtest's "test ... " prefix.
        println!("\narena ids: {} {}", first.id(), second.id());
        drop((a, b, c));
        return;
    }
    let out = Child::new(NAME).run(Expect::Success);
    let ids: Vec<u64> = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("arena ids: "))
        .expect("the child printed the arena ids")
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning: bumper:"))
        .collect();
    assert_eq!(warnings.len(), 2, "{out}");
    for (w, id) in warnings.iter().zip(&ids) {
        assert!(
            w.starts_with(&format!(
                "warning: bumper: memory escaped arena #{id} at the end of a `no_escape` block: \
                 1 block(s) (40 bytes) allocated since the checkpoint are still in use"
            )),
            "{out}"
        );
        assert!(
            w.ends_with(
                "(EscapePolicy::Warn: said once per arena; choose another policy with \
                 ArenaBuilder::escape_policy)"
            ),
            "{out}"
        );
    }
}
