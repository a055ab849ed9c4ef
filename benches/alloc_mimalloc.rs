//! The workloads under mimalloc as the global allocator. See
//! `benches/common/mod.rs`.

mod common;

use criterion::{Criterion, criterion_group, criterion_main};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn benches(c: &mut Criterion) {
    common::bench_peer(c, "mimalloc");
}

criterion_group!(alloc, benches);
criterion_main!(alloc);
