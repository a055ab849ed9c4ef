//! SAFETY.md §1 and §2: frees and reallocations are routed by who owns the
//! pointer, never by which region is active; and §9, blocks outlive their
//! arena.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

mod common;
counting_shim!();

use bumper::{Arena, EscapePolicy, LockedArena, is_arena_pointer, with_bumper};
use common::count_inner;
use common::pattern::{check, fill};

#[test]
fn a_region_vec_dropped_after_the_region_is_freed_by_its_arena() {
    let arena = Arena::new();
    let mut v = with_bumper(&arena, || {
        let mut v = vec![0u8; 4096];
        fill(&mut v, 1);
        v
    });
    assert!(is_arena_pointer(v.as_ptr()));
    check(&v, 1, "the region's Vec");
    assert_eq!(arena.stats().live_blocks, 1);
    // Work outside the region does not touch it.
    let noise: Vec<Vec<u8>> = (0..100).map(|i| vec![i as u8; 100]).collect();
    check(&v, 1, "the region's Vec");
    v[0] ^= 0; // still writable
    let (_, inner) = count_inner(|| drop(v));
    assert_eq!(inner.frees, 0, "an arena block reached the inner allocator");
    assert_eq!(arena.stats().live_blocks, 0);
    drop(noise);
}

#[test]
fn heap_vec_grown_inside_a_region_stays_on_the_heap() {
    let arena = Arena::new();
    let mut v: Vec<u64> = Vec::with_capacity(4);
    v.extend([1, 2, 3, 4]);
    assert!(!is_arena_pointer(v.as_ptr()));
    let ((), inner) = count_inner(|| {
        with_bumper(&arena, || {
            for i in 5..=10_000 {
                v.push(i);
            }
            v.shrink_to_fit();
        })
    });
    assert!(
        !is_arena_pointer(v.as_ptr()),
        "a heap Vec was moved into the arena"
    );
    assert!(inner.reallocs > 0);
    assert_eq!(arena.stats().allocations, 0);
    assert_eq!(v.iter().sum::<u64>(), 10_000 * 10_001 / 2);
    let (_, inner) = count_inner(|| drop(v));
    assert_eq!(inner.frees, 1);
}

#[test]
fn a_heap_vec_grown_across_arena_resets_stays_intact_on_the_heap() {
    // The reset must not affect heap memory and the heap block must survive
    // arena reuse.
    let arena = Arena::new();
    let mut v = vec![7u8; 10];
    with_bumper(&arena, || {
        for round in 0..20u8 {
            arena.no_escape(|| {
                let tmp = vec![round; 1000];
                v.extend_from_slice(&tmp[..10]);
            });
        }
    });
    assert!(!is_arena_pointer(v.as_ptr()));
    assert_eq!(v.len(), 210);
    for (round, part) in v[10..].chunks(10).enumerate() {
        assert!(part.iter().all(|&b| b == round as u8));
    }
    assert_eq!(arena.stats().live_blocks, 0);
}

#[test]
fn region_boxes_dropped_on_another_thread_are_freed_by_their_arena() {
    let arena = Arena::new();
    // An unbounded channel never blocks the sender. (Blocking would lazily
    // create a thread-local context inside the region: a legitimate escape
    // that lives as long as the thread, and would make the count below vary.)
    // Its internal blocks are allocated in the arena by the sender and freed
    // by the receiver: more remote frees.
    let (tx, rx) = std::sync::mpsc::channel::<Vec<Box<[u8; 256]>>>();
    let frees_before = common::global_inner_frees();
    std::thread::scope(|s| {
        let consumer = s.spawn(move || {
            let mut checked = 0;
            for batch in rx {
                for (i, b) in batch.iter().enumerate() {
                    assert!(b.iter().all(|&x| x == (i % 251) as u8));
                    checked += 1;
                }
                drop(batch); // freed on this thread while the owner keeps allocating
            }
            checked
        });
        with_bumper(&arena, || {
            for _ in 0..50 {
                let batch: Vec<Box<[u8; 256]>> =
                    (0..100).map(|i| Box::new([(i % 251) as u8; 256])).collect();
                assert!(batch.iter().all(|b| is_arena_pointer(&**b)));
                tx.send(batch).unwrap();
                // The owner keeps allocating while the consumer frees.
                let mine: Vec<u64> = (0..1000).collect();
                assert_eq!(mine.iter().sum::<u64>(), 499_500);
            }
        });
        drop(tx);
        assert_eq!(consumer.join().unwrap(), 5000);
    });
    let s = arena.stats();
    assert_eq!(s.live_blocks, 0, "remote frees were not all accounted: {s}");
    // The inner allocator freed only what the harness and channel allocated
    // outside regions, never an arena block (Counting asserts that).
    assert!(common::global_inner_frees() >= frees_before);
    // Everything is reusable.
    let r = arena.reset();
    assert!(r.is_clean(), "{r}");
    assert_eq!(arena.stats().bytes_in_use, 0);
}

