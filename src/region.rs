//! Regions: [`with_bumper`] runs a closure with the current thread's
//! allocations served by an arena; [`Region`] is a handle to a locked
//! arena's region that any thread (or task) may enter; `scoped` is
//! `with_bumper` plus `no_escape`.

use core::fmt;
use core::ptr::NonNull;

use crate::arena::sealed::Sealed;
use crate::arena::{self, Arena, BumpArena, LockedArena};
use crate::arena_core::ArenaCore;
use crate::route::{self, RegionEntry};
use crate::stats::ArenaStats;

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
/// Only the calling thread is affected: threads it spawns with
/// `std::thread` allocate from the inner allocator unless they enter a
/// region themselves. Threads spawned with [`bumper::thread`](crate::thread)
/// inside a [`LockedArena`]'s region inherit it; so do futures wrapped with
/// [`in_region`](crate::in_region) (see [`Region`]).
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
    let core = arena.core_ref();
    let entry = RegionEntry::new();
    let _active = entry.activate(core.0, core.1);
    f()
}

/// A handle to a [`LockedArena`]'s region that any thread may enter: the
/// region follows work into threads and async tasks.
///
/// Get one with [`LockedArena::region`], or with [`Region::current`] inside
/// a locked arena's region. Run code in it with [`Region::enter`] (on any
/// thread), [`bumper::thread`](crate::thread) (children inherit the current
/// region) or [`in_region`](crate::in_region) (a future that enters it
/// around every poll). Only a `LockedArena` can back a `Region`: an
/// unlocked [`Arena`] is never reached from a second thread.
///
/// A `Region` keeps the arena's memory valid for as long as it lives, even
/// after the `LockedArena` value itself was dropped: a child may outlive its
/// parent's handle. The arena is reset and its memory returned when the
/// last handle (the `LockedArena` or a `Region`) goes; blocks still in use
/// then are kept and reported as for any dropped arena.
///
/// ```
/// # #[global_allocator]
/// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
/// use bumper::{is_arena_pointer, LockedArena, Region};
///
/// let arena = LockedArena::new();
/// let region: Region = arena.region();
/// let child = std::thread::spawn(move || {
///     region.enter(|| {
///         let v = vec![1u32; 100];
///         assert!(is_arena_pointer(v.as_ptr())); // from `arena`
///         v.iter().sum::<u32>()
///     })
/// });
/// assert_eq!(child.join().unwrap(), 100);
/// assert_eq!(arena.stats().live_blocks, 0);
/// ```
pub struct Region {
    core: NonNull<ArenaCore>,
}

// SAFETY: a `Region` only exists for a locked arena, whose core is built for
// use from any thread (lanes are claimed per thread, the checkpoint list is
// behind a lock, remote frees are lock-free), and it counts as a handle, so
// the core stays alive while any `Region` does.
unsafe impl Send for Region {}
// SAFETY: as above; every method takes `&self` and is safe to call from
// several threads at once.
unsafe impl Sync for Region {}

// A panic inside `enter` ends the region as it unwinds, as for
// `with_bumper`; the arena stays consistent (see `Arena`'s unwind safety).
impl std::panic::UnwindSafe for Region {}
impl std::panic::RefUnwindSafe for Region {}

impl Region {
    fn core(&self) -> &ArenaCore {
        // SAFETY: a `Region` is a counted handle: the core lives as long as it.
        unsafe { self.core.as_ref() }
    }

    /// The current thread's region, if it may be shared: `Some` inside a
    /// region of a [`LockedArena`] (entered with [`with_bumper`],
    /// [`Region::enter`], [`bumper::thread`](crate::thread) or
    /// [`in_region`](crate::in_region)); `None` outside any region and
    /// inside a region of an unlocked [`Arena`], which must stay on its
    /// thread. When regions nest, the newest one counts.
    ///
    /// ```
    /// # #[global_allocator]
    /// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
    /// use bumper::{with_bumper, Arena, LockedArena, Region};
    ///
    /// assert!(Region::current().is_none());
    /// let locked = LockedArena::new();
    /// let inner = with_bumper(&locked, || Region::current()).unwrap();
    /// assert_eq!(inner.arena_id(), locked.id());
    /// let unlocked = Arena::new();
    /// assert!(with_bumper(&unlocked, || Region::current()).is_none());
    /// ```
    #[must_use]
    pub fn current() -> Option<Region> {
        let core = route::current_shareable()?;
        // SAFETY: the region is active on this thread, so its core is alive.
        let c = unsafe { &*core };
        c.add_handle();
        Some(Region {
            core: NonNull::from(c),
        })
    }

