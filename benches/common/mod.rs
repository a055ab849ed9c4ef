//! Shared by every allocator benchmark binary: the workloads, the criterion
//! settings, and the runners that put a workload under an allocator.
//!
//! # Why several binaries
//!
//! A binary has exactly one `#[global_allocator]`, and the workloads are
//! unmodified code (`Box`, `Vec`, libraries) that allocates through it. So
//! each allocator gets its own bench binary, and every binary runs every
//! workload, with the same criterion group name (the workload's name) and a
//! function name per allocator setting:
//!
//! | binary | global allocator | functions |
//! |---|---|---|
//! | `alloc_glibc` | none (std's `System`, i.e. glibc malloc) | `glibc` |
//! | `alloc_mimalloc` | `mimalloc::MiMalloc` | `mimalloc` |
//! | `alloc_jemalloc` | `tikv_jemallocator::Jemalloc` | `jemalloc` |
//! | `alloc_bumper` | `bumper::Bumper<System>` | `bumper-region`, `bumper-no-region`, `bumpalo` |
//! | `alloc_bumper_mimalloc` | `bumper::Bumper<MiMalloc>` | `bumper-mimalloc-region`, `bumper-mimalloc-no-region` |
//!
//! Results land in `target/criterion/<workload>/<function>/`, side by side;
//! `scripts/bench_table.py` turns them into the table in `BENCHMARKS.md`.
//!
//! # Adding a workload
//!
//! Write a module with a type implementing [`Workload`] and add one line to
//! [`for_each_workload`]. Every binary then runs it under its allocator.
//! Peers run [`Workload::run`] bare; bumper runs it once per iteration inside
//! `with_bumper(&arena, || arena.no_escape(|| ...))` (region entry, checkpoint
//! and reset are all inside the timed iteration), and bare for the no-region
//! setting. A workload that spawns threads (`threads2`) needs each thread to
//! enter the region itself, with a `LockedArena`; it will need its own hook.

// Each binary uses a different subset of what is here.
#![allow(dead_code)]

pub mod small;

use std::hint::black_box;
use std::time::Duration;

use bumpalo::Bump;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};

/// One benchmark workload: unmodified code that allocates through the global
/// allocator, run once per iteration.
pub trait Workload {
    /// The criterion group name, shared by all binaries.
    const NAME: &'static str;

    /// The same work written against bumpalo's explicit API, if there is
    /// such a version (the explicit-bump-allocator reference). Gets the
    /// input and a `Bump` that the runner resets after each iteration.
    const EXPLICIT_BUMP: Option<fn(&Self::Input, &Bump) -> u64> = None;

    /// Data prepared once, outside the timing (and outside any region).
    type Input;

    /// Builds the input.
    fn input() -> Self::Input;

    /// One iteration. Returns a checksum so nothing is optimised away; must
    /// free everything it allocates before returning.
    fn run(input: &Self::Input) -> u64;

    /// Criterion settings for the workload's group. The defaults keep the
    /// whole `cargo bench` to a few minutes on a 2-core VM.
    fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
        group
            .sample_size(30)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
    }
}

/// Something that benchmarks one workload at a time.
pub trait Visitor {
    /// Registers the benchmarks of workload `W`.
    fn visit<W: Workload>(&mut self, c: &mut Criterion);
}

/// Calls `v` for every workload, in a fixed order. Add new workloads here.
pub fn for_each_workload(c: &mut Criterion, v: &mut impl Visitor) {
    v.visit::<small::Small>(c);
}

/// Opens the group of workload `W` with its settings.
fn group<'c, W: Workload>(c: &'c mut Criterion) -> BenchmarkGroup<'c, WallTime> {
    let mut g = c.benchmark_group(W::NAME);
    W::configure(&mut g);
    g
}

/// Benchmarks every workload bare, under whatever global allocator the
/// calling binary installed, as function `name`.
pub fn bench_peer(c: &mut Criterion, name: &'static str) {
    struct Peer(&'static str);
    impl Visitor for Peer {
        fn visit<W: Workload>(&mut self, c: &mut Criterion) {
            let input = W::input();
            let mut g = group::<W>(c);
            g.bench_function(self.0, |b| b.iter(|| W::run(black_box(&input))));
            g.finish();
        }
    }
    for_each_workload(c, &mut Peer(name));
}

/// Benchmarks every workload under the `Bumper` shim the calling binary
/// installed: `<prefix>-region` (each iteration in a region of one arena,
/// with a checkpoint and a reset) and `<prefix>-no-region` (shim installed,
/// no region: its overhead over the bare inner allocator).
///
/// Before timing, runs each workload twice in a region and prints what went
/// where in the second (steady-state) run, so a table entry can be checked
/// against what the arena actually served.
pub fn bench_bumper(c: &mut Criterion, prefix: &'static str) {
    struct Shim(&'static str);
    impl Visitor for Shim {
        fn visit<W: Workload>(&mut self, c: &mut Criterion) {
            use bumper::{Arena, measure, with_bumper};

            let input = W::input();
            let arena = Arena::new();
            let region = || with_bumper(&arena, || arena.no_escape(|| W::run(black_box(&input))));

            let first = region();
            let before = arena.stats();
            let (second, m) = measure(region);
            let after = arena.stats();
            assert_eq!(
                first,
                second,
                "{}: the workload is not deterministic",
                W::NAME
            );
            eprintln!(
                "{}/{}-region steady state: arena {} calls, inner allocator {} calls; \
                 resets {}, escapes {}, capacity {} in {} chunks",
                W::NAME,
                self.0,
                m.arena_calls,
                m.inner_calls,
                after.resets - before.resets,
                after.escapes - before.escapes,
                bumper::Bytes(after.chunk_bytes),
                after.chunks,
            );

            let mut g = group::<W>(c);
            g.bench_function(format!("{}-region", self.0), |b| b.iter(region));
            g.bench_function(format!("{}-no-region", self.0), |b| {
                b.iter(|| W::run(black_box(&input)))
            });
            g.finish();
        }
    }
    for_each_workload(c, &mut Shim(prefix));
}

/// Benchmarks, as function `bumpalo`, every workload that has a version
/// written against bumpalo's explicit API; the `Bump` is created once and
/// reset at the end of each iteration (inside the timing).
pub fn bench_bumpalo(c: &mut Criterion) {
    struct Explicit;
    impl Visitor for Explicit {
        fn visit<W: Workload>(&mut self, c: &mut Criterion) {
            let Some(f) = W::EXPLICIT_BUMP else { return };
            let input = W::input();
            let mut bump = Bump::new();
            let mut g = group::<W>(c);
            g.bench_function("bumpalo", |b| {
                b.iter(|| {
                    let r = f(black_box(&input), &bump);
                    bump.reset();
                    r
                })
            });
            g.finish();
        }
    }
    for_each_workload(c, &mut Explicit);
}
