//! The workloads under glibc malloc: no `#[global_allocator]`, so std's
//! `System` allocator, which is glibc's `malloc` on Linux. See
//! `benches/common/mod.rs`.

mod common;

use criterion::{Criterion, criterion_group, criterion_main};

fn benches(c: &mut Criterion) {
    common::bench_peer(c, "glibc");
}

criterion_group!(alloc, benches);
criterion_main!(alloc);
