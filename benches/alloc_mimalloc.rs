//! The workloads under mimalloc as the global allocator. See
//! `benches/common/mod.rs`.

mod common;

use common::Mode;
use criterion::{Criterion, criterion_group};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn benches(c: &mut Criterion) {
    common::bench_peer(c, "mimalloc");
}

criterion_group!(alloc, benches);
/// Settings of this binary for `--measure` (see `common::measured_child`).
const SETTINGS: &[(&str, Mode)] = &[("mimalloc", Mode::Bare)];

fn main() {
    if common::measured_child(SETTINGS) {
        return;
    }
    alloc();
    Criterion::default().configure_from_args().final_summary();
}
