//! SAFETY.md §1, routing: inside a region every allocation comes from the
//! arena and the inner allocator sees nothing; outside, everything goes to
//! the inner allocator.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

mod common;
counting_shim!();

use bumper::{Arena, LockedArena, is_arena_pointer, measure, with_bumper};
use common::count_inner;
use std::collections::{BTreeMap, HashMap};

#[test]
fn std_collections_inside_a_region_come_from_the_arena() {
    let arena = Arena::new();
    let (ok, inner) = count_inner(|| {
        with_bumper(&arena, || {
            let b = Box::new(41u64);
            let mut v: Vec<u32> = Vec::new();
            for i in 0..10_000 {
                v.push(i); // many reallocations
            }
            let s = format!("{} and {}", "a string", 42);
            let mut h = HashMap::new();
            for i in 0..1000 {
                h.insert(i, i.to_string());
            }
            let t: BTreeMap<String, usize> = (0..500).map(|i| (format!("k{i}"), i)).collect();
            assert!(is_arena_pointer(&*b));
            assert!(is_arena_pointer(v.as_ptr()));
            assert!(is_arena_pointer(s.as_ptr()));
            assert!(h.values().all(|s| is_arena_pointer(s.as_ptr())));
            assert!(t.keys().all(|k| is_arena_pointer(k.as_ptr())));
            *b + 1 == 42 && v.iter().sum::<u32>() == 49_995_000 && h[&999] == "999" && t["k7"] == 7
        })
    });
    assert!(ok);
    assert_eq!(inner.allocs, 0, "the inner allocator saw allocations");
    assert_eq!(inner.frees, 0, "the inner allocator saw frees");
    assert_eq!(inner.reallocs, 0, "the inner allocator saw reallocations");
}

#[test]
fn serde_json_inside_a_region_comes_from_the_arena() {
    let text = {
        let items: Vec<String> = (0..2000)
            .map(|i| format!(r#"{{"id":{i},"name":"item {i}","tags":["a","b"],"w":{i}.5}}"#))
            .collect();
        format!("[{}]", items.join(","))
    };
    let arena = Arena::new();
    let (total, inner) = count_inner(|| {
        with_bumper(&arena, || {
            arena.no_escape(|| {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                let arr = v.as_array().unwrap();
                assert!(is_arena_pointer(arr.as_ptr()));
                arr.iter().map(|x| x["id"].as_u64().unwrap()).sum::<u64>()
            })
        })
    });
    assert_eq!(total, (0..2000u64).sum::<u64>());
    assert_eq!(inner.allocs + inner.reallocs + inner.frees, 0);
    let s = arena.stats();
    assert_eq!(s.live_blocks, 0);
    assert_eq!(s.bytes_in_use, 0);
    assert!(s.allocations > 2000);
}

#[test]
fn outside_a_region_everything_goes_to_the_inner_allocator() {
    let arena = Arena::new(); // exists, but no region is active
    let (v, inner) = count_inner(|| {
        let mut v = Vec::new();
        for i in 0..100u32 {
            v.push(Box::new(i));
        }
        v
    });
    assert!(v.iter().all(|b| !is_arena_pointer(&**b)));
    assert!(inner.allocs >= 101);
    assert_eq!(arena.stats().allocations, 0);
    let (_, inner) = count_inner(|| drop(v));
    assert_eq!(inner.frees, 101);
}

#[test]
fn routing_ends_with_the_region() {
    let arena = Arena::new();
    let inside = with_bumper(&arena, || Box::new(1));
    let after = Box::new(2);
    assert!(is_arena_pointer(&*inside));
    assert!(!is_arena_pointer(&*after));
}

#[test]
fn nested_regions_route_to_the_innermost_arena() {
    let outer = Arena::new();
    let inner = LockedArena::new();
    with_bumper(&outer, || {
        let a = Box::new(1);
        let (b, c) = with_bumper(&inner, || {
            let b = Box::new(2);
            let c = with_bumper(&outer, || Box::new(3)); // same arena again, nested
            (b, c)
        });
        let d = Box::new(4);
        assert_eq!(outer.stats().live_blocks, 3); // a, c, d
        assert_eq!(inner.stats().live_blocks, 1); // b
        assert!([&*a, &*b, &*c, &*d].iter().all(|p| is_arena_pointer(*p)));
        assert_eq!(*a + *b + *c + *d, 10);
    });
    assert_eq!(outer.stats().live_blocks, 0);
    assert_eq!(inner.stats().live_blocks, 0);
}

#[test]
fn measure_reports_calls_and_bytes_on_each_side() {
    let arena = Arena::new();
    let (_, plain) = measure(|| {
        let v = vec![0u8; 1000];
        let w = vec![0u8; 24];
        (v, w)
    });
    assert_eq!(plain.inner_calls, 2);
    assert_eq!(plain.inner_bytes, 1024);
    assert_eq!(plain.arena_calls, 0);

    let (_, bumped) = measure(|| {
        with_bumper(&arena, || {
            let v = vec![0u8; 1000];
            let w = vec![0u8; 24];
            (v.len(), w.len())
        })
    });
    assert_eq!(bumped.inner_calls, 0);
    assert_eq!(bumped.arena_calls, 2);
    assert_eq!(bumped.arena_bytes, 1024);

    // Measurement inside a region, and a region inside a measurement, nest.
    let (_, outer) = measure(|| {
        let _h = vec![1u8; 10];
        with_bumper(&arena, || {
            let (_, inner) = measure(|| vec![1u8; 7].len());
            assert_eq!(
                (inner.arena_calls, inner.arena_bytes, inner.inner_calls),
                (1, 7, 0)
            );
        })
    });
    assert_eq!((outer.inner_calls, outer.arena_calls), (1, 1));
}