    /// Runs `f` inside the region on the current thread, as
    /// [`with_bumper`] does: every allocation of this thread comes from the
    /// arena until `f` returns (or panics). Regions nest; the newest wins.
    ///
    /// ```
    /// # #[global_allocator]
    /// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
    /// let arena = bumper::LockedArena::new();
    /// let region = arena.region();
    /// let n = region.enter(|| format!("{}", 12345).len());
    /// assert_eq!(n, 5);
    /// assert_eq!(arena.stats().allocations, 1);
    /// ```
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        let entry = RegionEntry::new();
        let _active = entry.activate(self.core(), true);
        f()
    }

    /// The id of the arena behind the region.
    ///
    /// ```
    /// let arena = bumper::LockedArena::new();
    /// assert_eq!(arena.region().arena_id(), arena.id());
    /// ```
    #[must_use]
    pub fn arena_id(&self) -> u64 {
        self.core().id
    }

    /// A snapshot of the arena's counters, as
    /// [`LockedArena::stats`](crate::LockedArena::stats) gives.
    ///
    /// ```
    /// # #[global_allocator]
    /// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
    /// let region = bumper::LockedArena::new().region(); // outlives its arena value
    /// let v = region.enter(|| vec![0u8; 64]);
    /// assert_eq!(region.stats().live_blocks, 1);
    /// drop(v);
    /// ```
    #[must_use]
    pub fn stats(&self) -> ArenaStats {
        self.core().stats(route::tid())
    }
}

impl Clone for Region {
    fn clone(&self) -> Region {
        self.core().add_handle();
        Region { core: self.core }
    }
}

impl Drop for Region {
    /// Gives up this handle; the last handle of the arena resets it and
    /// returns its memory (see [`LockedArena`]'s `Drop`).
    fn drop(&mut self) {
        arena::release_handle(self.core);
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("arena", &self.arena_id())
            .finish()
    }
}

impl LockedArena {
    /// A handle to this arena's region that any thread may enter (see
    /// [`Region`]).
    ///
    /// ```
    /// # #[global_allocator]
    /// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
    /// let arena = bumper::LockedArena::new();
    /// let region = arena.region();
    /// std::thread::scope(|s| {
    ///     s.spawn(|| region.enter(|| drop(vec![0u8; 10])));
    /// });
    /// assert_eq!(arena.stats().allocations, 1);
    /// ```
    #[must_use]
    pub fn region(&self) -> Region {
        let core = self.core_ref().0;
        core.add_handle();
        Region {
            core: NonNull::from(core),
        }
    }

    /// Runs `f` inside a region of this arena and hands back everything it
    /// allocated from it when `f` returns: [`with_bumper`] plus
    /// [`no_escape`](LockedArena::no_escape), the form most code wants.
    ///
    /// # Panics
    ///
    /// As [`no_escape`](LockedArena::no_escape): on an escape under
    /// [`EscapePolicy::Panic`](crate::EscapePolicy::Panic), and if `f`
    /// leaves a checkpoint of this thread active.
    ///
    /// ```
    /// # #[global_allocator]
    /// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
    /// let arena = bumper::LockedArena::new();
    /// let total: u64 = arena.scoped(|| (0..1000u64).collect::<Vec<_>>().iter().sum());
    /// assert_eq!(total, 499_500);
    /// assert_eq!(arena.stats().bytes_in_use, 0);
    /// ```
    #[track_caller]
    pub fn scoped<R>(&self, f: impl FnOnce() -> R) -> R {
        // The reset runs outside the region, so that an escape's panic (under
        // `EscapePolicy::Panic`) allocates nothing in the arena.
        self.no_escape(|| with_bumper(self, f))
    }
}

impl Arena {
    /// Runs `f` inside a region of this arena and hands back everything it
    /// allocated from it when `f` returns: [`with_bumper`] plus
    /// [`no_escape`](Arena::no_escape), the form most code wants.
    ///
    /// # Panics
    ///
    /// As [`no_escape`](Arena::no_escape): on an escape under
    /// [`EscapePolicy::Panic`](crate::EscapePolicy::Panic), and if `f`
    /// leaves a checkpoint of this thread active.
    ///
    /// ```
    /// # #[global_allocator]
    /// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
    /// let arena = bumper::Arena::new();
    /// for i in 0..3 {
    ///     let len = arena.scoped(|| format!("request {i}").len());
    ///     assert_eq!(len, 9);
    /// }
    /// assert_eq!(arena.stats().bytes_in_use, 0);
    /// ```
    #[track_caller]
    pub fn scoped<R>(&self, f: impl FnOnce() -> R) -> R {
        // The reset runs outside the region, so that an escape's panic (under
        // `EscapePolicy::Panic`) allocates nothing in the arena.
        self.no_escape(|| with_bumper(self, f))
    }
}

/// Runs `f` with the current thread's allocations going to the inner
/// allocator (the heap), even inside a region: the escape hatch for memory
/// that must outlive the region's resets, such as a cache entry or a result
/// kept for later. Regions entered inside `f` apply again. Frees are routed
/// by who owns the pointer as always, so what `f` allocates may be freed
/// anywhere.
///
/// ```
/// # #[global_allocator]
/// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
/// use bumper::{is_arena_pointer, outside_regions, with_bumper, Arena};
///
/// let arena = Arena::new();
/// let (scratch_in_arena, kept_on_heap) = with_bumper(&arena, || {
///     let scratch = vec![0u8; 100];
///     let kept = outside_regions(|| vec![1u8; 100]);
///     (is_arena_pointer(scratch.as_ptr()), !is_arena_pointer(kept.as_ptr()))
/// });
/// assert!(scratch_in_arena && kept_on_heap);
/// ```
pub fn outside_regions<R>(f: impl FnOnce() -> R) -> R {
    let entry = RegionEntry::new();
    let _active = entry.activate_heap();
    f()
}
