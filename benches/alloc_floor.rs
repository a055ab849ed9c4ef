//! The workloads under the floor (`common::floor::Floor`): an unsafe
//! global bump allocator, bench only, that every table compares with (see
//! `benches/common/floor.rs`). Each iteration runs in a `floor::scope`,
//! whose end moves the thread's cursor back.

mod common;

use common::Mode;
use criterion::{Criterion, criterion_group};

#[global_allocator]
static GLOBAL: common::floor::Floor = common::floor::Floor;

fn benches(c: &mut Criterion) {
    common::bench_floor(c);
}

criterion_group!(alloc, benches);

/// Settings of this binary for `--measure` (see `common::measured_child`).
const SETTINGS: &[(&str, Mode)] = &[("floor", Mode::Floor)];

fn main() {
    if common::measured_child(SETTINGS) {
        return;
    }
    alloc();
    Criterion::default().configure_from_args().final_summary();
}
