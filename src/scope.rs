//! The thread-local slot that says where this thread's allocations go, and
//! [`with_bumper`], which points it at an arena for the length of a closure.
//!
//! The slot is a `thread_local!` with `const` initialisation and no `Drop`,
//! so reading it never allocates, never runs lazy initialisation, and keeps
//! working while the thread's other thread-locals are being destroyed.

use core::cell::Cell;
use core::marker::PhantomData;
use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arena::BumpArena;
use crate::arena_core::ArenaCore;
use crate::lane::Lane;

/// The route while `measure` runs outside any region: a lane with no memory
/// and no arena, so every request takes the slow path, which counts it and
/// hands it to the inner allocator. Its `Cell`s are never written, so threads
/// may share it.
static MEASURE_LANE: Lane = Lane::new(ptr::null(), 0, true);

fn measure_lane() -> *const Lane {
    &MEASURE_LANE
}

pub(crate) struct ThreadState {
    /// Null: go to the inner allocator uncounted. Anything else: the lane to
    /// bump from (which may be a spill-only lane that counts and forwards).
    route: Cell<*const Lane>,
    tid: Cell<u64>,
    measuring: Cell<u32>,
    pub(crate) arena_calls: Cell<u64>,
    pub(crate) arena_bytes: Cell<u64>,
    pub(crate) inner_calls: Cell<u64>,
    pub(crate) inner_bytes: Cell<u64>,
    /// The route lane's counters when last folded into `arena_*`.
    snap_allocs: Cell<u64>,
    snap_bytes: Cell<u64>,
}

impl ThreadState {
    const fn new() -> Self {
        ThreadState {
            route: Cell::new(ptr::null()),
            tid: Cell::new(0),
            measuring: Cell::new(0),
            arena_calls: Cell::new(0),
            arena_bytes: Cell::new(0),
            inner_calls: Cell::new(0),
            inner_bytes: Cell::new(0),
            snap_allocs: Cell::new(0),
            snap_bytes: Cell::new(0),
        }
    }
}

thread_local! {
    static STATE: ThreadState = const { ThreadState::new() };
}

static NEXT_TID: AtomicU64 = AtomicU64::new(1);

/// Where the current thread's allocations go.
#[inline(always)]
pub(crate) fn route() -> *const Lane {
    STATE.with(|s| s.route.get())
}

/// A non-zero id for the current thread, unique for the life of the process.
#[inline]
pub(crate) fn tid() -> u64 {
    STATE.with(|s| {
        let t = s.tid.get();
        if t != 0 {
            t
        } else {
            let t = NEXT_TID.fetch_add(1, Ordering::Relaxed);
            s.tid.set(t);
            t
        }
    })
}

/// Counts a call that went to the inner allocator while a region or a
/// measurement was active.
#[inline]
pub(crate) fn count_inner(bytes: usize) {
    STATE.with(|s| {
        s.inner_calls.set(s.inner_calls.get().wrapping_add(1));
        s.inner_bytes
            .set(s.inner_bytes.get().wrapping_add(bytes as u64));
    })
}

/// Adds what the current route lane served since the last fold to the
/// thread's arena counters.
fn fold(s: &ThreadState) {
    let r = s.route.get();
    if !r.is_null() {
        // SAFETY: a route lane is claimed by this thread and alive while the
        // region that installed it runs.
        let lane = unsafe { &*r };
        let a = lane.allocs();
        let b = lane.bytes_requested();
        s.arena_calls.set(
            s.arena_calls
                .get()
                .wrapping_add(a.wrapping_sub(s.snap_allocs.get())),
        );
        s.arena_bytes.set(
            s.arena_bytes
                .get()
                .wrapping_add(b.wrapping_sub(s.snap_bytes.get())),
        );
        s.snap_allocs.set(a);
        s.snap_bytes.set(b);
    }
}

fn set_route(s: &ThreadState, r: *const Lane) {
    s.route.set(r);
    if !r.is_null() {
        // SAFETY: as in `fold`.
        let lane = unsafe { &*r };
        s.snap_allocs.set(lane.allocs());
        s.snap_bytes.set(lane.bytes_requested());
    }
}

/// The route to restore when no region is active.
fn idle_route(s: &ThreadState) -> *const Lane {
    if s.measuring.get() > 0 {
        measure_lane()
    } else {
        ptr::null()
    }
}

