//! SAFETY.md, "Reclamation": each loop that once leaked (issue 15, the
//! reproducers of `shared/repros/reclaim/`) run for a million iterations or
//! more, with the resident memory of the process checked: after a warm-up it
//! may not grow by more than a few MiB. Bounded by iteration count, not
//! time.
//!
//! Release builds only (`cargo test --release --test soak`, which `.ci/run`
//! runs); in debug builds the tests are ignored. The tests read the
//! process's resident size, so they run one at a time, set-up included (a
//! spike made by one test while another measures would count as the other's
//! growth).

use std::hint::black_box;
use std::sync::Mutex;

use bumper::allocator_api2::vec::Vec as AVec;
use bumper::{Arena, Bumper, Current, EscapePolicy, LockedArena, with_bumper};

#[global_allocator]
static GLOBAL: Bumper = Bumper::system();

static SERIAL: Mutex<()> = Mutex::new(());

/// Allowed growth of the resident size after the warm-up.
const GROWTH: u64 = 4 << 20;

fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = s
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    kb << 10
}

/// Holds the other tests off for as long as the guard lives: every test
/// takes it first.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `step` `n` times after `n / 10` warm-up steps, and checks that the
/// resident size grew by at most [`GROWTH`] meanwhile. The caller holds
/// [`serial`]'s guard.
fn soak(what: &str, n: u64, mut step: impl FnMut(u64)) {
    for i in 0..n / 10 {
        step(i);
    }
    let before = rss();
    for i in 0..n {
        step(i);
    }
    let after = rss();
    assert!(
        after <= before + GROWTH,
        "{what}: resident size grew from {} to {} KiB over {n} iterations",
        before >> 10,
        after >> 10
    );
}

fn keep() -> Arena {
    Arena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap()
}

#[test]
#[cfg_attr(debug_assertions, ignore = "release only")]
fn scoped_results_dropped_after_their_reset() {
    let _g = serial();
    let arena = keep();
    soak("scoped results", 1_000_000, |i| {
        let line = arena.scoped(|| {
            let words: Vec<String> = (0..10).map(|k| format!("{k}-{i}")).collect();
            words[..3].join(" ")
        });
        black_box(line.len());
    });
}

#[test]
#[cfg_attr(debug_assertions, ignore = "release only")]
fn responses_freed_just_after_their_reset() {
    let _g = serial();
    let arena = keep();
    soak("responses in flight", 1_000_000, |i| {
        let keep = with_bumper(&arena, || {
            let keep = vec![1u8; 16];
            let scratch: Vec<u64> = (0..20).map(|k| k * i).collect();
            black_box(&scratch);
            keep
        });
        arena.reset();
        drop(keep);
    });
}

#[test]
#[cfg_attr(debug_assertions, ignore = "release only")]
fn a_long_region_freeing_oldest_first() {
    let _g = serial();
    let arena = Arena::new();
    with_bumper(&arena, || {
        soak("a long FIFO region", 2_000_000, |_| {
            let a = black_box(vec![1u8; 200]);
            let b = black_box(vec![2u8; 8]);
            drop(a);
            drop(b);
        });
    });
}

#[test]
#[cfg_attr(debug_assertions, ignore = "release only")]
fn a_long_region_whose_blocks_another_thread_frees() {
    let _g = serial();
    let arena = Arena::new();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(64);
    let consumer = std::thread::spawn(move || rx.into_iter().map(|v| v.len()).sum::<usize>());
    with_bumper(&arena, || {
        soak("remote frees in a long region", 1_000_000, |_| {
            tx.send(black_box(vec![7u8; 1000])).unwrap();
        });
    });
    drop(tx);
    assert!(consumer.join().unwrap() > 0);
}

#[test]
#[cfg_attr(debug_assertions, ignore = "release only")]
fn results_dropped_after_their_region_ended() {
    let _g = serial();
    let arena = Arena::new();
    let locked = LockedArena::new();
    soak("results after the region", 1_000_000, |i| {
        let a = with_bumper(&arena, || vec![i as u8; 300]);
        let b = with_bumper(&locked, || vec![i as u8; 200]);
        black_box((a, b));
    });
}

#[test]
#[cfg_attr(debug_assertions, ignore = "release only")]
fn results_kept_a_few_iterations_across_checkpoints() {
    let _g = serial();
    let arena = keep();
    let mut ring: Vec<Vec<u8>> = (0..5).map(|_| Vec::new()).collect();
    soak("results kept a few iterations", 1_000_000, |i| {
        let cp = arena.checkpoint();
        let v = with_bumper(&arena, || {
            let scratch: Vec<Vec<u8>> = (0..8).map(|k| vec![k; 64]).collect();
            vec![scratch.len() as u8; 40]
        });
        arena.reset_to(cp);
        ring[(i % 5) as usize] = v;
    });
}

#[test]
#[cfg_attr(debug_assertions, ignore = "release only")]
fn current_shrinking_heap_blocks_to_zero() {
    let _g = serial();
    soak("Current::shrink to zero", 2_000_000, |_| {
        let mut v: AVec<u8, Current> = AVec::with_capacity_in(100, Current);
        v.push(1);
        v.clear();
        v.shrink_to_fit();
    });
}

#[test]
#[cfg_attr(debug_assertions, ignore = "release only")]
fn a_steady_loop_after_a_spike() {
    let _g = serial();
    let arena = Arena::new();
    arena.scoped(|| {
        let v = vec![1u8; 64 << 20];
        black_box(&v);
    });
    soak("a steady loop after a spike", 1_000_000, |_| {
        arena.scoped(|| {
            let v: Vec<Vec<u8>> = (0..8).map(|k| vec![k; 100]).collect();
            black_box(&v);
        });
    });
    assert!(arena.stats().chunk_bytes <= 1 << 20, "{}", arena.stats());
}
