//! SAFETY.md §15, escape reports say where: an arena built with
//! `track_sites(true)` records where every block was allocated, and a reset
//! that finds escapes lists the sites of the live blocks, with counts and
//! bytes, in its report and in the escape message.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

use std::sync::Mutex;

use bumper::{Arena, Bumper, EscapePolicy, LockedArena, with_bumper};

#[global_allocator]
static GLOBAL: Bumper = Bumper::system();

static CACHE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

#[inline(never)]
fn remember_forever(n: usize) {
    CACHE.lock().unwrap().push(vec![7u8; n]);
}

#[inline(never)]
fn harmless_scratch() -> usize {
    let v: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    v.len()
}

/// The global list's own buffer must not be allocated inside a region (it
/// would escape too): reserve it first.
fn reserve_cache() {
    CACHE.lock().unwrap().reserve(1000);
}

fn tracking() -> Arena {
    reserve_cache();
    Arena::builder()
        .track_sites(true)
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap()
}

#[test]
fn a_reset_names_the_function_that_made_the_escaped_blocks() {
    let arena = tracking();
    let cp = arena.checkpoint();
    with_bumper(&arena, || {
        for _ in 0..3 {
            assert_eq!(harmless_scratch(), 100);
            remember_forever(40);
        }
    });
    let report = arena.reset_to(cp);
    assert_eq!(report.escaped_blocks, 3, "{report}");
    let sites: Vec<_> = report.sites().collect();
    assert_eq!(sites.len(), 1, "{sites:?}");
    // `Debug` lists the one site, not the unused entries.
    assert_eq!(format!("{report:?}").matches("SiteCount").count(), 1);
    assert_eq!((sites[0].blocks, sites[0].bytes), (3, 120));
    let text = sites[0].site.to_string();
    assert!(text.contains("remember_forever"), "{text}");
    assert!(!text.contains("harmless_scratch"), "{text}");
    assert!(!sites[0].site.frames().is_empty());
}

#[test]
fn large_escapes_are_named_too_and_sites_are_ranked_by_bytes() {
    let arena = tracking();
    let cp = arena.checkpoint();
    with_bumper(&arena, || {
        remember_forever(16);
        remember_forever(16);
        remember_forever(200 << 10); // a large block, in a chunk of its own
    });
    let report = arena.reset_to(cp);
    assert_eq!(report.escaped_blocks, 3);
    let sites: Vec<_> = report.sites().collect();
    // One call site for all three, but a large block's stack differs below
    // `remember_forever`: both entries name it, the larger first.
    assert!(
        sites
            .iter()
            .all(|s| s.site.to_string().contains("remember_forever"))
    );
    assert_eq!(sites.iter().map(|s| s.blocks).sum::<u64>(), 3);
    assert_eq!(sites.iter().map(|s| s.bytes).sum::<u64>(), 32 + (200 << 10));
    assert!(sites.windows(2).all(|w| w[0].bytes >= w[1].bytes));
}

#[test]
fn a_clean_reset_lists_no_site_and_tracking_keeps_every_count_exact() {
    let arena = tracking();
    for _ in 0..10 {
        let n = with_bumper(&arena, || arena.no_escape(harmless_scratch));
        assert_eq!(n, 100);
    }
    let cp = arena.checkpoint();
    let v = with_bumper(&arena, || {
        let mut v = vec![1u8; 10];
        v.extend_from_slice(&[2; 1000]); // moves: no growth in place when tracking
        v
    });
    let s = arena.stats();
    // Live bytes count the block, not its 32-byte header.
    assert_eq!((s.live_blocks, s.live_bytes), (1, 1016), "{s}");
    drop(v);
    let report = arena.reset_to(cp);
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.sites().count(), 0);
    assert_eq!(arena.stats().bytes_in_use, 0);
}

