//! The thread-local route: where this thread's allocations go (the lane of
//! its newest active region, the measuring stand-in, or the inner allocator),
//! the list of the thread's active regions that decides it, and the
//! per-thread counters behind [`measure`](crate::measure).
//!
//! The slot is a `thread_local!` with `const` initialisation and no `Drop`,
//! so reading it never allocates, never runs lazy initialisation, and keeps
//! working while the thread's other thread-locals are being destroyed.

use core::cell::Cell;
use core::marker::{PhantomData, PhantomPinned};
use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};

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
    /// The newest active region of this thread (see [`RegionEntry`]).
    top: Cell<*const RegionEntry>,
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
            top: Cell::new(ptr::null()),
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
        // SAFETY: the route is the lane of this thread's newest active
        // region, which this thread holds and which is alive while the region
        // is in the list (or a spill-only lane, whose counters never change).
        let (a, b) = unsafe { ((*r).allocs(), (*r).bytes_requested()) };
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
        let (a, b) = unsafe { ((*r).allocs(), (*r).bytes_requested()) };
        s.snap_allocs.set(a);
        s.snap_bytes.set(b);
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
        update_route(s);
    })
}

/// Undoes one [`begin_measure`].
pub(crate) fn end_measure() {
    STATE.with(|s| {
        s.measuring.set(s.measuring.get() - 1);
        update_route(s);
    })
}

/// One active region of the current thread: an entry in the thread's list of
/// active regions, newest at the top.
///
/// Regions usually end in the reverse order of their start, but not always:
/// a stackful coroutine can suspend inside `with_bumper(&a, ..)` and be
/// resumed inside `with_bumper(&b, ..)`, so that region `a` ends while `b` is
/// still active. Each exit therefore removes exactly its own entry, wherever
/// it is in the list, and the route is always the lane of the newest entry
/// still in the list (or the idle route when there is none). Restoring a
/// saved route instead would resurrect a region that has ended.
///
/// The entry lives in the frame of the function that entered the region and
/// is linked only while an [`ActiveRegion`] borrows it, so it cannot move or
/// be freed while it is in the list: a frame is only ever freed after its
/// locals are dropped, and a suspended coroutine's frames are either unwound
/// (which drops the guard) or leaked with its stack (which keeps the memory
/// valid). That is the guarantee stack pinning (`core::pin::pin!`) relies on.
pub(crate) struct RegionEntry {
    lane: Cell<*const Lane>,
    core: Cell<*const ArenaCore>,
    /// The region may be entered by other threads too (a `LockedArena`'s),
    /// so `Region::current` may hand it out.
    shareable: Cell<bool>,
    /// The next older entry in the thread's list, or null.
    older: Cell<*const RegionEntry>,
    /// The next newer entry in the thread's list, or null for the top.
    newer: Cell<*const RegionEntry>,
    /// In the thread's list. False before activation, after the region
    /// ended, and after its arena was dropped (see [`detach_arena`]).
    linked: Cell<bool>,
    _pinned: PhantomPinned,
}

impl RegionEntry {
    /// Puts this entry at the top of the thread's list as a *heap* entry:
    /// until the guard is dropped, the thread's allocations go to the inner
    /// allocator, whatever regions are active below it.
    pub(crate) fn activate_heap(&self) -> ActiveRegion<'_> {
        debug_assert!(!self.linked.get(), "a region entry is activated once");
        self.link()
    }

    pub(crate) const fn new() -> Self {
        RegionEntry {
            lane: Cell::new(ptr::null()),
            core: Cell::new(ptr::null()),
            shareable: Cell::new(false),
            older: Cell::new(ptr::null()),
            newer: Cell::new(ptr::null()),
            linked: Cell::new(false),
            _pinned: PhantomPinned,
        }
    }

    /// Enters a region of `core` on the current thread: takes a lane, puts
    /// this entry at the top of the thread's list and routes allocations to
    /// the lane until the returned guard is dropped. `shareable` says whether
    /// other threads may enter the same region (a `LockedArena`'s).
    pub(crate) fn activate<'a>(&'a self, core: &'a ArenaCore, shareable: bool) -> ActiveRegion<'a> {
        debug_assert!(!self.linked.get(), "a region entry is activated once");
        let lane = core.enter(tid());
        self.lane.set(lane);
        self.core.set(core);
        self.shareable.set(shareable);
        self.link()
    }

    /// Puts this entry at the top of the thread's list and routes the
    /// thread's allocations by it until the returned guard is dropped.
    fn link(&self) -> ActiveRegion<'_> {
        STATE.with(|s| {
            let top = s.top.get();
            self.older.set(top);
            self.newer.set(ptr::null());
            if !top.is_null() {
                // SAFETY: entries in the list are alive (see the type's docs)
                // and belong to this thread.
                unsafe { (*top).newer.set(self) };
            }
            s.top.set(self);
            self.linked.set(true);
            update_route(s);
        });
        ActiveRegion {
            entry: self,
            _not_send: PhantomData,
        }
    }
}

