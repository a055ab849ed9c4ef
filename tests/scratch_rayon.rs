//! `bumper::scratch` (issue 16, §3): each thread's own arena, reset after
//! every call; the way to use bumper under rayon's `par_iter`.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use bumper::{is_arena_pointer, scratch, scratch_arena};
use rayon::prelude::*;

#[global_allocator]
static GLOBAL: bumper::Bumper = bumper::Bumper::system();

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool")
}

/// Knows nothing about bumper: a JSON round trip of `n` records.
fn work(n: u64) -> (usize, bool) {
    let records: Vec<serde_json::Value> = (0..n)
        .map(|i| serde_json::json!({"id": i, "name": format!("item {i}"), "tags": ["a", "b"]}))
        .collect();
    let text = serde_json::to_string(&records).unwrap();
    let back: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    (back.len() + text.len(), is_arena_pointer(text.as_ptr()))
}

#[test]
fn par_iter_items_allocate_from_their_threads_scratch_arenas_and_end_clean() {
    let pool = pool(4);
    let items: Vec<u64> = (0..400).map(|i| i % 37).collect();
    let expected: Vec<usize> = items.iter().map(|&n| work(n).0).collect();
    let in_arena = AtomicU64::new(0);
    let got: Vec<usize> = pool.install(|| {
        items
            .par_iter()
            .map(|&n| {
                let (len, arena) = scratch(|| work(n));
                if arena {
                    in_arena.fetch_add(1, Relaxed);
                }
                len
            })
            .collect()
    });
    assert_eq!(got, expected);
    assert_eq!(
        in_arena.load(Relaxed),
        items.len() as u64,
        "every item in an arena"
    );
    let stats = pool.broadcast(|_| scratch_arena(|a| a.stats()));
    let mut served = 0;
    for s in &stats {
        assert_eq!((s.live_blocks, s.bytes_in_use, s.escapes), (0, 0, 0), "{s}");
        served += s.allocations;
    }
    assert!(
        served > 400 * 10,
        "the items allocated from the scratch arenas"
    );
}

#[test]
fn a_scratch_arena_does_not_grow_over_many_items() {
    let pool = pool(2);
    let run = |rounds: u64| {
        pool.install(|| {
            (0..rounds).into_par_iter().for_each(|i| {
                scratch(|| work(i % 64));
            })
        })
    };
    run(200);
    let before: u64 = pool
        .broadcast(|_| scratch_arena(|a| a.stats().chunk_bytes))
        .iter()
        .sum();
    run(2000);
    let after: u64 = pool
        .broadcast(|_| scratch_arena(|a| a.stats().chunk_bytes))
        .iter()
        .sum();
    assert!(
        after <= before.max(1 << 20) * 2,
        "before {before}, after {after}"
    );
}

#[test]
fn scratch_calls_nest_and_each_thread_has_its_own_arena() {
    let (outer, inner) = scratch(|| {
        let outer = scratch_arena(|a| a.id());
        let v = vec![1u8; 10];
        let inner = scratch(|| {
            let w = vec![2u8; 10];
            is_arena_pointer(w.as_ptr())
        });
        assert!(is_arena_pointer(v.as_ptr()) && inner);
        (outer, scratch_arena(|a| a.id()))
    });
    assert_eq!(outer, inner);
    let other = std::thread::spawn(|| scratch(|| scratch_arena(|a| a.id())))
        .join()
        .unwrap();
    assert_ne!(other, outer);
    assert_eq!(scratch_arena(|a| a.stats().live_blocks), 0);
}

#[test]
fn the_first_use_inside_a_region_puts_nothing_in_that_region() {
    std::thread::spawn(|| {
        let outer = bumper::Arena::new();
        bumper::with_bumper(&outer, || scratch(|| drop(vec![0u8; 100])));
        assert_eq!(outer.stats().allocations, 0);
    })
    .join()
    .unwrap();
}

#[test]
fn a_panic_in_scratch_resets_on_the_way_out() {
    std::thread::spawn(|| {
        let caught = std::panic::catch_unwind(|| {
            scratch(|| {
                let _v = vec![0u8; 1000];
                // A message made in the region (without the panic hook, to
                // keep the test quiet): copied to the heap before the reset.
                std::panic::resume_unwind(Box::new(format!("failed at {}", 42)));
            })
        });
        let payload = caught.expect_err("the panic goes on");
        assert_eq!(payload.downcast_ref::<String>().unwrap(), "failed at 42");
        assert!(!is_arena_pointer(
            payload.downcast_ref::<String>().unwrap().as_ptr()
        ));
        let s = scratch_arena(|a| a.stats());
        assert_eq!((s.live_blocks, s.bytes_in_use, s.escapes), (0, 0, 0), "{s}");
    })
    .join()
    .unwrap();
}
