//! The workloads under glibc malloc: no `#[global_allocator]`, so std's
//! `System` allocator, which is glibc's `malloc` on Linux. See
//! `benches/common/mod.rs`.

mod common;

use common::Mode;
use criterion::{Criterion, criterion_group};

fn benches(c: &mut Criterion) {
    common::bench_peer(c, "glibc");
}

criterion_group!(alloc, benches);
/// Settings of this binary for `--measure` (see `common::measured_child`).
const SETTINGS: &[(&str, Mode)] = &[("glibc", Mode::Bare)];

fn main() {
    if common::measured_child(SETTINGS) {
        return;
    }
    alloc();
    Criterion::default().configure_from_args().final_summary();
}
