//! The multi-threaded stress test (SAFETY.md, "How the proofs are organised";
//! it proves guarantees 1, 3 and 6 there). Several threads each run a seeded
//! random walk over the safe API: allocate, free, reallocate and `alloc_zeroed`
//! through the global allocator; nested regions of their own `Arena` and of one
//! `LockedArena` they all share; `no_escape` on both; blocks handed to other
//! threads, which free or adopt them whenever they like (real concurrent remote
//! frees); and, now and then, dropping and recreating the thread's own arena
//! while blocks of it are still live elsewhere.
//!
//! Escapes are not predicted (they depend on the interleaving), but no live
//! block may ever be reclaimed: every block carries a pattern derived from
//! its id, checked before it is freed or reallocated, when it changes hands,
//! and at the end. After everything is freed, every arena must be empty and
//! reset cleanly to zero bytes in use.
//!
//! Environment: `BUMPER_STRESS_OPS` (operations over all threads, default
//! 200000; 400 under Miri), `BUMPER_STRESS_THREADS` (default 4; 2 under
//! Miri) and `BUMPER_STRESS_SEED` (default: from the clock, 1 under Miri;
//! printed on failure). The interleaving of threads is not reproducible, so a
//! seed replays each thread's choices, not the run. A long run:
//! `BUMPER_STRESS_OPS=50000000 cargo test --release --test stress`. Under
//! Miri the variables must be forwarded, e.g.
//! `MIRIFLAGS="-Zmiri-env-forward=BUMPER_STRESS_OPS"`.

mod common;
counting_shim!();

use std::alloc::{Layout, alloc, alloc_zeroed, dealloc, realloc};
use std::rc::Rc;
use std::sync::Mutex;

use bumper::{Arena, ArenaStats, EscapePolicy, LockedArena, is_arena_pointer, with_bumper};
use common::pattern::{Block, check_raw, fill_raw, first_nonzero};
use common::{Rng, env_or};

/// Blocks a thread holds at once.
const MAX_BLOCKS: usize = 256;
/// Blocks waiting in the exchange at once.
const EXCHANGE: usize = 1024;
/// Deepest nesting of regions and `no_escape` blocks.
const MAX_DEPTH: usize = 12;

/// The block sizes and alignments the walk draws.
trait Draws {
    fn size(&mut self) -> usize;
    fn align(&mut self) -> usize;
}

impl Draws for Rng {
    fn size(&mut self) -> usize {
        match self.below(1000) {
            0..700 => 1 + self.below(512),
            700..990 => 1 + self.below(4096),
            _ if cfg!(miri) => (64 << 10) + self.below(8 << 10),
            _ => (64 << 10) + self.below(236 << 10),
        }
    }

    fn align(&mut self) -> usize {
        if self.below(8) == 0 {
            1 << (4 + self.below(9))
        } else {
            1 << self.below(4)
        }
    }
}

// SAFETY: a block handed to another thread is no longer touched by the
// thread that gave it away.
unsafe impl Send for Block {}

