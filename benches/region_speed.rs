//! Criterion benches of the region API (issue 8, "Speed") and of a reset's
//! cost against the number of allocations since its checkpoint (issue 10,
//! "Scale"), bumper only. The operations are in `benches/api/mod.rs`;
//! `benches/callgrind_ops.rs` counts their instructions.
//!
//! ```sh
//! cargo bench -p bumper-benches --bench region_speed
//! cargo bench -p bumper-benches --bench region_speed -- reset-scale
//! ```
//!
//! Every group but `reset-scale` uses the settings of the workload benches
//! (`BENCH_SAMPLES`, `BENCH_WARMUP_SECS`, `BENCH_MEASUREMENT_SECS`). In
//! `reset-scale` each measured reset needs a setup of up to a million
//! allocations, which criterion does not count when it sizes a sample, so
//! the group is pinned to one reset per sample (flat sampling, a nominal
//! measurement time: criterion warns that it cannot finish in it, which is
//! expected) and `BENCH_RESET_SAMPLES` samples (default 100).

mod api;

use std::hint::black_box;
use std::time::{Duration, Instant};

use bumper::{BumpArena, with_bumper};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, criterion_group, criterion_main};

#[global_allocator]
static GLOBAL: bumper::Bumper = bumper::Bumper::system();

fn env_f64(name: &str, default: f64) -> f64 {
    match std::env::var(name) {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("{name}={s:?}: not a number")),
        Err(_) => default,
    }
}

/// Criterion's settings for `group`.
fn group<'c>(c: &'c mut Criterion, name: &'static str) -> BenchmarkGroup<'c, WallTime> {
    let mut g = c.benchmark_group(name);
    if name == "reset-scale" {
        let samples = env_f64("BENCH_RESET_SAMPLES", 100.0) as usize;
        g.sample_size(samples.max(10))
            .warm_up_time(Duration::from_micros(1))
            .measurement_time(Duration::from_nanos(1))
            .sampling_mode(SamplingMode::Flat);
    } else {
        let samples = env_f64("BENCH_SAMPLES", 20.0) as usize;
        g.sample_size(samples.max(10))
            .warm_up_time(Duration::from_secs_f64(env_f64("BENCH_WARMUP_SECS", 1.0)))
            .measurement_time(Duration::from_secs_f64(env_f64(
                "BENCH_MEASUREMENT_SECS",
                2.5,
            )));
    }
    g
}

/// Times each operation with criterion. Groups are opened per operation;
/// criterion keeps them apart by name in `target/criterion/<group>/<name>/`.
struct Timed<'c>(&'c mut Criterion);

impl api::Sink for Timed<'_> {
    fn op<F: FnMut()>(&mut self, group_name: &'static str, name: &'static str, mut f: F) {
        let mut g = group(self.0, group_name);
        g.bench_function(name, |b| b.iter(&mut f));
        g.finish();
    }

    fn op_in<A: BumpArena, F: FnMut()>(
        &mut self,
        arena: &A,
        group_name: &'static str,
        name: &'static str,
        mut f: F,
    ) {
        let mut g = group(self.0, group_name);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                with_bumper(arena, || {
                    let t = Instant::now();
                    for _ in 0..iters {
                        f();
                    }
                    t.elapsed()
                })
            })
        });
        g.finish();
    }

    fn with_setup<T, S, R>(
        &mut self,
        group_name: &'static str,
        name: &'static str,
        mut setup: S,
        mut run: R,
    ) where
        S: FnMut() -> T,
        R: FnMut(T),
    {
        let mut g = group(self.0, group_name);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let x = black_box(setup());
                    let t = Instant::now();
                    run(x);
                    total += t.elapsed();
                }
                total
            })
        });
        g.finish();
    }
}

fn benches(c: &mut Criterion) {
    api::for_each_op(&mut Timed(c));
}

criterion_group!(region_speed, benches);
criterion_main!(region_speed);
