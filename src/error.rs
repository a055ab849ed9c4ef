//! Errors for misuse that a caller can recover from.

use core::fmt;

/// Why a checkpoint could not be reset.
///
/// Returned by `try_reset_to` and `try_reset` on [`Arena`](crate::Arena) and
/// [`LockedArena`](crate::LockedArena); the panicking `reset_to` and `reset`
/// print the same message.
///
/// ```
/// use bumper::{Arena, ResetError};
///
/// let arena = Arena::new();
/// let outer = arena.checkpoint();
/// let _inner = arena.checkpoint();
/// // `outer` cannot be reset while `_inner`, taken after it, is active.
/// assert!(matches!(arena.try_reset_to(outer), Err(ResetError::OutOfOrder { .. })));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResetError {
    /// The checkpoint belongs to a different arena.
    WrongArena {
        /// Id of the arena the checkpoint was taken on.
        checkpoint_arena: u64,
        /// Id of the arena `reset_to` was called on.
        arena: u64,
    },
    /// Checkpoints taken later by the same thread are still active:
    /// [`Checkpoint`](crate::Checkpoint)s not yet reset or dropped, or those
    /// of `no_escape` blocks still running. Reset (or drop) those first:
    /// checkpoints are reset innermost first. Nothing is reset; a checkpoint
    /// passed to `try_reset_to` is discarded (its allocations are kept).
    ///
    /// A `Checkpoint` leaked with `mem::forget` stays active for good, so
    /// this error comes back at every such reset on the thread until
    /// `discard_checkpoints()` discards it.
    OutOfOrder {
        /// How many newer checkpoints of this thread are still active.
        newer: usize,
    },
    /// The checkpoint is no longer active: `discard_checkpoints()` discarded
    /// it while its token was still held. Nothing is reset.
    Stale,
}

impl fmt::Display for ResetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResetError::WrongArena {
                checkpoint_arena,
                arena,
            } => write!(
                f,
                "bumper: checkpoint from arena #{checkpoint_arena} passed to arena #{arena}; \
                 a checkpoint can only reset the arena it was taken on"
            ),
            ResetError::OutOfOrder { newer } => write!(
                f,
                "bumper: out-of-order reset: {newer} newer checkpoint(s) of this thread are still \
                 active (`Checkpoint`s not yet reset or dropped, or `no_escape` blocks still \
                 running); reset or drop them first (checkpoints are reset innermost first). \
                 Nothing was reset; a checkpoint passed to `reset_to` is discarded and its \
                 allocations kept. A `Checkpoint` leaked with `mem::forget` stays active for good: \
                 `discard_checkpoints()` on the arena discards this thread's checkpoints and \
                 resets work again"
            ),
            ResetError::Stale => f.write_str(
                "bumper: the checkpoint is no longer active (`discard_checkpoints()` discarded \
                 it); nothing was reset",
            ),
        }
    }
}

impl std::error::Error for ResetError {}

/// An invalid arena configuration, returned by the builders.
///
/// ```
/// use bumper::{Arena, ConfigError};
///
/// let err = Arena::builder().capacity_limit(1024).build().unwrap_err();
/// assert!(matches!(err, ConfigError::CapacityTooSmall { .. }));
/// println!("{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The capacity limit cannot hold even the arena's first chunk.
    CapacityTooSmall {
        /// The limit that was asked for, in bytes.
        requested: u64,
        /// The smallest limit accepted, in bytes.
        minimum: u64,
    },
    /// The chunk size is not a power of two in the accepted range.
    InvalidChunkSize {
        /// The size that was asked for, in bytes.
        requested: u64,
        /// Smallest accepted size, in bytes.
        minimum: u64,
        /// Largest accepted size, in bytes.
        maximum: u64,
    },
    /// The thread limit of a locked arena is zero or too large.
    InvalidMaxThreads {
        /// The limit that was asked for.
        requested: usize,
        /// Largest accepted limit.
        maximum: usize,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::CapacityTooSmall { requested, minimum } => write!(
                f,
                "bumper: capacity limit of {requested} bytes is too small; an arena needs at least \
                 {minimum} bytes (one chunk)"
            ),
            ConfigError::InvalidChunkSize {
                requested,
                minimum,
                maximum,
            } => write!(
                f,
                "bumper: chunk size {requested} is invalid; use a power of two from {minimum} to {maximum}"
            ),
            ConfigError::InvalidMaxThreads { requested, maximum } => write!(
                f,
                "bumper: max_threads({requested}) is invalid; use 1 to {maximum}"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Error returned by [`configure_address_space`](crate::configure_address_space).
///
/// ```
/// use bumper::SpaceError;
///
/// let err = bumper::configure_address_space(1024).unwrap_err();
/// assert_eq!(err, SpaceError::TooSmall { requested: 1024 });
/// println!("{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpaceError {
    /// The reservation was already made (an arena exists or existed).
    AlreadyInitialized,
    /// The requested size is smaller than one slab (64 KiB).
    TooSmall {
        /// The size that was asked for, in bytes.
        requested: u64,
    },
}

impl core::fmt::Display for SpaceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SpaceError::AlreadyInitialized => f.write_str(
                "bumper: the address space is already reserved; call \
                 configure_address_space before creating the first arena",
            ),
            SpaceError::TooSmall { requested } => write!(
                f,
                "bumper: an address-space reservation of {requested} bytes is too small; \
                 the minimum is 65536 bytes (64 KiB)"
            ),
        }
    }
}

impl std::error::Error for SpaceError {}
