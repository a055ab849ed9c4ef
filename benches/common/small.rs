//! Workload `small`: 100 000 small `Box`/`Vec` allocations per iteration,
//! each allocated, touched, and dropped.
//!
//! The sequence is fixed (xorshift64 from a constant seed), so every
//! allocator sees exactly the same requests:
//!
//! * 1/4 `Box<u64>` (8 B), 1/4 `Box<[u64; 4]>` (32 B), 1/2 `Vec<u8>` with
//!   an exact capacity drawn uniformly from 8..=512 B, of which the first
//!   (up to) 16 bytes are written. Mean request: about 140 B.
//! * Half of the objects are dropped at once; the other half go into a ring
//!   of 64 slots at a random position, dropping the slot's previous object.
//!   So frees are a mix of LIFO and random order, with about 64 objects
//!   live at any time, and all of them are freed before the iteration ends.
//!
//! The code is written once, generic over [`Heap`], so the std version
//! (global allocator) and the bumpalo version (explicit API) do the same
//! work.

use std::hint::black_box;
use std::ops::Deref;

use bumpalo::Bump;

use super::Workload;

/// Allocations per iteration.
pub const ALLOCS: usize = 100_000;
/// Objects kept alive in the ring.
const RING: usize = 64;
const SEED: u64 = 0x9E37_79B9_7F4A_7C15;
const PATTERN: [u8; 16] = *b"bumper-benchmark";

/// The workload type registered in [`super::for_each_workload`].
pub struct Small;

impl Workload for Small {
    const NAME: &'static str = "small";
    const EXPLICIT_BUMP: Option<fn(&(), &Bump) -> u64> = Some(|_, bump| run(bump));

    type Input = ();

    fn input() {}

    fn run(_: &()) -> u64 {
        run(Global)
    }
}

/// Where the objects come from: the global allocator or a bumpalo `Bump`.
pub trait Heap: Copy {
    /// A byte vector.
    type Bytes: Deref<Target = [u8]>;
    /// A box.
    type Box<T: 'static>: Deref<Target = T>;

    /// A vector with exactly `capacity` bytes reserved, holding `init`.
    fn bytes(self, capacity: usize, init: &[u8]) -> Self::Bytes;
    /// A boxed value.
    fn boxed<T: 'static>(self, value: T) -> Self::Box<T>;
}

/// Plain `Box` and `Vec`, through the global allocator.
#[derive(Clone, Copy)]
pub struct Global;

impl Heap for Global {
    type Bytes = Vec<u8>;
    type Box<T: 'static> = Box<T>;

    #[inline]
    fn bytes(self, capacity: usize, init: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(capacity);
        v.extend_from_slice(init);
        v
    }

    #[inline]
    fn boxed<T: 'static>(self, value: T) -> Box<T> {
        Box::new(value)
    }
}

/// bumpalo's explicit API: `bumpalo::collections::Vec` and
/// `bumpalo::boxed::Box` in a `Bump`.
impl<'b> Heap for &'b Bump {
    type Bytes = bumpalo::collections::Vec<'b, u8>;
    type Box<T: 'static> = bumpalo::boxed::Box<'b, T>;

    #[inline]
    fn bytes(self, capacity: usize, init: &[u8]) -> Self::Bytes {
        let mut v = bumpalo::collections::Vec::with_capacity_in(capacity, self);
        v.extend_from_slice(init);
        v
    }

    #[inline]
    fn boxed<T: 'static>(self, value: T) -> Self::Box<T> {
        bumpalo::boxed::Box::new_in(value, self)
    }
}

enum Obj<H: Heap> {
    Word(H::Box<u64>),
    Quad(H::Box<[u64; 4]>),
    Bytes(H::Bytes),
}

impl<H: Heap> Obj<H> {
    #[inline]
    fn check(&self) -> u64 {
        match self {
            Obj::Word(b) => **b,
            Obj::Quad(b) => b[3],
            Obj::Bytes(v) => v[0] as u64 + v.len() as u64,
        }
    }
}

/// One iteration of the workload, allocating from `heap`.
#[inline(never)]
pub fn run<H: Heap>(heap: H) -> u64 {
    let mut ring: [Option<Obj<H>>; RING] = [const { None }; RING];
    let mut x = SEED;
    let mut sum = 0u64;
    for _ in 0..ALLOCS {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let obj = match x >> 62 {
            0 => Obj::Word(heap.boxed(x)),
            1 => Obj::Quad(heap.boxed([x, x >> 1, x >> 2, x >> 3])),
            _ => {
                let n = 8 + (x % 505) as usize;
                Obj::Bytes(heap.bytes(n, &PATTERN[..n.min(PATTERN.len())]))
            }
        };
        let obj = black_box(obj);
        sum = sum.wrapping_add(obj.check());
        if x & (1 << 20) != 0 {
            ring[(x >> 24) as usize % RING] = Some(obj);
        } else {
            drop(obj);
        }
    }
    drop(ring);
    sum
}
