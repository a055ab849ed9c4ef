//! Workload `vecgrow`: push 100 000 `u64` into `Vec::new()`, one at a time,
//! so the vector grows by doubling from nothing (17 reallocations, the last
//! ones of MiB-sized blocks, where glibc's `realloc` moves pages with
//! `mremap` instead of copying).
//!
//! The bumpalo version does the same with `bumpalo::collections::Vec`.

use std::hint::black_box;

use bumpalo::Bump;

use super::Workload;

/// Elements pushed per iteration.
pub const PUSHES: u64 = 100_000;

/// The workload type registered in [`super::for_each_workload`].
pub struct VecGrow;

impl Workload for VecGrow {
    const NAME: &'static str = "vecgrow";
    const EXPLICIT_BUMP: Option<fn(&(), &Bump) -> u64> =
        Some(|_, bump| grow(bumpalo::collections::Vec::new_in(bump)));

    type Input = ();

    fn input() {}

    fn run(_: &()) -> u64 {
        grow(Vec::new())
    }
}

/// A growable vector of `u64`: std's or bumpalo's.
trait Growable: std::ops::Deref<Target = [u64]> {
    fn push(&mut self, x: u64);
}

impl Growable for Vec<u64> {
    #[inline]
    fn push(&mut self, x: u64) {
        Vec::push(self, x)
    }
}

impl Growable for bumpalo::collections::Vec<'_, u64> {
    #[inline]
    fn push(&mut self, x: u64) {
        bumpalo::collections::Vec::push(self, x)
    }
}

/// One iteration: pushes into `v` (empty, no capacity) and drops it.
#[inline(never)]
fn grow(mut v: impl Growable) -> u64 {
    for i in 0..PUSHES {
        v.push(black_box(i));
    }
    let v = black_box(v);
    v.len() as u64 + v[v.len() / 2]
}
