//! The operations of the region-API benchmarks (issue 8's "Speed", issue
//! 10's "Scale"), written once and measured twice: timed by criterion
//! (`benches/region_speed.rs`) and counted in instructions under callgrind
//! (`benches/callgrind_ops.rs`).
//!
//! Every operation is registered with a [`Sink`] under a group and a name;
//! the two binaries are two sinks. Groups:
//!
//! | group | what one operation is |
//! |---|---|
//! | `enter-alloc` | enter a region, allocate and free one `Box<u64>`, leave |
//! | `enter-empty` | enter a region around an empty closure, leave |
//! | `poll-pending` | one poll of a future that is never ready, pinned once |
//! | `poll-ready` | wrap a ready future, poll it once, drop it |
//! | `scoped-alloc` | `scoped` (or `with_bumper` + `no_escape`) around one allocation and free |
//! | `scoped-empty` | the same around an empty closure |
//! | `reset-scale` | one `reset_to` after N allocations since the checkpoint, all freed (setup not measured; see [`RESET_CASES`]) |
//! | `lease` | `Pool::take`, one `in_region` poll of a future making 50 small allocations, the lease's drop; against the 50 allocations alone in a region (issue 16, §1) |
//! | `explicit-box`, `explicit-vec` | one `Box<u64, &Arena>` (resp. a `Vec<u64, &Arena>` of 64 pushes) made and dropped through an explicit handle, outside a region and inside one (issue 16, §4) |
//!
//! The region entries run on a thread that has entered the arena before (the
//! fixture enters every arena once when it is made), so they measure the
//! steady state: the thread's lane is found again, nothing is allocated.

use std::future::Future;
use std::hint::black_box;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use bumper::{Arena, BumpArena, Checkpoint, LockedArena, Region, in_arena, in_region, with_bumper};

mod serving;

/// Receives the operations.
pub trait Sink {
    /// An operation `f`, measured per call.
    fn op<F: FnMut()>(&mut self, group: &'static str, name: &'static str, f: F);

    /// An operation `f` run inside a region of `arena` that is entered once
    /// around many calls (not once per call).
    fn op_in<A: BumpArena, F: FnMut()>(
        &mut self,
        arena: &A,
        group: &'static str,
        name: &'static str,
        f: F,
    );

    /// Whether the operation will be measured (its fixture may be costly to
    /// make). All of them, unless the sink says otherwise.
    fn wants(&self, group: &'static str, name: &'static str) -> bool {
        let _ = (group, name);
        true
    }

    /// An operation with a setup that is not measured: each measured call is
    /// `run(setup())`.
    fn with_setup<T, S, R>(&mut self, group: &'static str, name: &'static str, setup: S, run: R)
    where
        S: FnMut() -> T,
        R: FnMut(T);
}

/// The closure of the `*-alloc` operations: allocates one `Box<u64>` and
/// frees it.
#[inline(always)]
pub fn one_alloc() {
    drop(black_box(Box::new(black_box(7u64))));
}

/// The closure of the `*-empty` operations.
#[inline(always)]
pub fn empty() {
    black_box(());
}

/// A future that is never ready; counts its polls.
pub struct Pending(pub u64);

impl Future for Pending {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        self.0 += 1;
        black_box(&self.0);
        Poll::Pending
    }
}

/// The cases of the `reset-scale` group: (name, number of allocations
/// since the checkpoint, bytes each, whether the caches are swept after
/// them). 1 000 blocks of 32 KiB are the same bytes (and chunks) as
/// 1 000 000 of 32 B; the cold cases show what a million allocations' worth
/// of memory traffic alone does to the reset that follows.
pub const RESET_CASES: [(&str, usize, usize, bool); 5] = [
    ("1000-allocs-32B", 1_000, 32, false),
    ("1000000-allocs-32B", 1_000_000, 32, false),
    ("1000-allocs-32KiB", 1_000, 32 * 1024, false),
    ("1000-allocs-32B-cold-cache", 1_000, 32, true),
    ("1000-allocs-32KiB-cold-cache", 1_000, 32 * 1024, true),
];

/// Bytes written by [`sweep_caches`]: more than any last-level cache here.
const SWEEP_BYTES: usize = 64 << 20;

/// Writes one byte per cache line of `buf`, evicting what the caches and
/// TLBs held.
pub fn sweep_caches(buf: &mut [u8]) {
    for i in (0..buf.len()).step_by(64) {
        buf[i] = buf[i].wrapping_add(1);
    }
    black_box(buf);
}

