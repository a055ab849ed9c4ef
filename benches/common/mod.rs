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
//! | `alloc_floor` | [`floor::Floor`] (unsafe, bench only) | `floor` |
//! | `alloc_count` (not timed) | `Bumper<Counting<any of the above>>` | none: prints JSON |
//!
//! Results land in `target/criterion/<workload>/<function>/`, side by side;
//! `scripts/bench_report.py` turns them, with the JSON of `alloc_count`, into
//! `BENCHMARKS.md`. `scripts/bench.sh` runs the whole pipeline.
//!
//! # Adding a workload
//!
//! Write a module with a type implementing [`Workload`] and add one line to
//! [`for_each_workload`]. Every binary then runs it under its allocator.
//! Peers run [`Workload::run`] bare; bumper runs it once per iteration inside
//! `with_bumper(&arena, || arena.no_escape(|| ...))` (region entry, checkpoint
//! and reset are all inside the timed iteration), and bare for the no-region
//! setting. A workload that spawns threads (`threads2`) sets
//! [`Workload::SPAWNS_THREADS`] and implements [`Workload::run_threads`]: in
//! the region setting it then runs inside a region of one [`LockedArena`]
//! and spawns with `bumper::thread::scope`, whose children inherit the
//! region ([`Spawn::Bumper`]); everywhere else it uses `std::thread::scope`
//! ([`Spawn::Std`]).

// Each binary uses a different subset of what is here.
#![allow(dead_code)]

pub mod btree;
pub mod floor;
pub mod json;
pub mod markdown;
pub mod mlp;
pub mod regex_search;
pub mod rng;
pub mod small;
pub mod syn_print;
pub mod threads2;
pub mod vecgrow;

use std::hint::black_box;
use std::time::Duration;

use bumpalo::Bump;
use bumper::{Arena, ArenaStats, LockedArena, with_bumper};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode};

/// How a thread's body runs: gets the body and runs it, perhaps inside a
/// region. Workloads that spawn threads call it in each thread they spawn;
/// the runners also wrap single-threaded workloads in it (the counting run
/// uses it to tell calls inside a region from calls outside).
pub type Enter<'a> = &'a (dyn Fn(&dyn Fn() -> u64) -> u64 + Sync);

/// How a workload that spawns threads spawns them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spawn {
    /// `std::thread::scope`: the peers, and bumper outside a region.
    Std,
    /// `bumper::thread::scope`, called inside a region of a [`LockedArena`]:
    /// the children run in that region.
    Bumper,
}

/// An [`Enter`] that just runs the body.
pub fn direct(body: &dyn Fn() -> u64) -> u64 {
    body()
}

/// One benchmark workload: unmodified code that allocates through the global
/// allocator, run once per iteration.
pub trait Workload {
    /// The criterion group name, shared by all binaries.
    const NAME: &'static str;

    /// The same work written against bumpalo's explicit API, if there is
    /// such a version (the explicit-bump-allocator reference). Gets the
    /// input and a `Bump` that the runner resets after each iteration.
    const EXPLICIT_BUMP: Option<fn(&Self::Input, &Bump) -> u64> = None;

    /// Whether the workload spawns threads: the bumper region runners then
    /// call [`run_threads`](Self::run_threads) with [`Spawn::Bumper`] inside
    /// a region of a [`LockedArena`], instead of [`run`](Self::run) in a
    /// region of an [`Arena`].
    const SPAWNS_THREADS: bool = false;

    /// Whether one iteration is long (tens of milliseconds or more): the
    /// group then uses criterion's flat sampling, so that a sample is a few
    /// iterations and the group stays within its measurement time.
    const LONG: bool = false;

    /// Data prepared once, outside the timing (and outside any region).
    type Input;

    /// Builds the input. Deterministic.
    fn input() -> Self::Input;

    /// One iteration. Returns a checksum so nothing is optimised away; must
    /// free everything it allocates before returning.
    fn run(input: &Self::Input) -> u64;

    /// One iteration of a workload that spawns threads with `spawn`, each of
    /// which runs its body through `enter`. Only called if
    /// [`SPAWNS_THREADS`](Self::SPAWNS_THREADS) is set; `run(input)` must be
    /// `run_threads(input, &direct, Spawn::Std)`.
    fn run_threads(input: &Self::Input, enter: Enter<'_>, spawn: Spawn) -> u64 {
        let _ = (enter, spawn);
        Self::run(input)
    }
}

