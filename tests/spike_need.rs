//! SAFETY.md R4, the need behind the retained capacity: a loop's need is the
//! chunk memory it used, each chunk counted once however often the loop
//! takes it, and a chunk much larger than what it served counts at the size
//! it served. So a spike is forgotten 8 resets after it, also in loops that
//! take and free a chunk many times per reset (a buffer per document of a
//! batch), and in loops whose growing buffers could pick up the spike's
//! larger chunks.
//!
//! The tests of this file read process-wide figures, so they run one at a
//! time.

use std::hint::black_box;
use std::sync::Mutex;

use bumper::{Arena, ArenaStats, Bumper, LockedArena, with_bumper};

#[global_allocator]
static GLOBAL: Bumper = Bumper::system();

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `steady` (one reset's worth of work, run in a region of the arena
/// and reset after) to its steady level, then one `spike`, then `steady`
/// again: 8 resets after the spike, the arena holds what it held before it
/// plus at most `slack` bytes. Returns that steady level and the most held
/// during the spike's window.
macro_rules! spike_then_steady {
    ($arena:expr, $steady:expr, $spike:expr, $slack:expr) => {{
        let arena = &$arena;
        let run = |f: &dyn Fn()| {
            with_bumper(arena, f);
            assert!(arena.reset().is_clean());
        };
        for _ in 0..12 {
            run(&$steady);
        }
        let before: ArenaStats = arena.stats();
        run(&$spike);
        let mut peak = arena.stats().chunk_bytes;
        // The spike's window: 8 resets (its own is the first).
        for _ in 0..7 {
            run(&$steady);
            peak = peak.max(arena.stats().chunk_bytes);
        }
        for i in 0..20 {
            run(&$steady);
            let now = arena.stats();
            assert!(
                now.chunk_bytes <= before.chunk_bytes + $slack,
                "{i} resets after the spike's window: {now}; before the spike: {before}"
            );
        }
        assert_eq!(arena.stats().live_blocks, 0);
        (before.chunk_bytes, peak)
    }};
}

/// One batch: `n` documents, each a 1 MiB buffer (a chunk of its own) made
/// and dropped, so the batch takes the same chunk `n` times.
fn batch_of_buffers(n: usize) {
    for k in 0..n {
        let v = black_box(vec![k as u8; 1 << 20]);
        assert_eq!(v[1 << 19], k as u8);
    }
}

/// A spike: `n` large buffers of `size` bytes live at once.
fn large_spike(n: usize, size: usize) {
    let v: Vec<Vec<u8>> = (0..n).map(|k| vec![k as u8; size]).collect();
    black_box(&v);
}

#[test]
fn a_batch_that_takes_one_chunk_many_times_forgets_a_spike() {
    let _g = serial();
    let arena = Arena::new();
    let (steady, peak) = spike_then_steady!(
        arena,
        || batch_of_buffers(60),
        || large_spike(48, 1 << 20),
        0
    );
    assert!(steady <= 4 << 20, "{steady}");
    // The spike's large chunks went back as its blocks were freed.
    assert!(peak <= steady + (4 << 20), "{peak}");
}

#[test]
fn a_locked_arena_batch_that_takes_one_chunk_many_times_forgets_a_spike() {
    let _g = serial();
    let arena = LockedArena::new();
    let (steady, _) = spike_then_steady!(
        arena,
        || batch_of_buffers(40),
        || large_spike(32, 1 << 20),
        0
    );
    assert!(steady <= 4 << 20, "{steady}");
}

/// One batch: 30 documents, each a `String` grown by pushes to about 200 KB
/// (its buffer moves into larger chunks as it grows) and dropped.
fn batch_of_documents() {
    for _ in 0..30 {
        let mut s = String::new();
        while s.len() < 200_000 {
            s.push_str("abcdefgh");
        }
        assert_eq!(black_box(&s).len(), 200_000);
    }
}

#[test]
fn growing_buffers_do_not_keep_a_spikes_larger_chunks() {
    let _g = serial();
    // The spike's chunks (4 MiB) are within what a growing buffer may take
    // for room to grow; taken, they must not count as needed at their size.
    let arena = Arena::new();
    let (steady, peak) =
        spike_then_steady!(arena, batch_of_documents, || large_spike(24, 3 << 20), 0);
    assert!(steady <= 2 << 20, "{steady}");
    assert!(peak <= steady + (8 << 20), "{peak}");
    let arena = LockedArena::new();
    spike_then_steady!(
        arena,
        || {
            for _ in 0..10 {
                let m: std::collections::HashMap<u64, u64> = (0..6_000).map(|k| (k, k)).collect();
                assert_eq!(black_box(&m).len(), 6_000);
            }
        },
        || large_spike(24, 3 << 20),
        0
    );
}

#[test]
fn a_spike_of_small_blocks_is_forgotten_by_a_loop_that_rebuilds_many_times() {
    let _g = serial();
    let arena = Arena::new();
    let (_, peak) = spike_then_steady!(
        arena,
        || {
            for _ in 0..20 {
                let v: Vec<String> = (0..5_000).map(|j| format!("{j:>50}")).collect();
                black_box(&v);
            }
        },
        || {
            let v: Vec<String> = (0..300_000).map(|j| format!("{j:>50}")).collect();
            black_box(&v);
        },
        // One chunk of the steady loop's sizes: which of its chunks the
        // loop settles on after the spike may differ.
        512 << 10
    );
    // The spike's chunks were kept for its window (the reset remembers it).
    assert!(peak >= 16 << 20, "{peak}");
}

#[test]
fn loops_that_use_several_large_sizes_one_after_another_keep_them_all() {
    let _g = serial();
    // Each chunk is taken once per loop, one at a time: the need counts
    // each, so the loop keeps all four and makes no system call.
    let arena = Arena::new();
    let sizes = [1 << 20, 3 << 20, 2 << 20, 700 << 10];
    let iteration = || {
        with_bumper(&arena, || {
            for &n in &sizes {
                let v = black_box(vec![1u8; n]);
                assert_eq!(v[n / 2], 1);
            }
        });
        assert!(arena.reset().is_clean());
    };
    for _ in 0..3 {
        iteration();
    }
    let calls = bumper::space_stats().os_calls;
    let held = arena.stats().chunk_bytes;
    for _ in 0..30 {
        iteration();
    }
    assert_eq!(bumper::space_stats().os_calls, calls);
    assert_eq!(arena.stats().chunk_bytes, held);
}