/// Per-thread totals, for [`measure`](crate::measure).
#[derive(Clone, Copy)]
pub(crate) struct Totals {
    pub(crate) arena_calls: u64,
    pub(crate) arena_bytes: u64,
    pub(crate) inner_calls: u64,
    pub(crate) inner_bytes: u64,
}

pub(crate) fn totals() -> Totals {
    STATE.with(|s| {
        fold(s);
        Totals {
            arena_calls: s.arena_calls.get(),
            arena_bytes: s.arena_bytes.get(),
            inner_calls: s.inner_calls.get(),
            inner_bytes: s.inner_bytes.get(),
        }
    })
}

/// Starts counting inner-allocator calls outside regions on this thread.
pub(crate) fn begin_measure() {
    STATE.with(|s| {
        s.measuring.set(s.measuring.get() + 1);
        if s.route.get().is_null() {
            set_route(s, measure_lane());
        }
    })
}

/// Undoes one [`begin_measure`].
pub(crate) fn end_measure() {
    STATE.with(|s| {
        s.measuring.set(s.measuring.get() - 1);
        if s.route.get() == measure_lane() && s.measuring.get() == 0 {
            s.route.set(ptr::null());
        }
    })
}

/// Keeps a region open; dropping it (also during unwinding) restores the
/// previous route and gives the lane back.
pub(crate) struct RegionGuard<'a> {
    prev: *const Lane,
    lane: &'a Lane,
    core: &'a ArenaCore,
    /// The route is per thread: the guard must be dropped where it was made.
    _not_send: PhantomData<*const ()>,
}

impl<'a> RegionGuard<'a> {
    pub(crate) fn enter(core: &'a ArenaCore) -> Self {
        let lane_ptr = core.enter(tid());
        // SAFETY: lanes live as long as their core, which `'a` borrows.
        let lane = unsafe { &*lane_ptr };
        let prev = STATE.with(|s| {
            fold(s);
            let prev = s.route.get();
            set_route(s, lane_ptr);
            prev
        });
        RegionGuard {
            prev,
            lane,
            core,
            _not_send: PhantomData,
        }
    }
}

impl Drop for RegionGuard<'_> {
    fn drop(&mut self) {
        STATE.with(|s| {
            fold(s);
            let restore = if !self.prev.is_null() && self.prev != measure_lane() {
                self.prev
            } else {
                idle_route(s)
            };
            set_route(s, restore);
        });
        self.core.exit(self.lane);
    }
}

/// Runs `f` with every allocation of the current thread bump-allocated from
/// `arena`: `Box`, `Vec`, `String`, collections, and anything any library
/// allocates through the global allocator.
///
/// Requires [`Bumper`](crate::Bumper) to be the `#[global_allocator]`;
/// without it the region has no effect. Regions nest, also with different
/// arenas; the innermost wins. Frees are routed by who owns the pointer, so
/// values may outlive the region, move to other threads, or be dropped
/// anywhere. To hand memory back in bulk, use
/// [`Arena::no_escape`](crate::Arena::no_escape) or checkpoints.
///
/// What counts is where memory is *allocated*: a `Vec` created with capacity
/// before the region stays on the heap when it grows inside it, but an empty
/// `Vec::new()` has no allocation yet, so its first push inside the region
/// allocates in the arena.
///
/// Only the calling thread is affected: threads it spawns allocate from the
/// inner allocator unless they enter a region themselves (a
/// [`LockedArena`](crate::LockedArena) can be shared by many threads).
///
/// Works with both [`Arena`](crate::Arena) and
/// [`LockedArena`](crate::LockedArena).
///
/// ```
/// use bumper::{with_bumper, Arena, Bumper};
///
/// #[global_allocator]
/// static GLOBAL: Bumper = Bumper::system();
///
/// let arena = Arena::new();
/// let sum = with_bumper(&arena, || {
///     arena.no_escape(|| {
///         let v: Vec<u64> = (0..1000).collect(); // allocated in the arena
///         v.iter().sum::<u64>()
///     }) // ...and reclaimed here
/// });
/// assert_eq!(sum, 499_500);
/// assert_eq!(arena.stats().live_blocks, 0);
/// ```
pub fn with_bumper<A, R>(arena: &A, f: impl FnOnce() -> R) -> R
where
    A: BumpArena + ?Sized,
{
    let _guard = RegionGuard::enter(arena.core_ref().0);
    f()
}
