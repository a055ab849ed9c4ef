//! [`ArenaBuilder`]: settings for an [`Arena`] or a [`LockedArena`].

use core::marker::PhantomData;

use crate::arena::{Arena, LockedArena};
use crate::arena_core::{ArenaCore, Config, MAX_LANES, Retain};
use crate::chunk::SLAB;
use crate::error::ConfigError;
use crate::report::EscapePolicy;

/// Size of an arena's second chunk, by default.
const DEFAULT_CHUNK: usize = 256 << 10;
/// Largest chunk size a builder accepts.
const MAX_CHUNK_SETTING: usize = 1 << 30;
/// Threads with a lane of their own in a locked arena, by default.
const DEFAULT_LANES: usize = 64;

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
/// // A builder is `Copy`: one set of settings for several arenas.
/// let settings = LockedArena::builder().max_threads(8);
/// let first = settings.build().unwrap();
/// let second = settings.build().unwrap();
/// assert_ne!(first.id(), second.id());
/// ```
#[derive(Debug)]
pub struct ArenaBuilder<K> {
    capacity: Option<usize>,
    chunk_size: usize,
    policy: EscapePolicy,
    max_threads: usize,
    guard: bool,
    autoscale: bool,
    max_retained: usize,
    initial_capacity: usize,
    track_sites: bool,
    _kind: PhantomData<fn() -> K>,
}

// By hand: a derive would require `K: Clone`/`K: Copy`, though `K` is only
// named in a `PhantomData` (so `ArenaBuilder<LockedArena>` would not be
// `Copy`).
impl<K> Clone for ArenaBuilder<K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K> Copy for ArenaBuilder<K> {}

impl<K> ArenaBuilder<K> {
    pub(crate) fn new(max_threads: usize) -> Self {
        ArenaBuilder {
            capacity: None,
            chunk_size: DEFAULT_CHUNK,
            policy: EscapePolicy::default(),
            max_threads,
            guard: false,
            autoscale: true,
            max_retained: usize::MAX,
            initial_capacity: 0,
            track_sites: false,
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
    /// the default [`EscapePolicy`] (`Warn` in debug builds, `Keep` in release builds).
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

    /// Whether each reset gives back the chunk memory that recent resets did
    /// not need (default: on). With it on, an arena keeps about 1.1 times the
    /// largest need of its last 8 resets (at least its
    /// [`initial_capacity`](Self::initial_capacity)) and returns the rest to
    /// the OS, so a one-off spike does not stay resident: the rule of
    /// AutoscalingAllocBuffer.jl. Off, it keeps every chunk it ever took
    /// until [`trim`](crate::Arena::trim) or its drop.
    ///
    /// ```
    /// let keep_all = bumper::Arena::builder().autoscale(false).build().unwrap();
    /// # drop(keep_all);
    /// ```
    #[must_use]
    pub fn autoscale(mut self, on: bool) -> Self {
        self.autoscale = on;
        self
    }

    /// Bounds the chunk memory each thread's lane keeps after a reset, in
    /// bytes, whatever recent resets needed (with [`autoscale`](Self::autoscale)
    /// on). The memory in use by live blocks is never given back.
    ///
    /// ```
    /// let arena = bumper::Arena::builder().max_retained(4 << 20).build().unwrap();
    /// # drop(arena);
    /// ```
    #[must_use]
    pub fn max_retained(mut self, bytes: usize) -> Self {
        self.max_retained = bytes;
        self
    }

    /// Takes `bytes` of chunk memory when the arena is created, so that the
    /// first regions find it ready, and never trims below it: the
    /// `with_capacity` of an arena. Counts against the
    /// [`capacity_limit`](Self::capacity_limit).
    ///
    /// ```
    /// let arena = bumper::Arena::builder().initial_capacity(8 << 20).build().unwrap();
    /// assert!(arena.stats().chunk_bytes >= 8 << 20);
    /// ```
    #[must_use]
    pub fn initial_capacity(mut self, bytes: usize) -> Self {
        self.initial_capacity = bytes;
        self
    }

    /// Records where every block was allocated (off by default), so that a
    /// reset that finds escapes can say which code made them:
    /// [`ResetReport::sites`](crate::ResetReport::sites) lists the top
    /// allocation sites of the escaped blocks with their counts and bytes,
    /// and the escape message of [`EscapePolicy::Warn`],
    /// [`Panic`](EscapePolicy::Panic) and [`Abort`](EscapePolicy::Abort)
    /// names them. For hunting escapes: every allocation and free of the
    /// arena then takes the slow path and captures a stack trace (with
    /// glibc's `backtrace()`, which never allocates through bumper), and
    /// every small block carries a 32-byte header. Sites are captured on
    /// Linux with glibc only; function names and source lines need debug
    /// information in the binary.
    ///
    /// ```
    /// let arena = bumper::Arena::builder().track_sites(true).build().unwrap();
    /// # drop(arena);
    /// ```
    #[must_use]
    pub fn track_sites(mut self, on: bool) -> Self {
        self.track_sites = on;
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
            retain: if self.autoscale {
                Retain::Auto {
                    max: self.max_retained,
                }
            } else {
                Retain::All
            },
            initial_capacity: self.initial_capacity,
            track_sites: self.track_sites,
            shared: true,
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
        // An `Arena` is `!Sync`: only the thread holding it enters its
        // regions, resets it or reads its stats.
        let cfg = Config {
            shared: false,
            ..self.config()?
        };
        Ok(Arena::from_core(ArenaCore::create(&cfg)))
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
        Ok(LockedArena::from_core(ArenaCore::create(&cfg)))
    }
}

impl Arena {
    /// An arena with default settings: no capacity limit, 256 KiB chunks
    /// after the first, the default [`EscapePolicy`] (`Warn` in debug builds, `Keep` in release builds).
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
    /// threads with their own lane, the default [`EscapePolicy`] (`Warn` in debug builds, `Keep` in release builds).
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