/// Keeps a region open; dropping it (also during unwinding) removes the
/// region's entry from the thread's list and gives the lane back.
pub(crate) struct ActiveRegion<'a> {
    entry: &'a RegionEntry,
    /// The list is per thread: the guard must be dropped where it was made.
    _not_send: PhantomData<*const ()>,
}

impl Drop for ActiveRegion<'_> {
    fn drop(&mut self) {
        let e = self.entry;
        if !e.linked.get() {
            // The arena was dropped while this region was active (only
            // possible when the region can never resume normally, see
            // `detach_arena`); its lane was given back then.
            return;
        }
        STATE.with(|s| unlink(s, e));
        if e.core.get().is_null() {
            // A heap entry (`outside_regions`): no lane to give back.
            return;
        }
        // SAFETY: the entry was linked, so its arena has not been dropped
        // (dropping it detaches every entry of this thread first), and its
        // core and lane are alive.
        unsafe { (*e.core.get()).exit(&*e.lane.get()) };
    }
}

/// The core of the current thread's newest active region, if that region
/// may be shared with other threads. The core is alive while the region is.
pub(crate) fn current_shareable() -> Option<*const ArenaCore> {
    STATE.with(|s| {
        let top = s.top.get();
        if top.is_null() {
            return None;
        }
        // SAFETY: the top entry is alive and linked.
        let top = unsafe { &*top };
        top.shareable.get().then(|| top.core.get())
    })
}

/// Removes `e` from the thread's list and recomputes the route.
fn unlink(s: &ThreadState, e: &RegionEntry) {
    let (older, newer) = (e.older.get(), e.newer.get());
    // SAFETY: neighbours in the list are alive entries of this thread.
    unsafe {
        if !older.is_null() {
            (*older).newer.set(newer);
        }
        if newer.is_null() {
            s.top.set(older);
        } else {
            (*newer).older.set(older);
        }
    }
    e.linked.set(false);
    e.older.set(ptr::null());
    e.newer.set(ptr::null());
    update_route(s);
}

/// Points the route at the newest active region's lane, or at the idle route.
fn update_route(s: &ThreadState) {
    fold(s);
    let top = s.top.get();
    let lane = if top.is_null() {
        ptr::null()
    } else {
        // SAFETY: the top entry is alive and linked.
        unsafe { (*top).lane.get() }
    };
    // No region, or a heap entry on top: the idle route.
    let r = if lane.is_null() { idle_route(s) } else { lane };
    set_route(s, r);
}

/// Ends every region of `core` that is still active on the current thread.
/// Called when an arena is dropped, before its core is closed, so that no
/// route and no entry of this thread points at the core afterwards.
///
/// Safe code can only drop an arena during one of its regions when that
/// region can never resume normally: glibc's `exit()` runs the calling
/// thread's thread-local destructors while the frames below stay suspended
/// forever (rust-lang/rust#127637), and a stackful coroutine suspended inside
/// a region can be leaked with `mem::forget`. The entries are still valid
/// memory in both cases; their guards, should they ever run, see that the
/// entry is no longer linked and do nothing. Returns how many regions ended.
pub(crate) fn detach_arena(core: *const ArenaCore) -> usize {
    STATE.with(|s| {
        let mut n = 0;
        let mut e = s.top.get();
        while !e.is_null() {
            // SAFETY: entries in the list are alive entries of this thread.
            let entry = unsafe { &*e };
            let older = entry.older.get();
            if ptr::eq(entry.core.get(), core) {
                unlink(s, entry);
                // SAFETY: the core is alive (its handle is being dropped), and
                // the lane is one of its lanes, held by this region.
                unsafe { (*core).exit(&*entry.lane.get()) };
                n += 1;
            }
            e = older;
        }
        n
    })
}
