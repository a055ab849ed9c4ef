//! The workloads under bumper over mimalloc (`Bumper<MiMalloc>`): in a
//! region (`bumper-mimalloc-region`) and with the shim installed but no
//! region (`bumper-mimalloc-no-region`, to compare with bare `mimalloc`).
//! See `benches/common/mod.rs`.

mod common;

use criterion::{Criterion, criterion_group, criterion_main};

#[global_allocator]
static GLOBAL: bumper::Bumper<mimalloc::MiMalloc> = bumper::Bumper::new(mimalloc::MiMalloc);

fn benches(c: &mut Criterion) {
    common::bench_bumper(c, "bumper-mimalloc");
}

criterion_group!(alloc, benches);
criterion_main!(alloc);