/// Allocates `n` blocks of `size` bytes in `arena`'s region after taking a
/// checkpoint, frees them all oldest first (so the bump pointer cannot move
/// back: the memory is dead, not reclaimed) and returns the checkpoint.
/// `held` is a heap vector with room for `n` (allocated outside any region).
pub fn dead_since_checkpoint<'a>(
    arena: &'a Arena,
    held: &mut Vec<Vec<u8>>,
    n: usize,
    size: usize,
) -> Checkpoint<'a> {
    assert!(held.capacity() >= n && held.is_empty());
    let cp = arena.checkpoint();
    with_bumper(arena, || {
        for i in 0..n {
            let mut v = Vec::with_capacity(size);
            v.push(i as u8);
            held.push(v);
        }
        // `clear` drops front to back: oldest first. Inside the region, so
        // the frees take the owner's fast path (not the remote queue).
        held.clear();
    });
    cp
}

/// Registers every operation with `sink`.
pub fn for_each_op(sink: &mut impl Sink) {
    let arena = Arena::new();
    let locked = LockedArena::new();
    let region: Region = locked.region();
    // The thread has used every arena before the measurements.
    with_bumper(&arena, one_alloc);
    with_bumper(&locked, one_alloc);
    region.enter(one_alloc);

    sink.op("enter-alloc", "no-region", one_alloc);
    sink.op("enter-alloc", "LockedArena-with_bumper", || {
        with_bumper(&locked, one_alloc)
    });
    sink.op("enter-alloc", "Region-enter", || region.enter(one_alloc));
    sink.op("enter-alloc", "Arena-with_bumper", || {
        with_bumper(&arena, one_alloc)
    });
    // The allocation alone, inside a region entered once: what the
    // entries above cost on top of it.
    sink.op_in(&arena, "enter-alloc", "inside-Arena-region", one_alloc);

    sink.op("enter-empty", "no-region", empty);
    sink.op("enter-empty", "LockedArena-with_bumper", || {
        with_bumper(&locked, empty)
    });
    sink.op("enter-empty", "Region-enter", || region.enter(empty));
    sink.op("enter-empty", "Arena-with_bumper", || {
        with_bumper(&arena, empty)
    });

    let mut cx = Context::from_waker(Waker::noop());
    {
        let mut bare = pin!(Pending(0));
        sink.op("poll-pending", "bare", || {
            let _ = black_box(bare.as_mut().poll(&mut cx));
        });
        let mut wrapped = pin!(in_region(region.clone(), Pending(0)));
        sink.op("poll-pending", "in_region", || {
            let _ = black_box(wrapped.as_mut().poll(&mut cx));
        });
        let mut wrapped = pin!(in_arena(&arena, Pending(0)));
        sink.op("poll-pending", "in_arena", || {
            let _ = black_box(wrapped.as_mut().poll(&mut cx));
        });
    }
    sink.op("poll-ready", "bare", || {
        let f = pin!(std::future::ready(black_box(1u64)));
        let _ = black_box(f.poll(&mut cx));
    });
    sink.op("poll-ready", "in_region", || {
        let f = pin!(in_region(
            region.clone(),
            std::future::ready(black_box(1u64))
        ));
        let _ = black_box(f.poll(&mut cx));
    });
    sink.op("poll-ready", "in_arena", || {
        let f = pin!(in_arena(&arena, std::future::ready(black_box(1u64))));
        let _ = black_box(f.poll(&mut cx));
    });

    sink.op("scoped-alloc", "Arena-scoped", || arena.scoped(one_alloc));
    sink.op("scoped-alloc", "Arena-with_bumper-no_escape", || {
        with_bumper(&arena, || arena.no_escape(one_alloc))
    });
    sink.op("scoped-alloc", "LockedArena-scoped", || {
        locked.scoped(one_alloc)
    });
    sink.op("scoped-alloc", "LockedArena-with_bumper-no_escape", || {
        with_bumper(&locked, || locked.no_escape(one_alloc))
    });
    sink.op("scoped-empty", "Arena-scoped", || arena.scoped(empty));
    sink.op("scoped-empty", "Arena-with_bumper-no_escape", || {
        with_bumper(&arena, || arena.no_escape(empty))
    });
    sink.op("scoped-empty", "LockedArena-scoped", || {
        locked.scoped(empty)
    });
    sink.op("scoped-empty", "LockedArena-with_bumper-no_escape", || {
        with_bumper(&locked, || locked.no_escape(empty))
    });

    serving::ops(sink);

    for (name, n, size, cold) in RESET_CASES {
        if !sink.wants("reset-scale", name) {
            continue;
        }
        // A fresh arena per case, grown to its steady state (chunks kept as
        // spares by the first reset) before anything is measured.
        let arena = Arena::new();
        let mut held = Vec::with_capacity(n);
        let mut sweep = if cold {
            vec![0u8; SWEEP_BYTES]
        } else {
            Vec::new()
        };
        let cp = dead_since_checkpoint(&arena, &mut held, n, size);
        assert!(arena.reset_to(cp).is_clean());
        sink.with_setup(
            "reset-scale",
            name,
            || {
                let cp = dead_since_checkpoint(&arena, &mut held, n, size);
                sweep_caches(&mut sweep);
                cp
            },
            |cp| {
                let r = arena.reset_to(cp);
                debug_assert!(r.is_clean());
                black_box(r);
            },
        );
    }
}
