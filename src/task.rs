//! Regions for async tasks: futures that enter a region around every poll.
//!
//! A closure cannot span an `.await`, and a task may move between worker
//! threads between two polls. [`in_region`] wraps a future so that each poll
//! runs inside a [`Region`], on whichever thread polls it, and the previous
//! route is restored when the poll returns: the region follows the task, and
//! never leaks onto another task polled on the same thread afterwards.
//! [`in_arena`] does the same with an unlocked [`Arena`] for single-threaded
//! executors.
//!
//! The inner future is dropped inside the region too: right after it
//! completes, in the poll that completed it, or when the wrapper is dropped
//! before that. Polling a wrapper again after it completed panics.

use core::future::Future;
use core::mem::ManuallyDrop;
use core::pin::Pin;
use core::task::{Context, Poll};

use crate::arena::Arena;
use crate::region::{Region, with_bumper};

/// Wraps `fut` so that every poll runs inside `region`: the allocations the
/// future makes while it runs come from the region's arena, on whichever
/// thread polls it.
///
/// The wrapper is `Send` when `fut` is, so it can be spawned on a
/// multi-threaded runtime such as tokio's.
///
/// ```
/// # #[global_allocator]
/// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
/// use std::future::Future;
/// use std::pin::pin;
/// use std::task::{Context, Poll, Waker};
///
/// let arena = bumper::LockedArena::new();
/// let task = bumper::in_region(arena.region(), async {
///     let v: Vec<u32> = (0..100).collect(); // from `arena`
///     v.iter().sum::<u32>()
/// });
/// // Any executor works; polled by hand here.
/// let mut task = pin!(task);
/// let mut cx = Context::from_waker(Waker::noop());
/// assert_eq!(task.as_mut().poll(&mut cx), Poll::Ready(4950));
/// assert_eq!(arena.stats().allocations, 1);
/// ```
pub fn in_region<F: Future>(region: Region, fut: F) -> InRegion<F> {
    InRegion {
        region,
        fut: ManuallyDrop::new(fut),
        done: false,
    }
}

/// A future that runs its inner future inside a [`Region`]; see
/// [`in_region`].
///
/// An `InRegion` over a future that is not `Send` is not `Send` either:
///
/// ```compile_fail
/// fn assert_send<T: Send>(_: T) {}
/// let arena = bumper::LockedArena::new();
/// let not_send = async {
///     let rc = std::rc::Rc::new(1);
///     std::future::ready(()).await;
///     drop(rc);
/// };
/// assert_send(bumper::in_region(arena.region(), not_send));
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct InRegion<F> {
    region: Region,
    fut: ManuallyDrop<F>,
    /// `fut` completed and was dropped.
    done: bool,
}

impl<F: Future> Future for InRegion<F> {
    type Output = F::Output;

    #[track_caller]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `fut` is structurally pinned: it is never moved out of the
        // wrapper (it is dropped in place), and the wrapper is `Unpin` only
        // if `F` is. `region` is not pinned and only borrowed.
        let this = unsafe { self.get_unchecked_mut() };
        assert!(!this.done, "bumper::InRegion polled after it completed");
        let (fut, done) = (&mut this.fut, &mut this.done);
        // SAFETY: `fut` is structurally pinned (see above) and `done` is false.
        this.region
            .enter(|| unsafe { poll_and_drop(fut, done, cx) })
    }
}

/// Polls `fut`; once it completes, drops it in place and sets `done` (first,
/// so that a panicking drop is not run twice).
///
/// # Safety
/// `fut` is pinned: it never moves again until it is dropped, in place, by
/// this function or by its owner when `done` is still false. `done` is
/// false (`fut` was not dropped).
unsafe fn poll_and_drop<F: Future>(
    fut: &mut ManuallyDrop<F>,
    done: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    // SAFETY: `fut` is pinned and was not dropped (caller contract).
    let r = unsafe { Pin::new_unchecked(&mut **fut) }.poll(cx);
    if r.is_ready() {
        *done = true;
        // SAFETY: dropped in place (pinned data may be), once: `done` keeps
        // every later poll and the wrapper's `Drop` away from it.
        unsafe { ManuallyDrop::drop(fut) }
    }
    r
}

impl<F> Drop for InRegion<F> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let fut = &mut self.fut;
        self.region.enter(|| {
            // SAFETY: `fut` was not dropped (`done` is false); it is dropped
            // exactly once, here, in place (pinned data may be dropped in
            // place), and never used again.
            unsafe { ManuallyDrop::drop(fut) }
        });
    }
}

impl<F> core::fmt::Debug for InRegion<F> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InRegion")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// Wraps `fut` so that every poll runs inside a region of the unlocked
/// `arena`, as [`in_region`] does for a locked one.
///
/// An [`Arena`] must stay on one thread, so the wrapper is never `Send`: it
/// suits a current-thread runtime or tokio's `LocalSet`.
///
/// ```
/// # #[global_allocator]
/// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
/// use std::future::Future;
/// use std::pin::pin;
/// use std::task::{Context, Poll, Waker};
///
/// let arena = bumper::Arena::new();
/// let mut task = pin!(bumper::in_arena(&arena, async { format!("{}", 42) }));
/// let mut cx = Context::from_waker(Waker::noop());
/// let Poll::Ready(s) = task.as_mut().poll(&mut cx) else { unreachable!() };
/// assert!(bumper::is_arena_pointer(s.as_ptr()));
/// ```
///
/// ```compile_fail
/// fn assert_send<T: Send>(_: T) {}
/// let arena = bumper::Arena::new();
/// assert_send(bumper::in_arena(&arena, async {}));
/// ```
pub fn in_arena<F: Future>(arena: &Arena, fut: F) -> InArena<'_, F> {
    InArena {
        arena,
        fut: ManuallyDrop::new(fut),
        done: false,
    }
}

/// A future that runs its inner future inside a region of an [`Arena`]; see
/// [`in_arena`].
#[must_use = "futures do nothing unless polled"]
pub struct InArena<'a, F> {
    arena: &'a Arena,
    fut: ManuallyDrop<F>,
    /// `fut` completed and was dropped.
    done: bool,
}

impl<F: Future> Future for InArena<'_, F> {
    type Output = F::Output;

    #[track_caller]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: as in `InRegion::poll`: `fut` is structurally pinned.
        let this = unsafe { self.get_unchecked_mut() };
        assert!(!this.done, "bumper::InArena polled after it completed");
        let (fut, done) = (&mut this.fut, &mut this.done);
        // SAFETY: as in `InRegion::poll`.
        with_bumper(this.arena, || unsafe { poll_and_drop(fut, done, cx) })
    }
}

impl<F> Drop for InArena<'_, F> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let fut = &mut self.fut;
        with_bumper(self.arena, || {
            // SAFETY: as in `InRegion::drop`.
            unsafe { ManuallyDrop::drop(fut) }
        });
    }
}

impl<F> core::fmt::Debug for InArena<'_, F> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InArena")
            .field("arena", &self.arena.id())
            .finish_non_exhaustive()
    }
}
