//! # bumper
//!
//! Transparent, scoped bump allocation for all code, not just code that
//! knows about arenas.
//!
//! Install [`Bumper`] as the `#[global_allocator]`. Inside
//! [`with_bumper(&arena, || ...)`](with_bumper), every allocation the
//! current thread makes (std collections, `serde_json`, `ndarray`, anything)
//! is bump-allocated from `arena`. [`Arena::no_escape`] and checkpoints then
//! hand it all back at once. Outside a region, calls go to an inner
//! allocator (the system allocator, mimalloc, ...).
//!
//! ```
//! use bumper::{measure, with_bumper, Arena, Bumper};
//!
//! #[global_allocator]
//! static GLOBAL: Bumper = Bumper::system();
//!
//! fn work(data: &[f64]) -> f64 {
//!     let doubled: Vec<f64> = data.iter().map(|x| 2.0 * x).collect();
//!     doubled.iter().sum()
//! }
//!
//! let data = vec![1.0; 100_000];
//! let arena = Arena::new();
//! let (sum, m) = measure(|| with_bumper(&arena, || arena.no_escape(|| work(&data))));
//! assert_eq!(sum, 200_000.0);
//! assert_eq!(m.inner_calls, 0); // nothing reached the system allocator
//! ```
//!
//! ## Soundness
//!
//! Safe code cannot cause undefined behaviour through bumper:
//!
//! * `dealloc` and `realloc` are routed by who owns the pointer (one address
//!   comparison), never by which region is active. A heap block stays on the
//!   heap; an arena block is handled by its arena from any thread, at any
//!   time, even after the arena was dropped.
//! * A reset reclaims memory only if every block allocated since the
//!   checkpoint has been freed. Otherwise the memory still in use is an
//!   *escape*: it stays valid, is never reused, is counted, and the arena's
//!   [`EscapePolicy`] decides how loudly to report it.
//! * The allocation path never allocates, never unwinds and never waits on
//!   a lock that code running under it could hold.
//!
//! ## Byte counts
//!
//! Byte counts reported by bumper are `u64`: in [`ArenaStats`],
//! [`ResetReport`], [`Measurement`], [`SpaceStats`], [`ConfigError`] and
//! [`SpaceError`], and [`Bytes`] prints them. Sizes you pass in are `usize`
//! ([`ArenaBuilder::capacity_limit`], [`ArenaBuilder::chunk_size`],
//! [`configure_address_space`]), because they are sizes of memory in this
//! process. Counters are totals over an arena's life, so a fixed width keeps
//! them the same type on every target.
//!
//! ```
//! let arena = bumper::Arena::builder().capacity_limit(1 << 20).build().unwrap();
//! let limit: Option<u64> = arena.stats().capacity_limit;
//! assert_eq!(limit, Some(1 << 20));
//! let reserved: u64 = bumper::space_stats().reserved;
//! assert!(reserved >= 1 << 20);
//! ```

// The modules and their layers are described in ARCHITECTURE.md.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(not(unix))]
compile_error!(
    "bumper supports Unix targets only (Linux, macOS, FreeBSD, ...): it reserves its \
     address space with mmap. See the platform table in the README."
);

mod api2;
mod arena;
mod arena_core;
mod builder;
mod checkpoint;
mod checkpoints;
mod chunk;
mod error;
mod escape;
mod guard_mode;
mod lane;
mod lease;
mod mapvec;
mod measure;
mod pool;
mod region;
mod report;
mod route;
mod scratch;
mod shim;
mod sites;
mod space;
mod spin;
mod stats;
mod sys;
mod task;
pub mod thread;
#[cfg(feature = "tower")]
pub mod tower;

pub use allocator_api2;
pub use api2::Current;
pub use arena::{Arena, BumpArena, LockedArena};
pub use builder::ArenaBuilder;
pub use checkpoint::Checkpoint;
pub use error::{ConfigError, ResetError, SpaceError};
pub use lease::{Lease, Leased};
pub use measure::{Measurement, measure};
pub use pool::{Pool, PoolBuilder, PoolStats};
pub use region::{Region, outside_regions, with_bumper};
pub use report::{AllocSite, EscapePolicy, ResetReport, SiteCount};
pub use scratch::{scratch, scratch_arena};
pub use shim::Bumper;
pub use stats::{ArenaStats, Bytes, SpaceStats};
pub use task::{InArena, InRegion, in_arena, in_region};

