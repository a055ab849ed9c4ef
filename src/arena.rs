//! The public arena types: [`Arena`] (one thread at a time) and
//! [`LockedArena`] (many threads at once), their builder, and checkpoints.

use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::arena_core::ArenaCore;
use crate::checkpoint::{Checkpoint, full_reset_refused};
use crate::error::ResetError;
use crate::escape::{EscapeSite, handle_escape};
use crate::report::{EscapePolicy, ResetReport};
use crate::route;
use crate::stats::ArenaStats;

pub(crate) mod sealed {
    /// Access to the core, for `with_bumper`. Not nameable outside the crate.
    pub trait Sealed {
        #[doc(hidden)]
        fn core_ref(&self) -> CoreRef<'_>;
    }

    /// An opaque reference to an arena's shared state, and whether its
    /// regions may be shared with other threads (a `LockedArena`).
    #[doc(hidden)]
    pub struct CoreRef<'a>(pub(crate) &'a crate::arena_core::ArenaCore, pub(crate) bool);
}

/// An arena that [`with_bumper`](crate::with_bumper) can allocate from:
/// [`Arena`] or [`LockedArena`]. Sealed.
///
/// ```
/// # #[global_allocator]
/// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
/// use bumper::{with_bumper, Arena, BumpArena, LockedArena};
///
/// fn run_in<A: BumpArena>(arena: &A) -> usize {
///     with_bumper(arena, || vec![1, 2, 3].len())
/// }
/// assert_eq!(run_in(&Arena::new()), 3);
/// assert_eq!(run_in(&LockedArena::new()), 3);
/// ```
pub trait BumpArena: sealed::Sealed {}

/// A growable bump arena used by one thread at a time.
///
/// `Arena` is `Send` but not `Sync`: the compiler keeps each region on one
/// thread, so allocation needs no lock and no atomic read-modify-write. Its
/// memory may still be freed from any thread (and after the arena is
/// dropped). Use [`LockedArena`] to let several threads allocate from one
/// arena at once.
///
/// ```
/// use bumper::{with_bumper, Arena, Bumper};
///
/// #[global_allocator]
/// static GLOBAL: Bumper = Bumper::system();
///
/// let arena = Arena::new();
/// for i in 0..3 {
///     let n = with_bumper(&arena, || arena.no_escape(|| format!("iteration {i}").len()));
///     assert_eq!(n, 11);
/// }
/// let s = arena.stats();
/// assert_eq!(s.live_blocks, 0);
/// assert_eq!(s.bytes_in_use, 0); // every iteration reused the same memory
/// ```
///
/// An `Arena` cannot be shared between threads:
///
/// ```compile_fail
/// let arena = bumper::Arena::new();
/// std::thread::scope(|s| {
///     s.spawn(|| bumper::with_bumper(&arena, || ()));
/// });
/// ```
///
/// # Unwind safety
///
/// `Arena` (like [`LockedArena`] and [`Checkpoint`]) is
/// [`UnwindSafe`](std::panic::UnwindSafe) and
/// [`RefUnwindSafe`](std::panic::RefUnwindSafe): a panic anywhere leaves the
/// arena consistent, so code may keep using it after
/// [`catch_unwind`](std::panic::catch_unwind). A region restores the previous
/// route and releases its lane when a panic unwinds out of it;
/// [`no_escape`](Self::no_escape) resets its checkpoint on the way out
/// (keeping whatever is still in use); and no internal state is left
/// half-updated, because the critical sections that update it (bumping,
/// frees, checkpoint bookkeeping, resets) never panic. The panics bumper
/// raises itself (misuse, [`EscapePolicy::Panic`]) come after the state is
/// updated.
///
/// ```
/// use bumper::{with_bumper, Arena, Bumper};
/// use std::panic::{catch_unwind, resume_unwind};
///
/// #[global_allocator]
/// static GLOBAL: Bumper = Bumper::system();
///
/// let arena = Arena::new();
/// let caught = catch_unwind(|| {
///     with_bumper(&arena, || {
///         let _temp = vec![0u8; 100];
///         resume_unwind(Box::new("failed"))
///     })
/// });
/// drop(caught); // the panic's payload was allocated in the arena
/// assert_eq!(arena.stats().live_blocks, 0);
/// assert_eq!(with_bumper(&arena, || vec![1, 2, 3].len()), 3);
/// ```
pub struct Arena {
    core: NonNull<ArenaCore>,
    _not_sync: PhantomData<Cell<()>>,
}

