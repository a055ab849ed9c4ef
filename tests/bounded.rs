//! SAFETY.md, "Reclamation", invariant R2 as a property: random programs of
//! the shapes real code has, each keeping a live set bounded by
//! construction, must keep the memory their arena holds bounded by that
//! live set.
//!
//! A program is a loop over every combination of: arena kind; a region per
//! iteration or one long region; reset style (none, `no_escape`, `scoped`,
//! `checkpoint`/`reset_to`, `reset()` every k iterations); checkpoints
//! nested around the loop; block sizes; free order of the scratch (LIFO,
//! FIFO, random, largest first, holes); results kept 1 to 8 iterations, freed
//! on this thread or another; spikes. After every iteration the chunks the
//! arena holds are compared with the blocks the program knows are live:
//!
//! - **structure** (exact): every chunk of a lane's chain other than its home
//!   and current chunk, and every chunk of a large block, holds a live block
//!   (a program's result, or one of the few blocks std makes lazily, which
//!   the program counts from `live_blocks`); right after a reset, the spare
//!   chunks fit in the retained capacity the lanes report;
//! - **size**: the retained capacity is at most 1.1 times the chunk memory
//!   the last 8 loops (the work between two resets: one iteration, or `k`
//!   under `ResetEvery(k)`) took into use, and that is at most 4 times what
//!   a loop allocates (a chunk is at most twice its request, rounded up to
//!   a power of two, and a chunk released to the space and taken anew counts
//!   again), plus the chunks pinned by live blocks, plus 1 MiB (the home
//!   chunk and the first chunks, which start at the chunk size).
//!
//! A failure shrinks to a minimal program, printed on one line.
//! `BUMPER_BOUNDED_CASES` and `BUMPER_BOUNDED_ITERS` make it longer.

mod common;

use std::collections::VecDeque;
use std::sync::mpsc;

use bumper::__testing::{ChunkKind, for_each_chunk};
use bumper::{Arena, BumpArena, EscapePolicy, LockedArena, with_bumper};
use common::{Rng, env_or};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

