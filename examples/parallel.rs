//! Parallel batches over one `LockedArena`, with the original's
//! batch-then-reset pattern: spawn a batch of tasks inside the region, wait
//! for all of them, reset, repeat.
//!
//! Each item is a small text job written with plain std collections (it
//! formats 400 lines of words, counts the words in a `HashMap`, sorts the
//! counts and formats a summary; about 7,000 allocations) whose result is
//! a digest. A round spawns one child per thread with
//! `bumper::thread::scope` inside `with_bumper(&arena, ..)`; each child
//! inherits the region, so it allocates from the arena on a lane of its own,
//! and works through its batch of items, writing the digests into its part
//! of an output allocated before any region. After the children have been
//! joined, `arena.reset()` hands the round's memory back.
//!
//! The same rounds run once outside any region (the heap), where
//! `bumper::thread::scope` behaves exactly as `std::thread::scope`. Both
//! runs' results are checked against a plain serial loop. The table shows
//! wall time (the median of 5 interleaved runs after a warm-up); what
//! `bumper::measure` saw, summed over the spawning thread (the spawns' own
//! bookkeeping, which `bumper::thread` keeps on the heap even inside a
//! region: the few inner calls of the arena row) and every child (its own
//! work), since `measure` counts the calling thread only; the memory system calls bumper made (`space_stats()`,
//! process-wide); and how many resets were clean. Two serial loops, on the
//! heap and in an `Arena` with `no_escape` per item, are shown for
//! comparison.
//!
//! bumper has no rayon integration. With rayon, share a `Region` (it is
//! `Sync`) and enter it per item, then reset once the parallel call has
//! returned:
//!
//! ```ignore
//! let region = arena.region();
//! items.par_iter().map(|&i| region.enter(|| work(i))).collect_into_vec(&mut out);
//! arena.reset();
//! ```
//!
//! rayon's pool threads outlive the call, and their own bookkeeping is
//! allocated outside `enter`, so none of it lands in the arena.
//!
//! Run it with `cargo run --release --example parallel`.

use std::collections::HashMap;
use std::time::Duration;

use bumper::{
    Arena, Bumper, Bytes, LockedArena, Measurement, ResetReport, measure, space_stats, with_bumper,
};

#[global_allocator]
static GLOBAL: Bumper = Bumper::system();

/// Items in the example's run.
pub const ITEMS: usize = 512;
/// Items each child works through per round.
pub const PER_THREAD: usize = 8;

/// xorshift64 on a per-item seed.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % n
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// One item: code that knows nothing about bumper and allocates freely.
pub fn work(item: usize) -> u64 {
    let mut rng = XorShift::new(item as u64 + 1);
    let lines: Vec<String> = (0..400)
        .map(|_| {
            let words: Vec<String> = (0..8).map(|_| format!("w{}", rng.below(300))).collect();
            words.join(" ")
        })
        .collect();
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for word in lines.iter().flat_map(|l| l.split(' ')) {
        *counts.entry(word).or_default() += 1;
    }
    let mut top: Vec<(&str, u64)> = counts.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    top.truncate(20);
    let summary: Vec<String> = top.iter().map(|(w, c)| format!("{w}={c}")).collect();
    fnv1a(summary.join(",").as_bytes())
}

/// The reference: every item in turn on this thread.
pub fn serial(items: usize) -> Vec<u64> {
    (0..items).map(work).collect()
}

/// What one round's reset did, and the arena right after it.
#[derive(Debug, Clone, Copy)]
pub struct Round {
    /// The reset's report.
    pub report: ResetReport,
    /// `stats().live_blocks` after the reset.
    pub live_blocks: u64,
    /// `stats().bytes_in_use` after the reset.
    pub bytes_in_use: u64,
}

/// What a parallel run produced and what it cost.
pub struct ParRun {
    /// One digest per item.
    pub results: Vec<u64>,
    /// Time (the spawning thread's) and allocator calls (all threads').
    pub m: Measurement,
    /// One entry per round with an arena.
    pub rounds: Vec<Round>,
    /// Memory system calls bumper made during the run (process-wide).
    pub os_calls: u64,
}