// SAFETY: the core is built for access from any thread (lanes are claimed,
// the checkpoint list is behind a lock, frees from other threads go through
// a lock-free list). `Arena` is `!Sync` only so that one thread at a time
// runs regions and resets; moving that right to another thread is fine.
unsafe impl Send for Arena {}

// Not `unsafe`: unwind safety is a lint-like marker. A panic cannot leave the
// arena half-updated (see "Unwind safety" above), so observing it after
// `catch_unwind` shows a consistent state.
impl std::panic::UnwindSafe for Arena {}
impl std::panic::RefUnwindSafe for Arena {}

/// A growable bump arena that many threads can allocate from at the same
/// time.
///
/// Each thread inside a region of the arena gets its own *lane*, so threads
/// do not contend while they allocate. Checkpoints and resets cover every
/// lane. A reset while other threads are still using the arena
/// (AllocArrays.jl's `bad_function_2`) is safe: the lanes in use are left
/// alone and the escape is reported.
///
/// A `LockedArena` is [`UnwindSafe`](std::panic::UnwindSafe) and
/// [`RefUnwindSafe`](std::panic::RefUnwindSafe), for the reasons given under
/// [`Arena`'s unwind safety](Arena#unwind-safety): a panic on any thread,
/// inside or outside a region, leaves it consistent.
///
/// ```
/// use bumper::{with_bumper, Bumper, LockedArena};
///
/// #[global_allocator]
/// static GLOBAL: Bumper = Bumper::system();
///
/// let arena = LockedArena::new();
/// let total: usize = arena.no_escape(|| {
///     std::thread::scope(|s| {
///         let arena = &arena;
///         let handles: Vec<_> = (0..4)
///             .map(|i| s.spawn(move || with_bumper(arena, || vec![i; 1000].len())))
///             .collect();
///         handles.into_iter().map(|h| h.join().unwrap()).sum()
///     })
/// });
/// assert_eq!(total, 4000);
/// ```
pub struct LockedArena {
    core: NonNull<ArenaCore>,
}

// SAFETY: see `Arena`; in addition every method of the core that a shared
// reference can reach is safe to call from several threads at once.
unsafe impl Send for LockedArena {}
// SAFETY: as above.
unsafe impl Sync for LockedArena {}

// See `Arena`: a panic leaves the arena consistent.
impl std::panic::UnwindSafe for LockedArena {}
impl std::panic::RefUnwindSafe for LockedArena {}