/// Sets the size of the address-space reservation that all arenas share
/// (default 64 GiB of address space; nothing is committed until used). Must
/// be called before the first arena is created. The environment variable
/// `BUMPER_RESERVE` (e.g. `4G`) does the same without code.
///
/// If the OS refuses the size asked for (a low `ulimit -v`, valgrind),
/// bumper retries with halved sizes down to 64 MiB. If the reservation is too
/// small for the work, or refused entirely, arenas spill to the inner
/// allocator; nothing fails.
///
/// # Errors
///
/// - [`SpaceError::TooSmall`] if `bytes` is below 64 KiB.
/// - [`SpaceError::AlreadyInitialized`] if the reservation was already made
///   (an arena has been created in this process); the size is then
///   unchanged.
///
/// ```
/// // In a fresh process, before any arena exists:
/// let _ = bumper::configure_address_space(1 << 30);
/// ```
pub fn configure_address_space(bytes: usize) -> Result<(), SpaceError> {
    space::configure(bytes)
}

/// Whether `ptr` points into memory that belongs to an arena (as opposed to
/// the inner allocator). One comparison; the same test that routes every
/// `dealloc` and `realloc`.
///
/// ```
/// use bumper::{is_arena_pointer, with_bumper, Arena, Bumper};
///
/// #[global_allocator]
/// static GLOBAL: Bumper = Bumper::system();
///
/// let arena = Arena::new();
/// let on_heap = Box::new(1);
/// let in_arena = with_bumper(&arena, || Box::new(2));
/// assert!(!is_arena_pointer(&*on_heap));
/// assert!(is_arena_pointer(&*in_arena));
/// ```
#[must_use]
pub fn is_arena_pointer<T: ?Sized>(ptr: *const T) -> bool {
    space::owns(ptr.cast())
}

/// Process-wide figures about the address space shared by all arenas.
///
/// ```
/// let arena = bumper::Arena::new();
/// let s = bumper::space_stats();
/// assert!(s.in_use >= 64 * 1024); // the arena's first chunk
/// # drop(arena);
/// ```
#[must_use = "`space_stats` only takes a snapshot; it has no effect"]
pub fn space_stats() -> SpaceStats {
    space::stats()
}

/// The README's Rust examples, compiled and run as doc tests so that they
/// cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The guide's Rust examples (`docs/guide.md`), compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/guide.md")]
pub struct GuideDoctests;

/// Hooks for bumper's own fault-injection tests. Not part of the API: only
/// compiled with the `fault-injection` feature, which bumper's tests enable.
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub mod __testing {
    /// Makes the next `n` requests to the OS for memory (reserving address
    /// space, committing a chunk, mapping arena bookkeeping) fail as if the
    /// OS refused them.
    pub fn fail_next_os_calls(n: usize) {
        crate::sys::inject_failures(n);
    }

    /// Makes the process behave as if the OS refused the address-space
    /// reservation (if it has not been made yet).
    pub fn refuse_address_space() {
        crate::space::refuse_reservation();
    }

    pub use crate::lane::{ChunkInfo, ChunkKind};

    /// Calls `f` with every chunk the arena holds, lane by lane, after taking
    /// in the frees other threads made (as `stats` does); lanes held by
    /// another thread's region are skipped. For the boundedness checks of
    /// bumper's own tests: a test compares the chunks with the blocks it
    /// knows are live. Returns the retained capacity the lanes aim for,
    /// summed.
    pub fn for_each_chunk<A: crate::BumpArena + ?Sized>(
        arena: &A,
        f: impl FnMut(ChunkInfo),
    ) -> usize {
        arena
            .core_ref()
            .0
            .for_each_chunk_info(crate::route::tid(), f)
    }
}
