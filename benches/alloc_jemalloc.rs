//! The workloads under jemalloc (`tikv-jemallocator`) as the global
//! allocator. See `benches/common/mod.rs`.

mod common;

use criterion::{Criterion, criterion_group, criterion_main};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn benches(c: &mut Criterion) {
    common::bench_peer(c, "jemalloc");
}

criterion_group!(alloc, benches);
criterion_main!(alloc);