macro_rules! arena_api {
    ($ty:ident, $name:literal, $shareable:literal) => {
        impl $ty {
            fn core(&self) -> &ArenaCore {
                // SAFETY: the core lives at least as long as the handle.
                unsafe { self.core.as_ref() }
            }

            /// A process-unique id, used in messages and reports. Ids count
            /// every arena the process has made, from 1, those made by
            /// libraries, other threads or other tests included, so the first
            /// arena a program makes need not be #1. A degraded arena (one
            /// created when the OS refused even its bookkeeping memory, see
            /// [`ArenaBuilder::build`](crate::ArenaBuilder::build)) has id 0.
            ///
            /// ```
            #[doc = concat!("let (a, b) = (bumper::", $name, "::new(), bumper::", $name, "::new());")]
            /// assert_ne!(a.id(), b.id());
            /// ```
            #[must_use]
            pub fn id(&self) -> u64 {
                self.core().id
            }

            /// The escape policy this arena was built with.
            ///
            /// ```
            #[doc = concat!("let arena = bumper::", $name, "::new();")]
            /// assert_eq!(arena.escape_policy(), bumper::EscapePolicy::default());
            /// ```
            #[must_use]
            pub fn escape_policy(&self) -> EscapePolicy {
                self.core().policy
            }

            /// Marks the current position. Everything allocated from the
            /// arena after this call, by any thread, can later be handed
            /// back in one step with [`reset_to`](Self::reset_to).
            ///
            /// ```
            /// # #[global_allocator]
            /// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
            #[doc = concat!("use bumper::{with_bumper, ", $name, "};")]
            #[doc = concat!("let arena = ", $name, "::new();")]
            /// let cp = arena.checkpoint();
            /// with_bumper(&arena, || drop(String::from("temporary")));
            /// assert!(arena.reset_to(cp).is_clean());
            /// ```
            pub fn checkpoint(&self) -> Checkpoint<'_> {
                let serial = self.core().checkpoint(route::tid(), false);
                Checkpoint::new(self.core(), serial)
            }

            /// Discards every checkpoint the calling thread holds on this
            /// arena, as if each [`Checkpoint`] had been dropped, and returns
            /// how many. The way out of a leaked checkpoint: after
            /// `mem::forget(arena.checkpoint())` the checkpoint stays active
            /// for good, so resets of older checkpoints and full resets on
            /// this thread fail with [`ResetError::OutOfOrder`] until it is
            /// discarded.
            ///
            /// A token of a discarded checkpoint that is still held is stale:
            /// [`try_reset_to`](Self::try_reset_to) returns
            /// [`ResetError::Stale`] and resets nothing (and `reset_to`
            /// panics), and dropping it does nothing. What was allocated
            /// since the checkpoints belongs to the enclosing ones (or the
            /// arena), as after a drop. Checkpoints of `no_escape` blocks
            /// still running on this thread and checkpoints of other threads
            /// are kept.
            ///
            /// ```
            /// # #[global_allocator]
            /// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
            #[doc = concat!("use bumper::{with_bumper, ", $name, ", ResetError};")]
            #[doc = concat!("let arena = ", $name, "::new();")]
            /// std::mem::forget(arena.checkpoint()); // leaked: active for good
            /// with_bumper(&arena, || drop(vec![0u8; 100]));
            /// assert!(matches!(arena.try_reset(), Err(ResetError::OutOfOrder { newer: 1 })));
            /// assert_eq!(arena.discard_checkpoints(), 1);
            /// assert!(arena.reset().is_clean()); // resets work again
            /// ```
            pub fn discard_checkpoints(&self) -> usize {
                self.core().discard_tokens(route::tid())
            }

            /// Hands back everything allocated since `checkpoint`, if none of
            /// it is still in use. Memory that is still in use is an
            /// *escape*: it stays valid and is not reused, only the dead
            /// memory above it is, and the arena's
            /// [`EscapePolicy`](crate::EscapePolicy) runs. Returns what was
            /// reclaimed and what escaped.
            ///
            /// # Panics
            ///
            /// On misuse, with the message of the [`ResetError`] that
            /// [`try_reset_to`](Self::try_reset_to) would return: if the
            /// checkpoint belongs to another arena, or if checkpoints taken
            /// after it on this thread are still active (the checkpoint is
            /// then discarded and its allocations kept), or if it was
            /// discarded by [`discard_checkpoints`](Self::discard_checkpoints).
            /// The panic names the caller's line. And on an escape
            /// under [`EscapePolicy::Panic`](crate::EscapePolicy::Panic),
            /// after the reset (unless the thread is already panicking);
            /// under [`EscapePolicy::Abort`](crate::EscapePolicy::Abort) an
            /// escape aborts the process instead.
            ///
            /// ```
            /// # #[global_allocator]
            /// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
            #[doc = concat!("use bumper::{with_bumper, ", $name, "};")]
            #[doc = concat!("let arena = ", $name, "::new();")]
            /// let cp = arena.checkpoint();
            /// let kept = with_bumper(&arena, || vec![7u32; 10]);
            /// let report = arena.reset_to(cp);
            /// assert_eq!(report.escaped_blocks, 1); // `kept` is still in use...
            /// assert_eq!(kept, vec![7u32; 10]); // ...and intact
            /// ```
            #[track_caller]
            pub fn reset_to(&self, checkpoint: Checkpoint<'_>) -> ResetReport {
                match self.try_reset_to(checkpoint) {
                    Ok(r) => {
                        handle_escape(self.core().policy, &self.core().warned, EscapeSite::Reset, self.id(), &r);
                        r
                    }
                    Err(e) => panic!("{e}"),
                }
            }

            /// Like [`reset_to`](Self::reset_to), but returns misuse as an
            /// error instead of panicking, and does not apply the escape
            /// policy (the report says whether anything escaped).
            ///
            /// # Errors
            ///
            /// - [`ResetError::WrongArena`] if the checkpoint was taken on
            ///   another arena; nothing is reset, and the checkpoint is
            ///   discarded when it is dropped.
            /// - [`ResetError::OutOfOrder`] if checkpoints taken after this
            ///   one on this thread are still active; nothing is reset, and
            ///   the checkpoint is discarded (its allocations belong to the
            ///   enclosing checkpoint).
            /// - [`ResetError::Stale`] if the checkpoint is no longer active
            ///   ([`discard_checkpoints`](Self::discard_checkpoints) discarded
            ///   it); nothing is reset.
            ///
            /// ```
            #[doc = concat!("use bumper::{", $name, ", ResetError};")]
            #[doc = concat!("let (a, b) = (", $name, "::new(), ", $name, "::new());")]
            /// let cp = a.checkpoint();
            /// assert!(matches!(b.try_reset_to(cp), Err(ResetError::WrongArena { .. })));
            /// ```
            pub fn try_reset_to(&self, checkpoint: Checkpoint<'_>) -> Result<ResetReport, ResetError> {
                if !core::ptr::eq(checkpoint.core, self.core()) {
                    return Err(ResetError::WrongArena { checkpoint_arena: checkpoint.core.id, arena: self.id() });
                }
                let serial = checkpoint.into_serial();
                self.core().reset(Some(serial), route::tid())
            }

            /// Hands back everything allocated from the arena that is no
            /// longer in use: a reset to the arena's very beginning. Live
            /// memory is kept, as for [`reset_to`](Self::reset_to).
            ///
            /// # Panics
            ///
            /// If a checkpoint of this thread is still active (the
            /// [`ResetError::OutOfOrder`] of [`try_reset`](Self::try_reset)):
            /// a [`Checkpoint`] not yet reset or dropped, one leaked with
            /// `mem::forget` (see
            /// [`discard_checkpoints`](Self::discard_checkpoints)), or the
            /// checkpoint of a [`no_escape`](Self::no_escape) block the call
            /// is inside. The message says which. And on an escape under
            /// [`EscapePolicy::Panic`](crate::EscapePolicy::Panic), after the
            /// reset (unless the thread is already panicking). Under
            /// [`EscapePolicy::Abort`](crate::EscapePolicy::Abort) an escape
            /// aborts the process instead.
            ///
            /// ```
            /// # #[global_allocator]
            /// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
            #[doc = concat!("use bumper::{with_bumper, ", $name, "};")]
            #[doc = concat!("let arena = ", $name, "::new();")]
            /// for _ in 0..10 {
            ///     with_bumper(&arena, || drop(vec![0u8; 10_000]));
            ///     arena.reset();
            /// }
            /// assert_eq!(arena.stats().bytes_in_use, 0);
            /// ```
            #[track_caller]
            pub fn reset(&self) -> ResetReport {
                match self.try_reset() {
                    Ok(r) => {
                        handle_escape(self.core().policy, &self.core().warned, EscapeSite::Reset, self.id(), &r);
                        r
                    }
                    Err(e) => panic!("{}", full_reset_refused(&e, self.id(), self.core().held_by(route::tid()))),
                }
            }

            /// Like [`reset`](Self::reset), but returns misuse as an error and
            /// does not apply the escape policy.
            ///
            /// # Errors
            ///
            /// [`ResetError::OutOfOrder`] if a checkpoint of this thread is
            /// still active (reset or drop it first, or, if it was leaked with
            /// `mem::forget`, discard it with
            /// [`discard_checkpoints`](Self::discard_checkpoints)); nothing is
            /// reset.
            /// Checkpoints of other threads are not an error: the reset then
            /// resets nothing and says so in
            /// [`ResetReport::concurrent_checkpoints`](crate::ResetReport::concurrent_checkpoints).
            ///
            /// ```
            #[doc = concat!("let arena = bumper::", $name, "::new();")]
            /// let _cp = arena.checkpoint();
            /// assert!(arena.try_reset().is_err()); // `_cp` is still active
            /// ```
            pub fn try_reset(&self) -> Result<ResetReport, ResetError> {
                self.core().reset(None, route::tid())
            }

            /// Runs `f` between a checkpoint and a reset: the `@no_escape` of
            /// Bumper.jl. Everything allocated from this arena inside `f` is
            /// handed back when `f` returns (or panics), unless it is still
            /// in use, which is an escape (see
            /// [`EscapePolicy`](crate::EscapePolicy)). Allocations go to the
            /// arena only inside [`with_bumper`](crate::with_bumper).
            ///
            /// # Panics
            ///
            /// - If `f` panics, the block is reset on the way out and the
            ///   panic continues. An escape found then does not panic a
            ///   second time (under
            ///   [`EscapePolicy::Abort`](crate::EscapePolicy::Abort) it still
            ///   aborts).
            /// - Under [`EscapePolicy::Panic`](crate::EscapePolicy::Panic), if
            ///   memory allocated inside `f` is still in use when it returns
            ///   (an escape), after the reset. Under
            ///   [`EscapePolicy::Abort`](crate::EscapePolicy::Abort) the
            ///   process aborts instead.
            /// - On misuse inside `f`: if a checkpoint `f` took on this thread
            ///   is still active when `f` returns (for example one returned
            ///   from `f`). The block's checkpoint is then discarded and its
            ///   allocations kept.
            ///
            /// Every panic it raises itself names the line that called
            /// `no_escape` (or `scoped`).
            ///
            /// ```
            #[doc = concat!("use bumper::{with_bumper, Bumper, ", $name, "};")]
            ///
            /// #[global_allocator]
            /// static GLOBAL: Bumper = Bumper::system();
            ///
            #[doc = concat!("let arena = ", $name, "::new();")]
            /// let data = vec![1.0f64; 1000]; // allocated before: on the heap
            /// let total = with_bumper(&arena, || {
            ///     arena.no_escape(|| {
            ///         let doubled: Vec<f64> = data.iter().map(|x| x * 2.0).collect();
            ///         doubled.iter().sum::<f64>()
            ///     })
            /// });
            /// assert_eq!(total, 2000.0);
            /// assert_eq!(arena.stats().live_blocks, 0);
            /// ```
            #[track_caller]
            pub fn no_escape<R>(&self, f: impl FnOnce() -> R) -> R {
                struct ResetOnUnwind<'a> {
                    arena: &'a $ty,
                    cp: Option<Checkpoint<'a>>,
                }
                impl Drop for ResetOnUnwind<'_> {
                    fn drop(&mut self) {
                        if let Some(cp) = self.cp.take() {
                            // Unwinding out of `f`: reset, keep anything still
                            // in use, and never panic again.
                            if let Ok(r) = self.arena.try_reset_to(cp) {
                                handle_escape(self.arena.core().policy, &self.arena.core().warned, EscapeSite::NoEscape, self.arena.id(), &r);
                            }
                        }
                    }
                }
                let serial = self.core().checkpoint(route::tid(), true);
                let mut guard = ResetOnUnwind { arena: self, cp: Some(Checkpoint::new(self.core(), serial)) };
                let r = f();
                let cp = guard.cp.take().expect("checkpoint taken above");
                match self.try_reset_to(cp) {
                    Ok(report) => handle_escape(self.core().policy, &self.core().warned, EscapeSite::NoEscape, self.id(), &report),
                    Err(e) => panic!("{e} (in `no_escape`)"),
                }
                r
            }

            /// Gives back now every chunk the arena holds beyond what its live
            /// blocks and bump positions use: spare chunks go back to the
            /// address space (and their memory to the OS, as for a dropped
            /// arena). Returns the bytes given back. Lanes that other threads
            /// use inside a region at the time are left alone.
            ///
            /// ```
            /// # #[global_allocator]
            /// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
            #[doc = concat!("use bumper::{with_bumper, ", $name, "};")]
            #[doc = concat!("let arena = ", $name, "::builder().autoscale(false).build().unwrap();")]
            /// with_bumper(&arena, || drop(vec![0u8; 4 << 20])); // a spike
            /// arena.reset();
            /// let held = arena.stats().chunk_bytes;
            /// assert!(arena.trim() >= 4 << 20);
            /// assert!(arena.stats().chunk_bytes < held);
            /// ```
            pub fn trim(&self) -> u64 {
                self.core().trim(route::tid())
            }

            /// A snapshot of the arena's counters.
            ///
            /// ```
            /// # #[global_allocator]
            /// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
            #[doc = concat!("use bumper::{with_bumper, ", $name, "};")]
            #[doc = concat!("let arena = ", $name, "::new();")]
            /// let b = with_bumper(&arena, || Box::new([0u8; 64]));
            /// let s = arena.stats();
            /// assert_eq!((s.allocations, s.live_blocks, s.live_bytes), (1, 1, 64));
            /// drop(b);
            /// ```
            #[must_use = "`stats` only takes a snapshot; it has no effect"]
            pub fn stats(&self) -> ArenaStats {
                self.core().stats(route::tid())
            }
        }

        impl Default for $ty {
            fn default() -> Self {
                Self::new()
            }
        }

        impl sealed::Sealed for $ty {
            fn core_ref(&self) -> sealed::CoreRef<'_> {
                sealed::CoreRef(self.core(), $shareable)
            }
        }

        impl BumpArena for $ty {}

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct($name).field("id", &self.id()).finish_non_exhaustive()
            }
        }

        impl Drop for $ty {
            /// Resets the arena and returns its memory. Blocks still in use
            /// keep their chunks mapped until they are freed (the arena
            /// becomes an orphan); that is an escape, reported per the
            /// arena's policy.
            fn drop(&mut self) {
                release_handle(self.core);
            }
        }
    };
}