/// Something that benchmarks one workload at a time.
pub trait Visitor {
    /// Registers the benchmarks of workload `W`.
    fn visit<W: Workload>(&mut self);
}

/// Calls `v` for every workload, in a fixed order. Add new workloads here.
pub fn for_each_workload(v: &mut impl Visitor) {
    v.visit::<small::Small>();
    v.visit::<vecgrow::VecGrow>();
    v.visit::<json::Json>();
    v.visit::<btree::Btree>();
    v.visit::<syn_print::Syn>();
    v.visit::<regex_search::RegexSearch>();
    v.visit::<markdown::Markdown>();
    v.visit::<mlp::Mlp>();
    v.visit::<threads2::Threads2>();
}

/// The names of all workloads, in order.
pub fn workload_names() -> Vec<&'static str> {
    struct Names(Vec<&'static str>);
    impl Visitor for Names {
        fn visit<W: Workload>(&mut self) {
            self.0.push(W::NAME);
        }
    }
    let mut n = Names(Vec::new());
    for_each_workload(&mut n);
    n.0
}

/// Reads a number from the environment, or `default`.
fn env_f64(name: &str, default: f64) -> f64 {
    match std::env::var(name) {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("{name}={s:?}: not a number")),
        Err(_) => default,
    }
}

/// The criterion settings of every group: 20 samples, 1 s warm-up, 2.5 s
/// measurement, which keeps a whole run to a few minutes on a 2-core VM.
/// `BENCH_SAMPLES`, `BENCH_WARMUP_SECS` and `BENCH_MEASUREMENT_SECS`
/// override them for a longer, quieter run.
pub fn settings() -> (usize, Duration, Duration) {
    let samples = env_f64("BENCH_SAMPLES", 20.0) as usize;
    let warm_up = Duration::from_secs_f64(env_f64("BENCH_WARMUP_SECS", 1.0));
    let measurement = Duration::from_secs_f64(env_f64("BENCH_MEASUREMENT_SECS", 2.5));
    (samples.max(10), warm_up, measurement)
}

/// Opens the group of workload `W` with its settings.
fn group<'c, W: Workload>(c: &'c mut Criterion) -> BenchmarkGroup<'c, WallTime> {
    let (samples, warm_up, measurement) = settings();
    let mut g = c.benchmark_group(W::NAME);
    g.sample_size(samples)
        .warm_up_time(warm_up)
        .measurement_time(measurement);
    if W::LONG {
        g.sampling_mode(SamplingMode::Flat);
    }
    g
}

/// The arena of the region setting: an [`Arena`] for single-threaded
/// workloads, a [`LockedArena`] shared by the threads of one that spawns.
pub enum RegionArena {
    /// For a workload that runs on the calling thread.
    Plain(Arena),
    /// For a workload that spawns threads.
    Locked(LockedArena),
}

impl RegionArena {
    /// The kind of arena workload `W` needs.
    pub fn for_workload<W: Workload>() -> RegionArena {
        if W::SPAWNS_THREADS {
            RegionArena::Locked(LockedArena::new())
        } else {
            RegionArena::Plain(Arena::new())
        }
    }

    /// One iteration of `W` in a region, with a checkpoint before and a
    /// reset after (`no_escape`). `enter` runs inside the region, around the
    /// body of each thread that allocates from the arena: the calling
    /// thread's, and that of each thread a [`Workload::SPAWNS_THREADS`]
    /// workload spawns (with `bumper::thread::scope`, so they inherit the
    /// region).
    pub fn run<W: Workload>(&self, input: &W::Input, enter: Enter<'_>) -> u64 {
        match self {
            RegionArena::Plain(arena) => {
                with_bumper(arena, || arena.no_escape(|| enter(&|| W::run(input))))
            }
            RegionArena::Locked(arena) => with_bumper(arena, || {
                arena.no_escape(|| enter(&|| W::run_threads(input, enter, Spawn::Bumper)))
            }),
        }
    }

    /// The arena's counters.
    pub fn stats(&self) -> ArenaStats {
        match self {
            RegionArena::Plain(a) => a.stats(),
            RegionArena::Locked(a) => a.stats(),
        }
    }
}

/// Benchmarks every workload bare, under whatever global allocator the
/// calling binary installed, as function `name`.
pub fn bench_peer(c: &mut Criterion, name: &'static str) {
    struct Peer<'c>(&'c mut Criterion, &'static str);
    impl Visitor for Peer<'_> {
        fn visit<W: Workload>(&mut self) {
            let input = W::input();
            let mut g = group::<W>(self.0);
            g.bench_function(self.1, |b| b.iter(|| W::run(black_box(&input))));
            g.finish();
        }
    }
    for_each_workload(&mut Peer(c, name));
}

