//! SAFETY.md §7, the allocation path never allocates: the shim never
//! re-enters itself.
//!
//! The global allocator here is `Detector<Bumper<Probe>>`. `Detector` keeps
//! a `const`-initialised thread-local depth counter around every call into
//! the shim, and aborts (message on stderr, then `abort`) if it is entered
//! while the depth is already 1: that happens exactly when code running
//! inside the shim (bumper's own slow paths, or its inner allocator) calls
//! the global allocator. `Probe` is the shim's inner allocator: `System`,
//! plus a record of the depth it runs at, so that the control tests can show
//! that the detector is armed inside the shim and that it fires on a real
//! re-entry.
//!
//! The other tests drive every slow path of bumper under the detector:
//! arenas created inside regions, lanes created by many threads and
//! exhausted, chunk growth and very large blocks, checkpoints, resets,
//! escapes and `no_escape`, stats, capacity spills, over-aligned requests,
//! `measure`, remote frees, reallocation in every direction, guard mode,
//! and an orphaned arena destroyed from inside `dealloc` on another thread.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

// The shared helpers only: this file installs its own global allocator.
mod common;

use bumper::{
    Arena, Bumper, EscapePolicy, LockedArena, is_arena_pointer, measure, space_stats, with_bumper,
};
use common::{Child, Expect, is_child};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex, mpsc};

thread_local! {
    /// Calls of this thread currently inside the shim.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// The depth the inner allocator last saw on this thread.
    static PROBE_DEPTH: Cell<u32> = const { Cell::new(u32::MAX) };
    /// Calls the inner allocator served on this thread.
    static PROBE_CALLS: Cell<u64> = const { Cell::new(0) };
}

/// Calls made through the detector, all threads.
static CALLS: AtomicU64 = AtomicU64::new(0);
/// Control only: makes the inner allocator call the global allocator.
static REENTER: AtomicBool = AtomicBool::new(false);

fn write_stderr(msg: &[u8]) {
    // SAFETY: writes a valid buffer to fd 2; allocates nothing.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
}

struct Detector<A>(A);

