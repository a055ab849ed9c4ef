//! The workloads under bumper over mimalloc (`Bumper<MiMalloc>`): in a
//! region (`bumper-mimalloc-region`) and with the shim installed but no
//! region (`bumper-mimalloc-no-region`, to compare with bare `mimalloc`).
//! See `benches/common/mod.rs`.

mod common;

use common::Mode;
use criterion::{Criterion, criterion_group};

#[global_allocator]
static GLOBAL: bumper::Bumper<mimalloc::MiMalloc> = bumper::Bumper::new(mimalloc::MiMalloc);

fn benches(c: &mut Criterion) {
    common::bench_bumper(c, "bumper-mimalloc");
}

criterion_group!(alloc, benches);
/// Settings of this binary for `--measure` (see `common::measured_child`).
const SETTINGS: &[(&str, Mode)] = &[
    ("bumper-mimalloc-region", Mode::Region),
    ("bumper-mimalloc-no-region", Mode::Bare),
];

fn main() {
    if common::measured_child(SETTINGS) {
        return;
    }
    alloc();
    Criterion::default().configure_from_args().final_summary();
}
