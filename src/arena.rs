//! The public arena types: [`Arena`] (one thread at a time) and
//! [`LockedArena`] (many threads at once), their builder, and checkpoints.

use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;

use crate::arena_core::{ArenaCore, Config, MAX_LANES};
use crate::chunk::SLAB;
use crate::error::{ConfigError, ResetError};
use crate::escape::{EscapeSite, handle_escape};
use crate::report::{EscapePolicy, ResetReport};
use crate::route;
use crate::stats::ArenaStats;

const DEFAULT_CHUNK: usize = 256 << 10;
const MAX_CHUNK_SETTING: usize = 1 << 30;
const DEFAULT_LANES: usize = 64;

pub(crate) mod sealed {
    /// Access to the core, for `with_bumper`. Not nameable outside the crate.
    pub trait Sealed {
        #[doc(hidden)]
        fn core_ref(&self) -> CoreRef<'_>;
    }

    /// An opaque reference to an arena's shared state.
    #[doc(hidden)]
    pub struct CoreRef<'a>(pub(crate) &'a crate::arena_core::ArenaCore);
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

/// A position in an arena to [`reset_to`](Arena::reset_to) later.
///
/// Taken with `checkpoint()` on [`Arena`] or [`LockedArena`]. A reset
/// consumes it. Dropping it without a reset *discards* it: its allocations
/// are kept and belong to the enclosing checkpoint. Checkpoints of one thread
/// are reset innermost first.
///
/// A checkpoint is [`UnwindSafe`](std::panic::UnwindSafe) and
/// [`RefUnwindSafe`](std::panic::RefUnwindSafe) (see
/// [`Arena`'s unwind safety](Arena#unwind-safety)), so it can be moved into
/// [`catch_unwind`](std::panic::catch_unwind), for example to catch the panic
/// of a reset under [`EscapePolicy::Panic`].
///
/// ```
/// # #[global_allocator]
/// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
/// use bumper::{with_bumper, Arena};
///
/// let arena = Arena::new();
/// let cp = arena.checkpoint();
/// with_bumper(&arena, || drop(vec![0u8; 100]));
/// let report = arena.reset_to(cp);
/// assert!(report.is_clean());
/// ```
#[must_use = "a checkpoint does nothing unless passed to `reset_to`; dropping it discards it"]
pub struct Checkpoint<'a> {
    core: &'a ArenaCore,
    serial: u64,
    /// Checkpoints are per thread, like regions.
    _not_send: PhantomData<*const ()>,
}

// See `Arena`: a checkpoint is a serial number; a panic leaves the arena's
// checkpoint list consistent.
impl std::panic::UnwindSafe for Checkpoint<'_> {}
impl std::panic::RefUnwindSafe for Checkpoint<'_> {}

impl Checkpoint<'_> {
    /// Id of the arena this checkpoint belongs to.
    ///
    /// ```
    /// let arena = bumper::Arena::new();
    /// let cp = arena.checkpoint();
    /// assert_eq!(cp.arena_id(), arena.id());
    /// ```
    #[must_use]
    pub fn arena_id(&self) -> u64 {
        self.core.id
    }

    fn into_serial(self) -> u64 {
        ManuallyDrop::new(self).serial
    }
}

impl Drop for Checkpoint<'_> {
    fn drop(&mut self) {
        self.core.discard(self.serial);
    }
}

impl fmt::Debug for Checkpoint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpoint")
            .field("arena", &self.core.id)
            .field("serial", &self.serial)
            .finish()
    }
}

/// Configures an [`Arena`] or a [`LockedArena`].
///
/// ```
/// use bumper::{Arena, EscapePolicy, LockedArena};
///
/// let arena = Arena::builder()
///     .capacity_limit(16 << 20)
///     .chunk_size(1 << 20)
///     .escape_policy(EscapePolicy::Panic)
///     .build()
///     .unwrap();
/// assert_eq!(arena.stats().capacity_limit, Some(16 << 20));
///
/// let shared = LockedArena::builder().max_threads(8).build().unwrap();
/// # drop(shared);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ArenaBuilder<K> {
    capacity: Option<usize>,
    chunk_size: usize,
    policy: EscapePolicy,
    max_threads: usize,
    guard: bool,
    _kind: PhantomData<fn() -> K>,
}