/// What a worker does with a block it holds. Every block a worker holds (or
/// finds in the exchange) is live, and its pattern id is unique over all
/// threads.
trait Held {
    /// Checks the whole block.
    fn check(&self, seed: u64, when: &'static str);
    /// A cheaper check for spot checks: large blocks are sampled (every block
    /// gets a full check before it is freed).
    fn check_sampled(&self, seed: u64, when: &'static str);
    fn report(&self, seed: u64, when: &'static str, bad: Option<usize>);
    fn free(self, seed: u64, when: &'static str);
}

impl Held for Block {
    fn check(&self, seed: u64, when: &'static str) {
        // SAFETY: a live block.
        let bad = unsafe { self.first_corruption(false) };
        self.report(seed, when, bad);
    }

    fn check_sampled(&self, seed: u64, when: &'static str) {
        // SAFETY: a live block.
        let bad = unsafe { self.first_corruption(true) };
        self.report(seed, when, bad);
    }

    fn report(&self, seed: u64, when: &'static str, bad: Option<usize>) {
        if let Some(off) = bad {
            panic!(
                "seed {seed}: {when}: block {self:?} (arena pointer: {}) is corrupted at offset {off} (byte {:#04x})",
                is_arena_pointer(self.ptr),
                // SAFETY: `off` lies inside the live block.
                unsafe { self.read(off) }
            );
        }
    }

    fn free(self, seed: u64, when: &'static str) {
        self.check(seed, when);
        // SAFETY: a live block with this layout.
        unsafe { dealloc(self.ptr, self.layout()) };
    }
}

struct Shared {
    seed: u64,
    arena: LockedArena,
    /// Blocks on their way to another thread. Its capacity is reserved before
    /// any region, so pushing never allocates.
    exchange: Mutex<Vec<Block>>,
}

/// How often interesting paths were taken.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    ops_in_regions: u64,
    ops_outside: u64,
    shared_regions: u64,
    private_regions: u64,
    shared_no_escape: u64,
    private_no_escape: u64,
    handed_over: u64,
    received_and_freed: u64,
    adopted: u64,
    arena_recreated: u64,
    deepest: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.ops_in_regions += o.ops_in_regions;
        self.ops_outside += o.ops_outside;
        self.shared_regions += o.shared_regions;
        self.private_regions += o.private_regions;
        self.shared_no_escape += o.shared_no_escape;
        self.private_no_escape += o.private_no_escape;
        self.handed_over += o.handed_over;
        self.received_and_freed += o.received_and_freed;
        self.adopted += o.adopted;
        self.arena_recreated += o.arena_recreated;
        self.deepest = self.deepest.max(o.deepest);
    }
}

struct Worker<'s> {
    rng: Rng,
    shared: &'s Shared,
    private: Rc<Arena>,
    blocks: Vec<Block>,
    next_id: u64,
    ops_left: u64,
    depth: usize,
    /// Regions open on this thread.
    regions: usize,
    counts: Counts,
}

impl Worker<'_> {
    fn seed(&self) -> u64 {
        self.shared.seed
    }