counting_shim!();

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    PerIteration,
    LongRegion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResetStyle {
    None,
    NoEscape,
    Scoped,
    Checkpoint,
    ResetEvery(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Lifo,
    Fifo,
    Random,
    LargestFirst,
    Holes,
}

#[derive(Debug, Clone, Copy)]
struct Program {
    locked: bool,
    scope: ResetStyleScope,
    /// Checkpoints taken before the loop and kept open through it.
    outer_checkpoints: u8,
    scratch_blocks: u8,
    /// Scratch sizes: 8 << `size_log2` bytes at most.
    size_log2: u8,
    order: Order,
    /// Results made per iteration, and for how many iterations each lives.
    results: u8,
    keep_for: u8,
    /// Every how many results one is freed on another thread (0: never).
    remote_every: u8,
    /// Every how many iterations a spike of 4 MiB comes (0: never).
    spike_every: u8,
    seed: u64,
}

#[derive(Debug, Clone, Copy)]
struct ResetStyleScope {
    scope: Scope,
    reset: ResetStyle,
}

fn program() -> impl Strategy<Value = Program> {
    let scope = prop_oneof![Just(Scope::PerIteration), Just(Scope::LongRegion)];
    let reset = prop_oneof![
        Just(ResetStyle::None),
        Just(ResetStyle::NoEscape),
        Just(ResetStyle::Scoped),
        Just(ResetStyle::Checkpoint),
        (2u8..=6).prop_map(ResetStyle::ResetEvery),
    ];
    let order = prop_oneof![
        Just(Order::Lifo),
        Just(Order::Fifo),
        Just(Order::Random),
        Just(Order::LargestFirst),
        Just(Order::Holes),
    ];
    (
        any::<bool>(),
        (scope, reset),
        0u8..=70,
        1u8..=60,
        0u8..=11,
        order,
        (0u8..=3, 1u8..=8),
        (0u8..=3, 0u8..=20),
        any::<u64>(),
    )
        .prop_map(
            |(
                locked,
                (scope, reset),
                outer,
                n,
                size_log2,
                order,
                (results, keep_for),
                (remote_every, spike_every),
                seed,
            )| {
                Program {
                    locked,
                    scope: ResetStyleScope { scope, reset },
                    // Outer checkpoints only where a reset style takes
                    // checkpoints of its own inside them.
                    outer_checkpoints: if matches!(reset, ResetStyle::ResetEvery(_)) {
                        0
                    } else {
                        outer
                    },
                    scratch_blocks: n,
                    size_log2,
                    order,
                    results,
                    keep_for,
                    remote_every,
                    spike_every,
                    seed,
                }
            },
        )
}

/// What the loop keeps alive, and the helper thread that frees some of it.
struct Live {
    kept: VecDeque<(Vec<u8>, u64)>,
    to_helper: mpsc::SyncSender<Vec<u8>>,
    /// The helper says when it has freed a block.
    freed: mpsc::Receiver<()>,
    /// Blocks sent to the helper that it has not said it freed.
    pending: u64,
    released: u64,
}

impl Live {
    /// Waits until the helper has freed every block sent to it.
    fn settle(&mut self) {
        while self.pending > 0 {
            self.freed.recv().unwrap();
            self.pending -= 1;
        }
    }
}

/// One iteration's work: scratch freed in the program's order, results
/// returned.
fn work(p: &Program, rng: &mut Rng, i: u64, spike: bool, out: &mut Vec<Vec<u8>>) {
    let max = 8usize << p.size_log2;
    let mut scratch: Vec<Vec<u8>> = Vec::with_capacity(p.scratch_blocks as usize);
    for k in 0..p.scratch_blocks {
        scratch.push(vec![k; 1 + rng.below(max)]);
    }
    if spike {
        scratch.push(vec![7u8; 4 << 20]);
    }
    for r in 0..p.results {
        out.push(vec![
            (i as u8).wrapping_add(r);
            8 + rng.below(max.min(4096))
        ]);
    }
    match p.order {
        Order::Lifo => while scratch.pop().is_some() {},
        Order::Fifo => drop(scratch),
        Order::Random => {
            while !scratch.is_empty() {
                let k = rng.below(scratch.len());
                drop(scratch.swap_remove(k));
            }
        }
        Order::LargestFirst => {
            scratch.sort_unstable_by_key(|v| std::cmp::Reverse(v.len()));
            drop(scratch);
        }
        Order::Holes => {
            let mut k = 0;
            scratch.retain(|_| {
                k += 1;
                k % 2 == 0
            });
            drop(scratch);
        }
    }
}

/// The two arena kinds' methods (inherent, not in a trait of bumper's).
trait Kind: BumpArena {
    fn checkpoint(&self) -> bumper::Checkpoint<'_>;
    fn reset_to(&self, cp: bumper::Checkpoint<'_>);
    fn reset(&self);
    fn no_escape(&self, f: &mut dyn FnMut());
    fn stats(&self) -> bumper::ArenaStats;
}

macro_rules! kind {
    ($t:ty) => {
        impl Kind for $t {
            fn checkpoint(&self) -> bumper::Checkpoint<'_> {
                <$t>::checkpoint(self)
            }
            fn reset_to(&self, cp: bumper::Checkpoint<'_>) {
                <$t>::reset_to(self, cp);
            }
            fn reset(&self) {
                <$t>::reset(self);
            }
            fn no_escape(&self, f: &mut dyn FnMut()) {
                <$t>::no_escape(self, f)
            }
            fn stats(&self) -> bumper::ArenaStats {
                <$t>::stats(self)
            }
        }
    };
}
kind!(Arena);
kind!(LockedArena);

fn run<A: Kind>(arena: &A, p: &Program, iters: u64) {
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(64);
    let (done_tx, done_rx) = mpsc::sync_channel::<()>(1024);
    let helper = std::thread::spawn(move || {
        for v in rx {
            drop(v);
            done_tx.send(()).unwrap();
        }
    });
    let mut live = Live {
        kept: VecDeque::with_capacity(16 * 9),
        to_helper: tx,
        freed: done_rx,
        pending: 0,
        released: 0,
    };
    let mut rng = Rng::new(p.seed);
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(8);
    let mut took: VecDeque<u64> = VecDeque::with_capacity(64);
    let outer: Vec<bumper::Checkpoint<'_>> = (0..p.outer_checkpoints)
        .map(|_| arena.checkpoint())
        .collect();
    let is_spike = |i: u64| p.spike_every > 0 && i % u64::from(p.spike_every) == 3;
    // The retained capacity remembers a spike for 8 resets; without resets,
    // a spare beyond it goes once the lane has allocated a chunk's worth
    // (256 KiB) more.
    let per_iteration = (u64::from(p.scratch_blocks) * (4 << p.size_log2)).max(1);
    let window = match p.scope.reset {
        ResetStyle::ResetEvery(k) => 10 * u64::from(k),
        ResetStyle::None => 10 + (256 << 10) / per_iteration,
        _ => 10,
    };
    // The iterations a reset's loop spans: a reset records the need of the
    // work since the reset before it.
    let loop_iters = match p.scope.reset {
        ResetStyle::ResetEvery(k) => usize::from(k),
        _ => 1,
    };
    let mut body = |i: u64, live: &mut Live| {
        let spike = is_spike(i);
        let mut step = || work(p, &mut rng, i, spike, &mut out);
        match p.scope.reset {
            ResetStyle::NoEscape => arena.no_escape(&mut step),
            ResetStyle::Scoped => arena.no_escape(&mut || with_bumper(arena, &mut step)),
            ResetStyle::Checkpoint => {
                let cp = arena.checkpoint();
                step();
                arena.reset_to(cp);
            }
            ResetStyle::ResetEvery(k) => {
                step();
                if i.is_multiple_of(u64::from(k)) {
                    arena.reset();
                }
            }
            ResetStyle::None => step(),
        }
        for v in out.drain(..) {
            live.kept.push_back((v, i + u64::from(p.keep_for)));
        }
        while live.kept.front().is_some_and(|&(_, until)| until <= i) {
            let (v, _) = live.kept.pop_front().unwrap();
            live.released += 1;
            if p.remote_every > 0 && live.released.is_multiple_of(u64::from(p.remote_every)) {
                live.to_helper.send(v).unwrap();
                live.pending += 1;
            } else {
                drop(v);
            }
        }
    };
    let mut check = |i: u64, live: &mut Live| {
        live.settle();
        let live = &*live;
        let allocated = (u64::from(p.scratch_blocks) * (8 << p.size_log2)
            + 4096 * u64::from(p.results)) as usize;
        let spiked = (i.saturating_sub(window)..=i).any(is_spike);
        // The checks allocate: on the heap, not in the arena.
        bumper::outside_regions(|| {
            check_bounds(arena, p, live, allocated, loop_iters, spiked, &mut took)
        });
    };
    match p.scope.scope {
        Scope::PerIteration => {
            for i in 0..iters {
                with_bumper(arena, || body(i, &mut live));
                check(i, &mut live);
            }
        }
        Scope::LongRegion => with_bumper(arena, || {
            for i in 0..iters {
                body(i, &mut live);
                check(i, &mut live);
            }
        }),
    }
    drop(outer);
    let Live {
        kept,
        to_helper,
        freed,
        ..
    } = live;
    drop(kept);
    drop(to_helper);
    helper.join().unwrap();
    drop(freed);
}

/// The checks of the file's docs, after one iteration.
fn check_bounds<A: Kind>(
    arena: &A,
    p: &Program,
    live: &Live,
    allocated: usize,
    loop_iters: usize,
    spiked: bool,
    took: &mut VecDeque<u64>,
) {
    let known: Vec<(usize, usize)> = live
        .kept
        .iter()
        .map(|(v, _)| (v.as_ptr() as usize, v.len()))
        .collect();
    // The callback runs while the lane is held: it must not allocate.
    let mut chunks = Vec::with_capacity(4096);
    let target = for_each_chunk(arena, |c| {
        assert!(chunks.len() < chunks.capacity(), "too many chunks");
        chunks.push(c);
    });
    let stats = arena.stats();
    // Blocks std makes lazily inside a region (a channel's thread-local
    // context) are live too; the program does not know where they are.
    let foreign = stats.live_blocks.saturating_sub(known.len() as u64);
    let (mut unexplained, mut pinned, mut held, mut spares) = (0u64, 0usize, 0usize, 0usize);
    let mut current = 0;
    for c in &chunks {
        match c.kind {
            ChunkKind::Spare => spares += c.size,
            ChunkKind::Current => {
                held += c.size;
                current = current.max(c.size);
            }
            ChunkKind::Home => held += c.size,
            ChunkKind::Chain | ChunkKind::Large => {
                held += c.size;
                if known
                    .iter()
                    .any(|&(a, _)| a >= c.base && a < c.base + c.size)
                {
                    pinned += c.size;
                } else {
                    unexplained += 1;
                }
            }
        }
    }
    assert!(
        unexplained <= foreign,
        "{p:?}: {unexplained} chunks hold no live block ({foreign} blocks the program does not know of)\n{stats}"
    );
    let reset_now = !matches!(p.scope.reset, ResetStyle::None | ResetStyle::ResetEvery(_));
    if reset_now {
        assert!(
            spares == 0 || held + spares <= target,
            "{p:?}: {spares} bytes of spares beyond the retained capacity {target}\n{stats}"
        );
    }
    // A new chunk is twice the live bytes of the chain, rounded up to a
    // power of two: at most 4 times what an iteration allocates and keeps,
    // and at least the chunk size (256 KiB).
    let kept: usize = known.iter().map(|&(_, n)| n).sum();
    let live_bound = (allocated + 8 * kept).next_power_of_two();
    assert!(
        current <= (4 * live_bound).max(256 << 10),
        "{p:?}: a current chunk of {current} bytes for iterations of {allocated} bytes\n{stats}"
    );
    // What the last loops needed: the chunks held after a reset (the
    // chain: pinned, current and home) and at most twice, rounded to a
    // power of two, twice (a chunk taken again after it died) what a loop
    // allocates. A loop is the work between two resets: `k` iterations
    // under `ResetEvery(k)` (in a long region, nothing else rewinds over
    // the dead blocks beneath the results that pin them), one otherwise.
    // The retained capacity remembers the needs of 8 resets: keep 9 loops.
    took.push_back((4 * allocated * loop_iters + held) as u64);
    if took.len() > 9 * loop_iters {
        took.pop_front();
    }
    if !spiked {
        let need = *took.iter().max().unwrap() as usize + (1 << 20);
        let lanes = stats.lanes as usize;
        assert!(
            target <= lanes * (need + need / 10),
            "{p:?}: a retained capacity of {target} for loops of {loop_iters} iterations of {allocated} bytes\n{stats}"
        );
        assert!(
            held + spares <= lanes * (need + need / 10) + held,
            "{p:?}: holds {} bytes for a live set pinning {pinned}\n{stats}",
            held + spares
        );
    }
}

fn run_program(p: &Program, iters: u64) {
    if p.locked {
        let arena = LockedArena::builder()
            .escape_policy(EscapePolicy::Keep)
            .build()
            .unwrap();
        run(&arena, p, iters);
    } else {
        let arena = Arena::builder()
            .escape_policy(EscapePolicy::Keep)
            .build()
            .unwrap();
        run(&arena, p, iters);
    }
}

#[test]
fn random_loops_keep_memory_bounded_by_their_live_set() {
    let cases: u32 = env_or("BUMPER_BOUNDED_CASES", 48);
    let iters: u64 = env_or("BUMPER_BOUNDED_ITERS", 60);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&program(), |p| {
        run_program(&p, iters);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