/// Benchmarks every workload under the `Bumper` shim the calling binary
/// installed: `<prefix>-region` (each iteration in a region of one arena,
/// with a checkpoint and a reset) and `<prefix>-no-region` (shim installed,
/// no region: its overhead over the bare inner allocator).
///
/// Before timing, runs each workload twice in a region and prints what the
/// arena did in the second (steady-state) run, so a table entry can be
/// checked against what the arena actually served. (`alloc_count` counts
/// the inner allocator's calls exactly, across threads.)
pub fn bench_bumper(c: &mut Criterion, prefix: &'static str) {
    struct Shim<'c>(&'c mut Criterion, &'static str);
    impl Visitor for Shim<'_> {
        fn visit<W: Workload>(&mut self) {
            let input = W::input();
            let arena = RegionArena::for_workload::<W>();
            let region = || arena.run::<W>(black_box(&input), &direct);

            let first = region();
            let before = arena.stats();
            let (second, m) = bumper::measure(region);
            let after = arena.stats();
            assert_eq!(
                first,
                second,
                "{}: the workload is not deterministic",
                W::NAME
            );
            eprintln!(
                "{}/{}-region steady state: arena {} allocations; this thread's inner \
                 allocator calls {}; resets {}, escapes {}, capacity {} in {} chunks",
                W::NAME,
                self.1,
                after.allocations - before.allocations,
                m.inner_calls,
                after.resets - before.resets,
                after.escapes - before.escapes,
                bumper::Bytes(after.chunk_bytes),
                after.chunks,
            );

            let mut g = group::<W>(self.0);
            g.bench_function(format!("{}-region", self.1), |b| b.iter(region));
            g.bench_function(format!("{}-no-region", self.1), |b| {
                b.iter(|| W::run(black_box(&input)))
            });
            g.finish();
        }
    }
    for_each_workload(&mut Shim(c, prefix));
}

/// One iteration of `W` against bumpalo's explicit API, then a reset of
/// `bump`; `None` if `W` has no such version.
pub fn run_bumpalo<W: Workload>(input: &W::Input, bump: &mut Bump) -> Option<u64> {
    let f = W::EXPLICIT_BUMP?;
    let r = f(input, bump);
    bump.reset();
    Some(r)
}

/// Benchmarks, as function `bumpalo`, every workload that has a version
/// written against bumpalo's explicit API; the `Bump` is created once and
/// reset at the end of each iteration (inside the timing).
pub fn bench_bumpalo(c: &mut Criterion) {
    struct Explicit<'c>(&'c mut Criterion);
    impl Visitor for Explicit<'_> {
        fn visit<W: Workload>(&mut self) {
            if W::EXPLICIT_BUMP.is_none() {
                return;
            }
            let input = W::input();
            let mut bump = Bump::new();
            let mut g = group::<W>(self.0);
            g.bench_function("bumpalo", |b| {
                b.iter(|| run_bumpalo::<W>(black_box(&input), &mut bump))
            });
            g.finish();
        }
    }
    for_each_workload(&mut Explicit(c));
}

/// Benchmarks every workload under the floor allocator (`floor::Floor`,
/// which the calling binary must have installed), as function `floor`:
/// each iteration in a [`floor::scope`], whose end moves the cursor back.
pub fn bench_floor(c: &mut Criterion) {
    struct F<'c>(&'c mut Criterion);
    impl Visitor for F<'_> {
        fn visit<W: Workload>(&mut self) {
            let input = W::input();
            let mut g = group::<W>(self.0);
            g.bench_function("floor", |b| {
                b.iter(|| floor::scope(|| W::run(black_box(&input))))
            });
            g.finish();
        }
    }
    for_each_workload(&mut F(c));
}

/// How one iteration of a workload runs in [`measured_child`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `W::run` under the binary's global allocator, outside any region.
    Bare,
    /// In a region of bumper's shim, with a checkpoint and a reset.
    Region,
    /// bumpalo's explicit API, with a reset.
    Bumpalo,
    /// In a [`floor::scope`] (the binary's allocator must be the floor).
    Floor,
}