    fn new_block(&mut self, zeroed: bool) {
        if self.blocks.len() == MAX_BLOCKS {
            self.free_one();
            return;
        }
        let (size, align) = (self.rng.size(), self.rng.align());
        let layout = Layout::from_size_align(size, align).unwrap();
        // SAFETY: non-zero size.
        let p = unsafe {
            if zeroed {
                alloc_zeroed(layout)
            } else {
                alloc(layout)
            }
        };
        let seed = self.seed();
        assert!(!p.is_null(), "seed {seed}: allocation of {layout:?} failed");
        assert_eq!(p as usize % align, 0, "seed {seed}: misaligned {layout:?}");
        assert_eq!(
            is_arena_pointer(p),
            self.regions > 0,
            "seed {seed}: allocation of {layout:?} with {} region(s) open landed on the wrong side",
            self.regions
        );
        if zeroed {
            // SAFETY: a fresh block of `size` bytes.
            if let Some(off) = unsafe { first_nonzero(p, size) } {
                panic!("seed {seed}: alloc_zeroed({layout:?}): byte {off} is not zero");
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        // SAFETY: a fresh block of `size` bytes.
        unsafe { fill_raw(p, id, 0, size) };
        self.blocks.push(Block {
            ptr: p,
            size,
            align,
            id,
        });
    }

    /// Removes a block, the most recent one half of the time (tip frees).
    fn take_block(&mut self) -> Option<Block> {
        let n = self.blocks.len();
        if n == 0 {
            return None;
        }
        let i = if self.rng.below(2) == 0 {
            n - 1
        } else {
            self.rng.below(n)
        };
        Some(self.blocks.remove(i))
    }

    fn free_one(&mut self) {
        if let Some(b) = self.take_block() {
            b.free(self.seed(), "before free");
        }
    }

    fn resize(&mut self) {
        let Some(b) = self.take_block() else { return };
        let seed = self.seed();
        b.check(seed, "before realloc");
        let new_size = match self.rng.below(3) {
            0 => self.rng.size(),
            1 => b.size + 1 + self.rng.below(256),
            _ => b.size.saturating_sub(1 + self.rng.below(256)).max(1),
        };
        // SAFETY: a live block with this layout; `new_size` is non-zero and
        // far from overflowing when rounded to the alignment.
        let p = unsafe { realloc(b.ptr, b.layout(), new_size) };
        assert!(!p.is_null(), "seed {seed}: realloc of {b:?} failed");
        assert_eq!(p as usize % b.align, 0, "seed {seed}: realloc misaligned");
        if !is_arena_pointer(b.ptr) {
            assert!(
                !is_arena_pointer(p),
                "seed {seed}: heap block {b:?} moved into an arena"
            );
        } else if p != b.ptr {
            assert_eq!(
                is_arena_pointer(p),
                self.regions > 0,
                "seed {seed}: arena block {b:?} moved to the wrong side"
            );
        }
        let keep = b.size.min(new_size);
        // SAFETY: the new block has `new_size` bytes.
        if let Some(off) = unsafe { check_raw(p, b.id, 0, keep) } {
            panic!("seed {seed}: realloc of {b:?} to {new_size} at {p:?} lost byte {off}");
        }
        // SAFETY: as above.
        unsafe { fill_raw(p, b.id, keep, new_size) };
        self.blocks.push(Block {
            ptr: p,
            size: new_size,
            ..b
        });
    }

    fn give(&mut self) {
        let Some(b) = self.take_block() else { return };
        b.check(self.seed(), "before handing over");
        let mut ex = self.shared.exchange.lock().unwrap();
        if ex.len() < EXCHANGE {
            ex.push(b);
            self.counts.handed_over += 1;
        } else {
            drop(ex);
            b.free(self.seed(), "exchange full");
        }
    }

    fn receive(&mut self) {
        let b = {
            let mut ex = self.shared.exchange.lock().unwrap();
            if ex.is_empty() {
                return;
            }
            let i = self.rng.below(ex.len());
            ex.swap_remove(i)
        };
        if self.blocks.len() < MAX_BLOCKS && self.rng.below(3) == 0 {
            b.check(self.seed(), "on receipt");
            self.blocks.push(b); // adopted: freed or reallocated here later
            self.counts.adopted += 1;
        } else {
            b.free(self.seed(), "on receipt");
            self.counts.received_and_freed += 1;
        }
    }

    fn check_all(&self) {
        for b in &self.blocks {
            b.check_sampled(self.seed(), "spot check");
        }
    }

    fn run(&mut self) {
        while self.ops_left > 0 {
            self.ops_left -= 1;
            if self.regions > 0 {
                self.counts.ops_in_regions += 1;
            } else {
                self.counts.ops_outside += 1;
            }
            match self.rng.below(100) {
                0..30 => self.new_block(false),
                30..35 => self.new_block(true),
                35..55 => self.free_one(),
                55..68 => self.resize(),
                68..73 => self.give(),
                73..78 => self.receive(),
                78..88 if self.depth < MAX_DEPTH => {
                    self.depth += 1;
                    self.counts.deepest = self.counts.deepest.max(self.depth as u64);
                    let private = self.private.clone();
                    let shared = self.shared;
                    match self.rng.below(10) {
                        0..4 => {
                            self.counts.private_regions += 1;
                            self.regions += 1;
                            with_bumper(&*private, || self.run());
                            self.regions -= 1;
                        }
                        4..8 => {
                            self.counts.shared_regions += 1;
                            self.regions += 1;
                            with_bumper(&shared.arena, || self.run());
                            self.regions -= 1;
                        }
                        8 => {
                            self.counts.private_no_escape += 1;
                            private.no_escape(|| self.run());
                        }
                        _ => {
                            self.counts.shared_no_escape += 1;
                            shared.arena.no_escape(|| self.run());
                        }
                    }
                    self.depth -= 1;
                }
                // Leaving is a little likelier than entering, so that the
                // walk keeps coming back to the top level.
                88..100 if self.depth > 0 && self.rng.below(12) < 11 => return,
                88..90 if self.depth == 0 && Rc::strong_count(&self.private) == 1 => {
                    self.counts.arena_recreated += 1;
                    // Its live blocks (here, in the exchange, adopted by other
                    // threads) become orphans and must stay valid.
                    self.private = Rc::new(
                        Arena::builder()
                            .escape_policy(EscapePolicy::Keep)
                            .build()
                            .unwrap(),
                    );
                }
                90..92 => self.check_all(),
                _ => {}
            }
        }
    }

    /// Frees the thread's blocks and hands back its arena.
    fn finish(mut self) -> (Arena, Counts) {
        assert_eq!(self.depth, 0);
        while let Some(b) = self.blocks.pop() {
            b.free(self.seed(), "at the end");
        }
        let arena = Rc::try_unwrap(self.private).expect("no frame holds the arena");
        (arena, self.counts)
    }
}

fn check_empty(
    name: &str,
    seed: u64,
    stats: ArenaStats,
    reset: impl FnOnce() -> bumper::ResetReport,
) {
    assert_eq!(
        stats.live_blocks, 0,
        "seed {seed}: {name} at the end\n{stats}"
    );
    assert_eq!(
        stats.live_bytes, 0,
        "seed {seed}: {name} at the end\n{stats}"
    );
    assert_eq!(stats.spills, 0, "seed {seed}: {name} at the end\n{stats}");
    assert_eq!(
        stats.active_checkpoints, 0,
        "seed {seed}: {name} at the end\n{stats}"
    );
    let r = reset();
    assert!(r.is_clean(), "seed {seed}: final reset of {name}: {r}");
}

/// Prints the seed if the test fails.
struct SeedReporter(u64);

impl Drop for SeedReporter {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("stress test failed with BUMPER_STRESS_SEED={}", self.0);
        }
    }
}