impl<A> Detector<A> {
    #[inline]
    fn enter(op: &str) {
        let was = DEPTH.with(|d| {
            let was = d.get();
            d.set(was + 1);
            was
        });
        if was != 0 {
            write_stderr(
                b"reentrancy detector: the global allocator was re-entered from inside the shim (",
            );
            write_stderr(op.as_bytes());
            write_stderr(b")\n");
            std::process::abort();
        }
        CALLS.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    fn leave() {
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

// SAFETY: every method forwards to the wrapped allocator with the caller's arguments unchanged.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Detector<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::enter("alloc");
        // SAFETY: the caller's `GlobalAlloc` contract is forwarded unchanged.
        let p = unsafe { self.0.alloc(layout) };
        Self::leave();
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::enter("alloc_zeroed");
        // SAFETY: the caller's `GlobalAlloc` contract is forwarded unchanged.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        Self::leave();
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Self::enter("dealloc");
        // SAFETY: the caller's `GlobalAlloc` contract is forwarded unchanged.
        unsafe { self.0.dealloc(ptr, layout) };
        Self::leave();
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::enter("realloc");
        // SAFETY: the caller's `GlobalAlloc` contract is forwarded unchanged.
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        Self::leave();
        p
    }
}

/// `System`, recording the detector depth it runs at.
struct Probe;

impl Probe {
    #[inline]
    fn seen() {
        PROBE_DEPTH.with(|p| p.set(DEPTH.with(Cell::get)));
        PROBE_CALLS.with(|c| c.set(c.get() + 1));
        if REENTER.load(Ordering::Relaxed) {
            // The control's deliberate bug: allocating from inside the
            // allocator.
            drop(std::hint::black_box(Box::new(0u64)));
        }
    }
}

// SAFETY: every method forwards to the wrapped allocator with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Probe {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::seen();
        // SAFETY: the caller's `GlobalAlloc` contract is forwarded unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::seen();
        // SAFETY: the caller's `GlobalAlloc` contract is forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Self::seen();
        // SAFETY: the caller's `GlobalAlloc` contract is forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::seen();
        // SAFETY: the caller's `GlobalAlloc` contract is forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Detector<Bumper<Probe>> = Detector(Bumper::new(Probe));

/// Inner-allocator calls on this thread, and the depth of the last one.
fn probe() -> (u64, u32) {
    (PROBE_CALLS.with(Cell::get), PROBE_DEPTH.with(Cell::get))
}

// ---------------------------------------------------------------------------
// Controls: the detector is armed, and it fires
// ---------------------------------------------------------------------------

#[test]
fn control_the_inner_allocator_runs_at_depth_one() {
    assert_eq!(DEPTH.with(Cell::get), 0, "depth outside the allocator");
    let (calls0, _) = probe();
    let b = std::hint::black_box(Box::new(12345u64));
    let (calls1, depth) = probe();
    assert_eq!(
        calls1,
        calls0 + 1,
        "the Box did not reach the inner allocator"
    );
    assert_eq!(
        depth, 1,
        "the inner allocator ran outside the detector's count"
    );
    assert_eq!(DEPTH.with(Cell::get), 0);
    drop(b);

    // A spill from inside a region reaches the inner allocator through
    // bumper's slow path, still at depth 1.
    let arena = Arena::builder().capacity_limit(64 << 10).build().unwrap();
    PROBE_DEPTH.with(|p| p.set(u32::MAX));
    let (calls0, _) = probe();
    let v = with_bumper(&arena, || vec![7u8; 256 << 10]);
    let (calls1, depth) = probe();
    assert!(!is_arena_pointer(v.as_ptr()));
    assert_eq!(calls1, calls0 + 1);
    assert_eq!(depth, 1);
    assert_eq!(arena.stats().spills, 1);
}

#[test]
fn control_a_reentrant_call_aborts() {
    const NAME: &str = "control_a_reentrant_call_aborts";
    if is_child(NAME) {
        REENTER.store(true, Ordering::SeqCst);
        let b = std::hint::black_box(Box::new(1u64)); // re-enters: aborts
        REENTER.store(false, Ordering::SeqCst);
        println!("NOT-ABORTED {b}");
        return;
    }
    let out = Child::new(NAME).run(Expect::Signal(libc::SIGABRT));
    assert!(
        out.stderr
            .contains("re-entered from inside the shim (alloc)"),
        "{out}"
    );
    assert!(!out.stdout.contains("NOT-ABORTED"), "{out}");
}

// ---------------------------------------------------------------------------
// Slow paths under the detector
// ---------------------------------------------------------------------------

/// Checks that calls went through the detector while `f` ran, and that the
/// depth is back at 0 afterwards.
fn driven<R>(f: impl FnOnce() -> R) -> R {
    let before = CALLS.load(Ordering::Relaxed);
    let r = f();
    assert!(
        CALLS.load(Ordering::Relaxed) > before,
        "nothing was allocated"
    );
    assert_eq!(DEPTH.with(Cell::get), 0);
    r
}

#[test]
fn arenas_created_and_dropped_inside_regions_never_reenter_the_shim() {
    driven(|| {
        let outer = Arena::new();
        let kept = with_bumper(&outer, || {
            let mut kept = Vec::new();
            for i in 0..20u64 {
                let inner = Arena::new();
                let v = with_bumper(&inner, || (0..100).map(|x| x * i).collect::<Vec<u64>>());
                assert!(is_arena_pointer(v.as_ptr()));
                assert_eq!(inner.stats().live_blocks, 1);
                // Copied into the outer arena; the inner one is dropped clean.
                kept.push(v.clone());
                drop(v);
                drop(inner);
            }
            kept
        });
        assert!(kept.iter().enumerate().all(|(i, v)| {
            is_arena_pointer(v.as_ptr()) && v.iter().copied().eq((0..100).map(|x| x * i as u64))
        }));
        drop(kept);
        assert_eq!(outer.stats().live_blocks, 0);
    });
}

#[test]
fn lanes_created_by_many_threads_and_exhausted_never_reenter_the_shim() {
    driven(|| {
        const THREADS: usize = 12;
        const LANES: usize = 4;
        let arena = LockedArena::builder().max_threads(LANES).build().unwrap();
        let inside = Barrier::new(THREADS);
        let kept: Vec<Vec<u64>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..THREADS as u64)
                .map(|t| {
                    let (arena, inside) = (&arena, &inside);
                    s.spawn(move || {
                        with_bumper(arena, || {
                            inside.wait(); // all inside at once: lanes run out
                            let mut m = HashMap::new();
                            for i in 0..500u64 {
                                m.insert(i, vec![t; (i % 40) as usize]);
                            }
                            assert!(m.iter().all(|(i, v)| v.len() == (i % 40) as usize));
                            (0..1000).map(|i| i * t).collect()
                        })
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let s = arena.stats();
        assert_eq!(s.lanes as usize, LANES, "{s}");
        assert_eq!(s.lanes_exhausted as usize, THREADS - LANES, "{s}");
        let in_arena = kept.iter().filter(|v| is_arena_pointer(v.as_ptr())).count();
        assert_eq!(in_arena, LANES, "one result per lane is arena memory");
        for (t, v) in kept.iter().enumerate() {
            assert!(v.iter().copied().eq((0..1000).map(|i| i * t as u64)));
        }
        // Freed here, on another thread than their lanes' owners.
        drop(kept);
        assert_eq!(arena.stats().live_blocks, 0);
    });
}

#[test]
fn chunk_growth_and_very_large_blocks_never_reenter_the_shim() {
    driven(|| {
        let arena = Arena::new();
        with_bumper(&arena, || {
            // A Vec grown by doubling, through many chunks.
            let mut v: Vec<u64> = Vec::new();
            for i in 0..1_000_000u64 {
                v.push(i);
            }
            assert!(is_arena_pointer(v.as_ptr()));
            assert!(v.iter().copied().eq(0..1_000_000));
            // Blocks larger than any regular chunk.
            let big = vec![0x5Au8; 80 << 20];
            assert!(is_arena_pointer(big.as_ptr()));
            assert!(big[0] == 0x5A && big[big.len() - 1] == 0x5A);
            let zeroed = vec![0u64; 3 << 20];
            assert!(is_arena_pointer(zeroed.as_ptr()) && zeroed.iter().all(|&x| x == 0));
            drop((big, zeroed));
            // Many small allocations across chunk boundaries, freed LIFO
            // (the lane retreats to earlier chunks).
            let mut boxes: Vec<Box<[u8; 1000]>> = Vec::with_capacity(2000);
            for i in 0..2000 {
                boxes.push(Box::new([(i % 251) as u8; 1000]));
            }
            while let Some(b) = boxes.pop() {
                assert_eq!(b[999], (boxes.len() % 251) as u8);
            }
            drop(boxes);
            drop(v);
        });
        let s = arena.stats();
        assert_eq!(s.live_blocks, 0, "{s}");
        // The chunks came and went: the 80 MiB block's went back at its free
        // (nothing is retained before a first reset).
        assert!(s.peak_bytes_in_use >= 80 << 20, "{s}");
        assert!(s.trimmed_bytes >= 80 << 20, "{s}");
        assert!(arena.reset().is_clean());
    });
}

#[test]
fn checkpoints_resets_escapes_and_no_escape_never_reenter_the_shim() {
    const NAME: &str = "checkpoints_resets_escapes_and_no_escape_never_reenter_the_shim";
    if !is_child(NAME) {
        // The warning of `EscapePolicy::Warn` is one of the slow paths: it is
        // written inside the region, from a buffer on the stack. The scenario
        // runs in a child so that its message is checked here instead of
        // showing up in a green run: once for the arena, for its first escape.
        let out = Child::new(NAME).run(Expect::Success);
        assert_eq!(
            out.stderr
                .matches("warning: bumper: memory escaped")
                .count(),
            1,
            "{out}"
        );
        assert!(
            out.stderr.contains(
                "at the end of a `no_escape` block: 1 block(s) (16 bytes) allocated since \
                 the checkpoint are still in use"
            ),
            "{out}"
        );
        assert!(
            out.stderr
                .contains("(EscapePolicy::Warn: said once per arena; choose another policy"),
            "{out}"
        );
        return;
    }
    driven(|| {
        let arena = Arena::builder()
            .escape_policy(EscapePolicy::Warn)
            .build()
            .unwrap();
        let kept = with_bumper(&arena, || {
            let cp = arena.checkpoint();
            let mut keep: Vec<String> = Vec::with_capacity(100);
            for round in 0..100 {
                arena.no_escape(|| {
                    let mut m: BTreeMap<String, Vec<u32>> = BTreeMap::new();
                    for i in 0..50u32 {
                        m.insert(format!("k{round}-{i}"), vec![i; 10]);
                    }
                    assert_eq!(m.len(), 50);
                    if round % 10 == 0 {
                        keep.push(format!("escaped {round}")); // an escape
                    }
                });
            }
            // Nested checkpoints, reset innermost first.
            let a = arena.checkpoint();
            let x = vec![1u8; 5000];
            let b = arena.checkpoint();
            drop(vec![2u8; 70_000]);
            assert!(arena.reset_to(b).is_clean());
            drop(x);
            assert!(arena.reset_to(a).is_clean());
            // A reset with a live block is an escape, and the block survives.
            let report = arena.reset_to(cp);
            assert!(report.escaped_blocks >= 10, "{report}");
            keep
        });
        assert_eq!(kept.len(), 10);
        assert!(kept.iter().all(|s| is_arena_pointer(s.as_ptr())));
        assert!(
            kept.iter()
                .enumerate()
                .all(|(i, s)| *s == format!("escaped {}", i * 10))
        );
        let s = arena.stats();
        assert_eq!(s.escapes, 11, "{s}");
        assert_eq!(s.live_blocks, 11, "the strings and their Vec: {s}");
        drop(kept);
        assert!(arena.reset().is_clean());
        assert_eq!(arena.stats().bytes_in_use, 0);

        // The panic policy raises from the reset. (The region is inside the
        // block, so the panic hook runs outside it: a backtrace captured
        // under RUST_BACKTRACE would fill lazy caches in the arena.)
        let strict = Arena::builder()
            .escape_policy(EscapePolicy::Panic)
            .build()
            .unwrap();
        let mut out = Vec::with_capacity(1);
        let err = catch_unwind(AssertUnwindSafe(|| {
            strict.no_escape(|| with_bumper(&strict, || out.push(vec![3u8; 100])));
        }));
        assert!(err.is_err());
        assert!(is_arena_pointer(out[0].as_ptr()));
        assert_eq!(out[0], vec![3u8; 100]);
        drop(out);
        assert_eq!(strict.stats().live_blocks, 0);
    });
}

#[test]
fn stats_and_measure_inside_and_outside_regions_never_reenter_the_shim() {
    driven(|| {
        let arena = Arena::new();
        let (_, outside) = measure(|| drop(std::hint::black_box(vec![1u8; 1000])));
        assert_eq!(outside.inner_calls, 1);
        let (n, inside) = measure(|| {
            with_bumper(&arena, || {
                let (n, nested) = measure(|| {
                    let v: Vec<u64> = (0..1000).collect();
                    let s = arena.stats();
                    assert_eq!(s.live_blocks, 1, "{s}");
                    v.len()
                });
                assert_eq!((nested.arena_calls, nested.inner_calls), (1, 0));
                let report = format!("{}", arena.stats());
                assert!(report.contains("arena #"));
                n
            })
        });
        assert_eq!(n, 1000);
        assert_eq!(inside.inner_calls, 0, "{inside}");
        assert!(inside.arena_calls >= 2, "{inside}");
    });
}

#[test]
fn capacity_spills_and_over_aligned_requests_never_reenter_the_shim() {
    driven(|| {
        let arena = Arena::builder()
            .capacity_limit(128 << 10)
            .chunk_size(64 << 10)
            .build()
            .unwrap();
        with_bumper(&arena, || {
            let small = vec![1u8; 1000];
            let big = vec![2u8; 1 << 20]; // beyond the capacity: spills
            assert!(is_arena_pointer(small.as_ptr()));
            assert!(!is_arena_pointer(big.as_ptr()));
            let layout = Layout::from_size_align(256, 128 << 10).unwrap();
            // SAFETY: a valid non-zero layout, freed with the same layout.
            unsafe {
                let p = std::alloc::alloc(layout);
                assert!(!p.is_null() && p.addr().is_multiple_of(128 << 10));
                assert!(!is_arena_pointer(p));
                p.write_bytes(9, 256);
                std::alloc::dealloc(p, layout);
            }
            // Spilled blocks grown and shrunk stay on the heap.
            let mut big = big;
            big.extend_from_slice(&[3u8; 1000]);
            big.truncate(10);
            big.shrink_to_fit();
            assert!(!is_arena_pointer(big.as_ptr()));
            assert_eq!(big, vec![2u8; 10]);
        });
        let s = arena.stats();
        assert!(s.spills >= 2, "{s}");
        assert_eq!(s.live_blocks, 0, "{s}");
    });
}

#[test]
fn reallocation_in_every_direction_never_reenters_the_shim() {
    driven(|| {
        let a = Arena::new();
        let b = Arena::new();
        let heap = vec![1u32; 100];
        let (heap, at_tip, moved) = with_bumper(&a, || {
            // A heap block grown in a region stays on the heap.
            let mut heap = heap;
            heap.extend(0..10_000);
            assert!(!is_arena_pointer(heap.as_ptr()));
            // Grown at the tip (in place), then not at the tip (moves).
            let mut at_tip: Vec<u8> = Vec::with_capacity(16);
            at_tip.extend(0..200u8);
            let mut moved: Vec<u8> = Vec::with_capacity(16);
            moved.extend(0..16u8);
            at_tip.extend(0..50u8);
            moved.extend(16..255u8);
            at_tip.shrink_to_fit();
            (heap, at_tip, moved)
        });
        assert!(is_arena_pointer(at_tip.as_ptr()) && is_arena_pointer(moved.as_ptr()));
        // An arena block grown in another arena's region moves there, and
        // one grown outside any region moves to the heap.
        let (at_tip, moved) = with_bumper(&b, || {
            let mut at_tip = at_tip;
            at_tip.reserve(100_000);
            (at_tip, moved)
        });
        let mut moved = moved;
        moved.reserve(100_000);
        assert!(!is_arena_pointer(moved.as_ptr()));
        assert!(is_arena_pointer(at_tip.as_ptr()));
        assert_eq!(b.stats().live_blocks, 1);
        assert_eq!(a.stats().live_blocks, 0);
        assert!(moved.iter().copied().eq(0..255u8));
        assert!(at_tip.iter().copied().eq((0..200u8).chain(0..50u8)));
        assert_eq!(heap.len(), 10_100);
    });
}

#[test]
fn remote_frees_while_the_owner_is_inside_its_region_never_reenter_the_shim() {
    driven(|| {
        let arena = LockedArena::new();
        // Heap slot (no allocation to fill it): a channel would allocate its
        // own blocks in the region.
        let slot: Mutex<Option<Vec<Vec<Box<u64>>>>> = Mutex::new(None);
        let (handed, freed) = (Barrier::new(2), Barrier::new(2));
        std::thread::scope(|s| {
            s.spawn(|| {
                with_bumper(&arena, || {
                    let batches: Vec<Vec<Box<u64>>> = (0..10u64)
                        .map(|round| (0..200).map(|i| Box::new(round * 1000 + i)).collect())
                        .collect();
                    assert_eq!(arena.stats().live_blocks, 1 + 10 + 2000);
                    *slot.lock().unwrap() = Some(batches);
                    handed.wait();
                    freed.wait(); // the other thread freed everything
                    // The owner, still inside its region, drains the frees.
                    let s = arena.stats();
                    assert_eq!(s.live_blocks, 0, "{s}");
                    let again = Box::new(5u64);
                    assert!(is_arena_pointer(&*again));
                })
            });
            s.spawn(|| {
                handed.wait();
                let batches = slot.lock().unwrap().take().unwrap();
                for (round, batch) in batches.iter().enumerate() {
                    assert!(batch.iter().all(|b| is_arena_pointer(&**b)));
                    assert!(
                        batch
                            .iter()
                            .enumerate()
                            .all(|(i, b)| **b == round as u64 * 1000 + i as u64)
                    );
                }
                drop(batches);
                freed.wait();
            });
        });
        assert_eq!(arena.stats().live_blocks, 0);
    });
}

#[test]
fn guard_mode_protecting_and_reusing_reclaimed_memory_never_reenters_the_shim() {
    driven(|| {
        let arena = Arena::builder().guard_mode(true).build().unwrap();
        with_bumper(&arena, || {
            for round in 0..20u8 {
                arena.no_escape(|| {
                    let v = vec![round; 300_000]; // whole pages: protected after the reset
                    let w: Vec<u64> = (0..10_000).collect();
                    assert!(v.iter().all(|&x| x == round));
                    assert!(w.iter().copied().eq(0..10_000));
                });
            }
        });
        let s = arena.stats();
        assert_eq!(s.live_blocks, 0, "{s}");
        assert_eq!(s.escapes, 0, "{s}");
    });
}

thread_local! {
    static TLS_STASH: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Drops an arena with live blocks, frees them from another thread and from
/// a thread-local destructor, and checks (in a process of its own, where
/// the address-space figures are ours) that the orphan was destroyed, which
/// happens inside the last `dealloc`.
#[test]
fn an_orphan_destroyed_inside_dealloc_on_other_threads_never_reenters_the_shim() {
    const NAME: &str =
        "an_orphan_destroyed_inside_dealloc_on_other_threads_never_reenters_the_shim";
    if !is_child(NAME) {
        let out = Child::new(NAME).run(Expect::Success);
        assert!(out.stdout.contains("ORPHAN-OK"), "{out}");
        return;
    }
    driven(|| {
        let base = space_stats().in_use;
        let arena = Arc::new(LockedArena::new());
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (made_tx, made_rx) = mpsc::channel::<Vec<Box<[u8; 100]>>>();
        let worker = {
            let arena = Arc::clone(&arena);
            std::thread::spawn(move || {
                with_bumper(&*arena, || {
                    TLS_STASH.with(|s| s.borrow_mut().extend((0..50).map(|i| vec![i; 3000])));
                    made_tx
                        .send((0..50).map(|i| Box::new([i; 100])).collect())
                        .unwrap();
                    let big = vec![7u8; 4 << 20]; // a chunk of its own
                    TLS_STASH.with(|s| s.borrow_mut().push(big));
                });
                drop(arena);
                // Wait until the arena is dropped, then exit: the
                // thread-local destructor frees the stash.
                go_rx.recv().unwrap();
            })
        };
        let boxes = made_rx.recv().unwrap();
        // The channel's own buffer was allocated in the region too.
        drop(made_rx);
        // Wait for the worker to leave its region: it then only holds its
        // handle until it drops it.
        let arena = {
            let mut arena = arena;
            let mut rounds = 0;
            loop {
                match Arc::try_unwrap(arena) {
                    Ok(a) => break a,
                    Err(a) => arena = a,
                }
                rounds += 1;
                assert!(rounds < 10_000_000, "the worker never dropped its handle");
                std::thread::yield_now();
            }
        };
        let held = space_stats().in_use;
        drop(arena); // orphan
        assert_eq!(space_stats().in_use, held);
        // Half of the boxes freed on a helper thread, half here; then the
        // thread-local stash on the exiting worker.
        let mut boxes = boxes;
        let half = boxes.split_off(25);
        std::thread::spawn(move || {
            assert!(
                half.iter()
                    .enumerate()
                    .all(|(i, b)| b.iter().all(|&x| x == 25 + i as u8))
            );
            drop(half);
        })
        .join()
        .unwrap();
        assert!(
            boxes
                .iter()
                .enumerate()
                .all(|(i, b)| b.iter().all(|&x| x == i as u8))
        );
        drop(boxes);
        assert_eq!(
            space_stats().in_use,
            held,
            "chunks released while blocks live"
        );
        go_tx.send(()).unwrap();
        worker.join().unwrap();
        assert_eq!(
            space_stats().in_use,
            base,
            "the orphan was not destroyed by its last free"
        );
    });
    println!("ORPHAN-OK");
}