impl<K> ArenaBuilder<K> {
    fn new(max_threads: usize) -> Self {
        ArenaBuilder {
            capacity: None,
            chunk_size: DEFAULT_CHUNK,
            policy: EscapePolicy::Keep,
            max_threads,
            guard: false,
            _kind: PhantomData,
        }
    }

    /// Caps the chunk memory the arena may hold, in bytes, its first 64 KiB
    /// chunk included. Past the cap, allocations inside a region go to the
    /// inner allocator and are counted as spills; nothing fails. The minimum
    /// is 64 KiB.
    ///
    /// ```
    /// let arena = bumper::Arena::builder().capacity_limit(1 << 20).build().unwrap();
    /// assert_eq!(arena.stats().capacity_limit, Some(1 << 20));
    /// ```
    #[must_use = "builder methods return the updated builder; call `build` on it"]
    pub fn capacity_limit(mut self, bytes: usize) -> Self {
        self.capacity = Some(bytes);
        self
    }

    /// Size of the second chunk the arena takes (later ones double, up to
    /// 64 MiB, or are as large as one request needs). A power of two from
    /// 64 KiB to 1 GiB; default 256 KiB.
    ///
    /// ```
    /// let arena = bumper::Arena::builder().chunk_size(4 << 20).build().unwrap();
    /// # drop(arena);
    /// ```
    #[must_use = "builder methods return the updated builder; call `build` on it"]
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes;
        self
    }

    /// What to do when a reset finds memory still in use. Default:
    /// [`EscapePolicy::Keep`].
    ///
    /// ```
    /// use bumper::{Arena, EscapePolicy};
    /// let arena = Arena::builder().escape_policy(EscapePolicy::Panic).build().unwrap();
    /// assert_eq!(arena.escape_policy(), EscapePolicy::Panic);
    /// ```
    #[must_use = "builder methods return the updated builder; call `build` on it"]
    pub fn escape_policy(mut self, policy: EscapePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Guard mode (off by default): memory handed back by a reset is
    /// poisoned (filled with `0xBD`) and, for whole pages, protected until it
    /// is handed out again, so that unsafe code or FFI that keeps a raw
    /// pointer past a reset faults loudly (`SIGSEGV`, with a message that
    /// names the cause) instead of reading stale data. For debugging: resets
    /// then cost system calls. Memory a free hands back at the tip, before any
    /// reset, is not poisoned.
    ///
    /// ```
    /// let arena = bumper::Arena::builder().guard_mode(true).build().unwrap();
    /// # drop(arena);
    /// ```
    #[must_use = "builder methods return the updated builder; call `build` on it"]
    pub fn guard_mode(mut self, on: bool) -> Self {
        self.guard = on;
        self
    }

    fn config(&self) -> Result<Config, ConfigError> {
        if let Some(c) = self.capacity
            && c < SLAB
        {
            return Err(ConfigError::CapacityTooSmall {
                requested: c as u64,
                minimum: SLAB as u64,
            });
        }
        let cs = self.chunk_size;
        if !cs.is_power_of_two() || !(SLAB..=MAX_CHUNK_SETTING).contains(&cs) {
            return Err(ConfigError::InvalidChunkSize {
                requested: cs as u64,
                minimum: SLAB as u64,
                maximum: MAX_CHUNK_SETTING as u64,
            });
        }
        if self.max_threads == 0 || self.max_threads > MAX_LANES {
            return Err(ConfigError::InvalidMaxThreads {
                requested: self.max_threads,
                maximum: MAX_LANES,
            });
        }
        Ok(Config {
            capacity: self.capacity.unwrap_or(usize::MAX),
            chunk_size: cs,
            policy: self.policy,
            max_lanes: self.max_threads,
            guard: self.guard,
        })
    }
}

