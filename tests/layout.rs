//! SAFETY.md §11: every `Layout` is honoured, and `alloc_zeroed`
//! returns zeroed memory, also when arena memory is reused.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

mod common;
counting_shim!();

use bumper::{Arena, EscapePolicy, is_arena_pointer, with_bumper};
use std::alloc::{Layout, alloc, alloc_zeroed, dealloc, realloc};

#[test]
fn alignments_up_to_a_page_are_served_by_the_arena() {
    let arena = Arena::new();
    with_bumper(&arena, || {
        let mut live = Vec::with_capacity(200);
        for shift in 0..=12 {
            let align = 1usize << shift;
            for size in [1usize, 3, 8, 17, align, align + 1, 3 * align] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: the layout has a non-zero size.
                let p = unsafe { alloc(layout) };
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "size {size} align {align}");
                assert!(
                    is_arena_pointer(p),
                    "align {align} was not served by the arena"
                );
                // SAFETY: the pointer is to a live block at least that long.
                unsafe { p.write_bytes(shift as u8, size) };
                live.push((p, layout, shift as u8));
            }
        }
        for (p, layout, tag) in live {
            // SAFETY: the pointer is to a live block at least that long.
            let s = unsafe { std::slice::from_raw_parts(p, layout.size()) };
            assert!(s.iter().all(|&b| b == tag), "blocks overlap");
            // SAFETY: the block was allocated with this layout and is not used afterwards.
            unsafe { dealloc(p, layout) };
        }
    });
    let s = arena.stats();
    assert_eq!((s.live_blocks, s.spills), (0, 0));
}

#[test]
fn larger_alignments_are_honoured() {
    let arena = Arena::new();
    with_bumper(&arena, || {
        for shift in 13..=22 {
            let align = 1usize << shift;
            let layout = Layout::from_size_align(100, align).unwrap();
            // SAFETY: the layout has a non-zero size.
            let p = unsafe { alloc(layout) };
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0, "align {align}");
            // Up to 64 KiB in the arena, beyond that from the inner allocator.
            assert_eq!(is_arena_pointer(p), align <= 64 * 1024, "align {align}");
            // SAFETY: the pointer is to a live block at least that long.
            unsafe { p.write_bytes(0xCD, 100) };
            // SAFETY: the block is live and was allocated with `layout`; the new size is non-zero.
            let q = unsafe { realloc(p, layout, 5000) };
            assert_eq!(q as usize % align, 0, "realloc lost the alignment {align}");
            assert!(
                // SAFETY: the pointer is to a live block at least that long.
                unsafe { std::slice::from_raw_parts(q, 100) }
                    .iter()
                    .all(|&b| b == 0xCD)
            );
            // SAFETY: the block was allocated with this layout and is not used afterwards.
            unsafe { dealloc(q, Layout::from_size_align(5000, align).unwrap()) };
        }
    });
    let s = arena.stats();
    // The six allocations aligned to 128 KiB ..= 4 MiB spill; their
    // reallocations are plain heap reallocations.
    assert_eq!(s.spills, 6, "{s}");
    assert_eq!(s.live_blocks, 0);
}

#[test]
fn alloc_zeroed_is_zeroed_also_when_memory_is_reused() {
    let arena = Arena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    with_bumper(&arena, || {
        for round in 0..20u32 {
            arena.no_escape(|| {
                // Dirty the memory with a pattern...
                let dirty: Vec<Vec<u8>> = (0..50).map(|i| vec![0xFF; 100 + i * 37]).collect();
                drop(dirty);
            });
            arena.no_escape(|| {
                // ...then ask for zeroed memory at the same addresses.
                for i in 0..50usize {
                    let size = 100 + i * 37 + round as usize;
                    let layout = Layout::from_size_align(size, 8).unwrap();
                    // SAFETY: the layout has a non-zero size.
                    let p = unsafe { alloc_zeroed(layout) };
                    assert!(is_arena_pointer(p));
                    // SAFETY: the pointer is to a live block at least that long.
                    let s = unsafe { std::slice::from_raw_parts(p, size) };
                    assert!(
                        s.iter().all(|&b| b == 0),
                        "round {round}: alloc_zeroed returned dirty memory"
                    );
                    // SAFETY: the pointer is to a live block at least that long.
                    unsafe { p.write_bytes(0xEE, size) };
                }
            });
            // vec![0; n] uses alloc_zeroed too.
            arena.no_escape(|| {
                let v = vec![0u64; 10_000 + round as usize];
                assert!(v.iter().all(|&x| x == 0));
            });
        }
    });
}

#[test]
fn alloc_zeroed_is_zeroed_after_tip_frees_and_in_fresh_chunks() {
    let arena = Arena::new();
    with_bumper(&arena, || {
        for _ in 0..100 {
            let v = vec![0xABu8; 3000];
            drop(v); // tip free: the bump pointer moves back over dirty memory
            let z = vec![0u8; 3000];
            assert!(z.iter().all(|&b| b == 0));
            drop(z);
        }
        // Big zeroed blocks in fresh chunks.
        let big: Vec<Vec<u32>> = (0..8).map(|_| vec![0u32; 1 << 18]).collect();
        assert!(big.iter().all(|v| v.iter().all(|&x| x == 0)));
    });
}

#[test]
fn zero_sized_and_odd_sized_types_are_stored_intact_and_aligned() {
    let arena = Arena::new();
    with_bumper(&arena, || {
        let zst: Vec<()> = vec![(); 1000];
        assert_eq!(zst.len(), 1000);
        let bytes: Vec<Box<u8>> = (0..1000).map(|i| Box::new(i as u8)).collect();
        assert!(bytes.iter().enumerate().all(|(i, b)| **b == i as u8));
        let odd: Vec<[u8; 13]> = (0..100).map(|i| [i as u8; 13]).collect();
        assert!(
            odd.iter()
                .enumerate()
                .all(|(i, a)| a.iter().all(|&x| x == i as u8))
        );
        #[repr(align(256))]
        struct Big(u8);
        let aligned: Vec<Box<Big>> = (0..50).map(|i| Box::new(Big(i))).collect();
        assert!(
            aligned
                .iter()
                .all(|b| (&**b as *const Big as usize).is_multiple_of(256))
        );
        assert!(aligned.iter().enumerate().all(|(i, b)| b.0 == i as u8));
    });
}
