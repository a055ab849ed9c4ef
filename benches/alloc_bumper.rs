//! The workloads under bumper (`Bumper<System>`, i.e. over glibc malloc):
//! in a region (`bumper-region`), with the shim installed but no region
//! (`bumper-no-region`), and the explicit-bump-allocator reference written
//! against bumpalo's API (`bumpalo`). See `benches/common/mod.rs`.

mod common;

use common::Mode;
use criterion::{Criterion, criterion_group};

#[global_allocator]
static GLOBAL: bumper::Bumper = bumper::Bumper::system();

fn benches(c: &mut Criterion) {
    common::bench_bumper(c, "bumper");
    common::bench_bumpalo(c);
}

criterion_group!(alloc, benches);
/// Settings of this binary for `--measure` (see `common::measured_child`).
const SETTINGS: &[(&str, Mode)] = &[
    ("bumper-region", Mode::Region),
    ("bumper-no-region", Mode::Bare),
    ("bumpalo", Mode::Bumpalo),
];

fn main() {
    if common::measured_child(SETTINGS) {
        return;
    }
    alloc();
    Criterion::default().configure_from_args().final_summary();
}