impl ArenaBuilder<Arena> {
    /// Creates the arena, or says which setting is wrong.
    ///
    /// # Errors
    ///
    /// - [`ConfigError::CapacityTooSmall`] if the
    ///   [`capacity_limit`](Self::capacity_limit) is below 64 KiB.
    /// - [`ConfigError::InvalidChunkSize`] if the
    ///   [`chunk_size`](Self::chunk_size) is not a power of two from 64 KiB
    ///   to 1 GiB.
    ///
    /// Running out of memory is not an error. If the address space is
    /// refused, or the OS refuses even the few pages of the arena's own
    /// bookkeeping, the arena is still created and its regions spill
    /// everything to the inner allocator (counted in
    /// [`ArenaStats::spills`](crate::ArenaStats::spills)). In the second case
    /// the arena is *degraded*: its [`id`](Arena::id) is 0, shared with every
    /// other degraded arena, and its checkpoints are untracked.
    ///
    /// ```
    /// let arena = bumper::Arena::builder().build().unwrap();
    /// # drop(arena);
    /// ```
    #[must_use = "the arena, or the error, is returned rather than stored"]
    pub fn build(self) -> Result<Arena, ConfigError> {
        let cfg = self.config()?;
        Ok(Arena {
            core: ArenaCore::create(&cfg),
            _not_sync: PhantomData,
        })
    }
}

impl ArenaBuilder<LockedArena> {
    /// The most threads that get their own lane at once (default 64, at most
    /// 256). Regions entered while all lanes are taken spill to the inner
    /// allocator and are counted in
    /// [`ArenaStats::lanes_exhausted`](crate::ArenaStats::lanes_exhausted).
    ///
    /// ```
    /// let arena = bumper::LockedArena::builder().max_threads(4).build().unwrap();
    /// # drop(arena);
    /// ```
    #[must_use = "builder methods return the updated builder; call `build` on it"]
    pub fn max_threads(mut self, n: usize) -> Self {
        self.max_threads = n;
        self
    }

    /// Creates the arena, or says which setting is wrong.
    ///
    /// # Errors
    ///
    /// - [`ConfigError::CapacityTooSmall`] if the
    ///   [`capacity_limit`](Self::capacity_limit) is below 64 KiB.
    /// - [`ConfigError::InvalidChunkSize`] if the
    ///   [`chunk_size`](Self::chunk_size) is not a power of two from 64 KiB
    ///   to 1 GiB.
    /// - [`ConfigError::InvalidMaxThreads`] if
    ///   [`max_threads`](Self::max_threads) is 0 or above 256.
    ///
    /// As for [`Arena`]'s builder, a refused mapping for the bookkeeping runs
    /// the allocation error handler, and a refused address space makes an
    /// arena that spills everything.
    ///
    /// ```
    /// let err = bumper::LockedArena::builder().max_threads(0).build();
    /// assert!(err.is_err());
    /// ```
    #[must_use = "the arena, or the error, is returned rather than stored"]
    pub fn build(self) -> Result<LockedArena, ConfigError> {
        let cfg = self.config()?;
        Ok(LockedArena {
            core: ArenaCore::create(&cfg),
        })
    }
}