#[test]
fn threads_sharing_arenas_and_blocks_never_corrupt_memory() {
    let default_seed = if cfg!(miri) {
        1
    } else {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    };
    let seed: u64 = env_or("BUMPER_STRESS_SEED", default_seed);
    let _report = SeedReporter(seed);
    let threads = env_or("BUMPER_STRESS_THREADS", if cfg!(miri) { 2u64 } else { 4 }).max(1);
    let total_ops: u64 = env_or("BUMPER_STRESS_OPS", if cfg!(miri) { 400 } else { 200_000 });
    println!("BUMPER_STRESS_SEED={seed} threads {threads} ops {total_ops}");

    let shared = Shared {
        seed,
        arena: LockedArena::builder()
            .escape_policy(EscapePolicy::Keep)
            .build()
            .unwrap(),
        exchange: Mutex::new(Vec::with_capacity(EXCHANGE)),
    };
    let results: Vec<(Arena, Counts)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let shared = &shared;
                s.spawn(move || {
                    let mut w = Worker {
                        rng: Rng::new(seed ^ (t + 1).wrapping_mul(0xA24B_AED4_963E_E407)),
                        shared,
                        private: Rc::new(
                            Arena::builder()
                                .escape_policy(EscapePolicy::Keep)
                                .build()
                                .unwrap(),
                        ),
                        blocks: Vec::with_capacity(MAX_BLOCKS),
                        next_id: (t + 1) << 40,
                        ops_left: total_ops / threads,
                        depth: 0,
                        regions: 0,
                        counts: Counts::default(),
                    };
                    w.run();
                    w.finish()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    for b in shared.exchange.lock().unwrap().drain(..) {
        b.free(seed, "left in the exchange");
    }
    let mut counts = Counts::default();
    for (t, (a, c)) in results.iter().enumerate() {
        counts.add(c);
        let name = format!("thread {t}'s arena");
        check_empty(&name, seed, a.stats(), || a.reset());
        assert_eq!(a.stats().bytes_in_use, 0, "seed {seed}: {name}");
    }
    let a = &shared.arena;
    check_empty("the shared arena", seed, a.stats(), || a.reset());
    let s = a.stats();
    assert_eq!(s.bytes_in_use, 0, "seed {seed}: the shared arena\n{s}");
    println!("{counts:?}\nshared arena at the end:\n{s}");
}
