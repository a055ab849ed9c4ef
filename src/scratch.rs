//! [`scratch`]: a per-thread arena for work items (rayon's `par_iter`, a
//! batch job's workers), reset after each one.
//!
//! Each thread's arena is an unlocked [`Arena`] in a thread-local, made on
//! first use and dropped with the thread. The thread-local is `const`
//! initialised; its destructor is registered (which may allocate) on the
//! first use, outside any region, so that the registration never lands in
//! an arena.

use core::cell::{Cell, OnceCell};

use core::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use crate::arena::Arena;
use crate::region::{outside_regions, with_bumper};

thread_local! {
    /// The thread's scratch arena.
    static SCRATCH: OnceCell<Arena> = const { OnceCell::new() };
    /// Whether `SCRATCH` was touched on this thread: its first access
    /// registers its destructor, which is done outside regions.
    static TOUCHED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the thread's scratch arena (made on first use, with
/// default settings).
fn with_scratch<R>(f: impl FnOnce(&Arena) -> R) -> R {
    if !TOUCHED.get() {
        // The first access registers the thread-local's destructor (std may
        // allocate for it) and makes the arena: on the heap, whatever region
        // the caller is in.
        outside_regions(|| {
            let _ = SCRATCH.try_with(|cell| {
                cell.get_or_init(Arena::new);
            });
        });
        TOUCHED.set(true);
    }
    let mut f = Some(f);
    let run = |cell: &OnceCell<Arena>| {
        let arena = cell.get_or_init(|| outside_regions(Arena::new));
        (f.take().expect("called once"))(arena)
    };
    match SCRATCH.try_with(run) {
        Ok(r) => r,
        // The thread-local was already destroyed (a destructor of another
        // thread-local running at thread exit): a temporary arena.
        Err(_) => {
            let arena = outside_regions(Arena::new);
            (f.take().expect("not called yet"))(&arena)
        }
    }
}

/// Runs `f` in the calling thread's own scratch arena and hands everything
/// it allocated back when `f` returns: [`Arena::scoped`] on an arena that
/// each thread makes on first use and keeps (a thread-local, dropped with
/// the thread).
///
/// This is the way to use bumper under rayon: in
/// `items.par_iter().map(|x| bumper::scratch(|| work(x)))` each worker
/// allocates from its own arena, with no lock and no lane to share, and
/// the memory goes back after every item. Whatever `f` returns must not
/// hold memory allocated inside it: that is an escape, reported as for
/// `scoped` by the arena's [`EscapePolicy`](crate::EscapePolicy) (the
/// default one: `Warn` in debug builds, `Keep` in release builds). Return
/// plain values, or copy results out with
/// [`outside_regions`](crate::outside_regions).
///
/// Calls nest (the inner one resets first). Work that runs rayon itself
/// inside `f` may have rayon run other jobs on this thread while it waits,
/// inside this region: keep nested parallelism outside `f`.
///
/// # Panics
///
/// As [`Arena::scoped`]: under
/// [`EscapePolicy::Panic`](crate::EscapePolicy::Panic) on an escape, and if
/// `f` leaves a checkpoint of the scratch arena active (see
/// [`scratch_arena`]). A panic in `f` resets the arena and then goes on; a
/// message payload (`panic!("..")`) is copied to the heap first, so it does
/// not escape (another payload type made inside `f` does).
///
/// ```
/// # #[global_allocator]
/// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
/// use rayon::prelude::*;
///
/// fn work(x: &u64) -> usize {
///     // Knows nothing about bumper: allocates freely.
///     (0..*x).map(|i| i.to_string()).collect::<Vec<_>>().concat().len()
/// }
///
/// let items: Vec<u64> = (0..256).collect();
/// let lens: Vec<usize> = items.par_iter().map(|x| bumper::scratch(|| work(x))).collect();
/// assert_eq!(lens[100], 190);
/// ```
pub fn scratch<R>(f: impl FnOnce() -> R) -> R {
    with_scratch(|arena| {
        // The panic is caught inside the region, so that the unwinder's own
        // exception object (allocated there) is freed before the reset, and a
        // message payload is copied to the heap before it; the panic goes on
        // after the reset.
        let r =
            arena.no_escape(
                || match with_bumper(arena, || catch_unwind(AssertUnwindSafe(f))) {
                    Ok(r) => Ok(r),
                    Err(payload) => Err(rehome_payload(payload)),
                },
            );
        match r {
            Ok(r) => r,
            Err(payload) => resume_unwind(payload),
        }
    })
}

/// Calls `f` with the calling thread's scratch arena (the one [`scratch`]
/// uses, made on first use), to read its stats or trim it. Allocations go to
/// it only inside [`scratch`] (or a region entered on it).
///
/// ```
/// # #[global_allocator]
/// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
/// let n = bumper::scratch(|| vec![0u32; 1000].len());
/// assert_eq!(n, 1000);
/// let s = bumper::scratch_arena(|arena| arena.stats());
/// assert!(s.allocations >= 1);
/// assert_eq!((s.live_blocks, s.escapes), (0, 0));
/// ```
pub fn scratch_arena<R>(f: impl FnOnce(&Arena) -> R) -> R {
    with_scratch(f)
}

/// A panic payload made inside a region, copied to the heap if it is a
/// message (`&str` or `String`), so that it does not hold arena memory past
/// the reset. Other payloads are passed on as they are.
pub(crate) fn rehome_payload(payload: Box<dyn Any + Send>) -> Box<dyn Any + Send> {
    outside_regions(|| -> Box<dyn Any + Send> {
        if let Some(s) = payload.downcast_ref::<&'static str>() {
            Box::new(*s)
        } else if let Some(s) = payload.downcast_ref::<String>() {
            Box::new(s.as_str().to_owned())
        } else {
            payload
        }
    })
}
