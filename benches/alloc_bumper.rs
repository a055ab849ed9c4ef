//! The workloads under bumper (`Bumper<System>`, i.e. over glibc malloc):
//! in a region (`bumper-region`), with the shim installed but no region
//! (`bumper-no-region`), and the explicit-bump-allocator reference written
//! against bumpalo's API (`bumpalo`). See `benches/common/mod.rs`.

mod common;

use criterion::{Criterion, criterion_group, criterion_main};

#[global_allocator]
static GLOBAL: bumper::Bumper = bumper::Bumper::system();

fn benches(c: &mut Criterion) {
    common::bench_bumper(c, "bumper");
    common::bench_bumpalo(c);
}

criterion_group!(alloc, benches);
criterion_main!(alloc);