#[test]
fn the_panic_message_names_the_sites() {
    let arena = Arena::builder()
        .track_sites(true)
        .escape_policy(EscapePolicy::Panic)
        .build()
        .unwrap();
    let mut keep: Vec<Vec<u8>> = Vec::with_capacity(1); // on the heap
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // The reset, and so the panic, happen outside the region, so that
        // the panic machinery allocates nothing in the arena.
        arena.no_escape(|| with_bumper(&arena, || keep.push(vec![7u8; 24])));
    }))
    .unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("Escaped blocks by allocation site"), "{msg}");
    assert!(msg.contains("1 block(s) (24 bytes)"), "{msg}");
    assert!(msg.contains("the_panic_message_names_the_sites"), "{msg}");
    assert_eq!(keep[0], vec![7u8; 24]);
    drop(keep); // freed before the arena's drop, which would panic again
}

#[test]
fn blocks_freed_on_other_threads_are_untracked_exactly() {
    let arena = LockedArena::builder()
        .track_sites(true)
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let cp = arena.checkpoint();
    let blocks: Vec<Vec<u8>> = with_bumper(&arena, || (0..50).map(|i| vec![i; 100]).collect());
    std::thread::spawn(move || drop(blocks)).join().unwrap();
    let report = arena.reset_to(cp);
    assert!(report.is_clean(), "{report}");
    assert_eq!(arena.stats().live_blocks, 0);
}

#[test]
fn outside_regions_allocates_on_the_heap_and_regions_inside_it_apply_again() {
    use bumper::{is_arena_pointer, measure, outside_regions};
    let arena = tracking();
    let other = Arena::new();
    let cp = arena.checkpoint();
    let (kept, m) = measure(|| {
        with_bumper(&arena, || {
            let scratch = vec![1u8; 64];
            assert!(is_arena_pointer(scratch.as_ptr()));
            let kept = outside_regions(|| {
                let heap = vec![2u8; 64];
                assert!(!is_arena_pointer(heap.as_ptr()));
                let inner = with_bumper(&other, || vec![3u8; 64]);
                assert!(is_arena_pointer(inner.as_ptr()), "a region inside applies");
                drop(inner);
                heap
            });
            let again = vec![4u8; 64];
            assert!(
                is_arena_pointer(again.as_ptr()),
                "the region applies again after"
            );
            kept
        })
    });
    assert_eq!(m.inner_calls, 1, "{m}");
    assert!(
        arena.reset_to(cp).is_clean(),
        "the kept block is on the heap"
    );
    assert_eq!(kept, vec![2u8; 64]);
}

#[inline(never)]
fn keep_one(kept: &mut Vec<Vec<u8>>, round: u8) {
    kept.push(vec![round; 24]);
}

#[test]
fn tracked_blocks_in_chunks_that_died_and_were_reused_are_tallied_exactly() {
    // Small chunks: each round's scratch spans several, most of which die
    // (all their blocks freed) while a kept block pins another. The reset's
    // walk over the tracked blocks must never pass through a chunk that was
    // given back and reused since.
    reserve_cache();
    let arena = Arena::builder()
        .chunk_size(64 << 10)
        .track_sites(true)
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let mut kept: Vec<Vec<u8>> = Vec::with_capacity(100);
    for round in 0..30u8 {
        let cp = arena.checkpoint();
        with_bumper(&arena, || {
            let scratch: Vec<Vec<u8>> = (0..200).map(|i| vec![i as u8; 1000]).collect();
            keep_one(&mut kept, round);
            drop(scratch);
        });
        let report = arena.reset_to(cp);
        assert_eq!(report.escaped_blocks, 1, "round {round}: {report}");
        let sites: Vec<_> = report.sites().collect();
        assert_eq!(sites.len(), 1, "round {round}: {sites:?}");
        assert_eq!((sites[0].blocks, sites[0].bytes), (1, 24));
        assert!(sites[0].site.to_string().contains("keep_one"));
    }
    for (round, v) in kept.iter().enumerate() {
        assert!(v.iter().all(|&b| b == round as u8), "round {round}");
    }
    assert_eq!(arena.stats().live_blocks, 30);
    // One checkpoint over everything: the walk covers every round.
    drop(kept);
    assert!(arena.reset().is_clean());
}
