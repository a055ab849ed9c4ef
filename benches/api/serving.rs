//! The operations of issue 16: a pool lease around one request-like poll
//! (§1), and allocation through explicit `&Arena` / `&LockedArena` handles
//! outside and inside a region (§4).

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Waker};

use bumper::allocator_api2::boxed::Box as ABox;
use bumper::allocator_api2::vec::Vec as AVec;
use bumper::{Arena, LockedArena, Pool, in_region, with_bumper};

use super::Sink;

/// Small allocations a lease's poll makes.
pub const LEASE_ALLOCS: usize = 50;

/// 50 small allocations, all live at once, then freed: the work of the
/// `lease` operations.
#[inline(always)]
pub fn fifty_allocs() {
    let v: [Box<u64>; LEASE_ALLOCS] = std::array::from_fn(|i| Box::new(black_box(i as u64)));
    black_box(&v);
}

/// A `Box<u64>` through an explicit handle, made and dropped.
#[inline(always)]
fn explicit_box<A: bumper::allocator_api2::alloc::Allocator>(a: A) {
    drop(black_box(ABox::new_in(black_box(7u64), a)));
}

/// 64 pushes into a `Vec<u64>` through an explicit handle, then its drop.
#[inline(always)]
fn explicit_vec<A: bumper::allocator_api2::alloc::Allocator>(a: A) {
    let mut v = AVec::new_in(a);
    for i in 0..64u64 {
        v.push(black_box(i));
    }
    black_box(&v);
}

pub fn ops(sink: &mut impl Sink) {
    let pool = Pool::new();
    let locked = LockedArena::new();
    with_bumper(&locked, fifty_allocs);
    drop(pool.take());
    let mut cx = Context::from_waker(Waker::noop());
    sink.op("lease", "take-poll50-drop", || {
        let lease = pool.take();
        let fut = pin!(in_region(lease.region(), async { fifty_allocs() }));
        let _ = black_box(fut.poll(&mut cx));
        drop(lease);
    });
    sink.op("lease", "take-with_bumper50-drop", || {
        let lease = pool.take();
        with_bumper(&*lease, fifty_allocs);
        drop(lease);
    });
    sink.op("lease", "take-drop", || drop(black_box(pool.take())));
    sink.op_in(&locked, "lease", "50-allocs-in-region", fifty_allocs);

    let arena = Arena::new();
    // The thread has used both arenas before.
    explicit_box(&arena);
    explicit_box(&locked);
    sink.op("explicit-box", "Arena-outside", || explicit_box(&arena));
    sink.op_in(&arena, "explicit-box", "Arena-inside", || {
        explicit_box(&arena)
    });
    sink.op("explicit-box", "LockedArena-outside", || {
        explicit_box(&locked)
    });
    sink.op_in(&locked, "explicit-box", "LockedArena-inside", || {
        explicit_box(&locked)
    });
    sink.op("explicit-box", "Global", || {
        explicit_box(bumper::allocator_api2::alloc::Global)
    });
    sink.op("explicit-vec", "Arena-outside", || explicit_vec(&arena));
    sink.op_in(&arena, "explicit-vec", "Arena-inside", || {
        explicit_vec(&arena)
    });
    sink.op("explicit-vec", "LockedArena-outside", || {
        explicit_vec(&locked)
    });
    sink.op_in(&locked, "explicit-vec", "LockedArena-inside", || {
        explicit_vec(&locked)
    });
    sink.op("explicit-vec", "Global", || {
        explicit_vec(bumper::allocator_api2::alloc::Global)
    });
}