#[test]
fn arena_block_reallocated_outside_any_region_moves_to_the_heap() {
    let arena = Arena::new();
    let mut v: Vec<u32> = with_bumper(&arena, || (0..100).collect());
    assert!(is_arena_pointer(v.as_ptr()));
    let ((), inner) = count_inner(|| {
        for i in 100..10_000 {
            v.push(i);
        }
    });
    assert!(
        !is_arena_pointer(v.as_ptr()),
        "grew in the arena outside a region"
    );
    assert!(inner.allocs >= 1);
    assert!(v.iter().copied().eq(0..10_000));
    assert_eq!(
        arena.stats().live_blocks,
        0,
        "the old arena block was not freed"
    );
}

#[test]
fn arena_block_reallocated_in_another_arenas_region_moves_there() {
    let a = Arena::new();
    let b = Arena::new();
    let mut s = with_bumper(&a, || String::from("hello"));
    with_bumper(&b, || {
        for _ in 0..100 {
            s.push_str(" world");
        }
    });
    assert!(s.starts_with("hello world world"));
    assert_eq!(s.len(), 5 + 600);
    assert_eq!(a.stats().live_blocks, 0);
    assert_eq!(b.stats().live_blocks, 1);
    let shrunk = with_bumper(&a, || {
        s.shrink_to(10); // a shrink also moves: the block is not a's
        s
    });
    assert_eq!(b.stats().live_blocks, 0);
    assert_eq!(a.stats().live_blocks, 1);
    assert_eq!(shrunk.len(), 605);
}

#[test]
fn blocks_outlive_their_arena() {
    let arena = Arena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let id = arena.id();
    let mut kept: Vec<Vec<u8>> = with_bumper(&arena, || {
        (0..64)
            .map(|i| {
                let mut v = vec![0u8; 1000 + i];
                fill(&mut v, i as u64);
                v
            })
            .collect()
    });
    drop(arena); // orphan: chunks stay mapped while blocks live
    for (i, v) in kept.iter().enumerate() {
        check(v, i as u64, format_args!("block {i} of the dropped arena"));
    }
    // Other arenas reuse memory; the orphan's must not be touched.
    for _ in 0..10 {
        let other = Arena::new();
        assert_ne!(other.id(), id);
        with_bumper(&other, || {
            let big = vec![0xAAu8; 512 * 1024];
            assert_eq!(big[1000], 0xAA);
        });
    }
    for (i, v) in kept.iter().enumerate() {
        check(v, i as u64, format_args!("block {i} of the dropped arena"));
    }
    // Frees from several threads, the last one releases the arena.
    let half = kept.split_off(32);
    std::thread::scope(|s| {
        s.spawn(move || drop(half));
        s.spawn(move || drop(kept));
    });
}

#[test]
fn locked_arena_blocks_freed_on_another_thread_are_all_accounted() {
    let arena = LockedArena::new();
    let blocks: Vec<Box<u64>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|t| {
                let arena = &arena;
                s.spawn(move || {
                    with_bumper(arena, || {
                        (0..1000)
                            .map(|i| Box::new(t * 1000 + i))
                            .collect::<Vec<_>>()
                    })
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(blocks.iter().all(|b| is_arena_pointer(&**b)));
    // 4000 boxes; the per-thread Vec buffers were freed by `flat_map` here.
    assert_eq!(arena.stats().live_blocks, 4000);
    let mut sorted: Vec<u64> = blocks.iter().map(|b| **b).collect();
    sorted.sort();
    assert!(sorted.iter().copied().eq(0..4000));
    drop(sorted);
    drop(blocks);
    assert_eq!(arena.stats().live_blocks, 0);
}

#[test]
fn an_arena_moved_between_threads_serves_regions_on_each() {
    // An `Arena` is `Send`: one thread at a time uses it, and its lane is
    // claimed without a compare-and-swap. Moving it hands the lane over.
    let mut arena = Arena::new();
    let mut kept = Vec::with_capacity(4);
    for round in 0..4u8 {
        let (back, v) = std::thread::spawn(move || {
            let v = with_bumper(&arena, || vec![round; 100]);
            assert!(is_arena_pointer(v.as_ptr()));
            (arena, v)
        })
        .join()
        .unwrap();
        kept.push(v);
        // The blocks made on the other threads are freed here, by ownership.
        let w = with_bumper(&back, || vec![round; 50]);
        assert!(is_arena_pointer(w.as_ptr()));
        drop(w);
        let s = back.stats();
        assert_eq!(s.live_blocks, u64::from(round) + 1, "{s}");
        assert_eq!(s.lanes, 1);
        arena = back;
    }
    for (i, v) in kept.iter().enumerate() {
        assert!(v.iter().all(|&b| b == i as u8));
    }
    drop(kept);
    assert_eq!(arena.stats().live_blocks, 0);
    assert!(arena.reset().is_clean());
}