/// Gives up one handle of an arena (its `Arena`/`LockedArena` value or a
/// `Region`). The last one resets the arena and returns its memory; blocks
/// still in use keep their chunks mapped until they are freed (the arena
/// becomes an orphan), which is an escape, reported per the arena's policy.
pub(crate) fn release_handle(core: NonNull<ArenaCore>) {
    // SAFETY: the caller's handle keeps the core alive until this call.
    let c = unsafe { core.as_ref() };
    if c.is_fallback() {
        // The shared core of degraded arenas is never closed; regions of
        // other such arenas may still use it.
        return;
    }
    if !c.drop_handle() {
        return;
    }
    // Read before `close`, which may destroy the core.
    let (id, policy) = (c.id, c.policy);
    let warned = AtomicBool::new(c.warned.load(Ordering::Relaxed));
    // A region borrows its handle, so normally none is active here. But
    // `exit()` runs thread-local destructors while the frames below it stay
    // suspended, and a stackful coroutine can be leaked while inside a
    // region: end this thread's regions of the arena first, so that no route
    // names it afterwards.
    route::detach_arena(core.as_ptr());
    // SAFETY: that was the last handle, and this thread has no region of the
    // arena left.
    let report = unsafe { ArenaCore::close(core.as_ptr(), route::tid()) };
    handle_escape(policy, &warned, EscapeSite::Drop, id, &report);
}

arena_api!(Arena, "Arena", false);
arena_api!(LockedArena, "LockedArena", true);

impl Arena {
    /// The handle of a freshly created core.
    pub(crate) fn from_core(core: NonNull<ArenaCore>) -> Arena {
        Arena {
            core,
            _not_sync: PhantomData,
        }
    }
}

impl LockedArena {
    /// The handle of a freshly created core.
    pub(crate) fn from_core(core: NonNull<ArenaCore>) -> LockedArena {
        LockedArena { core }
    }
}