/// Rounds of `threads` children, each working through `per_thread` items;
/// inside a region of `arena` with a reset after each round's joins if an
/// arena is given, on the heap otherwise.
pub fn run(items: usize, threads: usize, per_thread: usize, arena: Option<&LockedArena>) -> ParRun {
    // Everything the rounds write to is allocated before them.
    let mut results = vec![0u64; items];
    let mut rounds = Vec::with_capacity(items.div_ceil(threads * per_thread));
    let mut children = Measurement::default();
    let os = space_stats().os_calls;
    let ((), mut m) = measure(|| {
        let mut batches = results.chunks_mut(per_thread).enumerate().peekable();
        while batches.peek().is_some() {
            let mut round = || {
                bumper::thread::scope(|s| {
                    let handles: Vec<_> = batches
                        .by_ref()
                        .take(threads)
                        .map(|(b, out)| {
                            s.spawn(move || {
                                let ((), m) = measure(|| {
                                    for (k, r) in out.iter_mut().enumerate() {
                                        *r = work(b * per_thread + k);
                                    }
                                });
                                m
                            })
                        })
                        .collect();
                    // Join every child: a join also waits for its thread-local
                    // destructors, which free what the spawn allocated.
                    for h in handles {
                        add_counts(&mut children, &h.join().expect("a batch panicked"));
                    }
                })
            };
            match arena {
                None => round(),
                Some(arena) => {
                    with_bumper(arena, round);
                    let report = arena.reset();
                    let s = arena.stats();
                    rounds.push(Round {
                        report,
                        live_blocks: s.live_blocks,
                        bytes_in_use: s.bytes_in_use,
                    });
                }
            }
        }
    });
    add_counts(&mut m, &children);
    ParRun {
        results,
        m,
        rounds,
        os_calls: space_stats().os_calls - os,
    }
}

/// Adds `b`'s calls and bytes to `a`'s.
pub fn add_counts(a: &mut Measurement, b: &Measurement) {
    a.inner_calls += b.inner_calls;
    a.inner_bytes += b.inner_bytes;
    a.arena_calls += b.arena_calls;
    a.arena_bytes += b.arena_bytes;
}

/// Interleaved timed rounds of the runs in `main`.
const REPEATS: usize = 5;

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8));
    let expected = serial(ITEMS);
    let arena = LockedArena::new();

    // The serial loop on the heap and in an `Arena` (a reset per item), for
    // comparison.
    let single = Arena::new();
    let serial_in_arena = || {
        let mut results = Vec::with_capacity(ITEMS);
        let ((), m) = measure(|| {
            with_bumper(&single, || {
                for i in 0..ITEMS {
                    let r = single.no_escape(|| work(i));
                    results.push(r);
                }
            })
        });
        assert_eq!(results, expected);
        m
    };
    // A warm-up of each, then REPEATS interleaved rounds of the four. The
    // counts are the same in every round; the table shows the last round's
    // counts and the median time.
    let mut serial_heap_m = measure(|| serial(ITEMS)).1;
    let mut serial_m = serial_in_arena();
    let mut heap = run(ITEMS, threads, PER_THREAD, None);
    let mut bumped = run(ITEMS, threads, PER_THREAD, Some(&arena));
    let mut times: [Vec<Duration>; 4] = Default::default();
    for _ in 0..REPEATS {
        let (results, m) = measure(|| serial(ITEMS));
        assert_eq!(results, expected);
        serial_heap_m = m;
        times[0].push(m.elapsed);
        heap = run(ITEMS, threads, PER_THREAD, None);
        times[1].push(heap.m.elapsed);
        bumped = run(ITEMS, threads, PER_THREAD, Some(&arena));
        times[2].push(bumped.m.elapsed);
        serial_m = serial_in_arena();
        times[3].push(serial_m.elapsed);
        assert_eq!(heap.results, expected, "heap results differ");
        assert_eq!(bumped.results, expected, "arena results differ");
    }
    serial_heap_m.elapsed = median(&mut times[0]);
    heap.m.elapsed = median(&mut times[1]);
    bumped.m.elapsed = median(&mut times[2]);
    serial_m.elapsed = median(&mut times[3]);
    let clean = bumped
        .rounds
        .iter()
        .filter(|r| r.report.is_clean() && r.live_blocks == 0 && r.bytes_in_use == 0)
        .count();

    println!(
        "{ITEMS} items; rounds of {threads} threads x {PER_THREAD} items; results equal the serial loop's: yes; \
         time: median of {REPEATS} interleaved runs after a warm-up\n"
    );
    println!(
        "| run | time | inner calls | inner bytes | arena calls | arena bytes | clean resets | memory system calls |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let row = |label: &str, m: &Measurement, resets: String, os: String| {
        println!(
            "| {label} | {} | {} | {} | {} | {} | {resets} | {os} |",
            ms(m.elapsed),
            m.inner_calls,
            Bytes(m.inner_bytes),
            m.arena_calls,
            Bytes(m.arena_bytes),
        );
    };
    let dash = || "–".to_string();
    row("heap, serial", &serial_heap_m, dash(), dash());
    row(
        "heap, `bumper::thread::scope` outside a region",
        &heap.m,
        dash(),
        heap.os_calls.to_string(),
    );
    row(
        "`LockedArena`, `bumper::thread::scope` in its region, reset per round",
        &bumped.m,
        format!("{clean}/{}", bumped.rounds.len()),
        bumped.os_calls.to_string(),
    );
    row(
        "`Arena`, serial, `no_escape` per item (for comparison)",
        &serial_m,
        dash(),
        dash(),
    );
    println!("\n`LockedArena` afterwards:\n{}", arena.stats());
}