macro_rules! arena_api {
    ($ty:ident, $name:literal) => {
        impl $ty {
            fn core(&self) -> &ArenaCore {
                // SAFETY: the core lives at least as long as the handle.
                unsafe { self.core.as_ref() }
            }

            /// A process-unique id, used in messages and reports. A degraded
            /// arena (one created when the OS refused even its bookkeeping
            /// memory, see [`ArenaBuilder::build`]) has id 0.
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
            /// assert_eq!(arena.escape_policy(), bumper::EscapePolicy::Keep);
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
                let serial = self.core().checkpoint(route::tid());
                Checkpoint { core: self.core(), serial, _not_send: PhantomData }
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
            /// then discarded and its allocations kept). And on an escape
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
            pub fn reset_to(&self, checkpoint: Checkpoint<'_>) -> ResetReport {
                match self.try_reset_to(checkpoint) {
                    Ok(r) => {
                        handle_escape(self.core().policy, EscapeSite::Reset, self.id(), &r);
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
            /// - [`ResetError::Stale`] if the checkpoint is no longer active.
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
            /// [`ResetError::OutOfOrder`] of [`try_reset`](Self::try_reset));
            /// and on an escape under
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
            pub fn reset(&self) -> ResetReport {
                match self.try_reset() {
                    Ok(r) => {
                        handle_escape(self.core().policy, EscapeSite::Reset, self.id(), &r);
                        r
                    }
                    Err(e) => panic!("{e}"),
                }
            }

            /// Like [`reset`](Self::reset), but returns misuse as an error and
            /// does not apply the escape policy.
            ///
            /// # Errors
            ///
            /// [`ResetError::OutOfOrder`] if a checkpoint of this thread is
            /// still active (reset or drop it first); nothing is reset.
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
                                handle_escape(self.arena.core().policy, EscapeSite::NoEscape, self.arena.id(), &r);
                            }
                        }
                    }
                }
                let mut guard = ResetOnUnwind { arena: self, cp: Some(self.checkpoint()) };
                let r = f();
                let cp = guard.cp.take().expect("checkpoint taken above");
                match self.try_reset_to(cp) {
                    Ok(report) => handle_escape(self.core().policy, EscapeSite::NoEscape, self.id(), &report),
                    Err(e) => panic!("{e} (in `no_escape`)"),
                }
                r
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
                sealed::CoreRef(self.core())
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
                let (id, policy) = (self.id(), self.core().policy);
                // A region borrows the arena, so normally none is active here.
                // But `exit()` runs thread-local destructors while the frames
                // below it stay suspended, and a stackful coroutine can be
                // leaked while inside a region: end this thread's regions of
                // the arena first, so that no route names it afterwards.
                if self.core().is_fallback() {
                    // The shared core of degraded arenas is never closed;
                    // regions of other such arenas may still use it.
                    return;
                }
                route::detach_arena(self.core.as_ptr());
                // SAFETY: the handle is going away, and this thread has no
                // region of the arena left.
                let report = unsafe { ArenaCore::close(self.core.as_ptr(), route::tid()) };
                handle_escape(policy, EscapeSite::Drop, id, &report);
            }
        }
    };
}

arena_api!(Arena, "Arena");
arena_api!(LockedArena, "LockedArena");

impl Arena {
    /// An arena with default settings: no capacity limit, 256 KiB chunks
    /// after the first, [`EscapePolicy::Keep`].
    ///
    /// ```
    /// let arena = bumper::Arena::new();
    /// assert_eq!(arena.stats().allocations, 0);
    /// ```
    pub fn new() -> Arena {
        Self::builder()
            .build()
            .expect("the default configuration is valid")
    }

    /// A builder for a configured arena.
    ///
    /// ```
    /// let arena = bumper::Arena::builder().capacity_limit(1 << 20).build().unwrap();
    /// # drop(arena);
    /// ```
    #[must_use = "a builder does nothing until `build` is called"]
    pub fn builder() -> ArenaBuilder<Arena> {
        ArenaBuilder::new(1)
    }
}

impl LockedArena {
    /// A locked arena with default settings: no capacity limit, up to 64
    /// threads with their own lane, [`EscapePolicy::Keep`].
    ///
    /// ```
    /// let arena = bumper::LockedArena::new();
    /// assert_eq!(arena.stats().allocations, 0);
    /// ```
    pub fn new() -> LockedArena {
        Self::builder()
            .build()
            .expect("the default configuration is valid")
    }

    /// A builder for a configured locked arena.
    ///
    /// ```
    /// let arena = bumper::LockedArena::builder().max_threads(16).build().unwrap();
    /// # drop(arena);
    /// ```
    #[must_use = "a builder does nothing until `build` is called"]
    pub fn builder() -> ArenaBuilder<LockedArena> {
        ArenaBuilder::new(DEFAULT_LANES)
    }
}