/// The measured part of an instruction count: callgrind counts the
/// instructions executed between entering and leaving this function
/// (`--toggle-collect=bumper_bench_measured`).
#[unsafe(no_mangle)]
#[inline(never)]
pub fn bumper_bench_measured(n: u64, f: &mut dyn FnMut()) {
    for _ in 0..n {
        f();
    }
}

/// Iterations of workload `name` measured per instruction count: enough to
/// make the count per iteration exact to a few instructions, few enough to
/// keep a callgrind run to seconds.
pub fn measured_iters(name: &str) -> u64 {
    match name {
        "small" => 4,
        "vecgrow" => 20,
        _ => 1,
    }
}

/// If the process was started as `BIN --measure WORKLOAD SETTING`, runs
/// `WORKLOAD` twice unmeasured (steady state) and then
/// [`measured_iters`] times inside [`bumper_bench_measured`] in the mode
/// that `settings` gives `SETTING`, and returns true; otherwise returns
/// false and the binary runs its criterion benches. `callgrind_ops` starts
/// every bench binary this way under callgrind.
///
/// `BIN --time WORKLOAD SETTING SECS` instead runs it unmeasured twice, then
/// for about `SECS` seconds, and prints one line: the median CPU time and
/// the median wall time of an iteration in nanoseconds, and the number of
/// iterations timed
/// (`scripts/bench_interleaved.py` runs the cells of all binaries in
/// interleaved rounds this way).
pub fn measured_child(settings: &[(&str, Mode)]) -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [flag, workload, setting, rest @ ..] = &args[..] else {
        return false;
    };
    let timed = match flag.as_str() {
        "--measure" => None,
        "--time" => Some(
            rest.first()
                .and_then(|s| s.parse::<f64>().ok())
                .expect("--time WORKLOAD SETTING SECS"),
        ),
        _ => return false,
    };
    let mode = settings
        .iter()
        .find(|s| s.0 == setting)
        .unwrap_or_else(|| panic!("this binary has no setting {setting:?}"))
        .1;
    struct One<'a>(&'a str, Mode, bool, Option<f64>);
    impl Visitor for One<'_> {
        fn visit<W: Workload>(&mut self) {
            if W::NAME != self.0 {
                return;
            }
            self.2 = true;
            let input = W::input();
            let n = measured_iters(W::NAME);
            let secs = self.3;
            let run = |f: &mut dyn FnMut()| {
                f();
                f();
                match secs {
                    None => bumper_bench_measured(n, f),
                    Some(secs) => time_iterations(secs, f),
                }
            };
            match self.1 {
                Mode::Bare => run(&mut || {
                    black_box(W::run(black_box(&input)));
                }),
                Mode::Region => {
                    let arena = RegionArena::for_workload::<W>();
                    run(&mut || {
                        black_box(arena.run::<W>(black_box(&input), &direct));
                    })
                }
                Mode::Bumpalo => {
                    let mut bump = Bump::new();
                    run(&mut || {
                        black_box(run_bumpalo::<W>(black_box(&input), &mut bump));
                    })
                }
                Mode::Floor => run(&mut || {
                    black_box(floor::scope(|| W::run(black_box(&input))));
                }),
            }
        }
    }
    let mut one = One(workload, mode, false, timed);
    for_each_workload(&mut one);
    assert!(one.2, "unknown workload {workload:?}");
    true
}

/// Times single iterations of `f` for about `secs` seconds of wall time (at
/// least 5 iterations) and prints two medians in nanoseconds, the CPU time
/// of the process (all its threads: `CLOCK_PROCESS_CPUTIME_ID`) and the wall
/// time, and the count. On a shared machine the CPU time is the steadier:
/// waiting for a core does not count.
fn time_iterations(secs: f64, f: &mut dyn FnMut()) {
    fn cpu_ns() -> u64 {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `t` is a valid timespec to fill; the clock id is valid.
        unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
        t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
    }
    let mut cpu = Vec::with_capacity(1 << 16);
    let mut wall = Vec::with_capacity(1 << 16);
    let start = std::time::Instant::now();
    while cpu.len() < 5 || (start.elapsed().as_secs_f64() < secs && cpu.len() < 1 << 16) {
        let (c, t) = (cpu_ns(), std::time::Instant::now());
        f();
        wall.push(t.elapsed().as_nanos() as u64);
        cpu.push(cpu_ns() - c);
    }
    cpu.sort_unstable();
    wall.sort_unstable();
    println!(
        "{} {} {}",
        cpu[cpu.len() / 2],
        wall[wall.len() / 2],
        cpu.len()
    );
}
